#!/usr/bin/env python3
"""A stand-in for the Claude Code CLI speaking the SDK's stream-json protocol (stdlib only).

The real claude-agent-sdk runs this as ``cli_path``. The answer echoes what the fake received
(model, whether CLAUDE_CODE_OAUTH_TOKEN was set -- never its value -- and the prompt), so tests
can assert on the whole round trip.

Env: FAKE_CLI_MODE = ok | slow | hang | crash | garbage | auth; FAKE_CLI_DELAY (seconds between
chunks in slow mode); FAKE_CLI_PIDFILE (records {"pid", "children"}, and a sleeping child is
spawned so process-tree kills can be checked); FAKE_CLI_ARGV_FILE (records argv and cwd).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

MODE = os.environ.get("FAKE_CLI_MODE", "ok")
DELAY = float(os.environ.get("FAKE_CLI_DELAY", "0.3"))
SESSION = str(uuid.uuid4())


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


def record_startup() -> None:
    argv_file = os.environ.get("FAKE_CLI_ARGV_FILE")
    if argv_file:
        with open(argv_file, "w", encoding="utf-8") as fh:
            json.dump({"argv": sys.argv[1:], "cwd": os.getcwd()}, fh)
    pidfile = os.environ.get("FAKE_CLI_PIDFILE")
    if pidfile:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        with open(pidfile, "w", encoding="utf-8") as fh:
            json.dump({"pid": os.getpid(), "children": [child.pid]}, fh)


def prompt_text(message: dict[str, object]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b
        )
    return ""


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


def assistant(text: str, model: str, error: str | None = None) -> None:
    message: dict[str, object] = {
        "type": "assistant",
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
    """The real CLI's result carries ``usage``; the fake's numbers are derived from the text so
    tests can recompute them: input = characters of the prompt received (split over fresh and
    cache-read tokens, as real answers are), output = characters of the answer."""
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
            "input_tokens": len(prompt) // 2,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": len(prompt) - len(prompt) // 2,
            "output_tokens": len(text),
        }
    emit(message)


def hang_forever() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)


def answer(prompt: str) -> None:
    model = option("--model") or "claude-default"
    token = "present" if os.environ.get("CLAUDE_CODE_OAUTH_TOKEN") else "absent"
    text = f"[fake-claude model={model} token={token}] {prompt}"
    if MODE == "auth":
        msg = "Invalid API key · Please run /login"
        assistant(msg, model, error="authentication_failed")
        result(msg, is_error=True)
        sys.exit(1)
    if MODE == "hang":
        hang_forever()
    if MODE == "garbage":
        sys.stdout.write("\x1b[2J\x1b[?25lnot json at all\n{this is not: json\n")
        sys.stdout.flush()
        time.sleep(0.2)
        sys.exit(0)
    streaming = "--include-partial-messages" in sys.argv
    third = max(1, len(text) // 3)
    chunks = [text[i : i + third] for i in range(0, len(text), third)]
    for i, chunk in enumerate(chunks):
        if MODE == "crash" and i == 1:
            # Words a log matcher would take for an auth failure; the exit status says crash.
            sys.stderr.write("fake-claude: segmentation fault reading cached OAuth credentials\n")
            sys.exit(3)
        if streaming:
            delta(chunk)
        if MODE == "slow":
            time.sleep(DELAY)
    assistant(text, model)
    result(text, prompt=prompt)


def main() -> None:
    record_startup()
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
            answer(prompt_text(msg.get("message") or {}))


if __name__ == "__main__":
    main()
