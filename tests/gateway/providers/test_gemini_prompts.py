"""Prompts are text on both Gemini runtimes; what cannot be passed is refused before any spawn;
the CLI gets an allow-listed environment; readiness knows a missing or broken CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmhub_gateway.errors import BadRequest
from llmhub_gateway.providers import procs
from llmhub_gateway.providers.base import ChatRequest, Turn
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.prompt_text import COMMAND_GUARD
from tests.gateway.providers.conftest import (
    FAKE_GEMINI,
    collect,
    make_gemini,
    spawns,
)

HOSTILE = {
    "dash-space": "- buy milk",
    "double-dash-help": "--help",
    "flag-like": "-p -x",
    "arrow": "-> arrow",
    "equals-flag": "--prompt=--yolo",
    "slash-help": "/help",
    "slash-memory": "  /memory show",
    "dollar-about": "$about",
    "bang": "!rm -rf /",
    "at-file": "@/etc/passwd what is this",
    "controls": "bell\x07 esc\x1b[31m del\x7f vt\x0b",
    "100KB": "w " * 50_000,
}


@pytest.fixture(params=["acp", "pty"])
async def provider(
    request: pytest.FixtureRequest, tmp_path: Path, gemini_creds: Path
) -> AsyncIterator[GeminiProvider]:
    made = make_gemini(tmp_path, gemini_creds, str(request.param))
    yield made
    await made.aclose()


def received(answer: str) -> str:
    """What the fake model got (the text after its ``]`` marker), without the guard the
    gateway puts before text the CLI would run as a command."""
    return answer.split("] ", 1)[1].removeprefix(COMMAND_GUARD)


@pytest.mark.parametrize("prompt", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_prompts_reach_the_model_as_text(
    provider: GeminiProvider, prompt: str
) -> None:
    answer = "".join(await collect(provider, ChatRequest(prompt, "", "s-1")))
    assert "[fake-gemini command" not in answer  # no CLI command ran
    assert answer.startswith("[fake-gemini model=gemini-2.5-pro ")
    assert received(answer) == prompt


async def test_a_command_guard_is_only_put_before_would_be_commands(
    provider: GeminiProvider,
) -> None:
    answer = "".join(await collect(provider, ChatRequest("a /help in the middle", "", "s-1")))
    assert answer.split("] ", 1)[1] == "a /help in the middle"


@pytest.mark.parametrize(
    "request_",
    [
        ChatRequest("a\x00b", "", "s-1"),
        ChatRequest("ok", "gemini-2.5-pro\x00", "s-1"),
        ChatRequest("ok", "", "s-1", system="sys\x00tem"),
        ChatRequest("ok", "", "s-1", history=(Turn("user", "earlier\x00"),)),
        ChatRequest("ok", "--yolo", "s-1"),
        ChatRequest("lone \ud800 surrogate", "", "s-1"),
    ],
    ids=["prompt", "model", "system", "history", "flag-as-model", "surrogate"],
)
async def test_unpassable_input_is_refused_before_any_process_starts(
    provider: GeminiProvider, spawnlog: Path, request_: ChatRequest
) -> None:
    before = set(procs.descendants(os.getpid()))
    with pytest.raises(BadRequest) as caught:
        await collect(provider, request_)
    assert caught.value.status_code == 400
    assert spawns(spawnlog) == []
    assert set(procs.descendants(os.getpid())) == before  # no child was forked


@pytest.mark.parametrize("runtime", ["acp", "pty"])
async def test_the_cli_gets_an_allow_listed_environment(
    runtime: str,
    tmp_path: Path,
    gemini_creds: Path,
    spawnlog: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret-redis-password@redis:6379/0")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-not-for-gemini")
    monkeypatch.setenv("AUTH_STATIC_KEYS_FILE", "/etc/llmhub/keys")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    provider = make_gemini(tmp_path, gemini_creds, runtime, project="team-proj-42")
    try:
        await collect(provider, ChatRequest("hi", "", "s-1"))
    finally:
        await provider.aclose()
    env = spawns(spawnlog)[0]["env"]
    assert "s3cret-redis-password" not in repr(env)
    for name in ("REDIS_URL", "CLAUDE_CODE_OAUTH_TOKEN", "AUTH_STATIC_KEYS_FILE"):
        assert name not in env
    assert env["GOOGLE_CLOUD_PROJECT"] == "team-proj-42"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["HOME"] == env["GEMINI_CLI_HOME"]
    assert env["PATH"] == os.environ["PATH"]
    extra = set(env) - {"PATH", "HOME", "GEMINI_CLI_HOME", "NO_COLOR", "TERM", "LANG", "LC_ALL"}
    extra -= {"LC_CTYPE", "TZ", "TMPDIR", "HTTPS_PROXY", "GOOGLE_CLOUD_PROJECT", "SSL_CERT_FILE"}
    extra -= {"SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "LANGUAGE", "PWD"}
    assert {k for k in extra if not k.startswith("FAKE_CLI_")} == set()


def test_readiness_reports_a_missing_cli(gemini_creds: Path, tmp_path: Path) -> None:
    provider = GeminiProvider(
        auth_path=gemini_creds,
        default_model="gemini-2.5-pro",
        cli_path="no-such-gemini-on-path",
        cli_home=tmp_path / "home",
    )
    assert provider.configured()  # creds are there...
    assert provider.problem() == "gemini: the gemini CLI is not installed or not executable"


def test_readiness_reports_a_cli_that_does_not_run(gemini_creds: Path, tmp_path: Path) -> None:
    broken = tmp_path / "gemini"
    broken.write_text("#!/bin/sh\necho 'SyntaxError: Unexpected token' >&2\nexit 1\n")
    broken.chmod(0o755)
    provider = GeminiProvider(
        auth_path=gemini_creds,
        default_model="gemini-2.5-pro",
        cli_path=str(broken),
        cli_home=tmp_path / "home",
    )
    assert provider.problem() == "gemini: the gemini CLI does not run (--version failed)"
    assert provider.version is None


def _fake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAKE_GEMINI), *args],
        env={**os.environ, "FAKE_CLI_MODE": "ok"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["-p", "-x"], "Not enough arguments following: p"),
        (["-p", "--help"], "Not enough arguments following: p"),
        (["--frobnicate"], "Unknown argument: frobnicate"),
        (["buy", "milk", "-p", "x"], "Cannot use both a positional prompt"),
    ],
)
def test_the_fake_parses_argv_as_strictly_as_yargs(args: list[str], error: str) -> None:
    """Keeps the fake honest: the real 0.61 CLI answers these with exit 1 (checked by hand with
    .cache/gemini-cli: `gemini -p -x` -> "Not enough arguments following: p")."""
    done = _fake(*args)
    assert done.returncode == 1
    assert error in done.stderr


def test_the_fake_takes_an_equals_value_verbatim(tmp_path: Path) -> None:
    """``--prompt=-x`` passes yargs (the real CLI then goes on to its auth check)."""
    env = {**os.environ, "GEMINI_CLI_HOME": str(tmp_path), "FAKE_CLI_MODE": "ok"}
    done = subprocess.run(
        [str(FAKE_GEMINI), "--prompt=-x", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 41  # past the parser, refused by the auth check (no settings)
    assert "Please set an Auth method" in done.stderr
