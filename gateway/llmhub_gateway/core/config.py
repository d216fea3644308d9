"""The gateway's whole configuration, read once from the environment (names fixed by the chart)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmhub_common.contract import DEFAULT_GEMINI_AUTH_PATH, EXPIRES_AT_KEY
from llmhub_common.tokens import parse_rfc3339


class Settings(BaseSettings):
    """Environment variables, one field each; the field name upper-cased is the variable."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    claude_code_oauth_token: SecretStr | None = None
    claude_model: str = "claude-sonnet-4-5-20250929"
    claude_cli_path: str | None = None
    claude_token_expires_at: str | None = None
    claude_timeout_seconds: float = 300.0
    claude_max_concurrency: int = 4

    gemini_auth_path: Path | None = None
    gemini_model: str = "gemini-2.5-pro"
    gemini_cli_path: str = "gemini"
    gemini_cli_home: Path = Path("/tmp/llmhub/gemini-home")  # noqa: S108 (chart contract; emptyDir)
    gemini_token_expires_at: str | None = None
    gemini_timeout_seconds: float = 300.0
    gemini_max_concurrency: int = 4

    redis_url: SecretStr | None = None
    session_ttl_seconds: int = 86400
    scratch_dir: Path = Path("/tmp/llmhub/sessions")  # noqa: S108 (chart contract; emptyDir)
    log_level: str = "INFO"
    token_warn_before_days: int = 3
    mcp_allowed_hosts: str = ""

    @field_validator("claude_max_concurrency", "gemini_max_concurrency", "session_ttl_seconds")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    def gemini_auth_file(self) -> Path:
        """The mounted creds file; without GEMINI_AUTH_PATH and no mount, the user's own login."""
        if self.gemini_auth_path is not None:
            return self.gemini_auth_path
        mounted = Path(DEFAULT_GEMINI_AUTH_PATH)
        if mounted.exists():
            return mounted
        return Path.home() / ".gemini" / "oauth_creds.json"

    def claude_token(self) -> str | None:
        return (
            self.claude_code_oauth_token.get_secret_value()
            if self.claude_code_oauth_token
            else None
        )

    def token_expiry(self, provider: str) -> datetime | None:
        """When the provider's credential expires, from env or the Secret's ``expires_at`` file."""
        text = (
            self.claude_token_expires_at if provider == "claude" else self.gemini_token_expires_at
        )
        if text is None and provider == "gemini":
            side_file = self.gemini_auth_file().parent / EXPIRES_AT_KEY
            try:
                text = side_file.read_text(encoding="utf-8")
            except OSError:
                return None
        if not text or not text.strip():
            return None
        try:
            return parse_rfc3339(text)
        except ValueError:
            return None

    def mcp_hosts(self) -> list[str]:
        """Extra Host names allowed on /mcp (besides localhost), from MCP_ALLOWED_HOSTS."""
        return [h.strip() for h in self.mcp_allowed_hosts.split(",") if h.strip()]
