"""Level-triggered truth for the scheduler's set: a fresh LIST of LLMProviders, diffed by uid.

A watch that resumes with 410 Gone (an API-server restart, an etcd compaction) makes kopf
re-list, and a re-list carries no DELETED event for what vanished meanwhile. So every replica
lists the LLMProviders periodically, and soon after kopf re-lists (its listed objects arrive as
events of type None), and drops what is gone or was re-created under its name.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, API_VERSION, PLURAL
from llmhub_operator.kube import raw_json
from llmhub_operator.scheduler import Key, Scheduler

log = logging.getLogger(__name__)

INTERVAL_ENV = "LLMHUB_RESYNC_SECONDS"
DEFAULT_INTERVAL_S = 300.0  # as often as the API server ends a watch (kopf's server_timeout)
SETTLE_S = 1.0  # a re-list arrives as a burst of events: one LIST after it, not one per event
PAGE = 500


def interval_from_env() -> float:
    """``LLMHUB_RESYNC_SECONDS`` (default 300); anything but a number ≥ 1 stops the start."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds >= 1:
        raise ValueError(f"{INTERVAL_ENV} must be a number of seconds, at least 1 (got {raw!r})")
    return seconds


@dataclass
class Resync:
    """Lists every ``interval`` seconds, and ``SETTLE_S`` after ``soon()``."""

    api: client.ApiClient
    namespaces: Sequence[str]  # empty: all namespaces
    scheduler: Scheduler
    on_dropped: Callable[[Key], None]
    interval: float = DEFAULT_INTERVAL_S
    _soon: asyncio.Event = field(default_factory=asyncio.Event)

    def soon(self) -> None:
        """kopf re-listed (a watch restart, or the start): check the set against a LIST."""
        self._soon.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._soon.wait(), self.interval)
                await asyncio.sleep(SETTLE_S)
            except TimeoutError:
                pass
            self._soon.clear()
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next period (or re-list) tries again
                log.warning("listing LLMProviders failed (%s); the set stays", _what(exc))

    async def once(self) -> list[Key]:
        """One LIST per scope; returns the keys dropped."""
        dropped: list[Key] = []
        scopes: Sequence[str | None] = list(self.namespaces) or [None]
        for namespace in scopes:
            items, version = await _list(self.api, namespace)
            for key in self.scheduler.resync(namespace, items, version):
                log.info(
                    "LLMProvider %s/%s is not in a fresh LIST (a missed deletion); forgot it", *key
                )
                self.on_dropped(key)
                dropped.append(key)
        return dropped


async def _list(api: client.ApiClient, namespace: str | None) -> tuple[list[Any], str]:
    """All LLMProviders of a scope (in pages) and the list's resourceVersion."""
    custom = client.CustomObjectsApi(api)
    items: list[Any] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": PAGE, "_preload_content": False}
        if token:
            kwargs["_continue"] = token
        if namespace is None:
            call = custom.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL, **kwargs)
        else:
            call = custom.list_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, **kwargs
            )
        page = await raw_json(call)
        items.extend(page.get("items") or [])
        meta = page.get("metadata") or {}
        token = meta.get("continue")
        if not token:
            return items, str(meta.get("resourceVersion") or "")


def _what(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status}" if status else type(exc).__name__
