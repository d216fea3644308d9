"""Fixtures for the provider adapters: fake CLIs on disk, fake (never real) credentials."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from llmhub_gateway.providers import procs
from llmhub_gateway.providers.base import ChatRequest, Provider, StreamItem, Turn
from llmhub_gateway.providers.claude import ClaudePoolLimits, ClaudeProvider
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.gemini_acp import PoolLimits as GeminiPoolLimits

FAKES = Path(__file__).resolve().parents[2] / "fakes"
FAKE_CLAUDE = FAKES / "fake_claude.py"
FAKE_GEMINI = FAKES / "fake_gemini.py"
ROOT = Path(__file__).resolve().parents[3]
REAL_GEMINI = ROOT / ".cache" / "gemini-cli" / "node_modules" / ".bin" / "gemini"
# Well-formed but fake: the shapes of a `claude setup-token` value and of oauth_creds.json.
FAKE_TOKEN = "sk-ant-oat01-" + "Zq9FakeTokenValueNeverReal_" * 3
FAKE_GEMINI_CREDS = {
    "access_token": "ya29.a0FakeAccessTokenNeverReal",
    "refresh_token": "1//0gFakeRefreshTokenNeverReal",
    "scope": "https://www.googleapis.com/auth/cloud-platform openid",
    "token_type": "Bearer",
    "id_token": "x.y.z",
    "expiry_date": 4102444800000,
}


def chat(
    prompt: str, *, model: str = "", history: Iterable[Turn] = (), system: str | None = None
) -> ChatRequest:
    return ChatRequest(
        prompt=prompt, model=model, session_id="s-1", history=tuple(history), system=system
    )


async def collect(provider: Provider, request: ChatRequest) -> list[str]:
    """The text deltas (a reported ``Usage`` is left out; ``collect_all`` keeps it)."""
    return [d for d in await collect_all(provider, request) if isinstance(d, str)]


async def collect_all(provider: Provider, request: ChatRequest) -> list[StreamItem]:
    return [delta async for delta in provider.stream(request)]


def set_mode(monkeypatch: pytest.MonkeyPatch, mode: str, **extra: str) -> None:
    """Select the fakes' behaviour; they inherit the gateway's environment."""
    monkeypatch.setenv("FAKE_CLI_MODE", mode)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


def recorded_pids(pidfile: Path) -> list[int]:
    data = json.loads(pidfile.read_text())
    return [data["pid"], *data["children"]]


async def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size):
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.02)


def our_zombies() -> list[int]:
    """Children of this test process that exited but were never reaped."""
    return [p for p in procs.descendants(os.getpid()) if not procs.running(p)]


@pytest.fixture
def pidfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_CLI_PIDFILE", str(path))
    return path


def claude_provider(tmp_path: Path, **extra: Any) -> ClaudeProvider:
    """The adapter over the fake CLI; the fake's FAKE_CLI_* knobs pass its env allow-list."""
    settings: dict[str, Any] = {
        "token": FAKE_TOKEN,
        "default_model": "claude-sonnet-4-5-20250929",
        "cli_path": str(FAKE_CLAUDE),
        "scratch_root": tmp_path / "claude-scratch",
        "env_passthrough": ("FAKE_CLI_*",),
        "pool": ClaudePoolLimits(idle=0),
        "shutdown_grace_s": 2.0,
        **extra,
    }
    return ClaudeProvider(**settings)


@pytest.fixture(params=["warm", "cold"])
async def claude(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ClaudeProvider]:
    """Each runtime in turn: a warm pool (no pre-started spare, so each test sees only the
    CLIs its own turns start) and one CLI per turn."""
    provider = claude_provider(tmp_path, runtime=request.param)
    yield provider
    await provider.aclose()


@pytest.fixture
def gemini_creds(tmp_path: Path) -> Path:
    """Like the Secret volume: a read-only file in a read-only directory."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    creds = mount / "oauth_creds.json"
    creds.write_text(json.dumps(FAKE_GEMINI_CREDS))
    creds.chmod(0o444)
    mount.chmod(0o555)
    return creds


def make_gemini(tmp_path: Path, creds: Path, runtime: str, **kw: Any) -> GeminiProvider:
    return GeminiProvider(
        auth_path=creds,
        default_model="gemini-2.5-pro",
        cli_path=str(kw.pop("cli_path", FAKE_GEMINI)),
        cli_home=tmp_path / "gemini-home",
        runtime=runtime,
        pass_env=("FAKE_CLI_*",),
        **kw,
    )


@pytest.fixture
async def gemini(tmp_path: Path, gemini_creds: Path) -> AsyncIterator[GeminiProvider]:
    """The one-shot PTY runtime."""
    provider = make_gemini(tmp_path, gemini_creds, "pty")
    yield provider
    await provider.aclose()


@pytest.fixture
async def gemini_acp(tmp_path: Path, gemini_creds: Path) -> AsyncIterator[GeminiProvider]:
    """The warm ACP runtime (small limits, quick to recycle)."""
    limits = GeminiPoolLimits(max_processes=2, sessions_per_process=2, shutdown_grace_s=3.0)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    yield provider
    await provider.aclose()


def spawns(log: Path) -> list[dict[str, Any]]:
    """The processes fake_gemini recorded starting (FAKE_CLI_SPAWNLOG)."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


@pytest.fixture
def spawnlog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "spawns.jsonl"
    monkeypatch.setenv("FAKE_CLI_SPAWNLOG", str(path))
    return path


async def consume_until_anyio_cancels(
    provider: Provider, request: ChatRequest, after: float
) -> None:
    """Read a stream inside an anyio scope that is cancelled, as Starlette does on disconnect.

    anyio keeps re-cancelling every await inside a cancelled scope, so this checks that the
    adapter's cleanup does not depend on awaits surviving.
    """
    with anyio.move_on_after(after):
        async for _ in provider.stream(request):
            pass


async def wait_dead(pids: Iterable[int], timeout: float = 8.0) -> None:
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while any(procs.running(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        await asyncio.sleep(0.05)


def dead_pid() -> int:
    """The pid of a process that has exited and was reaped (an owner that is gone)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@contextlib.contextmanager
def live_pid() -> Iterator[int]:
    """The pid of a running process (another gateway that is alive), for the block."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()
