"""Gemini through the ``gemini`` CLI (0.61): warm ACP processes (``gemini_acp.py``) by
default, or one headless stream-json process per turn under a PTY (``GEMINI_RUNTIME=pty``, and
automatically when the CLI has no ACP mode).

The mounted credentials file is read-only, while the CLI refreshes tokens and writes state under
its home, so every CLI home (one per warm process, one per concurrent one-shot slot) holds its
own private copy (0600) of the mounted file -- recopied only when the mounted file changes, so
refreshed tokens survive, and never shared by two running processes, so refreshes never race --
and the settings that select OAuth, turn usage statistics off and lock the agent down to a pure
chat model: ``tools.core: []`` is the CLI's allow-list of built-in tools, and an empty list
registers none (no shell, file, web or MCP-resource tool), ``tools.exclude`` denies the dangerous
ones again by name, no MCP servers, skills, sub-agents or hooks, YOLO refused. The CLI gets an
allow-listed environment (``cli_env``), never the gateway's own settings. User text never goes
into argv: ACP sends it as JSON content, the one-shot path through a stdin pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from llmhub_common.contract import GEMINI_PROJECT_KEY
from llmhub_gateway.providers.base import (
    ChatRequest,
    ProviderAccountUnsupported,
    ProviderAuthError,
    ProviderCrashed,
    ProviderError,
    ProviderNotConfigured,
    ProviderProjectRequired,
    ProviderRateLimited,
    StreamItem,
    Usage,
)
from llmhub_gateway.providers.diagnostics import (
    Tail,
    category,
    is_auth_error,
    is_quota,
    safe_detail,
)
from llmhub_gateway.providers.gemini_accounts import account_refusal
from llmhub_gateway.providers.gemini_acp import (
    AcpPool,
    AcpUnsupported,
    PoolLimits,
    argv_for,
)
from llmhub_gateway.providers.gemini_recordings import RecordingStore
from llmhub_gateway.providers.owners import owned
from llmhub_gateway.providers.procs import finish, resolve_executable
from llmhub_gateway.providers.prompt_text import command_safe
from llmhub_gateway.providers.pty_runner import PtyRun
from llmhub_gateway.providers.transcript import render_prompt
from llmhub_gateway.text_rules import check_model, check_passable

log = logging.getLogger(__name__)

# Belt and braces on top of the empty allow-list (the 0.61 names of the built-in tools).
DENIED_TOOLS = [
    "run_shell_command",
    "write_file",
    "replace",
    "read_file",
    "read_many_files",
    "list_directory",
    "glob",
    "grep_search",
    "web_fetch",
    "google_web_search",
    "write_todos",
    "activate_skill",
    "read_mcp_resource",
    "list_mcp_resources",
]
SETTINGS: dict[str, Any] = {
    "security": {"auth": {"selectedType": "oauth-personal"}, "disableYoloMode": True},
    "privacy": {"usageStatisticsEnabled": False},
    "tools": {"core": [], "exclude": DENIED_TOOLS},
    "mcp": {"allowed": []},
    "mcpServers": {},
    "skills": {"enabled": False},
    "experimental": {"enableAgents": False},
    "hooksConfig": {"enabled": False},
}
# Hash of the mounted file last copied; kept in the home so a restart keeps refreshed tokens.
SOURCE_HASH_FILE = ".llmhub-source-sha256"
EXIT_AUTH = 41  # the CLI's FATAL_AUTHENTICATION_ERROR
OTHER_MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
# What the CLI (Node) needs from the gateway's environment, and nothing else: no REDIS_URL, no
# tokens, no gateway settings. Proxies and CA bundles so it can reach Google from a locked-down
# network. GEMINI_CLI_ENV_PASSTHROUGH adds names (a trailing ``*`` matches a prefix).
ENV_ALLOW = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
# What a one-shot run leaves in its home that nothing reads again: its chat recording and logs
# (tmp/), shell history, and the project registry that gains an entry per scratch directory.
PRUNED = ("tmp", "history", "projects.json")
RUNTIMES = ("acp", "pty")


class GeminiProvider:
    """A base.Provider: warm ACP processes (default) or one ``gemini`` process per request."""

    name = "gemini"

    def __init__(
        self,
        *,
        auth_path: Path,
        default_model: str,
        cli_path: str,
        cli_home: Path,
        project: str | None = None,
        runtime: str = "acp",
        limits: PoolLimits | None = None,
        pass_env: Sequence[str] = (),
        recordings: RecordingStore | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}")
        self.default_model = default_model
        self._auth_path = auth_path
        self._cli_path = resolve_executable(cli_path)
        self._cli_home = cli_home
        self._project = project
        self._pass_env = tuple(pass_env)
        self._runtime = runtime
        self._limits = limits or PoolLimits()
        self._pool: AcpPool | None = None
        self._recordings = recordings  # the CLI's chat recordings on Redis, for session/load
        self._version: str | None = None
        self._version_problem: str | None = None
        self._free_slots: list[int] = []  # one-shot homes not in use
        self._slots = 0
        # The last account refusal (type, message), until a call succeeds: /health/tokens shows it.
        self._refusal: tuple[str, str] | None = None

    def configured(self) -> bool:
        return self._auth_path.is_file()

    def models(self) -> Sequence[str]:
        return (self.default_model, *(m for m in OTHER_MODELS if m != self.default_model))

    def problem(self) -> str | None:
        """Readiness: the CLI must be an executable file on this replica that answers
        ``--version`` (checked once). Also starts the warm spare process."""
        if not (os.path.isfile(self._cli_path) and os.access(self._cli_path, os.X_OK)):
            return "gemini: the gemini CLI is not installed or not executable"
        if self._version is None and self._version_problem is None:
            self._check_version()
        if self._version_problem is None:
            self._warm()
        return self._version_problem

    def _check_version(self) -> None:
        try:
            done = subprocess.run(  # our configured CLI, no shell, no user input
                [self._cli_path, "--version"],
                env=self.cli_env(self._cli_home),
                capture_output=True,
                timeout=30,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("gemini --version failed: %s", safe_detail(str(exc)))
            self._version_problem = "gemini: the gemini CLI does not run (--version failed)"
            return
        version = done.stdout.decode(errors="replace").strip().splitlines()
        if done.returncode != 0 or not version:
            self._version_problem = "gemini: the gemini CLI does not run (--version failed)"
            return
        self._version = version[-1][:64]
        log.info("gemini CLI version %s", safe_detail(self._version))

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def runtime(self) -> str:
        """The runtime in use: ``acp``, or ``pty`` when configured or when the CLI has no ACP."""
        if self._runtime == "acp" and not (self._pool is not None and self._pool.unsupported):
            return "acp"
        return "pty"

    def account_problem(self) -> tuple[str, str] | None:
        """(error type, what to do) of the last account refusal, None once a call succeeded."""
        return self._refusal

    def project(self) -> str | None:
        """GOOGLE_CLOUD_PROJECT: the gateway's env, else the key the operator put in the Secret
        (read on every call: kubelet updates the mounted file without a roll)."""
        if self._project:
            return self._project
        try:
            text = (self._auth_path.parent / GEMINI_PROJECT_KEY).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return text.strip() or None

    def admit(self, request: ChatRequest) -> None:
        """Refuse (ProviderBusy, before any stream starts) a turn the warm pool has no room for."""
        pool = self._acp_pool()
        if pool is not None:
            pool.admit(request)

    def withdraw(self, request: ChatRequest) -> None:
        """The admitted turn's stream will never start: its place in the pool is free again."""
        if self._pool is not None:
            self._pool.withdraw(request)

    @property
    def pool(self) -> AcpPool | None:
        return self._pool

    def _acp_pool(self) -> AcpPool | None:
        if self._runtime != "acp":
            return None
        if self._pool is None:
            self._pool = AcpPool(
                root=self._cli_home / "acp",
                launch=self._launch,
                fingerprint=self._fingerprint,
                default_model=self.default_model,
                limits=self._limits,
                recordings=self._recordings,
            )
        return None if self._pool.unsupported else self._pool

    def warm(self) -> None:
        """On the loop, after a readiness check in a worker thread passed: pre-start the spare
        (``problem()`` cannot there: a thread has no loop to start it on)."""
        if self._version is not None and self._version_problem is None:
            self._warm()

    def _warm(self) -> None:
        """Pre-start the spare process (needs a running loop and the credentials)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        pool = self._acp_pool()
        if pool is not None and self.configured():
            pool.warm()

    def _fingerprint(self) -> str:
        """What a warm process was started with: the mounted creds and the env (home aside)."""
        digest = hashlib.sha256()
        with contextlib.suppress(OSError):
            digest.update(self._auth_path.read_bytes())
        env = self.cli_env(Path("/"))
        for key in sorted(env):
            digest.update(f"\0{key}={env[key]}".encode())
        return digest.hexdigest()

    def _launch(self, model: str, home: Path, flag: str) -> tuple[list[str], dict[str, str]]:
        self.prepare_home(home)
        return argv_for(self._cli_path, model, flag), self.cli_env(home)

    @property
    def acp_flag(self) -> str | None:
        """The flag the warm processes run with: ``--acp``, or ``--experimental-acp`` once the
        CLI refused ``--acp`` (older CLIs); None without the ACP runtime."""
        return self._pool.flag if self._pool is not None else None

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        if self._recordings is not None:
            await self._recordings.aclose()
        # This process's own scratch dirs and one-shot homes; another gateway's stay.
        shutil.rmtree(owned(self._cli_home / "work"), ignore_errors=True)
        shutil.rmtree(owned(self._cli_home / "pty"), ignore_errors=True)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        model = request.model or self.default_model
        check_model(model)
        check_passable([request.prompt, request.system, *(t.text for t in request.history)])
        try:
            pool = self._acp_pool()
            if pool is not None:
                if not self._auth_path.is_file():
                    raise ProviderNotConfigured("gemini: no OAuth credentials mounted")
                try:
                    async with contextlib.aclosing(pool.stream(request)) as items:
                        async for item in items:
                            yield item
                    self._refusal = None
                    return
                except AcpUnsupported:
                    log.warning("the gemini CLI has no ACP mode; using one process per turn")
            async with contextlib.aclosing(self._one_shot(request, model)) as texts:
                async for text in texts:
                    yield text
            self._refusal = None
        except (ProviderAccountUnsupported, ProviderProjectRequired) as exc:
            self._refusal = (exc.error_type, str(exc))
            raise

    async def _one_shot(
        self, request: ChatRequest, model: str
    ) -> AsyncGenerator[str | Usage, None]:
        """One headless ``gemini`` under a PTY; the prompt goes through stdin, never argv."""
        slot = self._free_slots.pop() if self._free_slots else self._new_slot()
        home = owned(self._cli_home / "pty") / str(slot)
        workdir = owned(self._cli_home / "work") / uuid.uuid4().hex
        run: PtyRun | None = None
        try:
            self.prepare_home(home)
            workdir.mkdir(parents=True, mode=0o700)
            prompt = command_safe(render_prompt(request, include_system=True))
            argv = [self._cli_path, "-m", model, "-o", "stream-json"]
            argv += ["--approval-mode", "default", "-p", ""]
            run = await _start(argv, self.cli_env(home), workdir, prompt.encode())
            async for text in _answer(run):
                yield text
        finally:
            await finish(_cleanup(run, workdir, home))
            self._free_slots.append(slot)

    def _new_slot(self) -> int:
        self._slots += 1
        return self._slots - 1

    def prepare_home(self, home: Path) -> None:
        """Private writable copy of the creds (only when the mount changed) and settings."""
        try:
            creds = self._auth_path.read_bytes()
        except OSError as exc:
            raise ProviderNotConfigured("gemini: no OAuth credentials mounted") from exc
        gemini_dir = home / ".gemini"
        gemini_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = gemini_dir / "oauth_creds.json"
        marker = gemini_dir / SOURCE_HASH_FILE
        digest = hashlib.sha256(creds).hexdigest()
        copied = marker.read_text().strip() if marker.exists() else None
        if digest != copied or not target.exists():
            _write_private(target, creds)
            _write_private(marker, digest.encode())
        settings = (json.dumps(SETTINGS, indent=2) + "\n").encode()
        settings_path = gemini_dir / "settings.json"
        if not settings_path.exists() or settings_path.read_bytes() != settings:
            _write_private(settings_path, settings)

    def cli_env(self, home: Path) -> dict[str, str]:
        """The CLI's whole environment: the allow-list, its home, the cloud project."""
        env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW or self._passed(k)}
        env.update(
            GEMINI_CLI_HOME=str(home),
            HOME=str(home),
            NO_COLOR="1",
            TERM="dumb",
        )
        project = self.project()
        if project:
            if "\x00" in project or "=" in project:
                raise ProviderNotConfigured("gemini: the configured cloud project id is invalid")
            env[PROJECT_ENV] = project
        return env

    def _passed(self, name: str) -> bool:
        return any(
            name.startswith(p[:-1]) if p.endswith("*") else name == p for p in self._pass_env
        )


