"""Reading and checking what an admin pushes: shapes only, and no message ever quotes the value."""

from __future__ import annotations

import getpass
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

CLAUDE_LOGIN_FILE = Path("~/.claude/.credentials.json")
GEMINI_LOGIN_FILE = Path("~/.gemini/oauth_creds.json")
MAX_INPUT_BYTES = 64 * 1024
# `claude setup-token` prints an OAuth token (sk-ant-oat01-…); sk-ant-api… is an API key.
_CLAUDE_TOKEN = re.compile(r"sk-ant-oat\d{2}-[A-Za-z0-9_\-]{20,}")


class BadInput(ValueError):
    """The input is not a credential the hub can use; the message never contains it."""


@dataclass(frozen=True)
class Credential:
    """A checked value and what is known about it; ``value`` stays out of repr."""

    kind: str  # claude-oauth-token | gemini-oauth-creds
    value: str = field(repr=False)
    content_type: str
    expires_at: datetime | None = None  # the credential's own expiry, when it carries one
    note: str | None = None  # something the admin should know (never the value)


def read_claude(file: Path | None, *, from_login: bool, stdin: TextIO | None = None) -> Credential:
    """A setup-token from ``file``, the Claude login file, a pipe, or a no-echo prompt."""
    if from_login:
        file = CLAUDE_LOGIN_FILE.expanduser()
    if file is not None:
        text = _read_file(file)
    else:
        text = _read_stdin_or_prompt("Paste the token from `claude setup-token`: ", stdin)
    if text.lstrip().startswith("{"):
        return _claude_from_login_json(text)
    return Credential("claude-oauth-token", check_claude_token(text), "text/plain")


def check_claude_token(text: str) -> str:
    token = text.strip()
    if not token:
        raise BadInput("no token given (empty input)")
    if token.startswith("sk-ant-api"):
        raise BadInput(
            "this is an Anthropic API key, not an OAuth token: the hub serves subscriptions "
            "only; run `claude setup-token` and push what it prints"
        )
    if not _CLAUDE_TOKEN.fullmatch(token):
        raise BadInput(
            "this does not look like a `claude setup-token` token (one line, sk-ant-oat01-…)"
        )
    return token


def _claude_from_login_json(text: str) -> Credential:
    try:
        oauth = json.loads(text)["claudeAiOauth"]
        token = oauth["accessToken"]
    except (ValueError, KeyError, TypeError):
        raise BadInput(
            "not Claude Code's .credentials.json (no claudeAiOauth.accessToken)"
        ) from None
    if not isinstance(token, str):
        raise BadInput("claudeAiOauth.accessToken is not a string")
    expires_at = _epoch_ms(oauth.get("expiresAt"))
    return Credential(
        "claude-oauth-token",
        check_claude_token(token),
        "text/plain",
        expires_at=expires_at,
        note=(
            "a login token from .credentials.json lives only hours; `claude setup-token` "
            "makes one that lasts a year"
        )
        if expires_at is not None
        else None,
    )


def read_gemini(file: Path | None) -> Credential:
    """The Gemini CLI's ``oauth_creds.json`` (default: the local login's)."""
    path = file if file is not None else GEMINI_LOGIN_FILE.expanduser()
    text = _read_file(path) if str(path) != "-" else _read_stdin_or_prompt("", None)
    try:
        creds = json.loads(text)
    except ValueError:
        raise BadInput(f"{path} is not JSON; expected the Gemini CLI's oauth_creds.json") from None
    if not isinstance(creds, dict):
        raise BadInput(f"{path} is not a JSON object; expected oauth_creds.json")
    if creds.get("type") == "service_account" or "private_key" in creds:
        raise BadInput("this is a service-account key, not the Gemini CLI's Google login")
    if not isinstance(creds.get("refresh_token"), str) or not creds["refresh_token"]:
        raise BadInput(
            f"{path} has no refresh_token: sign in with `gemini` (Login with Google) first"
        )
    if not isinstance(creds.get("access_token"), str) or not creds["access_token"]:
        raise BadInput(f"{path} has no access_token: it is not the Gemini CLI's oauth_creds.json")
    return Credential("gemini-oauth-creds", text.strip(), "application/json")


def _read_file(path: Path) -> str:
    try:
        data = path.expanduser().read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    return _decode(data, str(path))


def _read_stdin_or_prompt(prompt: str, stdin: TextIO | None) -> str:
    stream = stdin if stdin is not None else sys.stdin
    if stream.isatty():
        return getpass.getpass(prompt)  # no echo
    return _decode(stream.read(MAX_INPUT_BYTES + 1).encode(), "stdin")


def _decode(data: bytes, where: str) -> str:
    if len(data) > MAX_INPUT_BYTES:
        raise BadInput(f"{where} is larger than {MAX_INPUT_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{where} is not UTF-8 text") from None


def _epoch_ms(value: object) -> datetime | None:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value / 1000, UTC)
    return None
