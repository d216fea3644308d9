#!/usr/bin/env python3
"""A stand-in for the gemini CLI 0.61 (stdlib only): headless ``gemini -p ... -m ... -o
stream-json|json`` and ``gemini --acp`` (Agent Client Protocol on stdio; 0.61 still takes the
deprecated ``--experimental-acp``, and its ``--help`` lists both, as the real one does).

As strict as the real one where the gateway could go wrong: argv is parsed like yargs does
(``-p -x`` is "Not enough arguments following: p", an unknown option ends the run with exit 1,
``--prompt=-x`` takes the value verbatim); in ACP mode a prompt whose leading text starts with
``/`` or ``$`` and names a CLI command runs that command instead of reaching the model, like
packages/cli/src/acp/acpCommandHandler.ts. The ACP shapes (initialize, session/new|load|prompt,
session/update chunks, ``_meta.quota.token_count``) are 0.61's, checked against the real CLI in
test_gemini_real_acp.py.

Like the real 0.61 CLI it reads its home from GEMINI_CLI_HOME (else HOME), needs
``<home>/.gemini/settings.json`` with selectedType oauth-personal and
``<home>/.gemini/oauth_creds.json``, writes under ``<home>/.gemini`` (so the home must be
writable), reads extra prompt text from stdin only when stdin is not a terminal, and exits 41
on an authentication failure. The answer echoes model, whether stdout is a TTY (headless) or
the turn number of the session (ACP), and the text received. Usage: input = words received this
turn, output = words answered (headless adds THOUGHTS to its total, like 0.61's stats).

Like the real CLI it prints "Loaded cached credentials." on every headless run.

Env: FAKE_CLI_MODE = ok | slow | hang | crash | oom (Node heap crash, exit 134) | garbage | auth |
error (API error, quota, code 429) |
unsupported (a personal / Google AI Pro account, refused since 2026-06-18: exit 41) |
project (a Code Assist Standard/Enterprise account: like the real CLI it fails with exit 41
unless GOOGLE_CLOUD_PROJECT or GOOGLE_CLOUD_PROJECT_ID is set, and the answer names the project) |
settings (the answer is JSON: the settings.json, argv and cwd the CLI got, and the cwd's files) |
noacp (a CLI without ACP: --experimental-acp and --acp are unknown arguments) |
oldacp (a CLI from before --acp: only --experimental-acp, and --help lists only that) |
hangnew (ACP: session/new is never answered) |
deaf (the CLI stops reading its stdin: headless, at once; ACP, once it has read session/new and
answered FAKE_CLI_GOOD_TURNS prompts) |
bigline (headless: one huge output line of FAKE_CLI_BIGLINE characters);
FAKE_CLI_GOOD_TURNS (ACP: prompts a process answers normally before hang or deaf set in, so a
session can exist first; hang counts prompts received, deaf prompts answered);
FAKE_CLI_OPEN_S (ACP: session/new and session/load take this long);
FAKE_CLI_DELAY; FAKE_CLI_STARTUP_S (sleep before answering anything); FAKE_CLI_REPLY_S (sleep
before each answer); FAKE_CLI_SPAWNLOG (one JSON line per process: pid, mode, home, env);
FAKE_CLI_PIDFILE (spawns a sleeping child in the same process group and records {"pid",
"children"}: of the first process, then of the one answering the latest prompt);
FAKE_CLI_VERSION.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

MODE = os.environ.get("FAKE_CLI_MODE", "ok")
DELAY = float(os.environ.get("FAKE_CLI_DELAY", "0.3"))
THOUGHTS = 7  # thinking tokens each fake answer reports
EXIT_AUTH = 41


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def emit(obj: dict[str, object]) -> None:
    """Write one JSON line in two flushed halves, as a PTY reader may see it."""
    line = json.dumps(obj) + "\n"
    half = len(line) // 2
    write(line[:half])
    time.sleep(0.002)
    write(line[half:])


def fail_auth(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.exit(EXIT_AUTH)


def settings_report(home: str, argv: list[str]) -> str:
    """What a lockdown test needs to see: the settings and flags this run was given."""
    with open(os.path.join(home, ".gemini", "settings.json"), encoding="utf-8") as fh:
        settings = json.load(fh)
    cwd = os.getcwd()
    report = {"settings": settings, "argv": argv, "cwd": cwd, "cwd_files": os.listdir(cwd)}
    return json.dumps(report)


def check_home() -> str:
    home = os.environ.get("GEMINI_CLI_HOME") or os.environ.get("HOME") or "/"
    gemini_dir = os.path.join(home, ".gemini")
    settings_path = os.path.join(gemini_dir, "settings.json")
    try:
        with open(settings_path, encoding="utf-8") as fh:
            selected = json.load(fh)["security"]["auth"]["selectedType"]
    except (OSError, ValueError, KeyError, TypeError):
        selected = None
    if selected != "oauth-personal":
        fail_auth(
            f"Please set an Auth method in your {settings_path} or specify one of the following "
            "environment variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, "
            "GOOGLE_GENAI_USE_GCA"
        )
    try:
        with open(os.path.join(gemini_dir, "oauth_creds.json"), encoding="utf-8") as fh:
            creds = json.load(fh)
        if not creds.get("refresh_token") and not creds.get("access_token"):
            raise ValueError("no token")
    except (OSError, ValueError):
        fail_auth("Error authenticating: no valid OAuth credentials found")
    # The real CLI writes state (projects.json, refreshed tokens) here on every run.
    registry = os.path.join(gemini_dir, "projects.json")
    if not os.path.exists(registry):
        with open(registry, "w", encoding="utf-8") as fh:
            fh.write('{"projects": {}}')
    return home


_child: list[int] = []  # the sleeping child FAKE_CLI_PIDFILE asks for, once spawned


def record_pids(*, first: bool = True) -> None:
    """Write {"pid", "children"} to FAKE_CLI_PIDFILE: at start-up only when no process wrote
    it yet, and again by whichever process answers a prompt. The gateway starts spares at any
    time, so the file names the process serving the latest prompt, never a spare started after
    it. Written atomically (link or rename of a complete file)."""
    pidfile = os.environ.get("FAKE_CLI_PIDFILE")
    if not pidfile:
        return
    if not _child:
        sleeper = [sys.executable, "-c", "import time; time.sleep(3600)"]
        _child.append(subprocess.Popen(sleeper).pid)
    tmp = f"{pidfile}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"pid": os.getpid(), "children": _child}, fh)
    try:
        if first:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, pidfile)
        else:
            os.replace(tmp, pidfile)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# Options of the real 0.61 CLI the gateway may use; yargs-strict like it: an unknown option, or
# an option whose value is missing (the next word starts with "-"), ends the run with exit 1.
VALUE_OPTIONS = {
    "-m": "model",
    "--model": "model",
    "-p": "prompt",
    "--prompt": "prompt",
    "-o": "output_format",
    "--output-format": "output_format",
    "--approval-mode": "approval_mode",
}
FLAG_OPTIONS = {
    "--experimental-acp": "acp",
    "--acp": "acp",
    "-v": "version",
    "--version": "version",
}
FLAG_OPTIONS |= {"-h": "help", "--help": "help"}
EXIT_USAGE = 1
VERSION = os.environ.get("FAKE_CLI_VERSION", "0.61.0")
STARTUP_S = float(os.environ.get("FAKE_CLI_STARTUP_S", "0"))
REPLY_S = float(os.environ.get("FAKE_CLI_REPLY_S", "0"))
OPEN_S = float(os.environ.get("FAKE_CLI_OPEN_S", "0"))
GOOD_TURNS = int(os.environ.get("FAKE_CLI_GOOD_TURNS", "0") or 0)
# 0.61's --help lines for its ACP flags (checked against the real CLI in test_gemini_real_acp.py).
HELP_ACP = "      --acp                       Starts the agent in ACP mode  [boolean]\n"
HELP_EXPERIMENTAL_ACP = (
    "      --experimental-acp          Starts the agent in ACP mode (deprecated, use --acp "
    "instead)  [boolean]\n"
)
# Echo at most this many characters of what was received (0: all): replayed transcripts then
# grow linearly, for the benchmark.
ECHO_CHARS = int(os.environ.get("FAKE_CLI_ECHO_CHARS", "0") or 0)


def echo(text: str) -> str:
    return text[:ECHO_CHARS] if ECHO_CHARS else text


# The real CLI's ACP slash commands (packages/cli/src/acp/acpCommandHandler.ts): a prompt whose
# leading text, trimmed, starts with "/" or "$" and names one of them runs it, not the model.
ACP_COMMANDS = ("memory", "extensions", "init", "restore", "about", "help")


def usage_error(message: str) -> None:
    sys.stderr.write(f"{message}\nUsage: gemini [options] [command]\n")
    sys.exit(EXIT_USAGE)


def parse_args(argv: list[str]) -> dict[str, object]:
    """yargs as the real CLI configures it, for the options above: ``--opt=value`` takes the
    value verbatim, ``--opt value`` refuses a value that looks like an option."""
    if MODE in ("noacp", "oldacp"):  # a CLI from before ACP, or before --acp
        for name in ("--experimental-acp", "--acp") if MODE == "noacp" else ("--acp",):
            FLAG_OPTIONS.pop(name, None)
    args: dict[str, object] = {"query": []}
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            args["query"] = [*args["query"], *argv[i:]]  # type: ignore[misc]
            break
        if not word.startswith("-") or word == "-":
            args["query"] = [*args["query"], word]  # type: ignore[misc]
            continue
        name, eq, value = word.partition("=")
        if name in VALUE_OPTIONS:
            if not eq:
                if i >= len(argv) or (argv[i].startswith("-") and argv[i] != "-"):
                    usage_error(f"Not enough arguments following: {name.lstrip('-')}")
                value = argv[i]
                i += 1
            args[VALUE_OPTIONS[name]] = value
        elif name in FLAG_OPTIONS and not eq:
            args[FLAG_OPTIONS[name]] = True
        else:
            usage_error(f"Unknown argument: {name.lstrip('-')}")
    if args["query"] and "prompt" in args:
        usage_error("Cannot use both a positional prompt and the --prompt (-p) flag together")
    return args


def log_spawn(acp: bool) -> None:
    """FAKE_CLI_SPAWNLOG: one JSON line per process started, with its environment (tests
    count spawns and check what reached the CLI)."""
    path = os.environ.get("FAKE_CLI_SPAWNLOG")
    if path:
        home = os.environ.get("GEMINI_CLI_HOME") or os.environ.get("HOME") or ""
        with open(path, "a", encoding="utf-8") as fh:
            entry = {"pid": os.getpid(), "acp": acp, "home": home, "env": dict(os.environ)}
            fh.write(json.dumps(entry) + "\n")


def words(text: str) -> int:
    return len(text.split())


def reported(answer: str) -> tuple[int, int]:
    """The usage this fake reports for ``answer`` over ACP: words received, words answered."""
    return words(answer.split("] ", 1)[1]), words(answer)


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.get("help"):
        write("Usage: gemini [options] [command]\n\nGemini CLI (fake)\n\nOptions:\n")
        if "--acp" in FLAG_OPTIONS:
            write(HELP_ACP)
        if "--experimental-acp" in FLAG_OPTIONS:
            write(HELP_EXPERIMENTAL_ACP)
        return
    if args.get("version"):
        write(VERSION + "\n")
        return
    log_spawn(bool(args.get("acp")))
    if STARTUP_S:
        time.sleep(STARTUP_S)
    if args.get("acp"):
        AcpAgent(str(args.get("model") or "gemini-default")).run()
        return
    headless(args)


def headless(args: dict[str, object]) -> None:
    record_pids()
    home = check_home()
    # Like the real CLI, on every run with OAuth: a banner that mentions credentials.
    sys.stderr.write("Loaded cached credentials.\n")
    sys.stderr.flush()
    if MODE == "oom":  # a Node crash before any output: the banner must not read as auth
        sys.stderr.write(
            "<--- Last few GCs --->\nFATAL ERROR: Reached heap limit Allocation failed - "
            "JavaScript heap out of memory (while refreshing oauth credentials)\n"
        )
        sys.exit(134)
    account_checks()
    model = str(args.get("model") or "gemini-default")
    prompt = str(args.get("prompt") or " ".join(args["query"]))  # type: ignore[arg-type]
    if MODE == "deaf":  # never reads the prompt piped to it, never answers
        while True:
            time.sleep(60)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{piped}\n\n{prompt}" if prompt else piped
    if not prompt:
        sys.stderr.write("No input provided via stdin.\n")
        sys.exit(42)
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT_ID")
    tty = "yes" if sys.stdout.isatty() else "no"
    text = f"[fake-gemini model={model} tty={tty}] {echo(prompt)}"
    if MODE == "project":
        text = f"[fake-gemini model={model} tty={tty} project={project}] {echo(prompt)}"
    if MODE == "settings":
        text = settings_report(home, sys.argv[1:])
    if MODE == "bigline":  # one huge line of output, no newline before the end
        text = "z" * int(os.environ.get("FAKE_CLI_BIGLINE", "1000000"))
    session = str(uuid.uuid4())
    if REPLY_S:
        time.sleep(REPLY_S)

    if args.get("output_format") == "json":
        write(json.dumps({"session_id": session, "response": text, "stats": {}}) + "\n")
        return

    write("\x1b[?25l\x1b]0;gemini\x07")  # cursor and title noise, as terminals get
    emit({"type": "init", "timestamp": now(), "session_id": session, "model": model})
    emit({"type": "message", "timestamp": now(), "role": "user", "content": prompt})
    if MODE == "error":  # an API failure reported in-band, as stream-json does
        msg = "Quota exceeded for quota metric 'Requests per day'"
        emit({"type": "error", "timestamp": now(), "severity": "warning", "message": "retrying"})
        emit(
            {
                "type": "result",
                "timestamp": now(),
                "status": "error",
                "stats": {},
                "error": {"type": "ApiError", "message": msg, "code": 429},
            }
        )
        sys.exit(1)
    if MODE == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(60)
    if MODE == "garbage":
        write("\x1b[31mError\x1b[0m: \x00\x07 not json\r\n{broken json\r\n")
        return
    if MODE == "bigline":
        write(json.dumps({"type": "message", "role": "assistant", "content": text}))
        write("\n")
    third = max(1, len(text) // 3)
    for i in range(0, len(text) if MODE != "bigline" else 0, third):
        if MODE == "crash" and i > 0:
            sys.stderr.write("FATAL ERROR: Reached heap limit (simulated)\n")
            sys.exit(1)
        msg = {"type": "message", "timestamp": now(), "role": "assistant"}
        emit({**msg, "content": text[i : i + third], "delta": True})
        if MODE == "slow":
            time.sleep(DELAY)
    # 0.61's stats shape: input_tokens = words received, output_tokens = words answered, and
    # total adds THOUGHTS thinking tokens.
    stats = {
        "total_tokens": words(prompt) + words(text) + THOUGHTS,
        "input_tokens": words(prompt),
        "output_tokens": words(text),
        "cached": 0,
        "input": words(prompt),
        "duration_ms": 5,
        "tool_calls": 0,
        "models": {},
    }
    emit({"type": "result", "timestamp": now(), "status": "success", "stats": stats})


def account_checks() -> None:
    """The refusals of the real CLI's auth step (exit 41), by FAKE_CLI_MODE."""
    if MODE == "unsupported":  # Google's ineligible-tier reason, as the CLI's auth step logs it
        fail_auth("Error authenticating: IneligibleTierError: " + UNSUPPORTED)
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT_ID")
    if MODE == "project" and not project:  # packages/core/src/code_assist/setup.ts
        fail_auth("Error authenticating: ProjectIdRequiredError: " + PROJECT_REQUIRED)
    if MODE == "auth":  # what 0.61 prints when Google refuses the refresh token
        fail_auth(
            "Error authenticating: FatalAuthenticationError: invalid_grant: "
            "Token has been expired or revoked."
        )


