"""ClaudeProvider: the real claude-agent-sdk driving the fake CLI (tests/fakes/fake_claude.py)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from llmhub_gateway.providers import procs
from llmhub_gateway.providers.base import (
    ProviderAuthError,
    ProviderCrashed,
    ProviderNotConfigured,
    ProviderTimeout,
    Turn,
    Usage,
)
from llmhub_gateway.providers.claude import ClaudeProvider
from llmhub_gateway.providers.limits import CappedProvider
from tests.gateway.providers.conftest import (
    FAKE_TOKEN,
    chat,
    collect,
    collect_all,
    consume_until_anyio_cancels,
    our_zombies,
    recorded_pids,
    set_mode,
    wait_dead,
    wait_for_file,
)
from tests.leaks import assert_no_leak


async def test_answer_streams_in_deltas_with_model_and_token_presence(
    claude: ClaudeProvider,
) -> None:
    deltas = await collect(claude, chat("ping", model="claude-opus-test"))
    assert len(deltas) > 1
    assert "".join(deltas) == "[fake-claude model=claude-opus-test token=present] ping"


async def test_the_clis_reported_usage_ends_the_stream(claude: ClaudeProvider) -> None:
    items = await collect_all(claude, chat("ping", model="claude-opus-test"))
    text = "".join(i for i in items if isinstance(i, str))
    # fake_claude reports the words it received as input and the words of its answer as
    # output (as the CLI's result does); the adapter sums every kind of input token.
    assert items[-1] == Usage(tokens_in=1, tokens_out=len(text.split()))
    assert [i for i in items if isinstance(i, Usage)] == [items[-1]]


async def test_default_model_is_used_when_the_request_names_none(claude: ClaudeProvider) -> None:
    text = "".join(await collect(claude, chat("hi")))
    assert "model=claude-sonnet-4-5-20250929" in text
    assert claude.models()[0] == "claude-sonnet-4-5-20250929"


@pytest.mark.parametrize(
    "prompt",
    [
        "she said \"hi\" and 'bye' `$(rm -rf /)` \\n",
        "line one\nline two\r\n\ttabbed",
        "unicode: ünïcødé 日本語 🚀 \u202e",
        "x" * 100_000,
    ],
    ids=["quotes", "newlines", "unicode", "100KB"],
)
async def test_prompts_arrive_unchanged(claude: ClaudeProvider, prompt: str) -> None:
    text = "".join(await collect(claude, chat(prompt)))
    assert text.endswith("] " + prompt)


async def test_history_is_replayed_in_order_before_the_new_prompt(claude: ClaudeProvider) -> None:
    history = [Turn("user", "my name is Ada"), Turn("assistant", "hello Ada")]
    text = "".join(await collect(claude, chat("what is my name?", history=history)))
    assert text.index("User: my name is Ada") < text.index("Assistant: hello Ada")
    assert text.index("Assistant: hello Ada") < text.index("what is my name?")


async def test_agent_runs_without_tools_in_a_scratch_dir_that_is_removed(
    claude: ClaudeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_CLI_ARGV_FILE", str(record))
    await collect(claude, chat("hi", system="be terse"))
    seen = json.loads(record.read_text())
    argv, cwd = seen["argv"], Path(seen["cwd"])
    assert argv[argv.index("--tools") + 1] == ""
    assert argv[argv.index("--permission-mode") + 1] == "dontAsk"
    denied = argv[argv.index("--disallowedTools") + 1].split(",")
    assert {"Bash", "Write", "Edit", "WebFetch", "WebSearch"} <= set(denied)
    assert "--allowedTools" not in argv
    assert "--setting-sources=" in argv
    assert not any("be terse" in arg for arg in argv)  # the system text comes in a file
    assert Path(argv[argv.index("--system-prompt-file") + 1]).parent == cwd
    assert cwd.parent == tmp_path / "claude-scratch"
    await claude.aclose()  # a warm CLI keeps its dir until it stops
    assert not cwd.exists()


async def test_slow_answer_is_streamed_as_it_comes(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "slow", FAKE_CLI_DELAY="0.4")
    arrivals = [time.monotonic() async for _ in claude.stream(chat("slowly"))]
    assert len(arrivals) >= 3
    assert arrivals[-1] - arrivals[0] >= 0.6  # the first delta did not wait for the last


async def test_hang_times_out_and_the_process_tree_is_killed(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch, pidfile: Path
) -> None:
    set_mode(monkeypatch, "hang")  # the fake also ignores SIGTERM: SIGKILL must follow
    limited = CappedProvider(claude, max_concurrency=1, timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        await collect(limited, chat("hello?"))
    assert time.monotonic() - started < 8
    assert not any(procs.running(pid) for pid in recorded_pids(pidfile))
    assert our_zombies() == []
    assert limited.active == 0


async def test_consumer_closing_early_kills_the_cli(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch, pidfile: Path
) -> None:
    set_mode(monkeypatch, "slow", FAKE_CLI_DELAY="5")
    stream = claude.stream(chat("a long answer"))
    first = await anext(stream)
    assert first.startswith("[fake-claude")
    await wait_for_file(pidfile)
    pids = recorded_pids(pidfile)
    assert all(procs.running(pid) for pid in pids)
    await stream.aclose()  # what a client disconnect does
    assert not any(procs.running(pid) for pid in pids)
    assert our_zombies() == []


@pytest.mark.parametrize(
    ("mode", "error"),
    [("crash", ProviderCrashed), ("garbage", ProviderCrashed), ("auth", ProviderAuthError)],
)
async def test_failures_map_to_the_error_tree(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch, mode: str, error: type[Exception]
) -> None:
    set_mode(monkeypatch, mode)
    with pytest.raises(error) as caught:
        await collect(claude, chat("hi"))
    assert_no_leak(str(caught.value), claude_token=FAKE_TOKEN)


async def test_token_never_reaches_logs_output_or_errors(
    claude: ClaudeProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    mode_file = tmp_path / "mode"  # steers CLIs already running (a warm one is reused)
    monkeypatch.setenv("FAKE_CLI_MODE_FILE", str(mode_file))
    text = "".join(await collect(claude, chat("hi")))
    assert "token=present" in text
    errors = []
    for mode in ("auth", "crash"):
        mode_file.write_text(mode)
        with pytest.raises((ProviderAuthError, ProviderCrashed)) as caught:
            await collect(claude, chat("hi"))
        errors.append(f"{caught.value!s} {caught.value!r} {caught.value.__cause__!s}")
    out, err = capfd.readouterr()
    assert caplog.records  # the SDK and the adapter did log, so the check below means something
    for sink in (caplog.text, out, err, text, *errors):
        assert_no_leak(sink, claude_token=FAKE_TOKEN)


async def test_without_a_token_the_provider_is_not_configured(tmp_path: Path) -> None:
    provider = ClaudeProvider(
        token=None, default_model="m", cli_path=None, scratch_root=tmp_path / "s"
    )
    assert not provider.configured()
    with pytest.raises(ProviderNotConfigured):
        await collect(provider, chat("hi"))


async def test_missing_cli_is_not_configured(tmp_path: Path) -> None:
    provider = ClaudeProvider(
        token=FAKE_TOKEN,
        default_model="m",
        cli_path=str(tmp_path / "no-such-claude"),
        scratch_root=tmp_path / "s",
    )
    with pytest.raises(ProviderNotConfigured):
        await collect(provider, chat("hi"))
    assert not any((tmp_path / "s").glob("*"))  # nothing was started


async def test_a_disconnect_inside_an_anyio_scope_still_kills_the_cli(
    claude: ClaudeProvider, monkeypatch: pytest.MonkeyPatch, pidfile: Path, tmp_path: Path
) -> None:
    set_mode(monkeypatch, "hang")
    await consume_until_anyio_cancels(claude, chat("hello?"), after=1.5)
    await wait_for_file(pidfile)
    await wait_dead(recorded_pids(pidfile))
    assert our_zombies() == []