async def _answer(run: PtyRun) -> AsyncIterator[str | Usage]:
    """Turn the CLI's stream-json lines into text deltas and the usage of its ``result``, or a
    ProviderError."""
    noise = Tail()
    refusal: ProviderAuthError | None = None
    async for line in run.lines():
        event = _parse(line)
        if event is None:
            noise.add(line)
            refusal = refusal or account_refusal(line)
            continue
        kind = event.get("type")
        if kind == "message" and event.get("role") == "assistant":
            content = event.get("content")
            if isinstance(content, str) and content:
                yield content
        elif kind == "error" and event.get("severity") == "error":
            raise _failure(event)
        elif kind == "error":
            log.warning("gemini warning: %s", safe_detail(str(event.get("message", ""))))
        elif kind == "result":
            error = event.get("error")
            if event.get("status") == "error" or error:
                raise _failure(error if isinstance(error, dict) else {})
            usage = usage_of(event.get("stats"))
            if usage is not None:
                yield usage
            return
    # No result: the exit status says what happened. The CLI's own text (its "Loaded cached
    # credentials." banner included) only goes to the log.
    status = await run.wait(2.0)
    if status == EXIT_AUTH and refusal is not None:
        raise refusal
    if status == EXIT_AUTH:
        raise ProviderAuthError("gemini: the CLI rejected the OAuth credentials")
    if status:
        log.warning("gemini CLI exited with %s: %s", status, safe_detail(noise.text()))
        raise ProviderCrashed(f"gemini: the CLI exited with status {status}")
    log.warning("gemini CLI ended without an answer: %s", safe_detail(noise.text()))
    raise ProviderCrashed("gemini: the CLI ended without an answer")


