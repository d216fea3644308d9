"""JSON logging for both processes, with a last-line defence against leaking secrets."""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

REDACTED = "[REDACTED]"
# kopf attaches its whole OperatorSettings (and a skip flag) to every object log record; rendering
# them deep-copies the settings, fails on a queue inside and costs seconds of CPU per line.
_NOT_LOGGED = ("settings", "k8s_skip")

# Loggers that write message bodies at DEBUG, held at INFO at every level: the Kubernetes
# clients' responses hold Secrets (base64); sse_starlette (under the MCP transport) logs every
# chunk it sends, i.e. callers' prompts and the models' answers.
_BODY_LOGGERS = ("kubernetes_asyncio.client.rest", "kubernetes.client.rest", "sse_starlette")

# Shapes of credentials we never want in a log line even if a caller slips: Claude OAuth tokens,
# Google access/refresh tokens, bearer headers, JWTs.
_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"ya29\.[A-Za-z0-9_\-\.]{8,}"),
    re.compile(r"1//[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9_\-\.=]{8,}"),
    re.compile(r"eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}"),
]


class SecretRegistry:
    """Exact secret values known at run time (tokens read from Key Vault or the environment).

    Values are matched by one compiled alternation. Compiling it costs O(values) (0.3 s at a
    thousand providers' values), so new values wait in a short list, scanned one by one, until
    they are a quarter of the compiled ones: a thousand additions cost O(n log n), not O(n²).
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pending: list[str] = []  # known, not yet in the pattern
        self._pattern: re.Pattern[str] | None = None
        self._compiled = 0
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        """Each value also in the forms it takes on the wire: base64 (Secret data) and JSON."""
        forms = set()
        for value in values:
            if value and len(value) >= 8:
                forms.add(value)
                forms.add(base64.b64encode(value.encode()).decode("ascii"))
                forms.add(json.dumps(value)[1:-1])
                forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        with self._lock:
            new = forms - self._values
            if not new:
                return
            self._values.update(new)
            # Longest first, so a value is never half-replaced through a shorter one inside it;
            # a new list, so a redact() running meanwhile keeps iterating the old one.
            self._pending = sorted([*self._pending, *new], key=len, reverse=True)
            if len(self._pending) > max(32, self._compiled // 4):
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, ordered)))
                re.purge()  # re's cache would keep every superseded pattern (MBs each)
                self._compiled, self._pending = len(ordered), []

    def values(self) -> Iterable[str]:
        with self._lock:
            return tuple(self._values)

    def redact(self, text: str) -> str:
        with self._lock:
            pattern, pending = self._pattern, self._pending
        for value in pending:  # longer ones first; usually none or a few
            if value in text:
                text = text.replace(value, REDACTED)
        return pattern.sub(REDACTED, text) if pattern is not None else text


secrets = SecretRegistry()


def redact(text: str) -> str:
    text = secrets.redact(text)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites the rendered message (and exception text) of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(exc_text)
            record.exc_info = None
        return True


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test runners and tools swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure(level: str = "INFO", *, json_output: bool = True) -> None:
    """Install one handler on the root logger; idempotent so tests may call it repeatedly."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_llmhub", False):
            root.removeHandler(handler)
    handler = _CurrentStderrHandler()
    handler._llmhub = True  # type: ignore[attr-defined]
    if json_output:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                reserved_attrs=[*RESERVED_ATTRS, *_NOT_LOGGED],
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    # Bodies (Secrets, conversations) are logged at DEBUG by these: no level logs them.
    for name in _BODY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
