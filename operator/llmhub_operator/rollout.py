"""Roll the gateway by changing pod-template annotations, only when something really changed.

Two annotations per LLMProvider: the credential's content hash (a rotation rolls) and the uid of
its Secret (a Secret deleted and re-created rolls once: pods started meanwhile had none).
Requests for one Deployment that arrive together (hundreds of LLMProviders at start) become one
read and at most one patch, so the Deployment gets one new ReplicaSet, not hundreds. A batch the
API server refuses as invalid (422, 400) is retried one LLMProvider at a time, so one bad
request never blocks the others. The annotations of LLMProviders that no longer exist are
removed in the same patch (a deletion observed only triggers such a batch).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from llmhub_common.contract import (
    API_GROUP,
    API_VERSION,
    PLURAL,
    rollout_annotation,
    secret_uid_annotation,
)
from llmhub_operator import metrics
from llmhub_operator.credential import HASH_PREFIX
from llmhub_operator.kube import is_not_found, raw_json

log = logging.getLogger(__name__)

BATCH_WINDOW_S = 0.5  # one patch, one new ReplicaSet, for every rotation within half a second
PER_OBJECT_ERRORS = frozenset({400, 422})  # the patch's content was refused, not the caller
Known = Callable[[tuple[str, str]], bool]  # is this (namespace, name) an LLMProvider we know?


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


def rollout_patch(annotations: Mapping[str, str | None]) -> dict[str, Any]:
    """The merge patch that sets (or, for None, removes) our annotations on the pod template,
    and nothing else."""
    return {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}


def annotated_providers(annotations: Mapping[str, str]) -> set[str]:
    """The LLMProvider names our hash annotations on a pod template belong to.

    Only ``llm-mcp-hub.io/<name>-hash`` keys holding one of our content hashes count, so a pod
    annotation someone else chose under our prefix is never taken for ours.
    """
    prefix, suffix = f"{API_GROUP}/", "-hash"
    return {
        key[len(prefix) : -len(suffix)]
        for key, value in annotations.items()
        if key.startswith(prefix)
        and key.endswith(suffix)
        and len(key) > len(prefix) + len(suffix)
        and str(value).startswith(HASH_PREFIX)
    }


def refusal_detail(exc: client.ApiException) -> str:
    """The API server's own words for an invalid patch of our annotations (which carry hashes
    and uids, never a credential), so the status names the problem; empty for other errors."""
    if exc.status not in PER_OBJECT_ERRORS or not exc.body:
        return ""
    try:
        message = json.loads(exc.body).get("message")
    except (ValueError, AttributeError):
        return ""
    return str(message)[:512] if message else ""


@dataclass
class _Batch:
    items: list[tuple[RollRequest, asyncio.Future[RolloutResult]]] = field(default_factory=list)


class Roller:
    """Coalesces roll requests (and clean-ups) per Deployment within a short window."""

    def __init__(
        self,
        api: client.ApiClient,
        window_s: float = BATCH_WINDOW_S,
        known: Known = lambda _: False,
    ) -> None:
        self._api, self._window_s = api, window_s
        self.known = known  # the scheduler's view: owners it knows need no existence check
        self._open: dict[tuple[str, str], _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def ensure(self, namespace: str, deployment: str, request: RollRequest) -> RolloutResult:
        future: asyncio.Future[RolloutResult] = asyncio.get_running_loop().create_future()
        self._batch(namespace, deployment).items.append((request, future))
        return await future

    def prune(self, namespace: str, deployment: str) -> None:
        """An LLMProvider feeding ``deployment`` was deleted: remove its annotations soon."""
        self._batch(namespace, deployment)

    def _batch(self, namespace: str, deployment: str) -> _Batch:
        key = (namespace, deployment)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch()
            task = asyncio.create_task(self._flush(key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return batch

    async def _flush(self, key: tuple[str, str], batch: _Batch) -> None:
        await asyncio.sleep(self._window_s)
        self._open.pop(key, None)  # later requests start a new batch
        try:
            results = await ensure_rolled(
                self._api, *key, [r for r, _ in batch.items], known=self.known
            )
        except BaseException as exc:
            for _, future in batch.items:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            if not batch.items:  # a clean-up alone: the next pass of any provider retries it
                log.warning("cleaning up Deployment %s/%s failed: %s", *key, type(exc).__name__)
            return
        for (_, future), result in zip(batch.items, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


async def ensure_rolled(
    api: client.ApiClient,
    namespace: str,
    deployment: str,
    requests: Sequence[RollRequest],
    *,
    known: Known = lambda _: False,
) -> list[RolloutResult | client.ApiException]:
    """Read the Deployment once and patch what the requests need, in one merge patch.

    Each request gets its result, or the API error of its own patch when the batch was refused
    as invalid and retried one request at a time.
    """
    apps = client.AppsV1Api(api)
    try:  # raw: a Deployment carrying many LLMProviders' annotations is slow to make a model of
        current = await raw_json(
            apps.read_namespaced_deployment(deployment, namespace, _preload_content=False)
        )
    except client.ApiException as exc:
        if is_not_found(exc):
            return [RolloutResult(found=False, rolled=False) for _ in requests]
        raise
    template_meta = ((current.get("spec") or {}).get("template") or {}).get("metadata") or {}
    annotations: dict[str, str] = dict(template_meta.get("annotations") or {})
    owners = annotated_providers(annotations) | {r.provider_resource_name for r in requests}
    gone = await _gone(api, namespace, owners, known)
    stale = [k for name in sorted(gone) for k in _keys(name) if k in annotations]
    patch: dict[str, str | None] = dict.fromkeys(stale)
    results: list[RolloutResult | client.ApiException] = []
    for request in requests:
        needed: dict[str, str] = {}
        if request.provider_resource_name not in gone:  # deleted meanwhile: nothing to roll
            needed = needed_annotations({**annotations, **patch}, request)  # type: ignore[dict-item]
        patch.update(needed)
        results.append(RolloutResult(found=True, rolled=bool(needed)))
    if not patch:
        return results
    try:
        await _patch(apps, namespace, deployment, patch)
    except client.ApiException as exc:
        live = [r for r in requests if r.provider_resource_name not in gone]
        if exc.status not in PER_OBJECT_ERRORS or len(live) + bool(stale) < 2:
            raise
        log.warning(
            "patching Deployment %s/%s for %d LLMProviders was refused (HTTP %s); "
            "patching for each on its own",
            namespace,
            deployment,
            len(live),
            exc.status,
        )
        return await _one_by_one(apps, namespace, deployment, annotations, requests, gone, stale)
    return results


async def _one_by_one(
    apps: client.AppsV1Api,
    namespace: str,
    deployment: str,
    annotations: Mapping[str, str],
    requests: Sequence[RollRequest],
    gone: set[str],
    stale: Sequence[str],
) -> list[RolloutResult | client.ApiException]:
    """One patch per LLMProvider: the one whose annotations are refused fails alone."""
    results: list[RolloutResult | client.ApiException] = []
    for request in requests:
        needed = {}
        if request.provider_resource_name not in gone:
            needed = needed_annotations(annotations, request)
        try:
            if needed:
                await _patch(apps, namespace, deployment, needed)
            results.append(RolloutResult(found=True, rolled=bool(needed)))
        except client.ApiException as exc:
            if is_not_found(exc):
                results.append(RolloutResult(found=False, rolled=False))
            else:
                results.append(exc)
    if stale:
        try:
            await _patch(apps, namespace, deployment, dict.fromkeys(stale))
        except client.ApiException as exc:
            log.warning("removing stale annotations failed (HTTP %s)", exc.status)
    return results


async def _patch(
    apps: client.AppsV1Api, namespace: str, deployment: str, patch: Mapping[str, str | None]
) -> None:
    # Raw: the answer (the whole Deployment) is not needed; an error keeps the API server's
    # Status (its message names the refused annotation, never a credential).
    response: Any = await apps.patch_namespaced_deployment(
        deployment, namespace, rollout_patch(patch), _preload_content=False
    )
    try:
        if not 200 <= response.status <= 299:
            error = client.ApiException(status=response.status, reason=response.reason)
            error.body = await response.text()
            raise error
    finally:
        response.release()
    metrics.ROLLOUTS.labels(namespace, deployment).inc()


def _keys(name: str) -> tuple[str, str]:
    return rollout_annotation(name), secret_uid_annotation(name)


async def _gone(api: client.ApiClient, namespace: str, owners: set[str], known: Known) -> set[str]:
    """The LLMProviders among ``owners`` that no longer exist.

    Those the scheduler knows are alive; any other is looked up in one list of the namespace, so
    one not yet seen after a start is never taken for deleted (that would roll twice), and a
    pass still running for one just deleted does not put its annotations back.
    """
    unknown = {name for name in owners if not known((namespace, name))}
    if not unknown:
        return set()
    custom = client.CustomObjectsApi(api)
    listed = await custom.list_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL)
    alive = {item["metadata"]["name"] for item in listed.get("items") or []}
    return unknown - alive
