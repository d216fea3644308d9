"""The version a Key Vault event names, or a newer one: never an older read after an event.

Key Vault can answer "latest" from a replica that has not seen the newest version yet. A pass an
event triggered therefore checks what it read against the versions events named for that object:
a read that is older is retried briefly, then the pass fails transiently (nothing is written, so
nothing rolls back) and the event is released, to come back later. Key Vault versions are opaque
ids; their ``created`` times order them (to the second, like Key Vault's own attributes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from llmhub_operator.errors import SourceDisabled, SourceError, SourceNotFound
from llmhub_operator.source import Fetched

Key = tuple[str, str]
Fetch = Callable[[str | None], Awaitable[Fetched]]  # None: the latest version


class StaleVersion(SourceError):
    """Key Vault served a version older than one an event named (a replica behind); retry."""

    default_reason = "stale_version"


@dataclass
class EventVersions:
    """Versions events named per object, taken by the next pass that reads Key Vault."""

    attempts: int = 3  # reads of the latest version before the pass gives up
    retry_s: float = 1.0  # wait between them
    _named: dict[Key, set[str]] = field(default_factory=dict)

    def name(self, key: Key, version: str) -> None:
        """An event named ``version`` for ``key``: the next fresh read must be at least it."""
        self._named.setdefault(key, set()).add(version)

    def forget(self, key: Key) -> None:
        self._named.pop(key, None)

    async def at_least(
        self, key: Key, latest: Fetched, fetch: Fetch, previous: Fetched | None = None
    ) -> Fetched:
        """``latest``, or a re-read of it, once no version an event named is newer, nor the
        ``previous`` read of this object (the floor: a later poll that hits a lagging replica
        must not write an older version back).

        The named versions are taken (a failed pass drops them: its event is released and
        names them again when it comes back), so polling passes never pay for them; the floor
        costs a read only when the creation times say ``latest`` is older than it (a version
        disabled to roll back is then accepted, as ``_newer`` decides).
        """
        named = self._named.pop(key, set())
        if previous is not None and _created_after(previous, latest):
            named.add(previous.version)
        for attempt in range(1, self.attempts + 1):
            behind = [v for v in sorted(named) if await _newer(v, latest, fetch)]
            if not behind:
                return latest
            if attempt == self.attempts:
                raise StaleVersion(
                    f"Key Vault served version {latest.version}, older than version "
                    f"{behind[0]} that a Key Vault event named (a replica behind); the event "
                    "comes back and is retried"
                )
            await asyncio.sleep(self.retry_s)
            latest = await fetch(None)
        return latest  # not reached: the loop returns or raises


def _created_after(previous: Fetched, latest: Fetched) -> bool:
    if previous.version == latest.version or previous.created is None or latest.created is None:
        return False
    return previous.created > latest.created


async def _newer(version: str, latest: Fetched, fetch: Fetch) -> bool:
    """Is ``version`` newer than ``latest``? Not found yet counts as newer (this replica has
    not seen it); a disabled one, or one no newer by its creation time, does not."""
    if version == latest.version:
        return False
    try:
        named = await fetch(version)
    except SourceDisabled:
        return False
    except SourceNotFound:
        return True
    if named.created is None or latest.created is None:
        return False
    return named.created > latest.created
