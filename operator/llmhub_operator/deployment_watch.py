"""Watch the gateway Deployments that LLMProviders name, so one created after them rolls at once.

Without it, an LLMProvider whose Deployment does not exist yet waits a whole refresh interval.
There is one watch per referenced Deployment, narrowed by the API server to that one object
(field selector ``metadata.name``): no other Deployment of the namespace or cluster reaches the
operator, and RBAC can grant ``list``/``watch`` with ``resourceNames`` (the chart's Role does,
on its gateway only), which a label selector could not be limited to. Watches start with the
first LLMProvider that names a Deployment and stop with the last.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes_asyncio import client

from llmhub_operator.kube import RawWatch

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
# (namespace, deployment, first_sight): first_sight is the first time this process sees it.
OnAppeared = Callable[[str, str, bool], None]
WATCH_TIMEOUT_S = 300
MAX_BACKOFF_S = 60.0


class DeploymentWatch:
    """Reference-counted watches on the Deployments named by ``spec.gateway.deploymentName``."""

    def __init__(self, api: client.ApiClient, on_appeared: OnAppeared) -> None:
        self._api, self._on_appeared = api, on_appeared
        self._refs: dict[Key, Key] = {}  # LLMProvider → the Deployment it names
        self._count: Counter[Key] = Counter()
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._seen: dict[Key, str] = {}  # the uid each Deployment last had

    def track(self, provider: Key, deployment: str | None) -> None:
        """``provider`` now names ``deployment`` (None: none, or it was deleted)."""
        new = (provider[0], deployment) if deployment else None
        old = self._refs.get(provider)
        if old == new:
            return
        if old is not None:
            del self._refs[provider]
            self._count[old] -= 1
            if self._count[old] <= 0:
                del self._count[old]
                self._seen.pop(old, None)
                task = self._tasks.pop(old, None)
                if task is not None:
                    task.cancel()
        if new is not None:
            self._refs[provider] = new
            self._count[new] += 1
            if new not in self._tasks:
                name = f"deployment-watch {new[0]}/{new[1]}"
                self._tasks[new] = asyncio.create_task(self._watch(new), name=name)

    def providers_of(self, namespace: str, deployment: str) -> list[Key]:
        return [p for p, d in self._refs.items() if d == (namespace, deployment)]

    def watched(self) -> set[Key]:
        return set(self._tasks)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, key: Key) -> None:
        """Run until cancelled: list (one object at most), then watch from there; re-list
        after any break, backing off while the API server refuses (e.g. missing RBAC)."""
        apps = client.AppsV1Api(self._api)
        backoff, warned = 1.0, False
        while True:
            try:
                version = await self._list(apps, key)
                backoff, warned = 1.0, False
                await self._stream(apps, key, version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                gone = isinstance(exc, client.ApiException) and exc.status == 410
                if gone:  # our resourceVersion expired: simply re-list
                    continue
                level = logging.DEBUG if warned else logging.WARNING
                log.log(level, "watching Deployment %s/%s failed: %s", *key, _describe(exc))
                warned = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _list(self, apps: client.AppsV1Api, key: Key) -> str:
        listed = await apps.list_namespaced_deployment(key[0], field_selector=_selector(key))
        if listed.items:
            self._appeared(key, str(listed.items[0].metadata.uid))
        return str(listed.metadata.resource_version)

    async def _stream(self, apps: client.AppsV1Api, key: Key, version: str) -> None:
        stream = RawWatch().stream(
            apps.list_namespaced_deployment,
            key[0],
            field_selector=_selector(key),
            resource_version=version,
            timeout_seconds=WATCH_TIMEOUT_S,
            allow_watch_bookmarks=True,
            _request_timeout=WATCH_TIMEOUT_S + 30,
        )
        async with stream:
            async for event in stream:
                meta = _checked(event).get("metadata") or {}
                if event.get("type") == "ADDED":
                    self._appeared(key, str(meta.get("uid")))

    def _appeared(self, key: Key, uid: str) -> None:
        """Call back once per Deployment object (a new uid), never for its updates."""
        before = self._seen.get(key)
        if before == uid or key not in self._count:
            return
        self._seen[key] = uid
        try:
            self._on_appeared(key[0], key[1], before is None)
        except Exception:  # a callback's bug must not end the watch
            log.exception("handling Deployment %s/%s failed", *key)


def _checked(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event's raw object; a watch ERROR (410 Gone after a compaction, ...) is raised as
    the API error it reports, so the loop re-lists."""
    raw = event.get("raw_object")
    raw = raw if isinstance(raw, Mapping) else {}
    if event.get("type") == "ERROR":
        raise client.ApiException(status=raw.get("code") or 500, reason="watch error")
    return raw


def _selector(key: Key) -> str:
    return f"metadata.name={key[1]}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, client.ApiException):
        return f"HTTP {exc.status}"
    return type(exc).__name__
