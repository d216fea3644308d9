"""The gateway's whole configuration, read once from the environment (names fixed by the chart)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmhub_common.contract import DEFAULT_GEMINI_AUTH_PATH, EXPIRES_AT_KEY
from llmhub_common.tokens import parse_rfc3339

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # nan, inf, 0, -1 are refused
Count = Annotated[int, Field(ge=1)]


class Settings(BaseSettings):
    """Environment variables, one field each; the field name upper-cased is the variable."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    claude_code_oauth_token: SecretStr | None = None
    claude_model: str = "claude-sonnet-4-5-20250929"
    claude_cli_path: str | None = None
    claude_token_expires_at: str | None = None
    claude_timeout_seconds: Seconds = 300.0
    claude_max_concurrency: Count = 4
    # Claude runtime (claude-pool): "warm" keeps pooled CLIs alive across turns and resumes
    # sessions natively; "cold" starts one CLI per turn and replays the history.
    claude_runtime: Literal["warm", "cold"] = "warm"
    claude_pool_idle: Annotated[int, Field(ge=0)] = 1  # pre-started CLIs for new sessions
    claude_pool_max_turns: Count = 100  # a CLI is recycled after this many turns...
    claude_pool_max_age_s: Seconds = 3600.0  # ...or this age...
    claude_pool_max_rss_mb: Count = 300  # ...or this resident memory (also its budget share)
    # The CLI's own retries and API timeout (CLAUDE_CODE_MAX_RETRIES / API_TIMEOUT_MS).
    claude_max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    claude_api_timeout_s: Seconds = 60.0
    # Extra variable names (comma list, trailing * = prefix) passed to the CLI's allow-listed
    # environment; for test fakes and benchmarks (FAKE_CLI_*), empty in production.
    claude_cli_env_passthrough: str = ""
    # Memory budget (MB) of all CLI children of this replica (both providers); the pools never
    # grow beyond it. The default fits the chart's 2 GiB gateway limit with the gateway itself.
    provider_memory_mb: Count = 1536

    gemini_auth_path: Path | None = None
    gemini_model: str = "gemini-2.5-pro"
    gemini_cli_path: str = "gemini"
    gemini_cli_home: Path = Path("/tmp/llmhub/gemini-home")  # noqa: S108 (chart contract; emptyDir)
    gemini_token_expires_at: str | None = None
    gemini_timeout_seconds: Seconds = 300.0
    gemini_max_concurrency: Count = 4
    # Gemini Code Assist accounts need their Google Cloud project; unset: the key the operator
    # writes into the Gemini Secret (spec.gemini.projectId), if any.
    google_cloud_project: str | None = None

    # Gemini runtime (gemini-acp): warm `gemini --acp` processes, several sessions
    # each ("acp"; falls back to "pty" by itself when the CLI has no ACP), or one PTY process
    # per turn ("pty").
    gemini_runtime: Literal["acp", "pty"] = "acp"
    gemini_acp_processes: Count = 2
    gemini_acp_sessions_per_process: Count = 4
    gemini_acp_max_turns: Count = 200  # a process is recycled after this many turns...
    gemini_acp_max_age_seconds: Seconds = 3600.0  # ...or this age (once idle)
    # Extra environment variable names handed to the Gemini CLI (comma list, "PREFIX*" allowed);
    # it otherwise gets only PATH, HOME, locale, TMPDIR, proxies/CA and GOOGLE_CLOUD_PROJECT.
    gemini_cli_env_passthrough: str = ""

    redis_url: SecretStr | None = None
    session_ttl_seconds: Count = 86400
    scratch_dir: Path = Path("/tmp/llmhub/sessions")  # noqa: S108 (chart contract; emptyDir)
    log_level: str = "INFO"
    token_warn_before_days: Annotated[int, Field(ge=0)] = 3
    mcp_allowed_hosts: str = ""
    # Comment line on every SSE stream after this much silence (proxies cut idle streams).
    sse_heartbeat_seconds: Seconds = 15.0
    # On SIGTERM: running turns get this long, then end with `shutting_down`...
    shutdown_drain_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    # ...and uvicorn this long after that to flush the last answers (chart's grace > sum).
    shutdown_graceful_seconds: Seconds = 10.0

    # Callers (auth/): unset AUTH_MODES refuses every caller with a 401 naming the setting.
    auth_modes: str | None = None
    auth_static_keys_file: Path | None = None
    auth_entra_authority: str = "https://login.microsoftonline.com"
    auth_entra_tenants: str = ""
    auth_entra_audiences: str = ""
    # e-mail domain -> tenant id ("contoso.com=<guid>,..."): a user's domain must map to the
    # tenant that signed the token.
    auth_entra_domains: str = ""
    auth_entra_leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 60
    auth_kubernetes_audience: str = "llm-mcp-hub-gateway"
    # "<namespace>/<serviceaccount>" or "<namespace>/*", comma separated.
    auth_kubernetes_allowed: str = ""
    # Out-of-cluster API server credentials (tests, dev); in a pod the mounted SA is used.
    auth_kubernetes_kubeconfig: Path | None = None
    # Callers allowed to read GET /v1/usage; names as the gateway derives them.
    auth_admin_callers: str = ""
    # Entra callers whose name may appear in metric labels (others are "other").
    auth_named_callers: str = ""
    # Public URL of /mcp (RFC 9728 resource); empty: from the request's Host.
    mcp_resource_url: str = ""
    mcp_required_scopes: str = ""

    # Limits: 0 means no limit.
    limit_caller_requests_per_minute: Annotated[int, Field(ge=0)] = 0
    limit_caller_concurrent_turns: Annotated[int, Field(ge=0)] = 0
    limit_caller_daily_tokens: Annotated[int, Field(ge=0)] = 0
    limit_subscription_requests_per_minute: Annotated[int, Field(ge=0)] = 0
    limit_subscription_concurrent_turns: Annotated[int, Field(ge=0)] = 0
    # A crashed replica's concurrency slots expire after this (longer than any turn).
    limit_slot_ttl_seconds: Count = 900

    # Subscription state (subscription_state.py): when the CLI reports that the subscription
    # is in (or would go into) paid overage, turns are refused unless this is true.
    limit_allow_overage: bool = False
    # Input limits (api-hygiene): request bodies on every route (413 before they are read in
    # full) and the prompt text of one turn (prompt, system and history together; 400).
    max_body_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024 * 1024
    max_prompt_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024
    # Per-session caps (sessions/caps.py): a turn whose session history and new text together
    # exceed this many bytes is refused with 413, one beyond this many turns with 400 (start a
    # new session). They also bound what a replay hands to a CLI and size the Claude SDK's
    # line buffer.
    session_max_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    session_max_turns: Count = 200
    # /health/ready answers from a check at most this old, refreshed off the event loop.
    ready_check_seconds: Seconds = 10.0

    # Masking (masking/, docs/gateway.md "Masking"): identifiers in prompts swapped for
    # placeholders before a provider sees them, put back in answers. Off unless enabled.
    masking_enabled: bool = False
    masking_recognizers: str = "all"  # "all" or a comma list of recognizer names
    # JSON object name -> regex of the operator's own identifiers, masked as [<NAME>_n].
    masking_extra_patterns: dict[str, str] = Field(default_factory=dict)
    # JSON object provider -> "off" | "all" | comma list: overrides the two above per provider.
    masking_providers: dict[str, str] = Field(default_factory=dict)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @field_validator("masking_recognizers", "masking_extra_patterns", "masking_providers")
    @classmethod
    def _known_recognizers(cls, value: str | dict[str, str], info: ValidationInfo) -> object:
        """Unknown recognizer names and bad extra patterns stop the start, naming the
        variable (never at the first prompt)."""
        from llmhub_gateway.masking.config import OFF, recognizers

        if isinstance(value, str):
            recognizers(value, {})
        elif info.field_name == "masking_extra_patterns":
            recognizers("", value)
        else:
            for names in value.values():
                if names.strip().lower() not in OFF:
                    recognizers(names, {})
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
        """Extra Host names allowed on every route (besides localhost and IP literals), from
        MCP_ALLOWED_HOSTS."""
        return split(self.mcp_allowed_hosts)

    @field_validator("auth_modes")
    @classmethod
    def _known_modes(cls, value: str | None) -> str | None:
        if value is None:
            return None
        unknown = set(split(value)) - set(AUTH_MODES)
        if unknown or not split(value):
            raise ValueError(f"must be a comma list of {', '.join(AUTH_MODES)}")
        return value

    def modes(self) -> frozenset[str] | None:
        """The enabled identity modes; None when AUTH_MODES is unset (every caller refused)."""
        return None if self.auth_modes is None else frozenset(split(self.auth_modes))


AUTH_MODES = ("entra", "kubernetes", "static", "none")


def split(text: str) -> list[str]:
    """A comma list, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def describe_invalid(exc: ValidationError) -> str:
    """One line per bad variable, named as in the environment; never a traceback and never
    the value of a secret (pydantic's input echo is left out)."""
    lines = []
    for err in exc.errors():
        name = "_".join(str(part) for part in err.get("loc", ())).upper() or "SETTINGS"
        message = str(err.get("msg", "invalid")).replace("Value error, ", "")
        lines.append(f"  {name}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)
