"""Claude through the real claude-agent-sdk, which drives the Claude Code CLI over stream-json.

The agent is a pure chat model here: no built-in tools, no MCP servers, no settings or hooks
read from the host, permission mode that denies anything not pre-approved, a throw-away
working directory per CLI, and an allow-listed environment (claude_env.py). Prompts are sent
``client_composed`` (the SDK's verbatim marking, set per message by claude_process.py), so text
starting with ``/`` or ``@`` reaches the model as the user's words instead of running a slash
command or reading a file; the one message sent unmarked is the gateway's own ``/clear``.

Two runtimes (``CLAUDE_RUNTIME``):

- ``warm`` (default): a pool of long-lived CLIs (claude_pool.py). A session keeps its CLI on
  this replica; elsewhere it resumes natively from the SDK's session store (Redis,
  claude_store.py) with ``resume``, so only the new message is sent -- but only when the
  stored transcript is exactly the committed history (a turn whose commit failed, or that was
  cancelled, left entries there the history does not have). Otherwise (first turn, no store,
  a failed load, a transcript that does not match) the history is replayed as one prompt.
  A new conversation (REST or MCP without a session, every OpenAI request) takes a warm CLI:
  a spare, or an idle one whose conversation is reset in-process with ``/clear``.

No prompt or system text ever goes into the CLI's argv (readable by anyone in
``/proc/*/cmdline``, and limited to 128 KiB per argument): prompts go over stdin, the system
prompt through ``--system-prompt-file`` (a 0600 file in the process's own scratch dir). The
CLI takes its system prompt at start-up only, so a process serves one system prompt; since a
process serves one conversation at a time anyway, that costs only the pre-started spare, which
is for conversations without one.
- ``cold``: one CLI per turn with the history replayed, as before the pool existed (kept for
  the benchmark and as an escape hatch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from claude_agent_sdk import ClaudeAgentOptions

from llmhub_common.logging import secrets
from llmhub_gateway.errors import StoreUnavailable
from llmhub_gateway.providers.base import (
    ChatRequest,
    NativeSession,
    ProviderError,
    ProviderNotConfigured,
    StreamItem,
)
from llmhub_gateway.providers.claude_env import (
    CliCheck,
    bundled_cli,
    cli_env,
    write_launcher,
)
from llmhub_gateway.providers.claude_items import (
    Done,
    Item,
    MirrorLost,
    native_handle,
    parse_handle,
    usage_of,
)
from llmhub_gateway.providers.claude_pool import ClaudePool, ClaudePoolLimits
from llmhub_gateway.providers.claude_process import ClaudeProcess, Key
from llmhub_gateway.providers.claude_store import ClaudeTranscriptStore
from llmhub_gateway.providers.diagnostics import Tail
from llmhub_gateway.providers.procs import finish, resolve_executable
from llmhub_gateway.providers.transcript import render_prompt

__all__ = ["ClaudePoolLimits", "ClaudeProvider", "usage_of"]

log = logging.getLogger(__name__)

TOKEN_ENV = "CLAUDE_CODE_OAUTH_TOKEN"
# Model ids listed besides the configured default, and the CLI alias each one runs as: every
# id starts with "claude" so the gateway routes it here.
ALIASES = {"claude-sonnet": "sonnet", "claude-opus": "opus", "claude-haiku": "haiku"}
OTHER_MODELS = tuple(ALIASES)
# Belt and braces on top of tools=[]: nothing that touches the host or the network.
DENIED_TOOLS = [
    "Bash",
    "BashOutput",
    "KillShell",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookEdit",
    "Read",
    "Glob",
    "Grep",
    "WebFetch",
    "WebSearch",
    "Task",
    "Skill",
]
Runtime = Literal["warm", "cold"]


class ClaudeProvider:
    """A base.Provider over Claude Code CLIs (pooled or one per turn)."""

    name = "claude"

    def __init__(
        self,
        *,
        token: str | None,
        default_model: str,
        cli_path: str | None,
        scratch_root: Path,
        runtime: Runtime = "warm",
        pool: ClaudePoolLimits | None = None,
        session_store: ClaudeTranscriptStore | None = None,
        env_passthrough: Sequence[str] = (),
        max_retries: int = 2,
        api_timeout_s: float = 60.0,
        shutdown_grace_s: float = 10.0,
        max_buffer_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.default_model = default_model
        self.runtime = runtime
        self._token = token or None
        self._cli_path = resolve_executable(cli_path) if cli_path else None
        self._scratch_root = scratch_root
        self._store = session_store
        self._passthrough = tuple(env_passthrough)
        self._max_retries = max_retries
        self._api_timeout_s = api_timeout_s
        self._shutdown_grace_s = shutdown_grace_s
        self._max_buffer_bytes = max_buffer_bytes
        self._launcher_dir: Path | None = None
        self._check = CliCheck(self._real_cli())
        self._starting: asyncio.Task[None] | None = None
        self._pool = ClaudePool(
            self._spawn, default_key=(self._cli_model(""), None), limits=pool or ClaudePoolLimits()
        )
        secrets.add(self._token)  # the log filter now redacts it wherever it shows up

    @property
    def pool(self) -> ClaudePool:
        """The warm pool (metrics, tests); unused by the cold runtime."""
        return self._pool

    # -- the Provider protocol ---------------------------------------------------------------

    def configured(self) -> bool:
        return self._token is not None

    def models(self) -> Sequence[str]:
        return (self.default_model, *(m for m in OTHER_MODELS if m != self.default_model))

    def problem(self) -> str | None:
        """Readiness, never blocking: the last result of the CLI check (claude_version.py),
        which runs ``--version`` in the background when the result is missing or stale; then
        whether the warm pool's CLIs fail to start although ``--version`` answers."""
        return self._check.problem() or self._pool.start_state.problem()

    async def start(self) -> None:
        """At gateway start: check the CLI in the background (a hanging ``--version`` must not
        hold the start-up), then pre-start the warm pool's idle CLIs."""
        if self._token is not None and self._starting is None:
            self._starting = asyncio.create_task(self._start())

    async def started(self) -> None:
        """Wait until the start-up check (and the spares' start) is done (tests)."""
        if self._starting is not None:
            await asyncio.shield(self._starting)

    async def _start(self) -> None:
        problem = await self._check.refresh()
        if problem is not None:
            log.warning("%s", problem)
        elif self.runtime == "warm":
            self._pool.start()

    def admit(self, request: ChatRequest) -> None:
        """Before a stream starts: claim a CLI, or ProviderBusy (with retry_after) when none
        can be had."""
        if self.runtime == "warm" and self._token is not None:
            self._pool.admit(request)

    def withdraw(self, request: ChatRequest) -> None:
        """End the claim of a turn whose stream never started."""
        self._pool.withdraw(request)

    async def aclose(self) -> None:
        """Let turns in flight finish (bounded), stop every CLI, drop the temp dirs."""
        if self._starting is not None:
            self._starting.cancel()
        await self._pool.aclose(self._shutdown_grace_s)
        if self._store is not None:
            await self._store.aclose()
        if self._launcher_dir is not None:
            shutil.rmtree(self._launcher_dir, ignore_errors=True)
            self._launcher_dir = None
        with contextlib.suppress(OSError):
            self._scratch_root.rmdir()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        if self._token is None:
            raise ProviderNotConfigured("claude: no OAuth token configured")
        if not self._real_cli_ok():
            raise ProviderNotConfigured("claude: the Claude Code CLI was not found")
        too_old = self._check.too_old()
        if too_old is not None:
            raise ProviderNotConfigured(too_old)
        turn = self._warm(request) if self.runtime == "warm" else self._cold(request)
        async with contextlib.aclosing(turn):  # an early close reaches the turn's cleanup
            async for item in turn:
                yield item

    # -- runtimes ----------------------------------------------------------------------------

    async def _cold(self, request: ChatRequest) -> AsyncGenerator[StreamItem, None]:
        proc = self._spawn(self._key(request), None, 0)
        answered = False
        try:
            async with contextlib.aclosing(_consume(proc, render_prompt(request))) as items:
                async for item in items:
                    if not isinstance(item, NativeSession | MirrorLost):  # nothing survives
                        yield item
            answered = True
        finally:
            await finish(proc.close(graceful=answered))

    async def _warm(self, request: ChatRequest) -> AsyncGenerator[StreamItem, None]:
        key = self._key(request)
        proc, native = await self._acquire(request, key)
        prompt = request.prompt if native else render_prompt(request)
        answered = False
        try:
            async with contextlib.aclosing(_consume(proc, prompt)) as items:
                async for item in items:
                    if isinstance(item, MirrorLost):
                        await self._mirror_lost(item.session_id)
                        continue
                    if isinstance(item, NativeSession):
                        session, tail, _ = parse_handle(item.id)
                        proc.session = session
                        turns = len(request.history) + 2  # once this turn is committed
                        item = NativeSession(native_handle(session, tail, turns))
                    yield item
            answered = True
        finally:
            self._pool.give_back(
                proc, ok=answered, context=len(request.history) + 2, ended=request.stateless
            )
            if not answered:  # the CLI is mid-turn or broken: kill it before the slot frees
                await finish(proc.close(graceful=False))

    async def _acquire(self, request: ChatRequest, key: Key) -> tuple[ClaudeProcess, bool]:
        """A ready process for this turn; a native resume that fails falls back to replay."""
        resume = await self._can_resume(request, key)
        proc, native = self._pool.take(request, key, resume=resume)
        try:
            await self._started(proc)
        except ProviderError:
            if not (proc.resumed and proc.turns == 0):
                raise
            log.warning("claude: resuming the CLI's session failed; replaying the history")
            proc, native = self._pool.take(replace(request, native_session=None), key, resume=False)
            await self._started(proc)
        if not native and not proc.clean:
            return await self._cleared(request, key, proc), False
        return proc, native

    async def _started(self, proc: ClaudeProcess) -> None:
        """Wait for the CLI's start-up; one that failed (raised) or was abandoned is
        discarded."""
        try:
            await proc.ready.wait()
        except BaseException:
            self._pool.discard(proc)
            raise
        if proc.failure is not None:
            self._pool.discard(proc)
            raise proc.failure

    async def _cleared(self, request: ChatRequest, key: Key, proc: ClaudeProcess) -> ClaudeProcess:
        """A CLI that held another conversation, reset so nothing of it remains; one that
        fails to reset is dropped and the turn gets a new CLI."""
        try:
            await proc.reset()
            return proc
        except ProviderError:
            log.warning("claude: a warm CLI did not reset; starting a new one")
        except BaseException:
            self._pool.discard(proc)
            raise
        self._pool.discard(proc)
        fresh, _ = self._pool.take(request, key, resume=False, spawn=True)
        await self._started(fresh)
        return fresh

    async def _mirror_lost(self, session_id: str) -> None:
        """This CLI still holds the whole conversation, but the store's copy is incomplete:
        other replicas must replay instead of resuming it."""
        if self._store is None:
            return
        try:
            await self._store.mark_incomplete(session_id)
        except StoreUnavailable:
            log.warning("claude: could not mark an incomplete transcript in the session store")

    async def _can_resume(self, request: ChatRequest, key: Key) -> bool:
        """Whether a new CLI can resume this conversation from the store: no live CLI has it
        here, and the stored transcript is the committed history: the handle was made by the
        last committed turn (its count of turns is the history's) and the transcript ends
        with that turn's last entry."""
        native = request.native_session
        if native is None or self._store is None:
            return False
        if self._pool.session_process(request, key) is not None:
            return False
        session, tail, turns = parse_handle(native)
        if tail is None or turns != len(request.history):
            return False  # an old handle, or committed turns the CLI never saw
        try:
            same = await self._store.continues(session, tail=tail)
        except StoreUnavailable:
            log.warning("claude: the session store is unreachable; replaying the history")
            return False
        if not same:
            log.info("claude: the stored transcript is not the committed history; replaying")
        return same

    # -- processes ---------------------------------------------------------------------------

    def _key(self, request: ChatRequest) -> Key:
        return (self._cli_model(request.model), request.system)

    def _cli_model(self, model: str) -> str:
        chosen = model or self.default_model
        return ALIASES.get(chosen, chosen)

    def _real_cli(self) -> str | None:
        return self._cli_path or bundled_cli()

    def _real_cli_ok(self) -> bool:
        real = self._real_cli()
        return real is not None and os.path.isfile(real) and os.access(real, os.X_OK)

    def _launcher(self) -> Path:
        if self._launcher_dir is None:
            self._launcher_dir = Path(tempfile.mkdtemp(prefix="llmhub-claude-"))
        path = self._launcher_dir / "claude"
        return path if path.exists() else write_launcher(path)

    def _spawn(self, key: Key, session: str | None, context: int) -> ClaudeProcess:
        scratch = self._scratch_root / uuid.uuid4().hex
        scratch.mkdir(parents=True, mode=0o700)
        stderr = Tail()
        options = self._options(key, scratch, stderr, resume=session)
        return ClaudeProcess(
            options, key=key, scratch=scratch, stderr=stderr, session=session, context=context
        )

    def _options(
        self, key: Key, scratch: Path, stderr: Tail, *, resume: str | None
    ) -> ClaudeAgentOptions:
        assert self._token is not None
        real = self._real_cli()
        assert real is not None
        model, system = key
        system_file = None
        if system:
            system_file = scratch / "system-prompt.txt"
            system_file.write_text(system, encoding="utf-8")  # the scratch dir is 0700
            system_file.chmod(0o600)
        explicit = {TOKEN_ENV: self._token, "CLAUDE_CONFIG_DIR": str(scratch / ".claude")}
        env = cli_env(
            real,
            explicit,
            passthrough=self._passthrough,
            max_retries=self._max_retries,
            api_timeout_s=self._api_timeout_s,
        )
        return ClaudeAgentOptions(
            model=model,
            system_prompt={"type": "file", "path": str(system_file)} if system_file else None,
            max_buffer_size=self._max_buffer_bytes,
            cli_path=self._launcher(),
            cwd=scratch,
            env=env,
            tools=[],
            allowed_tools=[],
            disallowed_tools=DENIED_TOOLS,
            permission_mode="dontAsk",
            setting_sources=[],
            strict_mcp_config=True,
            include_partial_messages=True,
            # Off so that the process marks each message itself: caller text always
            # client_composed, only the gateway's own /clear not (claude_process.py).
            verbatim_prompts=False,
            session_store=self._store if self.runtime == "warm" else None,
            resume=resume,
            stderr=stderr.add,
        )


async def _consume(
    proc: ClaudeProcess, prompt: str
) -> AsyncGenerator[StreamItem | MirrorLost, None]:
    """Run one turn on ``proc`` and yield its items until Done (errors raise)."""
    await proc.ready.wait()
    if proc.failure is not None:
        raise proc.failure
    out: asyncio.Queue[Item] = proc.submit(prompt)
    while True:
        item = await out.get()
        if isinstance(item, Done):
            return
        if isinstance(item, ProviderError):
            raise item
        yield item
