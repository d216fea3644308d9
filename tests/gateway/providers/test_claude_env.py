"""What the Claude CLI runs with and what comes back from it: an allow-listed environment,
quiet and bounded settings, the CLI's own failure reason, rate-limit notices, readiness from
``claude --version``, and model ids that all run."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.providers.base import (
    NativeSession,
    ProviderError,
    ProviderRateLimited,
    RateLimitNotice,
)
from llmhub_gateway.providers.claude import ClaudeProvider
from llmhub_gateway.providers.claude_items import parse_handle
from llmhub_gateway.registry import Registry
from tests.gateway.providers.conftest import (
    FAKE_TOKEN,
    chat,
    claude_provider,
    collect,
    collect_all,
    set_mode,
)
from tests.leaks import assert_no_leak

REDIS_PASSWORD = "Redis-Pa55word-NeverToTheCli"


def spawned_env(log: Path) -> dict[str, str]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line]
    env: dict[str, str] = lines[-1]["env"]
    return env


async def test_the_cli_gets_an_allow_listed_environment(
    claude: ClaudeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "spawns.jsonl"
    monkeypatch.setenv("FAKE_CLI_SPAWN_LOG", str(log))
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_PASSWORD}@redis.hub.svc:6379/0")
    monkeypatch.setenv("AUTH_STATIC_KEYS_FILE", "/etc/llmhub/keys")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    assert "token=present" in "".join(await collect(claude, chat("hi")))
    env = spawned_env(log)
    assert not {"REDIS_URL", "AUTH_STATIC_KEYS_FILE", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert not any(REDIS_PASSWORD in value for value in env.values())
    assert not any(name.startswith("LLMHUB_") for name in env)  # the launcher's own
    assert env["CLAUDE_CODE_OAUTH_TOKEN"] == FAKE_TOKEN
    assert env["CLAUDE_CONFIG_DIR"].startswith(str(tmp_path / "claude-scratch"))
    assert {"PATH", "HOME"} <= set(env)
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["DISABLE_TELEMETRY"] == env["DISABLE_ERROR_REPORTING"] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "2"
    assert env["API_TIMEOUT_MS"] == "60000"
    # Only FAKE_CLI_* came through the passthrough the tests configure.
    extra = {n for n in env if n.startswith("FAKE_")}
    assert extra == {"FAKE_CLI_SPAWN_LOG"}


async def test_retries_and_timeout_are_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "spawns.jsonl"
    monkeypatch.setenv("FAKE_CLI_SPAWN_LOG", str(log))
    provider = claude_provider(tmp_path, max_retries=0, api_timeout_s=7.5)
    try:
        await collect(provider, chat("hi"))
    finally:
        await provider.aclose()
    env = spawned_env(log)
    assert (env["CLAUDE_CODE_MAX_RETRIES"], env["API_TIMEOUT_MS"]) == ("0", "7500")


async def test_offline_names_the_reason_in_the_log_and_a_safe_message(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    set_mode(monkeypatch, "offline")
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await collect(claude, chat("hi"))
    assert time.monotonic() - started < 5
    assert str(caught.value) == "claude: cannot reach the Anthropic API (ENOTFOUND)"
    assert "Unable to connect to API (ENOTFOUND)" in caplog.text
    assert_no_leak(caplog.text, claude_token=FAKE_TOKEN)


async def test_an_exhausted_subscription_is_rate_limited_until_its_reset(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "quota")
    with pytest.raises(ProviderRateLimited) as caught:
        await collect(claude, chat("hi"))
    assert caught.value.retry_after == 7 * 86400  # the reset is far off: capped at a week


async def test_rate_limit_events_become_notices(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = {
        "status": "allowed_warning",
        "resetsAt": 1767225600,
        "rateLimitType": "seven_day",
        "utilization": 0.85,
        "overageStatus": "rejected",
        "overageResetsAt": 1767230000,
    }
    monkeypatch.setenv("FAKE_CLI_RATE_LIMIT", json.dumps(info))
    items = await collect_all(claude, chat("hi"))
    notices = [i for i in items if isinstance(i, RateLimitNotice)]
    assert notices == [
        RateLimitNotice(
            status="allowed_warning",
            resets_at=1767225600.0,
            rate_limit_type="seven_day",
            utilization=0.85,
            overage_status="rejected",
            overage_resets_at=1767230000.0,
        )
    ]
    assert "".join(i for i in items if isinstance(i, str)).endswith("] hi")


async def test_a_rejected_rate_limit_is_reported_then_refused(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_RATE_LIMIT", "rejected")
    seen: list[Any] = []

    async def read() -> None:
        async for item in claude.stream(chat("hi")):
            seen.append(item)

    with pytest.raises(ProviderRateLimited):
        await read()
    assert [type(i) for i in seen] == [RateLimitNotice]
    assert seen[0].status == "rejected"
    assert seen[0].resets_at > time.time()


async def test_a_new_session_reports_the_clis_session_id_once(claude: ClaudeProvider) -> None:
    items = await collect_all(claude, chat("hi"))
    natives = [i for i in items if isinstance(i, NativeSession)]
    if claude.runtime == "cold":
        assert natives == []  # nothing survives a cold turn
    else:
        assert len(natives) == 1
        assert len(parse_handle(natives[0].id)[0]) == 36


def test_readiness_runs_the_clis_version_once(tmp_path: Path) -> None:
    ok = claude_provider(tmp_path)
    assert ok.problem() is None
    broken = tmp_path / "broken-claude"
    broken.write_text("#!/bin/sh\necho 'segfault' >&2\nexit 1\n")
    broken.chmod(0o755)
    assert claude_provider(tmp_path, cli_path=str(broken)).problem() == (
        "claude: the Claude Code CLI does not run (`claude --version` failed)"
    )
    missing = claude_provider(tmp_path, cli_path=str(tmp_path / "nope"))
    assert missing.problem() == "claude: the Claude Code CLI is not installed or not executable"
    counter = tmp_path / "counting-claude"
    calls = tmp_path / "calls"
    counter.write_text(f"#!/bin/sh\necho x >> {calls}\necho '2.1.330 (Claude Code)'\n")
    counter.chmod(0o755)
    counted = claude_provider(tmp_path, cli_path=str(counter))
    assert counted.problem() is None
    assert counted.problem() is None
    assert calls.read_text().count("x") == 1


async def test_every_listed_model_is_routed_here_and_runs(claude: ClaudeProvider) -> None:
    registry = Registry([claude], Settings(claude_code_oauth_token=FAKE_TOKEN))
    for model in claude.models():
        assert registry.for_model(model) is claude
        text = "".join(await collect(claude, chat("hi", model=model)))
        cli_model = {"claude-sonnet": "sonnet", "claude-opus": "opus", "claude-haiku": "haiku"}
        assert f"model={cli_model.get(model, model)} " in text
