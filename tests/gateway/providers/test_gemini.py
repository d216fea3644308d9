"""GeminiProvider: the real PTY wrapper driving the fake CLI (tests/fakes/fake_gemini.py)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from llmhub_gateway.providers import procs
from llmhub_gateway.providers.base import (
    ProviderAuthError,
    ProviderBusy,
    ProviderCrashed,
    ProviderError,
    ProviderNotConfigured,
    ProviderRateLimited,
    ProviderTimeout,
    Turn,
    Usage,
)
from llmhub_gateway.providers.gemini import SETTINGS, GeminiProvider
from llmhub_gateway.providers.limits import CappedProvider
from llmhub_gateway.providers.owners import owned
from tests.fakes.fake_gemini import THOUGHTS, words
from tests.gateway.providers.conftest import (
    FAKE_GEMINI,
    FAKE_GEMINI_CREDS,
    chat,
    collect,
    collect_all,
    consume_until_anyio_cancels,
    make_gemini,
    our_zombies,
    recorded_pids,
    set_mode,
    wait_dead,
    wait_for_file,
)
from tests.leaks import assert_no_leak


async def test_answer_streams_from_a_terminal_in_deltas(gemini: GeminiProvider) -> None:
    deltas = await collect(gemini, chat("ping", model="gemini-2.5-flash"))
    assert len(deltas) > 1
    assert "".join(deltas) == "[fake-gemini model=gemini-2.5-flash tty=yes] ping"


async def test_the_result_stats_become_usage_thinking_included(gemini: GeminiProvider) -> None:
    items = await collect_all(gemini, chat("ping"))
    text = "".join(i for i in items if isinstance(i, str))
    received = text.split("] ", 1)[1]
    # fake_gemini's stats: input_tokens = words received, total adds the answer and 7 thoughts.
    assert items[-1] == Usage(tokens_in=words(received), tokens_out=words(text) + THOUGHTS)
    assert [i for i in items if isinstance(i, Usage)] == [items[-1]]


async def test_default_model_is_used_when_the_request_names_none(gemini: GeminiProvider) -> None:
    assert "model=gemini-2.5-pro " in "".join(await collect(gemini, chat("hi")))
    assert gemini.models()[0] == "gemini-2.5-pro"


@pytest.mark.parametrize(
    "prompt",
    [
        "she said \"hi\" and 'bye' `$(rm -rf /)` ; | & -p --yolo",
        "line one\nline two\r\n\ttabbed",
        "unicode: ünïcødé 日本語 🚀",
        "y" * 60_000,  # still on argv
        "x" * 100_000,  # through the stdin pipe
        "é" * 80_000,  # 160 KB of UTF-8: past the 128 KiB argv limit
    ],
    ids=["quotes", "newlines", "unicode", "60KB-argv", "100KB-stdin", "160KB-stdin"],
)
async def test_prompts_arrive_unchanged(gemini: GeminiProvider, prompt: str) -> None:
    text = "".join(await collect(gemini, chat(prompt)))
    assert text == f"[fake-gemini model=gemini-2.5-pro tty=yes] {prompt}"


async def test_history_and_system_are_replayed_before_the_prompt(gemini: GeminiProvider) -> None:
    history = [Turn("user", "my name is Ada"), Turn("assistant", "hello Ada")]
    text = "".join(await collect(gemini, chat("name?", history=history, system="be terse")))
    order = [text.index(s) for s in ("be terse", "User: my name is Ada", "hello Ada", "name?")]
    assert order == sorted(order)


async def test_creds_are_copied_private_with_settings_and_refreshes_survive(
    gemini: GeminiProvider, gemini_creds: Path, tmp_path: Path
) -> None:
    await collect(gemini, chat("hi"))
    home = owned(tmp_path / "gemini-home" / "pty") / "0" / ".gemini"
    copy = home / "oauth_creds.json"
    assert json.loads(copy.read_text()) == FAKE_GEMINI_CREDS
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert json.loads((home / "settings.json").read_text()) == SETTINGS
    assert not (home / "projects.json").exists()  # the CLI wrote it; pruned after the run

    refreshed = {**FAKE_GEMINI_CREDS, "access_token": "ya29.refreshed-by-the-cli"}
    copy.write_text(json.dumps(refreshed))  # what the CLI does after a token refresh
    await collect(gemini, chat("hi"))
    assert json.loads(copy.read_text()) == refreshed
    again = make_gemini(tmp_path, gemini_creds, "pty")  # another provider of this process too
    await collect(again, chat("hi"))
    assert json.loads(copy.read_text()) == refreshed

    rotated = {**FAKE_GEMINI_CREDS, "refresh_token": "1//rotated-by-the-operator"}
    gemini_creds.parent.chmod(0o755)
    gemini_creds.chmod(0o644)
    gemini_creds.write_text(json.dumps(rotated))  # a new Secret version was mounted
    await collect(gemini, chat("hi"))
    assert json.loads(copy.read_text()) == rotated
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600


async def test_workdirs_are_removed_after_each_call(gemini: GeminiProvider, tmp_path: Path) -> None:
    await collect(gemini, chat("hi"))
    assert list(owned(tmp_path / "gemini-home" / "work").iterdir()) == []


async def test_slow_answer_is_streamed_as_it_comes(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "slow", FAKE_CLI_DELAY="0.4")
    arrivals = [time.monotonic() async for _ in gemini.stream(chat("slowly"))]
    assert len(arrivals) >= 3
    assert arrivals[-1] - arrivals[0] >= 0.6


async def test_hang_times_out_and_the_process_group_is_killed(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch, pidfile: Path
) -> None:
    set_mode(monkeypatch, "hang")  # ignores SIGTERM, so SIGKILL must follow
    limited = CappedProvider(gemini, max_concurrency=1, timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        await collect(limited, chat("hello?"))
    assert time.monotonic() - started < 8
    assert not any(procs.running(pid) for pid in recorded_pids(pidfile))
    assert our_zombies() == []


async def test_consumer_closing_early_kills_the_process_group(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch, pidfile: Path
) -> None:
    set_mode(monkeypatch, "slow", FAKE_CLI_DELAY="5")
    stream = gemini.stream(chat("a long answer"))
    assert (await anext(stream)).startswith("[fake-gemini")
    await wait_for_file(pidfile)
    pids = recorded_pids(pidfile)
    assert all(procs.running(pid) for pid in pids)
    await stream.aclose()
    assert not any(procs.running(pid) for pid in pids)
    assert our_zombies() == []


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("crash", ProviderCrashed, "status 1"),
        ("oom", ProviderCrashed, "^gemini: the CLI exited with status 134$"),
        ("garbage", ProviderCrashed, "without an answer"),
        ("auth", ProviderAuthError, "rejected"),
        ("error", ProviderRateLimited, r"^gemini: the provider's quota or rate limit is exhausted"),
    ],
)
async def test_failures_map_to_the_error_tree(
    gemini: GeminiProvider,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    error: type[ProviderError],
    message: str,
) -> None:
    set_mode(monkeypatch, mode)
    with pytest.raises(error, match=message) as caught:
        await collect(gemini, chat("hi"))
    assert type(caught.value) is error  # the banner never turns a crash into an auth error
    for raw in ("Loaded cached", "heap", "Quota exceeded", "FATAL"):  # CLI text: log only
        assert raw not in str(caught.value)
    assert_no_leak(str(caught.value), refresh_token=FAKE_GEMINI_CREDS["refresh_token"])
    assert our_zombies() == []


async def test_claude_token_is_not_passed_to_the_gemini_cli(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch, pidfile: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-not-for-gemini")
    set_mode(monkeypatch, "slow", FAKE_CLI_DELAY="5")
    stream = gemini.stream(chat("hi"))
    await anext(stream)
    await wait_for_file(pidfile)
    environ = Path(f"/proc/{recorded_pids(pidfile)[0]}/environ").read_bytes().split(b"\0")
    await stream.aclose()
    assert not any(v.startswith(b"CLAUDE_CODE_OAUTH_TOKEN=") for v in environ)
    assert f"GEMINI_CLI_HOME={owned(tmp_path / 'gemini-home' / 'pty') / '0'}".encode() in environ


async def test_missing_creds_file_is_not_configured(tmp_path: Path) -> None:
    provider = GeminiProvider(
        auth_path=tmp_path / "absent.json",
        default_model="gemini-2.5-pro",
        cli_path=str(FAKE_GEMINI),
        cli_home=tmp_path / "home",
    )
    assert not provider.configured()
    with pytest.raises(ProviderNotConfigured):
        await collect(provider, chat("hi"))


async def test_missing_cli_is_not_configured(gemini_creds: Path, tmp_path: Path) -> None:
    provider = GeminiProvider(
        auth_path=gemini_creds,
        default_model="gemini-2.5-pro",
        cli_path=str(tmp_path / "no-such-gemini"),
        cli_home=tmp_path / "home",
    )
    with pytest.raises(ProviderNotConfigured):
        await collect(provider, chat("hi"))


def test_the_fake_refuses_a_home_without_oauth_settings(tmp_path: Path) -> None:
    """Keeps the fake honest: like the real CLI, no settings.json means exit 41."""
    env = {**os.environ, "GEMINI_CLI_HOME": str(tmp_path), "FAKE_CLI_MODE": "ok"}
    done = subprocess.run(
        [str(FAKE_GEMINI), "-p", "hi", "-o", "stream-json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 41
    assert "Please set an Auth method" in done.stderr


async def test_a_disconnect_inside_an_anyio_scope_still_kills_the_group(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch, pidfile: Path
) -> None:
    set_mode(monkeypatch, "hang")
    await consume_until_anyio_cancels(gemini, chat("hello?"), after=1.5)
    await wait_for_file(pidfile)
    await wait_dead(recorded_pids(pidfile))
    # The cleanup runs on in the background (the scope is cancelled): a dead CLI is a zombie
    # for the few ms until that cleanup reaps it, so wait (bounded) for the reaping.
    deadline = time.monotonic() + 5
    while our_zombies() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert our_zombies() == []


async def test_the_cap_counts_a_cli_in_its_sigterm_grace_until_it_is_gone(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch, pidfile: Path
) -> None:
    """A client that disconnects (its task cancelled, as in an SSE disconnect) leaves at once,
    but the CLI ignores SIGTERM for the 2 s grace: its slot stays taken until it is gone."""
    set_mode(monkeypatch, "hang")
    limited = CappedProvider(gemini, max_concurrency=1, timeout_s=60)
    await consume_until_anyio_cancels(limited, chat("hello?"), after=1.0)  # as Starlette does
    pid = recorded_pids(pidfile)[0]
    assert procs.running(pid)  # still in its grace
    assert limited.active == 1
    with pytest.raises(ProviderBusy):
        await collect(limited, chat("one too many"))
    deadline = time.monotonic() + 10
    while limited.active and time.monotonic() < deadline:
        assert limited.active == 1
        await asyncio.sleep(0.02)
    assert limited.active == 0
    assert not procs.running(pid)  # freed only once the process was gone


async def test_concurrent_one_shot_runs_never_share_a_home(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "spawns.jsonl"
    monkeypatch.setenv("FAKE_CLI_SPAWNLOG", str(log))
    set_mode(monkeypatch, "slow", FAKE_CLI_DELAY="0.3")
    await asyncio.gather(*(collect(gemini, chat(f"n{n}")) for n in range(3)))
    homes = [json.loads(line)["home"] for line in log.read_text().splitlines()]
    assert len(set(homes)) == 3
    await collect(gemini, chat("later"))  # a free home is reused (its refreshed tokens too)
    later = json.loads(log.read_text().splitlines()[-1])["home"]
    assert later in homes
