"""Gemini through the ``gemini`` CLI (0.61) in headless stream-json mode, under a PTY.

The mounted credentials file is read-only, while the CLI refreshes tokens and writes state under
its home, so each call makes sure ``<cli_home>/.gemini`` holds a private copy (0600) of the
mounted file -- recopied only when the mounted file changes, so refreshed tokens survive -- and
the settings that select OAuth, turn telemetry off and lock the agent down to a pure chat
model: ``tools.core: []`` is the CLI's allow-list of built-in tools, and an empty list registers
none (no shell, file, web or MCP-resource tool), ``tools.exclude`` denies the dangerous ones again
by name, no MCP servers, skills, sub-agents or hooks, YOLO refused. Each call runs in its own
empty scratch directory, removed afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
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
from llmhub_gateway.providers.procs import finish, resolve_executable
from llmhub_gateway.providers.pty_runner import PtyRun
from llmhub_gateway.providers.transcript import render_prompt

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
# Linux caps one argv string at 128 KiB; above this the prompt goes through a stdin pipe,
# which the CLI reads when stdin is not a terminal (up to 8 MiB).
ARGV_PROMPT_LIMIT = 64 * 1024
OTHER_MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
# Never hand the other provider's credential (or ours, twice) to the child.
_SCRUBBED_ENV = ("CLAUDE_CODE_OAUTH_TOKEN", "GEMINI_API_KEY", "GOOGLE_API_KEY")
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"


class GeminiProvider:
    """A base.Provider running one ``gemini`` process per request."""

    name = "gemini"

    def __init__(
        self,
        *,
        auth_path: Path,
        default_model: str,
        cli_path: str,
        cli_home: Path,
        project: str | None = None,
    ) -> None:
        self.default_model = default_model
        self._auth_path = auth_path
        self._cli_path = resolve_executable(cli_path)
        self._cli_home = cli_home
        self._project = project
        # The last account refusal (type, message), until a call succeeds: /health/tokens shows it.
        self._refusal: tuple[str, str] | None = None

    def configured(self) -> bool:
        return self._auth_path.is_file()

    def models(self) -> Sequence[str]:
        return (self.default_model, *(m for m in OTHER_MODELS if m != self.default_model))

    def problem(self) -> str | None:
        """Readiness: the CLI must be an executable file on this replica."""
        if not (os.path.isfile(self._cli_path) and os.access(self._cli_path, os.X_OK)):
            return "gemini: the gemini CLI is not installed or not executable"
        return None

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

    async def aclose(self) -> None:
        shutil.rmtree(self._cli_home / "work", ignore_errors=True)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        self.prepare_home()
        workdir = self._cli_home / "work" / uuid.uuid4().hex
        workdir.mkdir(parents=True, mode=0o700)
        prompt = render_prompt(request, include_system=True)
        argv = [self._cli_path, "-m", request.model or self.default_model, "-o", "stream-json"]
        argv += ["--approval-mode", "default"]
        stdin_data: bytes | None = None
        if len(prompt.encode()) > ARGV_PROMPT_LIMIT:
            argv += ["-p", ""]
            stdin_data = prompt.encode()
        else:
            argv += ["-p", prompt]
        run: PtyRun | None = None
        try:
            run = await _start(argv, self._env(), workdir, stdin_data)
            async for text in _answer(run):
                yield text
            self._refusal = None
        except (ProviderAccountUnsupported, ProviderProjectRequired) as exc:
            self._refusal = (exc.error_type, str(exc))
            raise
        finally:
            await finish(_cleanup(run, workdir))

    def prepare_home(self) -> None:
        """Private writable copy of the creds (only when the mount changed) and settings."""
        try:
            creds = self._auth_path.read_bytes()
        except OSError as exc:
            raise ProviderNotConfigured("gemini: no OAuth credentials mounted") from exc
        gemini_dir = self._cli_home / ".gemini"
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

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.update(
            GEMINI_CLI_HOME=str(self._cli_home),
            HOME=str(self._cli_home),
            NO_COLOR="1",
            TERM="dumb",
        )
        project = self.project()
        if project:
            env[PROJECT_ENV] = project
        return env


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


async def _cleanup(run: PtyRun | None, workdir: Path) -> None:
    try:
        if run is not None:
            await run.terminate()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _start(
    argv: list[str], env: dict[str, str], workdir: Path, stdin_data: bytes | None
) -> PtyRun:
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
