"""Server-Sent Events framing shared by /v1/chat and /v1/chat/completions."""

from __future__ import annotations

import json
from typing import Any

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(data: Any, name: str | None = None) -> str:
    """One SSE event; ``data`` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {name}\n" if name else ""
    return f"{prefix}data: {payload}\n\n"


# OpenAPI description of one event, as clients (and schemathesis) parse it: JSON text in `data`.
SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    "required": ["data"],
}
SSE_RESPONSE = {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}}

# A comment line: ignored by every SSE parser (EventSource, the openai SDK), but it keeps a
# proxy's idle timeout from cutting a long, silent turn.
HEARTBEAT_COMMENT = ": keepalive\n\n"