UNSUPPORTED = (
    "This client is no longer supported for Gemini Code Assist for individuals. "
    "Learn more at https://goo.gle/gemini-cli-auth"
)
PROJECT_REQUIRED = (
    "This account requires setting the GOOGLE_CLOUD_PROJECT or GOOGLE_CLOUD_PROJECT_ID env var. "
    "See https://goo.gle/gemini-cli-auth-docs#workspace-gca"
)


class AcpAgent:
    """``--experimental-acp``: the real CLI's Agent Client Protocol side, JSON-RPC 2.0 with one
    message per line on stdio, with the shapes of packages/cli/src/acp/ in 0.61. Every request
    runs in its own thread, as the real agent serves sessions concurrently. Chats are recorded
    like 0.61 (see ``Recordings``) and ``session/load`` finds them only there: an unknown one is
    0.61's -32603 "Internal error" with the SessionError in ``data.details``; a loaded one
    answers first and then streams its history back as session/update notifications (0.61
    does not await that stream, so it can follow the answer)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.lock = threading.Lock()
        self.sessions: dict[str, dict[str, object]] = {}
        self.home = ""
        self.answered = 0  # prompts answered normally (FAKE_CLI_GOOD_TURNS, deaf)
        self.prompts = 0  # prompts received (FAKE_CLI_GOOD_TURNS, hang)

    def run(self) -> None:
        record_pids()
        if MODE == "auth":
            # 0.61 with refused cached credentials: its user-code login on the ACP channel,
            # reading the "code" from stdin, then exit 41.
            write("Please visit the following URL to authorize the application:\n\n")
            write(
                "https://accounts.google.com/o/oauth2/v2/auth?fake\n\n"
                "Enter the authorization code: "
            )
            sys.stdin.readline()
            sys.stderr.write("Failed to authenticate with user code.\n")
            sys.exit(EXIT_AUTH)
        self.home = check_home()
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if MODE == "deaf":  # one at a time, so it knows when to stop reading
                self.handle(message)
                if self.sessions and self.answered >= GOOD_TURNS:
                    while True:  # stdin stays open, and nothing more is ever read from it
                        time.sleep(60)
                continue
            threading.Thread(target=self.handle, args=(message,), daemon=True).start()

    def send(self, message: dict[str, object]) -> None:
        with self.lock:
            write(json.dumps(message) + "\n")

    def update(self, session_id: str, update: dict[str, object]) -> None:
        self.send(
            {
                "jsonrpc": "2.0",
                "method": "session/update",
                "params": {"sessionId": session_id, "update": update},
            }
        )

    def handle(self, message: dict[str, object]) -> None:
        method = message.get("method")
        params = message.get("params") or {}
        rid = message.get("id")
        handlers = {
            "initialize": self.initialize,
            "authenticate": lambda p: None,
            "session/new": self.new_session,
            "session/load": self.load_session,
            "session/prompt": self.prompt,
        }
        if method == "session/cancel":
            session = self.sessions.get(str(params.get("sessionId")))  # type: ignore[union-attr]
            if session is not None:
                session["cancelled"] = True
            return
        if rid is None:
            return
        handler = handlers.get(str(method))
        if handler is None:
            self.send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "error": {"code": -32601, "message": f'"Method not found": {method}'},
                }
            )
            return
        try:
            result = handler(params)  # type: ignore[arg-type]
        except AcpFailure as exc:
            error = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            self.send({"jsonrpc": "2.0", "id": rid, "error": error})
            return
        self.send({"jsonrpc": "2.0", "id": rid, "result": result})
        if method == "session/load":
            self._stream_history(str(params.get("sessionId")))  # type: ignore[union-attr]

    def initialize(self, params: dict[str, object]) -> dict[str, object]:
        if not isinstance(params.get("protocolVersion"), int):
            raise AcpFailure(-32602, "Invalid params")
        return {
            "protocolVersion": 1,
            "authMethods": [
                {
                    "id": "oauth-personal",
                    "name": "Log in with Google",
                    "description": "Log in with your Google account",
                },
                {
                    "id": "gemini-api-key",
                    "name": "Gemini API key",
                    "description": "Use an API key with Gemini Developer API",
                    "_meta": {"api-key": {"provider": "google"}},
                },
                {
                    "id": "vertex-ai",
                    "name": "Vertex AI",
                    "description": "Use an API key with Vertex AI GenAI API",
                },
                {
                    "id": "gateway",
                    "name": "AI API Gateway",
                    "description": "Use a custom AI API Gateway",
                    "_meta": {"gateway": {"protocol": "google", "restartRequired": "false"}},
                },
            ],
            "agentInfo": {"name": "gemini-cli", "title": "Gemini CLI", "version": VERSION},
            "agentCapabilities": {
                "loadSession": True,
                "promptCapabilities": {"image": True, "audio": True, "embeddedContext": True},
                "mcpCapabilities": {"http": True, "sse": True},
            },
        }

    def _session_params(self, params: dict[str, object]) -> None:
        cwd = params.get("cwd")
        if (
            not isinstance(cwd, str)
            or not os.path.isabs(cwd)
            or not isinstance(params.get("mcpServers"), list)
        ):
            raise AcpFailure(-32602, "Invalid params")

    def _session_answer(self) -> dict[str, object]:
        return {
            "modes": {
                "availableModes": [{"id": "default", "name": "Default"}],
                "currentModeId": "default",
            },
            "models": {
                "availableModels": [{"modelId": self.model, "name": self.model}],
                "currentModelId": self.model,
            },
        }

    def _auth_step(self) -> None:
        if MODE == "unsupported":
            raise AcpFailure(-32000, UNSUPPORTED)
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get(
            "GOOGLE_CLOUD_PROJECT_ID"
        )
        if MODE == "project" and not project:
            raise AcpFailure(-32000, PROJECT_REQUIRED)

    def new_session(self, params: dict[str, object]) -> dict[str, object]:
        self._session_params(params)
        self._auth_step()
        while MODE == "hangnew":  # a wedged agent: never opens the session
            time.sleep(60)
        time.sleep(OPEN_S)
        session_id = str(uuid.uuid4())
        path = Recordings(self.home, str(params["cwd"])).create(session_id)
        self.sessions[session_id] = {"messages": [], "cancelled": False, "path": path}
        self.update(
            session_id,
            {
                "sessionUpdate": "available_commands_update",
                "availableCommands": [{"name": c, "description": c} for c in ACP_COMMANDS],
            },
        )
        return {"sessionId": session_id, **self._session_answer()}

    def load_session(self, params: dict[str, object]) -> dict[str, object]:
        self._session_params(params)
        self._auth_step()
        time.sleep(OPEN_S)
        session_id = str(params.get("sessionId"))
        path, messages = Recordings(self.home, str(params["cwd"])).resolve(session_id)
        if path.endswith(".json"):  # 0.61 carries a legacy recording on as JSONL
            path += "l"
        self.sessions[session_id] = {
            "messages": messages,
            "cancelled": False,
            "path": path,
            "streamed": threading.Event(),
        }
        return self._session_answer()

    def _stream_history(self, session_id: str) -> None:
        """Session.streamHistory, after the load's answer (0.61 does not await it, so it can
        follow the answer) and before any answer to a prompt (0.61's answer waits on the
        model, the history only on the pipe)."""
        session = self.sessions[session_id]
        messages: list[dict[str, object]] = session["messages"]  # type: ignore[assignment]
        for m in list(messages):
            text = content_text(m.get("content"))
            if not text.strip():
                continue
            kind = "user_message_chunk" if m["type"] == "user" else "agent_message_chunk"
            self.update(
                session_id, {"sessionUpdate": kind, "content": {"type": "text", "text": text}}
            )
        session["streamed"].set()  # type: ignore[attr-defined]

    def prompt(self, params: dict[str, object]) -> dict[str, object]:
        session_id = str(params.get("sessionId"))
        session = self.sessions.get(session_id)
        if session is None:
            raise AcpFailure(-32602, f"Session not found: {session_id}")
        blocks = params.get("prompt")
        if not isinstance(blocks, list) or not all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
            for b in blocks
        ):
            raise AcpFailure(-32602, "Invalid params")
        session["cancelled"] = False
        record_pids(first=False)
        with self.lock:
            self.prompts += 1
            hang = MODE == "hang" and self.prompts > GOOD_TURNS
        received = "".join(b["text"] for b in blocks)
        zero = {
            "quota": {"token_count": {"input_tokens": 0, "output_tokens": 0}, "model_usage": []}
        }
        command = received.strip()
        if (
            command[:1] in ("/", "$")
            and command[1:].split()[:1]
            and command[1:].split()[0] in ACP_COMMANDS
        ):
            self.update(
                session_id,
                {
                    "sessionUpdate": "agent_message_chunk",
                    "content": {
                        "type": "text",
                        "text": f"[fake-gemini command {command.split()[0]}]",
                    },
                },
            )
            return {"stopReason": "end_turn", "_meta": zero}
        if MODE == "oom":
            sys.stderr.write(
                "FATAL ERROR: Reached heap limit Allocation failed - "
                "JavaScript heap out of memory\n"
            )
            os._exit(134)
        if MODE == "error":
            raise AcpFailure(429, "Rate limit exceeded. Try again later.")
        if MODE == "garbage":
            write("\x1b[31mError\x1b[0m: \x00\x07 not json\r\n{broken json\r\n")
            os._exit(0)
        if hang:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(60)
        streamed = session.get("streamed")
        if isinstance(streamed, threading.Event):
            streamed.wait(10)
        messages: list[dict[str, object]] = session["messages"]  # type: ignore[assignment]
        turn = 1 + sum(1 for m in messages if m["type"] == "user")
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get(
            "GOOGLE_CLOUD_PROJECT_ID"
        )
        extra = f" project={project}" if MODE == "project" else ""
        text = f"[fake-gemini model={self.model} acp=yes turn={turn}{extra}] {echo(received)}"
        if MODE == "settings":
            text = settings_report(self.home, sys.argv[1:])
        if REPLY_S:
            deadline = time.monotonic() + REPLY_S
            while time.monotonic() < deadline:
                if session["cancelled"]:
                    return {"stopReason": "cancelled"}
                time.sleep(0.01)
        third = max(1, len(text) // 3)
        for i in range(0, len(text), third):
            if session["cancelled"]:
                return {"stopReason": "cancelled"}
            if MODE == "crash" and i > 0:
                sys.stderr.write("FATAL ERROR: Reached heap limit (simulated)\n")
                os._exit(1)
            self.update(
                session_id,
                {
                    "sessionUpdate": "agent_message_chunk",
                    "content": {"type": "text", "text": text[i : i + third]},
                },
            )
            if MODE == "slow":
                time.sleep(DELAY)
        records = [
            {
                "id": str(uuid.uuid4()),
                "timestamp": now(),
                "type": "user",
                "content": [{"text": received}],
            },
            {"$set": {"lastUpdated": now()}},
            {
                "id": str(uuid.uuid4()),
                "timestamp": now(),
                "type": "gemini",
                "content": text,
                "thoughts": [],
                "tokens": None,
                "model": self.model,
            },
            {"$set": {"lastUpdated": now()}},
        ]
        messages += [r for r in records if "id" in r]
        with open(str(session["path"]), "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
        counts = {"input_tokens": words(received), "output_tokens": words(text)}
        usage = {
            "token_count": counts,
            "model_usage": [{"model": self.model, "token_count": counts}],
        }
        self.answered += 1
        return {"stopReason": "end_turn", "_meta": {"quota": usage}}


def content_text(content: object) -> str:
    """partListUnionToString for text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class Recordings:
    """0.61's chat recordings of one project (packages/core Storage, ProjectRegistry,
    ChatRecordingService):
    ``<home>/.gemini/tmp/<slug>/chats/session-<YYYY-MM-DDTHH-MM>-<id8>.jsonl``, where
    ``<slug>`` is the project of the session's cwd in ``<home>/.gemini/projects.json``,
    else the slug dir whose ``.project_root`` marker holds the cwd, else a new slug named after
    the cwd's basename (``-1``, ``-2`` ... on collisions). JSONL: the metadata line, then one
    line per message (id, timestamp, type user|gemini, content) and ``$set`` updates."""

    def __init__(self, home: str, cwd: str) -> None:
        self.gemini = os.path.join(home, ".gemini")
        self.cwd = os.path.abspath(cwd)
        self.chats = os.path.join(self.gemini, "tmp", self._slug(), "chats")

    def _marker(self, slug: str) -> str | None:
        try:
            with open(
                os.path.join(self.gemini, "tmp", slug, ".project_root"), encoding="utf-8"
            ) as fh:
                return fh.read().strip()
        except OSError:
            return None

    def _slug(self) -> str:
        registry_path = os.path.join(self.gemini, "projects.json")
        try:
            with open(registry_path, encoding="utf-8") as fh:
                registry = json.load(fh)
        except (OSError, ValueError):
            registry = {}
        if not isinstance(registry, dict) or not isinstance(registry.get("projects"), dict):
            registry = {"projects": {}}  # 0.61 resets an invalid registry
        slug = registry["projects"].get(self.cwd)
        if slug is None or self._marker(slug) not in (None, self.cwd):
            tmp = os.path.join(self.gemini, "tmp")
            found = (
                [c for c in sorted(os.listdir(tmp)) if self._marker(c) == self.cwd]
                if os.path.isdir(tmp)
                else []
            )
            slug = found[0] if found else None
        if slug is None:
            base = (
                "".join(c if c.isalnum() else "-" for c in os.path.basename(self.cwd).lower())
                or "project"
            )
            taken = set(registry["projects"].values())
            counter = 0
            while True:
                slug = base if counter == 0 else f"{base}-{counter}"
                counter += 1
                if slug not in taken and self._marker(slug) in (None, self.cwd):
                    break
        os.makedirs(os.path.join(self.gemini, "tmp", slug), exist_ok=True)
        with open(
            os.path.join(self.gemini, "tmp", slug, ".project_root"), "w", encoding="utf-8"
        ) as fh:
            fh.write(self.cwd)
        registry["projects"][self.cwd] = slug
        with open(registry_path, "w", encoding="utf-8") as fh:
            json.dump(registry, fh)
        return slug

    def create(self, session_id: str) -> str:
        os.makedirs(self.chats, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).isoformat()[:16].replace(":", "-")
        path = os.path.join(self.chats, f"session-{stamp}-{session_id[:8]}.jsonl")
        meta = {
            "sessionId": session_id,
            "projectHash": hashlib.sha256(self.cwd.encode()).hexdigest(),
            "startTime": now(),
            "lastUpdated": now(),
        }
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(meta) + "\n")
        return path

    @staticmethod
    def read(path: str) -> tuple[dict[str, object], list[dict[str, object]]]:
        """loadConversationRecord: metadata and messages (by id, in first-seen order)."""
        meta: dict[str, object] = {}
        messages: dict[str, dict[str, object]] = {}
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                if isinstance(record.get("$rewindTo"), str):
                    ids = list(messages)
                    keep = (
                        ids[: ids.index(record["$rewindTo"])] if record["$rewindTo"] in ids else []
                    )
                    messages = {i: messages[i] for i in keep}
                elif isinstance(record.get("id"), str):
                    messages[record["id"]] = record
                elif isinstance(record.get("$set"), dict):
                    meta.update(record["$set"])
                elif isinstance(record.get("sessionId"), str) and isinstance(
                    record.get("projectHash"), str
                ):
                    meta.update(record)
        return meta, list(messages.values())

    def resolve(self, session_id: str) -> tuple[str, list[dict[str, object]]]:
        """SessionSelector.resolveSession(id): a resumable recording of this project, or 0.61's
        error (a SessionError message as the internal error's details)."""
        names = sorted(os.listdir(self.chats)) if os.path.isdir(self.chats) else []
        sessions = []
        for name in names:
            if not name.startswith("session-") or not name.endswith((".json", ".jsonl")):
                continue
            path = os.path.join(self.chats, name)
            meta, messages = self.read(path)
            resumable = any(content_text(m.get("content")).strip() for m in messages)
            if meta.get("sessionId") and meta.get("projectHash") and resumable:
                sessions.append((str(meta["sessionId"]), path, messages))
        if not sessions:
            raise AcpFailure(
                -32603,
                "Internal error",
                {"details": "No previous sessions found for this project."},
            )
        for found, path, messages in sessions:
            if found == session_id:
                return path, messages
        details = (
            f'Invalid session identifier "{session_id}".\n'
            f"  Searched for sessions in {self.chats}.\n"
            "  Use --list-sessions to see available sessions, then use --resume {number}, "
            "--resume {uuid}, or --resume latest."
        )
        raise AcpFailure(-32603, "Internal error", {"details": details})


class AcpFailure(Exception):
    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


if __name__ == "__main__":
    main()
