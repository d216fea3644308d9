#!/usr/bin/env python3
"""A stand-in for ``gemini -p ... -m ... -o stream-json|json`` (stdlib only).

Like the real 0.61 CLI it reads its home from GEMINI_CLI_HOME (else HOME), needs
``<home>/.gemini/settings.json`` with selectedType oauth-personal and
``<home>/.gemini/oauth_creds.json``, writes under ``<home>/.gemini`` (so the home must be
writable), reads extra prompt text from stdin only when stdin is not a terminal, and exits 41
on an authentication failure. The answer echoes model, whether stdout is a TTY, and the prompt.

Like the real CLI it prints "Loaded cached credentials." on every run.

Env: FAKE_CLI_MODE = ok | slow | hang | crash | oom (Node heap crash, exit 134) | garbage | auth |
error (in-band API error, quota, code 429) |
unsupported (a personal / Google AI Pro account, refused since 2026-06-18: exit 41) |
project (a Code Assist Standard/Enterprise account: like the real CLI it fails with exit 41
unless GOOGLE_CLOUD_PROJECT or GOOGLE_CLOUD_PROJECT_ID is set, and the answer names the project) |
settings (the answer is JSON: the settings.json, argv and cwd the CLI got, and the cwd's files);
FAKE_CLI_DELAY; FAKE_CLI_PIDFILE (records {"pid", "children"} and spawns a sleeping child in the
same process group).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
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
    with open(os.path.join(gemini_dir, "projects.json"), "w", encoding="utf-8") as fh:
        fh.write("{}")
    return home


def record_pids() -> None:
    pidfile = os.environ.get("FAKE_CLI_PIDFILE")
    if pidfile:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        with open(pidfile, "w", encoding="utf-8") as fh:
            json.dump({"pid": os.getpid(), "children": [child.pid]}, fh)


def main() -> None:
    parser = argparse.ArgumentParser(prog="gemini")
    parser.add_argument("-m", "--model", default="gemini-default")
    parser.add_argument("-p", "--prompt")
    parser.add_argument("-o", "--output-format", default="text")
    parser.add_argument("--approval-mode")
    args, _unknown = parser.parse_known_args()

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
    if MODE == "unsupported":  # Google's ineligible-tier reason, as the CLI's auth step logs it
        fail_auth(
            "Error authenticating: IneligibleTierError: This client is no longer supported for "
            "Gemini Code Assist for individuals. Learn more at https://goo.gle/gemini-cli-auth"
        )
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT_ID")
    if MODE == "project" and not project:  # packages/core/src/code_assist/setup.ts
        fail_auth(
            "Error authenticating: ProjectIdRequiredError: This account requires setting the "
            "GOOGLE_CLOUD_PROJECT or GOOGLE_CLOUD_PROJECT_ID env var. See "
            "https://goo.gle/gemini-cli-auth-docs#workspace-gca"
        )
    if MODE == "auth":  # what 0.61 prints when Google refuses the refresh token
        fail_auth(
            "Error authenticating: FatalAuthenticationError: invalid_grant: "
            "Token has been expired or revoked."
        )
    prompt = args.prompt or ""
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{piped}\n\n{prompt}" if prompt else piped
    tty = "yes" if sys.stdout.isatty() else "no"
    text = f"[fake-gemini model={args.model} tty={tty}] {prompt}"
    if MODE == "project":
        text = f"[fake-gemini model={args.model} tty={tty} project={project}] {prompt}"
    if MODE == "settings":
        text = settings_report(home, sys.argv[1:])
    session = str(uuid.uuid4())

    if args.output_format == "json":
        write(json.dumps({"session_id": session, "response": text, "stats": {}}) + "\n")
        return

    write("\x1b[?25l\x1b]0;gemini\x07")  # cursor and title noise, as terminals get
    emit({"type": "init", "timestamp": now(), "session_id": session, "model": args.model})
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
    third = max(1, len(text) // 3)
    for i in range(0, len(text), third):
        if MODE == "crash" and i > 0:
            sys.stderr.write("FATAL ERROR: Reached heap limit (simulated)\n")
            sys.exit(1)
        msg = {"type": "message", "timestamp": now(), "role": "assistant"}
        emit({**msg, "content": text[i : i + third], "delta": True})
        if MODE == "slow":
            time.sleep(DELAY)
    # 0.61's stats shape; numbers derived from the text so tests can recompute them: prompt =
    # characters received, answer = characters sent, plus THOUGHTS thinking tokens.
    stats = {
        "total_tokens": len(prompt) + len(text) + THOUGHTS,
        "input_tokens": len(prompt),
        "output_tokens": len(text),
        "cached": 0,
        "input": len(prompt),
        "duration_ms": 5,
        "tool_calls": 0,
        "models": {},
    }
    emit({"type": "result", "timestamp": now(), "status": "success", "stats": stats})


if __name__ == "__main__":
    main()
