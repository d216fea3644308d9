"""Neither agent may run tools on the gateway host: no shell, file, web or MCP tools.

The fakes report the settings, flags and working directory they were started with, so these
tests fail if the adapters stop passing the lockdown. The real Gemini CLI 0.61 then proves that
every lockdown key is one it knows and validates (it ignores unknown keys silently).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmhub_gateway.providers import gemini as gemini_module
from llmhub_gateway.providers.claude import ClaudeProvider
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.owners import owned
from tests.gateway.providers.conftest import REAL_GEMINI, chat, collect, set_mode

HOST_TOOLS = {"run_shell_command", "write_file", "replace", "web_fetch", "google_web_search"}


async def test_gemini_gets_no_tools_mcp_skills_or_agents_in_an_empty_scratch_dir(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_mode(monkeypatch, "settings")
    seen = json.loads("".join(await collect(gemini, chat("hi"))))
    settings = seen["settings"]
    assert settings["tools"]["core"] == []  # the allow-list: no built-in tool is registered
    assert HOST_TOOLS | {"read_file", "read_many_files"} <= set(settings["tools"]["exclude"])
    assert settings["mcpServers"] == {}
    assert settings["mcp"]["allowed"] == []
    assert settings["skills"]["enabled"] is False
    assert settings["experimental"]["enableAgents"] is False
    assert settings["hooksConfig"]["enabled"] is False
    assert settings["security"]["disableYoloMode"] is True
    argv = seen["argv"]
    assert argv[argv.index("--approval-mode") + 1] == "default"
    assert not {"-y", "--yolo", "--allowed-tools", "--allowed-mcp-server-names"} & set(argv)
    cwd = Path(seen["cwd"])
    assert cwd.parent == owned(tmp_path / "gemini-home" / "work")
    assert seen["cwd_files"] == []
    assert not cwd.exists()


async def test_each_gemini_call_gets_its_own_scratch_dir(
    gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "settings")
    first = json.loads("".join(await collect(gemini, chat("a"))))["cwd"]
    second = json.loads("".join(await collect(gemini, chat("b"))))["cwd"]
    assert first != second


async def test_claude_gets_no_tools_mcp_servers_or_host_settings(
    claude: ClaudeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_CLI_ARGV_FILE", str(record))
    await collect(claude, chat("hi"))
    argv: list[str] = json.loads(record.read_text())["argv"]
    assert argv[argv.index("--tools") + 1] == ""
    assert "--strict-mcp-config" in argv  # MCP servers only from --mcp-config ...
    assert not any(a.startswith("--mcp-config") for a in argv)  # ... and none is given
    denied = set(argv[argv.index("--disallowedTools") + 1].split(","))
    assert {"Bash", "Write", "Edit", "MultiEdit", "NotebookEdit", "WebFetch", "WebSearch"} <= denied
    assert argv[argv.index("--permission-mode") + 1] == "dontAsk"
    assert "--allowedTools" not in argv
    assert "--dangerously-skip-permissions" not in argv


@pytest.fixture(scope="module")
def real_gemini_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLI home prepared by the adapter itself, with fake creds (auth fails: no route)."""
    assert REAL_GEMINI.exists(), "run scripts/bootstrap.sh to install the pinned gemini CLI"
    root = tmp_path_factory.mktemp("real-gemini")
    creds = root / "oauth_creds.json"
    creds.write_text(json.dumps({"access_token": "ya29.fake", "refresh_token": "1//fake"}))
    home = root / "home"
    GeminiProvider(
        auth_path=creds, default_model="gemini-2.5-pro", cli_path=str(REAL_GEMINI), cli_home=home
    ).prepare_home(home)
    (root / "work").mkdir()
    return home


def _run_real(home: Path, settings: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = {**os.environ, "HOME": str(home), "GEMINI_CLI_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(
        [str(REAL_GEMINI), "-p", "hi", "-o", "stream-json", "--approval-mode", "default"],
        cwd=home.parent / "work",
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree[part]
    tree[last] = value


@pytest.mark.slow
def test_real_gemini_cli_accepts_the_lockdown_and_fails_only_on_auth(
    real_gemini_home: Path,
) -> None:
    done = _run_real(real_gemini_home, gemini_module.SETTINGS)
    output = done.stdout + done.stderr
    assert "Invalid configuration" not in output
    assert "unexpected critical error" not in output
    assert done.returncode == gemini_module.EXIT_AUTH


@pytest.mark.slow
def test_real_gemini_cli_knows_every_lockdown_key(real_gemini_home: Path) -> None:
    """Each lockdown value given the wrong type must be reported: the CLI validates that key."""
    broken = json.loads(json.dumps(gemini_module.SETTINGS))
    keys = [key for key, _ in _leaves(broken) if key != "security.auth.selectedType"]
    for key in keys:
        _set(broken, key, 7)  # a number is the wrong type for every one of them
    output = _run_real(real_gemini_home, broken).stderr
    assert "Invalid configuration" in output
    named = {line.removeprefix("Error in: ").strip() for line in output.splitlines()}
    more = [line for line in output.splitlines() if line.startswith("...and ")]
    extra = int(more[0].split()[1]) if more else 0
    reported = named & set(keys)
    assert len(reported) + extra == len(keys), (sorted(reported), extra, keys)
