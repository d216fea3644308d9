"""Start and stop of one replica: readiness is about this replica only, scratch dirs a killed
process left are swept at start, cleanups finish before the session store closes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from llmhub_gateway.core.config import Settings
from llmhub_gateway.main import create_app
from llmhub_gateway.providers.owners import owner_name
from llmhub_gateway.providers.procs import finish
from llmhub_gateway.registry import build_providers
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import echo_providers
from tests.gateway.providers.conftest import dead_pid, live_pid

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        claude_code_oauth_token=SecretStr("sk-ant-oat01-lifecycle-test-token"),
        gemini_auth_path=tmp_path / "no-gemini-creds.json",
        scratch_dir=tmp_path / "scratch",
        gemini_cli_home=tmp_path / "gemini-home",
        **extra,
    )


def test_readiness_fails_when_a_configured_cli_is_missing(tmp_path: Path) -> None:
    missing = _settings(tmp_path, claude_cli_path=str(tmp_path / "no-such-claude"))
    with ThreadedGateway(missing, build_providers(missing)) as gw:  # type: ignore[arg-type]
        ready = httpx.get(f"{gw.url}/health/ready")
    assert ready.status_code == 503
    assert ready.json()["providers"] == []
    assert (
        "claude: the Claude Code CLI is not installed or not executable" in ready.json()["reasons"]
    )
    present = _settings(tmp_path, claude_cli_path=str(FAKES / "fake_claude.py"))
    with ThreadedGateway(present, build_providers(present)) as gw:  # type: ignore[arg-type]
        ready = httpx.get(f"{gw.url}/health/ready")
    assert (ready.status_code, ready.json()["providers"]) == (200, ["claude"])


def test_scratch_dirs_left_by_a_killed_process_are_swept_at_start(tmp_path: Path) -> None:
    """Only what gateway processes now gone left: a live one's dirs (another gateway on this
    machine) and entries no gateway owns stay."""
    settings = _settings(tmp_path)
    gone = owner_name(dead_pid())
    roots = [settings.scratch_dir, settings.gemini_cli_home / "work"]
    roots.append(settings.gemini_cli_home / "pty")
    leftovers = [root / gone / "3f0c" / ".claude" for root in roots]  # content, in each root
    with live_pid() as other:
        kept = [root / owner_name(other) / "9a1b" for root in roots]
        kept += [settings.scratch_dir / "not-an-owner"]
        for path in leftovers + kept:
            path.mkdir(parents=True)
            (path / "transcript.jsonl").write_text("{}")
        creds = settings.gemini_cli_home / ".gemini"
        creds.mkdir(parents=True)
        (creds / "oauth_creds.json").write_text("{}")  # the home itself is kept
        with ThreadedGateway(settings, echo_providers()):
            assert [p.parent.parent for p in leftovers if p.parent.parent.exists()] == []
            assert all((path / "transcript.jsonl").exists() for path in kept)
        assert (creds / "oauth_creds.json").exists()


async def test_cleanups_finish_before_the_session_store_closes() -> None:
    app = create_app(Settings(), providers=echo_providers())
    store = app.state.chat.store
    moments: dict[str, float] = {}
    close = store.aclose

    async def aclose() -> None:
        moments["store closed"] = time.monotonic()
        await close()

    async def cleanup() -> None:  # e.g. killing a CLI, then releasing its lease
        await asyncio.sleep(0.5)
        moments["cleanup done"] = time.monotonic()

    store.aclose = aclose
    async with app.router.lifespan_context(app):
        started = asyncio.ensure_future(finish(cleanup()))
        await asyncio.sleep(0.05)
        started.cancel()  # the caller gave up (client gone); the cleanup goes on
    assert moments["cleanup done"] < moments["store closed"]
