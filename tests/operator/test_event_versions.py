"""The floor of push rotation's version check: once a version was read, a later read of an
older "latest" (a lagging Key Vault replica) is retried and refused, never written back,
unless that version was disabled to roll back. Costs a read only when creation times disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from llmhub_operator.errors import SourceDisabled
from llmhub_operator.event_versions import EventVersions, StaleVersion

KEY = ("ns", "p")


@dataclass(frozen=True)
class Read:
    value: str
    version: str
    created: datetime | None
    expires: datetime | None = None


V1 = Read("one", "v1", datetime(2026, 1, 1, tzinfo=UTC))
V2 = Read("two", "v2", datetime(2026, 1, 2, tzinfo=UTC))


class Vault:
    """``latest`` answers in turn; pinned reads by version; counts every read."""

    def __init__(self, *latest: Read, disabled: tuple[str, ...] = ()) -> None:
        self.latest, self.disabled, self.reads = list(latest), disabled, 0

    async def __call__(self, version: str | None) -> Read:
        self.reads += 1
        if version is None:
            return self.latest.pop(0) if len(self.latest) > 1 else self.latest[0]
        if version in self.disabled:
            raise SourceDisabled(f"version {version} is disabled")
        return {"v1": V1, "v2": V2}[version]


async def test_an_older_latest_after_a_newer_read_is_refused_not_written_back() -> None:
    vault = Vault(V1)
    with pytest.raises(StaleVersion, match="older than version v2"):
        await EventVersions(retry_s=0).at_least(KEY, V1, vault, previous=V2)


async def test_a_replica_that_catches_up_is_read_again() -> None:
    vault = Vault(V2)  # the re-read after the stale one
    assert await EventVersions(retry_s=0).at_least(KEY, V1, vault, previous=V2) == V2


async def test_a_version_disabled_to_roll_back_is_accepted() -> None:
    vault = Vault(V1, disabled=("v2",))
    assert await EventVersions(retry_s=0).at_least(KEY, V1, vault, previous=V2) == V1


async def test_the_floor_costs_no_read_when_latest_is_the_same_or_newer() -> None:
    vault = Vault(V2)
    versions = EventVersions(retry_s=0)
    assert await versions.at_least(KEY, V2, vault, previous=V2) == V2
    assert await versions.at_least(KEY, V2, vault, previous=V1) == V2
    assert await versions.at_least(KEY, V1, vault, previous=None) == V1
    assert vault.reads == 0
