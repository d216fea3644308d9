"""Watch the Secrets the operator manages, so one deleted or edited by hand is restored at once.

kopf filters labels on the client side, so a kopf handler for Secrets would stream every Secret
of the cluster (values included) through the operator. This watch asks the API server for ours
only (label selector), per watched namespace or cluster-wide, and re-lists after any break.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, KIND, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from llmhub_operator.kube import RawWatch, raw_json

log = logging.getLogger(__name__)

SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
Handler = Callable[[str, Mapping[str, Any]], None]
WATCH_TIMEOUT_S = 300


def owner_of(secret: Mapping[str, Any]) -> tuple[tuple[str, str], str] | None:
    """The (namespace, name) and uid of the LLMProvider that controls this Secret, if any.

    The uid matters: a Secret left by a deleted LLMProvider of the same name (its garbage
    collection under way) must never be "repaired" for the live one.
    """
    meta = secret.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        api_version = str(ref.get("apiVersion", ""))
        if ref.get("controller") and ref.get("kind") == KIND and api_version.startswith(API_GROUP):
            return (meta.get("namespace") or "", str(ref.get("name"))), str(ref.get("uid"))
    return None


async def watch_secrets(
    api: client.ApiClient,
    namespaces: Sequence[str],
    on_event: Handler,
    on_broken: Callable[[], None] = lambda: None,
) -> None:
    """Run until cancelled: one watch per namespace, or one for all when none are named.

    ``on_broken`` is called after each re-list that follows a broken watch (410 Gone, an API
    server restart, a cut): the LLMProvider watch has most likely missed events too, even in a
    namespace where kopf's re-list has no object left to show it.
    """
    scopes: Sequence[str | None] = list(namespaces) or [None]
    await asyncio.gather(*(_watch_scope(api, ns, on_event, on_broken) for ns in scopes))


async def _watch_scope(
    api: client.ApiClient, namespace: str | None, on_event: Handler, on_broken: Callable[[], None]
) -> None:
    core = client.CoreV1Api(api)
    backoff, broken = 1.0, False
    while True:
        try:
            listed = await _list(core, namespace)
            version = listed["metadata"]["resourceVersion"]
            backoff = 1.0
            if broken:
                on_broken()
            broken = False
            await _stream(core, namespace, version, on_event)  # ends by the server's timeout
        except asyncio.CancelledError:
            raise
        except client.ApiException as exc:
            broken = True
            if exc.status != 410:  # 410 Gone: our resourceVersion expired; simply re-list
                log.warning("watching managed Secrets failed (HTTP %s); re-listing", exc.status)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        except Exception as exc:
            broken = True
            log.warning("watching managed Secrets broke (%s); re-listing", type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


async def _list(core: client.CoreV1Api, namespace: str | None) -> dict[str, Any]:
    """A raw list (never logged, never turned into models): only its resourceVersion matters."""
    if namespace is None:
        call = core.list_secret_for_all_namespaces(
            label_selector=SELECTOR, limit=1, _preload_content=False
        )
    else:
        call = core.list_namespaced_secret(
            namespace, label_selector=SELECTOR, limit=1, _preload_content=False
        )
    listed = await raw_json(call)
    return listed


async def _stream(
    core: client.CoreV1Api, namespace: str | None, version: str, on_event: Handler
) -> None:
    func = core.list_secret_for_all_namespaces if namespace is None else core.list_namespaced_secret
    args = () if namespace is None else (namespace,)
    stream = RawWatch().stream(
        func,
        *args,
        label_selector=SELECTOR,
        resource_version=version,
        timeout_seconds=WATCH_TIMEOUT_S,
        allow_watch_bookmarks=True,
    )
    async with stream:
        async for event in stream:
            kind, raw = event.get("type"), event.get("raw_object") or {}
            if kind == "ERROR":
                code = raw.get("code") if isinstance(raw, dict) else None
                raise client.ApiException(status=code or 500, reason="watch error")
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                on_event(str(kind), raw)
