"""One pass for one LLMGateway (read its providers, render, apply, prune, write status), and the
queue that runs passes: on every change of an LLMGateway or of an LLMProvider of its namespace,
and for every LLMGateway each ``resync_seconds`` (a hand-edit is reverted by then).

Only the leader applies; every replica keeps the bodies current, so a new leader starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, API_VERSION
from llmhub_common.contract import PLURAL as PROVIDERS_PLURAL
from llmhub_operator.gateways import apply, render, status
from llmhub_operator.gateways.model import (
    GATEWAY_LABEL,
    PLURAL,
    GatewaySettings,
    parse_gateway,
    served_providers,
)
from llmhub_operator.kube import api_failure
from llmhub_operator.leader import Leadership
from llmhub_operator.model import InvalidSpec
from llmhub_operator.status import Condition

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)


async def reconcile(
    api: client.ApiClient,
    body: Mapping[str, Any],
    settings: GatewaySettings,
    *,
    prune: bool = True,
) -> bool:
    """Converge one LLMGateway's objects and status; problems go to status, not raised, except
    transient API errors (the queue retries those). True when every object was applied (and,
    with ``prune``, those no longer asked for deleted)."""
    meta = body["metadata"]
    owner = render.Owner(meta["name"], meta["namespace"], meta["uid"])
    custom = client.CustomObjectsApi(api)
    problem: Condition | None = None
    stalled, providers, ready = False, [], 0
    try:
        spec = parse_gateway(body.get("spec") or {})
        listed = await custom.list_namespaced_custom_object(
            API_GROUP, API_VERSION, owner.namespace, PROVIDERS_PLURAL
        )
        providers = served_providers(spec, listed.get("items") or [])
        objects = render.render(owner, spec, providers, settings)
        applied = await apply.apply_all(api, owner.uid, objects)
        if prune:
            selector = f"{GATEWAY_LABEL}={owner.name}"
            await apply.prune(api, owner.namespace, owner.uid, objects, selector)
        deployment = applied[f"Deployment/{owner.name}"]
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
        problem = status.rollout_problem(deployment)
        urls = render.urls(owner, spec, settings)
    except InvalidSpec as exc:
        problem, stalled, urls = Condition("Ready", "False", "InvalidSpec", str(exc)), True, {}
    except apply.NotOurs as exc:
        problem, stalled, urls = Condition("Ready", "False", "NotOwned", str(exc)), True, {}
    except client.ApiException as exc:
        failure = api_failure(exc, "applying the gateway's objects")
        if failure.transient:
            raise
        message = failure.message
        if exc.status == 403:
            message = (
                f"the operator may not manage objects in namespace {owner.namespace} (HTTP 403): "
                "name it in the chart value operator.llmGateways.namespaces"
            )
        problem = Condition("Ready", "False", "ApiRefused", message)
        stalled, urls = True, {}
    previous = body.get("status") or {}
    patch = status.status_patch(
        previous,
        status.summary(problem, stalled=stalled),
        now=datetime.now(UTC),
        generation=meta.get("generation"),
        providers=providers,
        urls=urls,
        ready_replicas=ready,
    )
    if not status.unchanged(previous, patch):
        await custom.patch_namespaced_custom_object_status(  # type: ignore[call-arg]
            API_GROUP,
            API_VERSION,
            owner.namespace,
            PLURAL,
            owner.name,
            {"status": patch},
            _content_type="application/merge-patch+json",
        )
    return not stalled


class GatewayQueue:
    """The LLMGateways this replica knows, and which of them need a pass."""

    def __init__(
        self,
        api: client.ApiClient,
        settings: GatewaySettings,
        leadership: Leadership,
        retry_seconds: float = 5.0,
    ) -> None:
        self._api, self._settings, self._leadership = api, settings, leadership
        self._retry_seconds = retry_seconds
        self._inflight: asyncio.Future[Any] | None = None
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self._due: set[Key] = set()
        self._providers: dict[Key, str] = {}  # what gateways use of each LLMProvider, as seen
        self._pruned: dict[Key, tuple[Any, Any]] = {}  # (uid, generation) last pruned
        self._wake = asyncio.Event()

    def observe(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self._bodies[key] = body
        self.due(key)

    def forget(self, namespace: str, name: str) -> None:
        """Deleted: the garbage collector removes its objects (it owns them)."""
        self._bodies.pop((namespace, name), None)
        self._due.discard((namespace, name))
        self._pruned.pop((namespace, name), None)

    def provider_changed(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        """An LLMProvider changed what a gateway shows or mounts (not just its last sync time):
        each gateway of its namespace re-reads what it serves."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        seen = None if deleted else _what_gateways_use(body)
        if self._providers.get(key) == seen:
            return
        if seen is None:
            self._providers.pop(key, None)
        else:
            self._providers[key] = seen
        for gateway in self._bodies:
            if gateway[0] == key[0]:
                self.due(gateway)

    @property
    def pending(self) -> frozenset[Key]:
        """The LLMGateways waiting for a pass."""
        return frozenset(self._due)

    def due(self, key: Key) -> None:
        self._due.add(key)
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: passes for what is due, everything each resync interval; while
        not leading nothing runs and everything stays due for when the lead is gained."""
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + self._settings.resync_seconds
        while True:
            await self._leadership.leading.wait()
            timeout = max(0.0, next_resync - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if loop.time() >= next_resync:
                self._due |= set(self._bodies)
                next_resync = loop.time() + self._settings.resync_seconds
            if not self._leadership.leading.is_set():
                continue
            due, self._due = self._due, set()
            self._inflight = asyncio.gather(*(self._pass(key) for key in sorted(due)))
            await asyncio.wait({self._inflight})  # its cancellation is not ours
            if self._inflight.cancelled():
                self._due |= due
            self._inflight = None

    async def cancel_inflight(self) -> None:
        """The lead was lost: stop applying now (Leadership.on_lost awaits this)."""
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            inflight.cancel()
            await asyncio.wait({inflight})

    async def _pass(self, key: Key) -> None:
        body = self._bodies.get(key)
        if body is None:
            return
        # What a spec no longer asks for is deleted once per generation (six LISTs), not on
        # every pass: only a spec change (or this process's first pass) changes it.
        version = (body["metadata"].get("uid"), body["metadata"].get("generation"))
        try:
            prune = self._pruned.get(key) != version
            if await reconcile(self._api, body, self._settings, prune=prune):
                self._pruned[key] = version
        except (client.ApiException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("LLMGateway %s/%s: pass failed (%s); retrying", *key, _why(exc))
            asyncio.get_running_loop().call_later(self._retry_seconds, self.due, key)
        except Exception:  # a bug must not stop the other gateways' passes
            log.exception("LLMGateway %s/%s: pass failed; retrying", *key)
            asyncio.get_running_loop().call_later(self._retry_seconds, self.due, key)


def _what_gateways_use(body: Mapping[str, Any]) -> str:
    """The parts of an LLMProvider a gateway renders or reports: labels (selectors), spec
    (kind, model, Secret name), content hash (rolls) and token health."""
    status = body.get("status") or {}
    used = {
        "labels": (body.get("metadata") or {}).get("labels"),
        "spec": body.get("spec"),
        "hash": status.get("contentHash"),
        "token": status.get("token"),
    }
    return json.dumps(used, sort_keys=True)


def _why(exc: BaseException) -> str:
    if isinstance(exc, client.ApiException):
        return f"HTTP {exc.status}"
    return type(exc).__name__
