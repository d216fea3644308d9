"""The Secret the gateway reads (DESIGN.md contract): a pure builder plus create-or-patch."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, cast

import kopf
from kubernetes_asyncio import client

from llmhub_common.contract import (
    CONTENT_HASH_ANNOTATION,
    CREDENTIAL_KEY,
    EXPIRES_AT_ANNOTATION,
    EXPIRES_AT_KEY,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SOURCE_VERSION_ANNOTATION,
    ProviderName,
)
from llmhub_common.tokens import format_rfc3339
from llmhub_operator import metrics
from llmhub_operator.kube import is_not_found

WriteAction = Literal["create", "update", "annotate"]


def build_secret(
    *,
    name: str,
    provider: ProviderName,
    value: str,
    source_version: str,
    content_hash: str,
    expires_at: datetime | None,
    owner: Mapping[str, Any],
) -> dict[str, Any]:
    """Render the Secret owned by ``owner`` (an LLMProvider body); no I/O."""
    expires = format_rfc3339(expires_at) if expires_at else ""
    annotations = {SOURCE_VERSION_ANNOTATION: source_version, CONTENT_HASH_ANNOTATION: content_hash}
    if expires:
        annotations[EXPIRES_AT_ANNOTATION] = expires
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "annotations": annotations,
        },
        "data": {CREDENTIAL_KEY[provider]: _b64(value), EXPIRES_AT_KEY: _b64(expires)},
    }
    # Sets the namespace and the ownerReference, so the Secret goes when the LLMProvider goes.
    kopf.adopt(secret, owner=cast(kopf.Body, dict(owner)))
    return secret


async def apply_secret(api: client.ApiClient, desired: Mapping[str, Any]) -> WriteAction | None:
    """Create the Secret, or patch it when data or our metadata differ; None when up to date."""
    core = client.CoreV1Api(api)
    meta = desired["metadata"]
    try:
        current = await core.read_namespaced_secret(meta["name"], meta["namespace"])
    except client.ApiException as exc:
        if not is_not_found(exc):
            raise
        await core.create_namespaced_secret(meta["namespace"], cast(Any, dict(desired)))
        metrics.SECRET_WRITES.labels("create").inc()
        return "create"
    action = _needed_action(current, desired)
    if action is not None:
        patch = {"metadata": {k: meta[k] for k in ("labels", "annotations", "ownerReferences")}}
        patch["data"] = desired["data"]
        await core.patch_namespaced_secret(meta["name"], meta["namespace"], patch)
        metrics.SECRET_WRITES.labels(action).inc()
    return action


def _needed_action(current: client.V1Secret, desired: Mapping[str, Any]) -> WriteAction | None:
    if dict(current.data or {}) != desired["data"]:
        return "update"
    cur_meta = current.metadata
    labels = cur_meta.labels or {}
    annotations = cur_meta.annotations or {}
    owners = {ref.uid for ref in cur_meta.owner_references or []}
    want = desired["metadata"]
    if any(labels.get(k) != v for k, v in want["labels"].items()):
        return "annotate"
    if any(annotations.get(k) != v for k, v in want["annotations"].items()):
        return "annotate"
    if any(ref["uid"] not in owners for ref in want["ownerReferences"]):
        return "annotate"
    return None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