async def _cleanup(run: PtyRun | None, workdir: Path, home: Path) -> None:
    try:
        if run is not None:
            await run.terminate()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        prune_home(home)


def prune_home(home: Path) -> None:
    """Drop what a finished one-shot run left in its home (PRUNED), keeping creds/settings."""
    for name in PRUNED:
        path = home / ".gemini" / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


async def _start(argv: list[str], env: dict[str, str], workdir: Path, stdin_data: bytes) -> PtyRun:
    try:
        return await PtyRun.start(argv, env=env, cwd=workdir, stdin_data=stdin_data)
    except (FileNotFoundError, PermissionError) as exc:
        raise ProviderNotConfigured("gemini: the gemini CLI was not found") from exc
    except OSError as exc:
        log.warning("gemini CLI did not start: %s", safe_detail(str(exc)))
        raise ProviderError("gemini: the CLI could not be started") from exc


def _parse(line: str) -> dict[str, Any] | None:
    start = line.find("{")
    if start < 0:
        return None
    try:
        event = json.loads(line[start:])
    except ValueError:
        return None
    return event if isinstance(event, dict) and "type" in event else None


def _failure(error: dict[str, Any]) -> ProviderError:
    """A structured error event or result error: auth by its code or type, else a category."""
    refusal = account_refusal(str(error.get("message", "")))
    if refusal is not None:
        return refusal
    if is_auth_error(error):
        return ProviderAuthError("gemini: the CLI rejected the OAuth credentials")
    log.warning("gemini reported an error: %s", safe_detail(json.dumps(error)))
    if is_quota(error):
        return ProviderRateLimited(category("gemini", error))
    return ProviderError(category("gemini", error))


def _write_private(path: Path, data: bytes) -> None:
    """Atomic write with mode 0600, so a concurrent CLI never reads half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def usage_of(stats: object) -> Usage | None:
    """Tokens from stream-json ``result.stats`` (0.61: ``input_tokens`` = prompt tokens, cached
    ones included; ``total_tokens`` adds the answer, thinking and tool tokens). Output is
    everything beyond the prompt, so thinking counts against the budget too."""
    if not isinstance(stats, dict):
        return None
    prompt, total, output = (
        stats.get(k) for k in ("input_tokens", "total_tokens", "output_tokens")
    )
    if not isinstance(prompt, int) or prompt < 0:
        return None
    out = output if isinstance(output, int) and output > 0 else 0
    if isinstance(total, int) and total - prompt > out:
        out = total - prompt
    return Usage(tokens_in=prompt, tokens_out=out)
