"""The Gemini CLI's own chat recordings, kept in Redis so any process on any replica can
``session/load`` a conversation instead of replaying its transcript.

How 0.61 records a chat (packages/core ChatRecordingService, Storage, ProjectRegistry): one
JSONL file per session, ``<GEMINI_CLI_HOME>/.gemini/tmp/<slug>/chats/session-<YYYY-MM-DDTHH-MM>-
<first 8 of the session id>.jsonl``; the first line is the metadata (sessionId, projectHash,
startTime, ...), then one line per message (``type`` user|gemini, ``content``) and ``$set``
updates. ``<slug>`` is the project of the session's cwd: the slug whose ``.project_root`` marker
holds that cwd (else a new one named after its basename). ``session/load`` lists that chats
dir, takes the file whose sessionId matches (the projectHash inside is not checked), then
streams the history back as ``session/update`` notifications (not awaited: they may follow its
answer) and appends the next turns to the same file.

So each process's home claims one slug for its cwd before the CLI starts; a recording is put
into that slug's chats dir under its own file name; and the number of history
``agent_message_chunk`` updates a load will send is counted from the file, so they can be told
from the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from llmhub_gateway.redis_client import call

log = logging.getLogger(__name__)

SLUG = "gateway"  # the project slug every process's cwd is registered under
MAX_BYTES = 4 * 1024 * 1024
_WHAT = "the Gemini recording store"
# Parts the CLI's partListUnionToString (verbose) renders as a non-empty marker.
_MARKED_PARTS = (
    "videoMetadata",
    "thought",
    "codeExecutionResult",
    "executableCode",
    "fileData",
    "functionCall",
    "functionResponse",
    "inlineData",
)


@dataclass(frozen=True)
class Recording:
    name: str  # the file name, session-...-<id8>.jsonl
    data: str
    history_len: int  # len(request.history) the recording matches, for the turn after it


def chats_dir(home: Path) -> Path:
    return home / ".gemini" / "tmp" / SLUG / "chats"


def claim_project(home: Path, workdir: Path) -> None:
    """Register ``workdir`` under SLUG the way the CLI's ProjectRegistry would find it (an
    ownership marker), so recordings of this process live in a known place."""
    for base in ("tmp", "history"):
        slug_dir = home / ".gemini" / base / SLUG
        slug_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (slug_dir / ".project_root").write_text(str(workdir), encoding="utf-8")


def find(home: Path, session_id: str) -> Path | None:
    """The recording of ``session_id`` in this home, if the CLI wrote one."""
    short = session_id[:8]
    chats = chats_dir(home)
    # .jsonl first: the CLI carries a loaded legacy .json on in a .jsonl next to it
    candidates = [
        *sorted(chats.glob(f"session-*-{short}.jsonl")),
        *chats.glob(f"session-*-{short}.json"),
    ]
    for path in candidates:
        try:
            with path.open(encoding="utf-8") as fh:
                first = json.loads(fh.readline())
        except (OSError, ValueError):
            continue
        if isinstance(first, dict) and first.get("sessionId") == session_id:
            return path
    return None


def restore(home: Path, recording: Recording) -> Path:
    """Write ``recording`` where the CLI of this home looks for it."""
    name = Path(recording.name).name  # never a path out of the chats dir
    target = chats_dir(home) / name
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.write_text(recording.data, encoding="utf-8")
    return target


def history_answers(data: str) -> int:
    """How many ``agent_message_chunk`` updates ``session/load`` streams for this recording:
    one per loaded gemini message whose content renders non-empty (Session.streamHistory),
    after the file is folded like loadConversationRecord does (ids replace, rewinds, $set)."""
    messages: dict[str, dict[str, object]] = {}
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("$rewindTo"), str):
            ids = list(messages)
            rewind = record["$rewindTo"]
            keep = ids[: ids.index(rewind)] if rewind in ids else []
            messages = {i: messages[i] for i in keep}
        elif isinstance(record.get("id"), str):
            messages[record["id"]] = record
        elif isinstance(record.get("$set"), dict) and isinstance(
            record["$set"].get("messages"), list
        ):
            messages = {
                m["id"]: m
                for m in record["$set"]["messages"]
                if isinstance(m, dict) and isinstance(m.get("id"), str)
            }
        elif isinstance(record.get("messages"), list):
            for m in record["messages"]:
                if isinstance(m, dict) and isinstance(m.get("id"), str):
                    messages[m["id"]] = m
    return sum(1 for m in messages.values() if m.get("type") == "gemini" and _text(m).strip())


def _text(message: dict[str, object]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return ""
    out = []
    for part in content:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict):
            if any(part.get(key) is not None for key in _MARKED_PARTS):
                out.append("[part]")
            elif isinstance(part.get("text"), str):
                out.append(part["text"])
    return "".join(out)


class RecordingStore:
    """Recordings by session id in Redis (one JSON value per session, expiring ``ttl_s`` after its
    last write), at most ``max_bytes`` each: a longer one is not kept, and its session falls
    back to replay on another process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        ttl_s: int,
        max_bytes: int = MAX_BYTES,
        owns_client: bool = False,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._owns_client = owns_client

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}recording:{session_id}"

    async def save(self, session_id: str, recording: Recording) -> bool:
        """Keep ``recording``; False (and the old copy dropped) when it is too big."""
        size = len(recording.data.encode())
        if size > self.max_bytes:
            await self.forget(session_id, size)
            return False
        value = json.dumps(
            {"name": recording.name, "data": recording.data, "history_len": recording.history_len}
        )
        await call(self._redis.set(self._key(session_id), value, ex=self._ttl_s), _WHAT)
        return True

    async def forget(self, session_id: str, size: int) -> None:
        """A recording of ``size`` bytes is over the limit: drop the stored (older) copy."""
        log.info(
            "gemini recording of %d bytes is over %d: its next turn elsewhere replays",
            size,
            self.max_bytes,
        )
        await call(self._redis.delete(self._key(session_id)), _WHAT)

    async def load(self, session_id: str) -> Recording | None:
        raw = await call(self._redis.get(self._key(session_id)), _WHAT)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # redis-py (8.1) finishes a command its caller cancelled and returns the reply,
            # dropping the cancel: a caller that hung up would go on to load the session.
            raise asyncio.CancelledError
        try:
            fields = json.loads(raw if raw is not None else "null")
            return Recording(str(fields["name"]), str(fields["data"]), int(fields["history_len"]))
        except (TypeError, KeyError, ValueError):
            return None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._redis.aclose()
