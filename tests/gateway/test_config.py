"""Settings read exactly the environment variable names the Helm chart sets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmhub_gateway.core.config import Settings, describe_invalid
from tests.leaks import assert_no_leak

ENV = {
    "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-config-test-token",
    "CLAUDE_MODEL": "claude-opus-x",
    "CLAUDE_CLI_PATH": "/opt/claude",
    "CLAUDE_TOKEN_EXPIRES_AT": "2030-01-02T03:04:05Z",
    "CLAUDE_TIMEOUT_SECONDS": "12.5",
    "CLAUDE_MAX_CONCURRENCY": "7",
    "GEMINI_MODEL": "gemini-x",
    "GEMINI_CLI_PATH": "/opt/gemini",
    "GEMINI_CLI_HOME": "/var/gemini-home",
    "GEMINI_TIMEOUT_SECONDS": "9",
    "GEMINI_MAX_CONCURRENCY": "2",
    "REDIS_URL": "redis://:pw@redis:6379/1",
    "SESSION_TTL_SECONDS": "60",
    "SCRATCH_DIR": "/var/scratch",
    "LOG_LEVEL": "DEBUG",
    "TOKEN_WARN_BEFORE_DAYS": "5",
    "MCP_ALLOWED_HOSTS": " llm-mcp-hub-gateway , llm-mcp-hub-gateway.llm-mcp-hub.svc,,",
}


def test_every_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.claude_token() == ENV["CLAUDE_CODE_OAUTH_TOKEN"]
    assert_no_leak(repr(s), claude_token=ENV["CLAUDE_CODE_OAUTH_TOKEN"])
    assert (s.claude_model, s.claude_cli_path) == ("claude-opus-x", "/opt/claude")
    assert (s.claude_timeout_seconds, s.claude_max_concurrency) == (12.5, 7)
    assert s.token_expiry("claude") is not None
    assert s.token_expiry("claude").year == 2030  # type: ignore[union-attr]
    assert (s.gemini_model, s.gemini_cli_path) == ("gemini-x", "/opt/gemini")
    assert s.gemini_cli_home == Path("/var/gemini-home")
    assert (s.gemini_timeout_seconds, s.gemini_max_concurrency) == (9, 2)
    assert s.redis_url is not None
    assert "pw" not in repr(s)
    assert (s.session_ttl_seconds, s.scratch_dir) == (60, Path("/var/scratch"))
    assert (s.log_level, s.token_warn_before_days) == ("DEBUG", 5)
    assert s.mcp_hosts() == ["llm-mcp-hub-gateway", "llm-mcp-hub-gateway.llm-mcp-hub.svc"]


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV:
        monkeypatch.delenv(key, raising=False)
    s = Settings()
    assert s.claude_token() is None
    assert s.claude_model == "claude-sonnet-4-5-20250929"
    assert s.gemini_model == "gemini-2.5-pro"
    assert s.gemini_cli_path == "gemini"
    assert (s.claude_max_concurrency, s.claude_timeout_seconds) == (4, 300)
    assert s.redis_url is None
    assert s.session_ttl_seconds == 86400


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "")
    monkeypatch.setenv("REDIS_URL", "")
    s = Settings()
    assert s.claude_token() is None
    assert s.redis_url is None


def test_gemini_auth_path_falls_back_to_the_users_login(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GEMINI_AUTH_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if Path("/mnt/auth/gemini/oauth_creds.json").exists():
        pytest.fail("this machine has the in-cluster mount; the fallback cannot be tested")
    assert Settings().gemini_auth_file() == tmp_path / ".gemini" / "oauth_creds.json"
    monkeypatch.setenv("GEMINI_AUTH_PATH", "/elsewhere/creds.json")
    assert Settings().gemini_auth_file() == Path("/elsewhere/creds.json")


def test_gemini_expiry_from_env_wins_over_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "expires_at").write_text("2031-05-05T00:00:00Z")
    monkeypatch.setenv("GEMINI_AUTH_PATH", str(tmp_path / "oauth_creds.json"))
    monkeypatch.delenv("GEMINI_TOKEN_EXPIRES_AT", raising=False)
    assert Settings().token_expiry("gemini").year == 2031  # type: ignore[union-attr]
    monkeypatch.setenv("GEMINI_TOKEN_EXPIRES_AT", "2032-05-05T00:00:00Z")
    assert Settings().token_expiry("gemini").year == 2032  # type: ignore[union-attr]
    monkeypatch.setenv("GEMINI_TOKEN_EXPIRES_AT", "not a date")
    assert Settings().token_expiry("gemini") is None


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("CLAUDE_MAX_CONCURRENCY", "0", "greater than or equal to 1"),
        ("SESSION_TTL_SECONDS", "-1", "greater than or equal to 1"),
        ("CLAUDE_TIMEOUT_SECONDS", "nan", "finite number"),
        ("GEMINI_TIMEOUT_SECONDS", "-1", "greater than 0"),
        ("CLAUDE_TIMEOUT_SECONDS", "inf", "finite number"),
        ("SSE_HEARTBEAT_SECONDS", "0", "greater than 0"),
        ("SHUTDOWN_DRAIN_SECONDS", "-5", "greater than or equal to 0"),
        ("TOKEN_WARN_BEFORE_DAYS", "-1", "greater than or equal to 0"),
        ("LOG_LEVEL", "LOUD", "must be DEBUG, INFO"),
        ("AUTH_MODES", "entra,ldap", "must be a comma list of entra, kubernetes, static, none"),
        ("LIMIT_CALLER_REQUESTS_PER_MINUTE", "-1", "greater than or equal to 0"),
    ],
)
def test_nonsense_values_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    described = describe_invalid(caught.value)
    assert f"{key}: " in described
    assert expected in described


def test_the_gateway_refuses_to_start_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CLAUDE_TIMEOUT_SECONDS": "nan",
        "GEMINI_MAX_CONCURRENCY": "-1",
        "REDIS_URL": "redis://:hunter2-secret@redis:6379/0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "llmhub_gateway", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "invalid configuration:" in done.stderr
    assert "CLAUDE_TIMEOUT_SECONDS: Input should be a finite number" in done.stderr
    assert "GEMINI_MAX_CONCURRENCY: Input should be greater than or equal to 1" in done.stderr
    assert "Traceback" not in done.stderr
    assert_no_leak(done.stderr + done.stdout, redis_password="hunter2-secret")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AUTH_MODES": "kubernetes"}, "set AUTH_KUBERNETES_KUBECONFIG outside a cluster"),
        ({"AUTH_MODES": "static"}, "AUTH_STATIC_KEYS_FILE is not set"),
        ({"AUTH_MODES": "entra"}, "entra mode needs AUTH_ENTRA_TENANTS and AUTH_ENTRA_AUDIENCES"),
    ],
)
def test_auth_modes_missing_their_settings_stop_the_start_clearly(
    env: dict[str, str], expected: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    done = subprocess.run(
        [sys.executable, "-m", "llmhub_gateway", "--port", "1"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
