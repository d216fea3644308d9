"""The environment the Claude Code CLI runs with: an allow-list, never the gateway's own.

claude-agent-sdk starts its CLI with the whole parent environment plus ``options.env``, so
``REDIS_URL`` (with its password) and every other gateway setting would reach the CLI. The SDK
offers no way to drop inherited variables, so the SDK is pointed at a tiny launcher that keeps
only the allowed names and ``exec``s the real CLI (same PID: process-tree kills still work).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from claude_agent_sdk._internal.transport.subprocess_cli import (
    VERBATIM_PROMPTS_MINIMUM_CLAUDE_CODE_VERSION,
)

# What the CLI needs from the host: where things are, locale, temp dir, proxies and CA bundles.
BASE_NAMES = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
# Names the SDK itself sets for its CLI (they change between SDK versions), and locale.
BASE_PREFIXES = ("CLAUDE_CODE_", "CLAUDE_AGENT_SDK_", "LC_")
# Quiet and bounded: no telemetry, error reports, auto-updates or other non-essential calls.
QUIET = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_BUG_COMMAND": "1",
}
REAL_CLI_ENV = "LLMHUB_CLAUDE_CLI"
KEEP_ENV = "LLMHUB_CLAUDE_ENV_KEEP"

_LAUNCHER = """\
import os
import sys

env = os.environ
real = env["{real}"]
names = [n for n in env.get("{keep}", "").split(",") if n]
exact = {{n for n in names if not n.endswith("*")}}
prefixes = tuple(n[:-1] for n in names if n.endswith("*"))
clean = {{
    k: v
    for k, v in env.items()
    if not k.startswith("LLMHUB_CLAUDE_") and (k in exact or k.startswith(prefixes))
}}
os.execve(real, [real, *sys.argv[1:]], clean)
"""


def write_launcher(path: Path) -> Path:
    """The launcher script, run by this interpreter in isolated mode (no site, no PYTHON*)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = _LAUNCHER.format(real=REAL_CLI_ENV, keep=KEEP_ENV)
    path.write_text(f"#!{sys.executable} -IS\n{body}", encoding="utf-8")
    path.chmod(0o700)
    return path


def cli_env(
    real_cli: str,
    explicit: Mapping[str, str],
    *,
    passthrough: Iterable[str] = (),
    max_retries: int,
    api_timeout_s: float,
) -> dict[str, str]:
    """``options.env`` for the SDK: our settings for the CLI, and for the launcher the real CLI
    and the names to keep (base names, the SDK's, ours, and ``passthrough`` patterns, where a
    trailing ``*`` matches a prefix)."""
    env = {
        **QUIET,
        "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
        "API_TIMEOUT_MS": str(int(api_timeout_s * 1000)),
        **explicit,
    }
    keep = [
        *BASE_NAMES,
        *(f"{p}*" for p in BASE_PREFIXES),
        *env,
        *(p.strip() for p in passthrough if p.strip()),
    ]
    return {**env, REAL_CLI_ENV: real_cli, KEEP_ENV: ",".join(keep)}


def bundled_cli() -> str | None:
    """The CLI shipped inside the claude-agent-sdk wheel (what the SDK itself would run)."""
    import claude_agent_sdk

    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return str(path) if path.is_file() else None


def cli_version(real_cli: str, timeout_s: float = 10.0) -> str | None:
    """``claude --version`` (one line), or None when it cannot run; run with a bare env."""
    try:
        done = subprocess.run(
            [real_cli, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    line = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    return line[:80] if done.returncode == 0 and line else None


# The oldest CLI that honours ``client_composed`` (the SDK's ``verbatim_prompts``): an older
# one would run a prompt starting with "/" as a slash command and expand "@path" mentions.
MIN_VERSION = VERBATIM_PROMPTS_MINIMUM_CLAUDE_CODE_VERSION
_VERSION = re.compile(r"(\d{1,9})\.(\d{1,9})\.(\d{1,9})")


def _numbers(version: str) -> tuple[int, ...] | None:
    match = _VERSION.search(version)
    return tuple(int(x) for x in match.groups()) if match else None


class CliCheck:
    """Whether the CLI can serve: installed, runs ``--version``, at least MIN_VERSION.

    ``problem()`` may run the CLI (seconds), so it is only ever called off the event loop (the
    readiness route runs it in a worker thread, ``refresh`` in one too). A good result is kept
    (the file does not change under a running gateway); a failed one is tried again after
    ``retry_s``. ``too_old()`` only reads what the last check found."""

    def __init__(self, cli: str | None, *, retry_s: float = 10.0) -> None:
        self._cli = cli
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._version: str | None = None
        self._failed: tuple[str, float] | None = None  # (problem, when)
        self._too_old: str | None = None

    def problem(self) -> str | None:
        real = self._cli
        if real is None or not (os.path.isfile(real) and os.access(real, os.X_OK)):
            return "claude: the Claude Code CLI is not installed or not executable"
        with self._lock:
            if self._version is not None:
                return self._too_old
            if self._failed is not None and time.monotonic() - self._failed[1] < self._retry_s:
                return self._failed[0]
            version = cli_version(real)
            if version is None:
                failed = "claude: the Claude Code CLI does not run (`claude --version` failed)"
                self._failed = (failed, time.monotonic())
                return failed
            self._version, self._failed = version, None
            self._too_old = _too_old(version)
            return self._too_old

    async def refresh(self) -> str | None:
        """``problem()`` in a worker thread (for async callers)."""
        return await asyncio.to_thread(self.problem)

    def too_old(self) -> str | None:
        """The refusal of a CLI older than MIN_VERSION, once a check found one."""
        return self._too_old


def _too_old(version: str) -> str | None:
    found, minimum = _numbers(version), _numbers(MIN_VERSION)
    if found is not None and minimum is not None and found >= minimum:
        return None
    return (
        f"claude: the Claude Code CLI is version {version or 'unknown'}; at least {MIN_VERSION} "
        "is required (older CLIs run prompts starting with / as slash commands)"
    )
