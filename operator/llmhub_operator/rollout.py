"""Roll the gateway by changing pod-template annotations, only when something really changed.

Two annotations per LLMProvider: the credential's content hash (a rotation rolls) and the uid of
its Secret (a Secret deleted and re-created rolls once: pods started meanwhile had none).
Requests for one Deployment that arrive together (hundreds of LLMProviders at start) become one
read and at most one patch, so the Deployment gets one new ReplicaSet, not hundreds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from llmhub_common.contract import rollout_annotation, secret_uid_annotation
from llmhub_operator import metrics
from llmhub_operator.kube import is_not_found

BATCH_WINDOW_S = 0.5  # one patch, one new ReplicaSet, for every rotation within half a second


@dataclass(frozen=True, slots=True)
class RollRequest:
    provider_resource_name: str
    content_hash: str
    secret_uid: str


@dataclass(frozen=True, slots=True)
class RolloutResult:
    found: bool
    rolled: bool


def needed_annotations(current: Mapping[str, str], request: RollRequest) -> dict[str, str]:
    """What the pod template must gain for ``request``; empty when it is up to date.

    Comparing with the Deployment itself (not our memory) is what makes operator restarts and
    "same value, new Key Vault version" roll nothing. A template from before the uid annotation
    existed is not rolled just to add it.
    """
    hash_key = rollout_annotation(request.provider_resource_name)
    uid_key = secret_uid_annotation(request.provider_resource_name)
    if current.get(hash_key) != request.content_hash:
        return {hash_key: request.content_hash, uid_key: request.secret_uid}
    if uid_key in current and current[uid_key] != request.secret_uid:
        return {uid_key: request.secret_uid}
    return {}


def rollout_patch(annotations: Mapping[str, str]) -> dict[str, Any]:
    """The merge patch that sets our annotations on the pod template (and nothing else)."""
    return {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}


@dataclass
class _Batch:
    items: list[tuple[RollRequest, asyncio.Future[RolloutResult]]] = field(default_factory=list)


class Roller:
    """Coalesces roll requests per Deployment within a short window."""

    def __init__(self, api: client.ApiClient, window_s: float = BATCH_WINDOW_S) -> None:
        self._api, self._window_s = api, window_s
        self._open: dict[tuple[str, str], _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def ensure(self, namespace: str, deployment: str, request: RollRequest) -> RolloutResult:
        key = (namespace, deployment)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch()
            task = asyncio.create_task(self._flush(key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[RolloutResult] = asyncio.get_running_loop().create_future()
        batch.items.append((request, future))
        return await future

    async def _flush(self, key: tuple[str, str], batch: _Batch) -> None:
        await asyncio.sleep(self._window_s)
        self._open.pop(key, None)  # later requests start a new batch
        try:
            results = await ensure_rolled(self._api, *key, [r for r, _ in batch.items])
        except BaseException as exc:
            for _, future in batch.items:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), result in zip(batch.items, results, strict=True):
            if not future.done():
                future.set_result(result)


async def ensure_rolled(
    api: client.ApiClient, namespace: str, deployment: str, requests: Sequence[RollRequest]
) -> list[RolloutResult]:
    """Read the Deployment once and patch what the requests need, in one merge patch."""
    apps = client.AppsV1Api(api)
    try:
        current = await apps.read_namespaced_deployment(deployment, namespace)
    except client.ApiException as exc:
        if is_not_found(exc):
            return [RolloutResult(found=False, rolled=False) for _ in requests]
        raise
    template_meta = current.spec.template.metadata
    annotations: dict[str, str] = dict((template_meta.annotations if template_meta else None) or {})
    patch: dict[str, str] = {}
    results = []
    for request in requests:
        needed = needed_annotations({**annotations, **patch}, request)
        patch.update(needed)
        results.append(RolloutResult(found=True, rolled=bool(needed)))
    if patch:
        await apps.patch_namespaced_deployment(deployment, namespace, rollout_patch(patch))
        metrics.ROLLOUTS.labels(namespace, deployment).inc()
    return results
