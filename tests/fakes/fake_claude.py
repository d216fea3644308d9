#!/usr/bin/env python3
"""A stand-in for the Claude Code CLI speaking the SDK's stream-json protocol (stdlib only).

The real claude-agent-sdk runs this as ``cli_path``. The answer echoes what the fake received
(model, whether CLAUDE_CODE_OAUTH_TOKEN was set -- never its value -- and the prompt), so tests
can assert on the whole round trip. Like the real CLI it stays alive for many turns (one per
user message on stdin), and it is as strict: a user message whose text starts with ``/`` runs
as a slash command (a canned CLI answer; the model never sees it) unless the message is marked
``client_composed`` (the SDK's ``verbatim_prompts``). ``/clear`` does what the real CLI's does
(tried on the bundled 2.1.330): no model call, a ``conversation_reset`` message, a new
``system/init`` under a new session id and a successful result with an empty ``result``; the
conversation so far is forgotten.

Sessions, as the real CLI keeps them: every turn is appended to
``$CLAUDE_CONFIG_DIR/projects/<sanitized cwd>/<session>.jsonl`` (and mirrored to the SDK as
``transcript_mirror`` frames when run with ``--session-mirror``); ``--resume <id>`` reads that
file back and fails when it is missing.

Env: FAKE_CLI_MODE = ok | slow | hang | deaf | crash | garbage | auth | offline | quota |
crash-on-clear (crash-on-clear: answers as ok, exits on ``/clear``; deaf:
the CLI stops reading its stdin, which stays open, and never answers again; it sets in once
FAKE_CLI_GOOD_TURNS turns were answered, so a session can exist first);
FAKE_CLI_GOOD_TURNS (turns a process answers normally before hang or deaf set in: hang counts
turns received, deaf turns answered);
FAKE_CLI_MODE_FILE (a file holding the mode, read at each turn: steers a CLI that is already
running, as a warm pool keeps them);
FAKE_CLI_DELAY (seconds between chunks in slow mode); FAKE_CLI_STARTUP_S (sleep before
answering anything, like the real CLI's start-up); FAKE_CLI_REPLY_S (sleep before each answer);
FAKE_CLI_ECHO_CHARS (echo at most this many characters of the prompt: replayed transcripts stay
linear, for the benchmark); FAKE_CLI_ECHO_CONTEXT=1 (the answer also echoes every user message
the conversation holds, resumed or sent to this process, as ``context=[...]``: a model that
"remembers", so tests see what leaks from one conversation to another); FAKE_CLI_TOKEN_FINGERPRINT=1
(``token=present:<8 hex of its SHA-256>``: which credential the CLI ran with, never the value);
FAKE_CLI_RATE_LIMIT (a status -- allowed | allowed_warning | rejected -- or a JSON object of
``rate_limit_info``: a ``rate_limit_event`` is sent with each answer; ``rejected`` also fails
the turn the way the real CLI does); FAKE_CLI_PIDFILE (a sleeping child is spawned so
process-tree kills can be checked, and {"pid", "children"} recorded: of the first process,
then of the one answering the latest turn);
FAKE_CLI_ARGV_FILE (records argv and cwd of the latest process); FAKE_CLI_SPAWN_LOG (one JSON
line per process start: pid, argv, cwd, time, environment); FAKE_CLI_TURNS_FILE (one JSON line
per turn: pid, session, the user text received, the number of transcript entries resumed, the
system prompt in effect). ``--system-prompt-file`` is read as the real CLI does (a missing file
fails the start-up); the assistant message carries the uuid of its transcript entry.

Usage as the CLI reports it: input_tokens = whitespace-separated words of the user text
received for this turn (a replayed transcript counts all of it, a resumed session only the new
message), output_tokens = words of the answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

MODE = os.environ.get("FAKE_CLI_MODE", "ok")
MODE_FILE = os.environ.get("FAKE_CLI_MODE_FILE")
DELAY = float(os.environ.get("FAKE_CLI_DELAY", "0.3"))
STARTUP_S = float(os.environ.get("FAKE_CLI_STARTUP_S", "0") or 0)
REPLY_S = float(os.environ.get("FAKE_CLI_REPLY_S", "0") or 0)
ECHO_CHARS = int(os.environ.get("FAKE_CLI_ECHO_CHARS", "0") or 0)  # 0: echo the whole prompt
GOOD_TURNS = int(os.environ.get("FAKE_CLI_GOOD_TURNS", "0") or 0)
ECHO_CONTEXT = os.environ.get("FAKE_CLI_ECHO_CONTEXT") == "1"
TOKEN_FINGERPRINT = os.environ.get("FAKE_CLI_TOKEN_FINGERPRINT") == "1"
VERSION = "2.1.330 (Claude Code)"


def token_report(token: str) -> str:
    """``present`` or ``absent``; with FAKE_CLI_TOKEN_FINGERPRINT=1 a present token also shows
    the first 8 hex digits of its SHA-256, so a test can tell which credential a CLI ran with
    (a rotation reached it) without the value ever leaving the process."""
    if not token:
        return "absent"
    if TOKEN_FINGERPRINT:
        return "present:" + hashlib.sha256(token.encode()).hexdigest()[:8]
    return "present"


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def option(flag: str) -> str | None:
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def transcript_path(session: str) -> Path:
    """Where the real CLI keeps a session: the config dir, then the cwd with every
    non-alphanumeric character replaced by '-'."""
    config = os.environ.get("CLAUDE_CONFIG_DIR") or str(Path.home() / ".claude")
    project = re.sub(r"[^a-zA-Z0-9]", "-", os.path.realpath(os.getcwd()))
    return Path(config) / "projects" / project / f"{session}.jsonl"


def load_resumed(session: str) -> list[dict[str, object]]:
    path = transcript_path(session)
    if not path.is_file():
        sys.stderr.write(f"No conversation found with session ID: {session}\n")
        sys.exit(1)
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def system_prompt() -> str | None:
    path = option("--system-prompt-file")
    if path is None:
        return option("--system-prompt")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        sys.stderr.write(f"Error: system prompt file not found: {path}\n")
        sys.exit(1)


RESUME = option("--resume")
SESSION = RESUME or str(uuid.uuid4())
MIRROR = "--session-mirror" in sys.argv
SYSTEM: str | None = None  # read at start-up, as the real CLI does


def record_startup() -> None:
    argv_file = os.environ.get("FAKE_CLI_ARGV_FILE")
    if argv_file:
        with open(argv_file, "w", encoding="utf-8") as fh:
            json.dump({"argv": sys.argv[1:], "cwd": os.getcwd()}, fh)
    spawn_log = os.environ.get("FAKE_CLI_SPAWN_LOG")
    if spawn_log:
        entry = {
            "pid": os.getpid(),
            "argv": sys.argv[1:],
            "cwd": os.getcwd(),
            "time": time.time(),
            "env": dict(os.environ),
        }
        with open(spawn_log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    record_pids(first=True)


_child: list[int] = []  # the sleeping child FAKE_CLI_PIDFILE asks for, once spawned


def record_pids(*, first: bool) -> None:
    """Write {"pid", "children"} to FAKE_CLI_PIDFILE: at start-up only when no CLI wrote it
    yet, and again by whichever CLI answers a turn. A warm pool starts spares at any time, so
    the file names the CLI serving the latest turn, never a spare that started after it. The
    write is atomic (link or rename of a complete file), so a reader never sees half of it."""
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


def prompt_text(message: dict[str, object]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b
        )
    return ""


def words(text: str) -> int:
    return len(text.split())


def delta(text: str) -> None:
    emit(
        {
            "type": "stream_event",
            "uuid": str(uuid.uuid4()),
            "session_id": SESSION,
            "parent_tool_use_id": None,
            "event": {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        }
    )


def assistant(text: str, model: str, error: str | None = None, uuid_: str | None = None) -> None:
    message: dict[str, object] = {
        "type": "assistant",
        "uuid": uuid_ or str(uuid.uuid4()),
        "session_id": SESSION,
        "parent_tool_use_id": None,
        "message": {
            "id": "msg_fake",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
        },
    }
    if error:
        message["error"] = error
    emit(message)


def result(text: str, *, is_error: bool = False, prompt: str = "") -> None:
    message: dict[str, object] = {
        "type": "result",
        "subtype": "success",
        "duration_ms": 5,
        "duration_api_ms": 3,
        "is_error": is_error,
        "num_turns": 1,
        "session_id": SESSION,
        "result": text,
    }
    if not is_error:
        message["usage"] = {
            "input_tokens": words(prompt),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": words(text),
        }
    emit(message)


def rate_limit_event() -> str | None:
    """The real CLI's ``rate_limit_event`` (wire names as claude_agent_sdk's parser reads
    them); returns the status sent."""
    knob = os.environ.get("FAKE_CLI_RATE_LIMIT")
    if not knob:
        return None
    if knob.lstrip().startswith("{"):
        info = json.loads(knob)
    else:
        info = {
            "status": knob,
            "resetsAt": int(time.time()) + 3600,
            "rateLimitType": "five_hour",
            "utilization": 1.0 if knob == "rejected" else 0.9,
        }
    emit(
        {
            "type": "rate_limit_event",
            "rate_limit_info": info,
            "uuid": str(uuid.uuid4()),
            "session_id": SESSION,
        }
    )
    return str(info.get("status"))


def init_message(model: str) -> None:
    emit(
        {
            "type": "system",
            "subtype": "init",
            "session_id": SESSION,
            "model": model,
            "cwd": os.getcwd(),
            "tools": [],
            "mcp_servers": [],
            "permissionMode": option("--permission-mode") or "default",
            "claude_code_version": VERSION.split()[0],
            "uuid": str(uuid.uuid4()),
        }
    )


def keep_entry(kind: str, content: object, parent: str | None, entry_id: str) -> str:
    """Append one message to the session's JSONL (and mirror it, as ``--session-mirror``
    asks), as the real CLI does: the user's message when the turn starts, the answer when it
    is done (so a turn cut off in between leaves its user message behind); returns its uuid."""
    entry = {
        "type": kind,
        "uuid": entry_id,
        "parentUuid": parent,
        "sessionId": SESSION,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "message": {"role": kind, "content": content},
    }
    path = transcript_path(SESSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    if MIRROR:
        emit({"type": "transcript_mirror", "filePath": str(path), "entries": [entry]})
    return entry_id


def record_turn(prompt: str, resumed: list[dict[str, object]]) -> None:
    turns_file = os.environ.get("FAKE_CLI_TURNS_FILE")
    if turns_file:
        entry = {
            "pid": os.getpid(),
            "session": SESSION,
            "prompt": prompt,
            "resumed": len(resumed),
            "resumed_text": "\n".join(prompt_text(e.get("message") or {}) for e in resumed),  # type: ignore[arg-type]
            "system": SYSTEM,
        }
        with open(turns_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def current_mode() -> str:
    if MODE_FILE and os.path.exists(MODE_FILE):
        with open(MODE_FILE, encoding="utf-8") as fh:
            return fh.read().strip() or MODE
    return MODE


def hang_forever() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)


def fail(model: str, text: str, error: str, *, exit_code: int | None = None) -> None:
    assistant(text, model, error=error)
    result(text, is_error=True)
    if exit_code is not None:
        sys.exit(exit_code)


class Cli:
    def __init__(self) -> None:
        self.resumed = load_resumed(RESUME) if RESUME else []
        last = self.resumed[-1].get("uuid") if self.resumed else None
        self.parent: str | None = last if isinstance(last, str) else None
        self.received = 0  # turns received (FAKE_CLI_GOOD_TURNS, hang)
        self.answered = 0  # turns answered normally (FAKE_CLI_GOOD_TURNS, deaf)
        # The user messages this conversation holds (what a model would remember).
        self.context = [
            prompt_text(e.get("message") or {})  # type: ignore[arg-type]
            for e in self.resumed
            if e.get("type") == "user"
        ]

    def clear(self, model: str) -> None:
        """The real CLI's ``/clear``: a new conversation under a new session id, nothing of
        the previous one kept, no model call, an empty result."""
        global SESSION
        if current_mode() == "crash-on-clear":
            sys.exit(3)
        old = SESSION
        SESSION = str(uuid.uuid4())
        self.resumed, self.parent, self.context = [], None, []
        emit(
            {
                "type": "conversation_reset",
                "new_conversation_id": str(uuid.uuid4()),
                "uuid": str(uuid.uuid4()),
                "session_id": old,
            }
        )
        init_message(model)
        result("")

    def slash_command(self, prompt: str, model: str) -> None:
        """What the real CLI does with ``/cost`` and friends: its own output, no model."""
        text = f"[fake-claude ran the slash command {prompt.split()[0]}]"
        init_message(model)
        assistant(text, model)
        result(text)

    def answer(self, prompt: str, model: str) -> None:
        mode = current_mode()
        self.received += 1
        if mode in ("hang", "deaf") and self.received <= GOOD_TURNS:
            mode = "ok"
        token = token_report(os.environ.get("CLAUDE_CODE_OAUTH_TOKEN", ""))
        echo = prompt[:ECHO_CHARS] if ECHO_CHARS else prompt
        if ECHO_CONTEXT:
            echo = f"context={json.dumps(self.context)} {echo}"
        text = f"[fake-claude model={model} token={token}] {echo}"
        record_turn(prompt, self.resumed)
        record_pids(first=False)
        if REPLY_S:
            time.sleep(REPLY_S)
        init_message(model)
        if mode == "auth":
            fail(model, "Invalid API key · Please run /login", "authentication_failed", exit_code=1)
        if mode == "offline":
            fail(model, "API Error: Unable to connect to API (ENOTFOUND)", "unknown")
            return
        if mode == "quota":
            fail(model, "Claude AI usage limit reached|4102444800", "rate_limit")
            return
        if mode == "hang":
            hang_forever()
        if mode == "garbage":
            sys.stdout.write("\x1b[2J\x1b[?25lnot json at all\n{this is not: json\n")
            sys.stdout.flush()
            time.sleep(0.2)
            sys.exit(0)
        if rate_limit_event() == "rejected":
            fail(model, "Claude AI usage limit reached|4102444800", "rate_limit")
            return
        self.parent = keep_entry("user", prompt, self.parent, str(uuid.uuid4()))
        self.context.append(prompt)
        streaming = "--include-partial-messages" in sys.argv
        third = max(1, len(text) // 3)
        chunks = [text[i : i + third] for i in range(0, len(text), third)]
        for i, chunk in enumerate(chunks):
            if mode == "crash" and i == 1:
                # Words a log matcher would take for an auth failure; the exit status says crash.
                sys.stderr.write(
                    "fake-claude: segmentation fault reading cached OAuth credentials\n"
                )
                sys.exit(3)
            if streaming:
                delta(chunk)
            if mode == "slow":
                time.sleep(DELAY)
        reply_id = str(uuid.uuid4())
        assistant(text, model, uuid_=reply_id)
        self.parent = keep_entry(
            "assistant", [{"type": "text", "text": text}], self.parent, reply_id
        )
        result(text, prompt=prompt)
        self.answered += 1

    def deaf(self) -> bool:
        """Whether to stop reading stdin now (deaf mode, its good turns answered)."""
        return current_mode() == "deaf" and self.answered >= GOOD_TURNS


def main() -> None:
    if "--version" in sys.argv[1:] or "-v" in sys.argv[1:]:
        print(VERSION)
        return
    record_startup()
    global SYSTEM
    SYSTEM = system_prompt()
    if STARTUP_S:
        time.sleep(STARTUP_S)
    cli = Cli()
    model = option("--model") or "claude-default"
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        msg = json.loads(line)
        if msg.get("type") == "control_request":
            emit(
                {
                    "type": "control_response",
                    "response": {
                        "subtype": "success",
                        "request_id": msg.get("request_id"),
                        "response": {},
                    },
                }
            )
        elif msg.get("type") == "user":
            prompt = prompt_text(msg.get("message") or {})
            if prompt.startswith("/") and msg.get("client_composed") is not True:
                if prompt.strip() == "/clear":
                    cli.clear(model)
                else:
                    cli.slash_command(prompt, model)
            else:
                cli.answer(prompt, model)
        if cli.deaf():  # stdin stays open, and nothing more is ever read from it
            hang_forever()


if __name__ == "__main__":
    main()
