"""The Secret the gateway reads (DESIGN.md contract): a pure builder plus a guarded replace.

Only Secrets this LLMProvider created are ever written: ours carry its controller
ownerReference. A Secret of that name that is not ours is left byte-for-byte untouched
(``SecretConflict``). Ours are replaced whole, guarded by ``resourceVersion``, so their data is
exactly the contract's keys: a merge patch could never drop a key (e.g. after spec.provider
changed) and a server-side apply would keep keys that a person added.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

import kopf
from kubernetes_asyncio import client

from llmhub_common.contract import (
    CONTENT_HASH_ANNOTATION,
    CREDENTIAL_KEY,
    EXPIRES_AT_ANNOTATION,
    EXPIRES_AT_KEY,
    GEMINI_PROJECT_KEY,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SOURCE_VERSION_ANNOTATION,
    ProviderName,
)
from llmhub_common.tokens import format_rfc3339
from llmhub_operator import metrics
from llmhub_operator.kube import is_not_found, raw_json

WriteAction = Literal["create", "update", "annotate"]
OUR_ANNOTATIONS = (SOURCE_VERSION_ANNOTATION, CONTENT_HASH_ANNOTATION, EXPIRES_AT_ANNOTATION)


class SecretConflict(Exception):
    """The target Secret exists and was not created by this LLMProvider: never touched."""


@dataclass(frozen=True, slots=True)
class SecretWrite:
    action: WriteAction | None  # None: it was already exactly right, nothing written
    uid: str  # the Secret's uid: a new one means it was re-created


def build_secret(
    *,
    name: str,
    provider: ProviderName,
    value: str,
    source_version: str,
    content_hash: str,
    expires_at: datetime | None,
    owner: Mapping[str, Any],
    gemini_project: str | None = None,
) -> dict[str, Any]:
    """Render the Secret owned by ``owner`` (an LLMProvider body); no I/O.

    A Gemini Secret also carries ``GOOGLE_CLOUD_PROJECT`` when the spec names a project.
    """
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
    if provider == "gemini" and gemini_project:
        secret["data"][GEMINI_PROJECT_KEY] = _b64(gemini_project)
    # Sets the namespace and the ownerReference, so the Secret goes when the LLMProvider goes.
    kopf.adopt(secret, owner=cast(kopf.Body, dict(owner)))
    return secret


def is_ours(secret: Mapping[str, Any], owner_uid: str) -> bool:
    """Ours = created by this LLMProvider: its controller ownerReference is on the Secret."""
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid and ref.get("controller") for ref in refs)


async def apply_secret(api: client.ApiClient, desired: Mapping[str, Any]) -> SecretWrite:
    """Create the Secret, or replace ours when anything we own differs; never a foreign one."""
    core = client.CoreV1Api(api)
    meta = desired["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    owner_uid = meta["ownerReferences"][0]["uid"]
    try:
        current = await raw_json(
            core.read_namespaced_secret(name, namespace, _preload_content=False)
        )
    except client.ApiException as exc:
        if not is_not_found(exc):
            raise
        created = await raw_json(
            core.create_namespaced_secret(
                namespace, cast(Any, dict(desired)), _preload_content=False
            )
        )
        metrics.SECRET_WRITES.labels("create").inc()
        return SecretWrite("create", created["metadata"]["uid"])
    if not is_ours(current, owner_uid):
        raise SecretConflict(
            f"Secret {name} already exists and was not created by this LLMProvider; it is left "
            "untouched. Set spec.target.secretName to another name, or delete that Secret."
        )
    merged, action = _merge(current, desired)
    uid = current["metadata"]["uid"]
    if action is not None:
        await raw_json(
            core.replace_namespaced_secret(
                name, namespace, cast(Any, merged), _preload_content=False
            )
        )
        metrics.SECRET_WRITES.labels(action).inc()
    return SecretWrite(action, uid)


def _merge(
    current: Mapping[str, Any], desired: Mapping[str, Any]
) -> tuple[dict[str, Any], WriteAction | None]:
    """Our keys exactly; others' labels, annotations and owners are kept. None: up to date."""
    cur_meta = current.get("metadata") or {}
    want = desired["metadata"]
    labels = {**(cur_meta.get("labels") or {}), **want["labels"]}
    annotations = {
        k: v for k, v in (cur_meta.get("annotations") or {}).items() if k not in OUR_ANNOTATIONS
    }
    annotations.update(want["annotations"])
    ours = want["ownerReferences"][0]
    owners = [r for r in cur_meta.get("ownerReferences") or [] if r.get("uid") != ours["uid"]]
    owners.insert(0, ours)
    merged = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": current.get("type") or desired["type"],
        "metadata": {
            **{k: v for k, v in cur_meta.items() if k != "managedFields"},
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": owners,
        },
        "data": dict(desired["data"]),
    }
    if (current.get("data") or {}) != merged["data"]:
        return merged, "update"
    same_meta = (
        cur_meta.get("labels") == labels
        and (cur_meta.get("annotations") or {}) == annotations
        and _refs(cur_meta.get("ownerReferences")) == _refs(owners)
    )
    return merged, None if same_meta else "annotate"


def _refs(refs: Any) -> list[tuple[Any, ...]]:
    return [
        (r.get("uid"), r.get("kind"), r.get("name"), bool(r.get("controller"))) for r in refs or []
    ]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


async def delete_if_ours(api: client.ApiClient, namespace: str, name: str, owner_uid: str) -> bool:
    """Delete a Secret this LLMProvider wrote earlier (its target was renamed); a Secret of
    that name that is not ours (anymore) is left alone. True when one was deleted."""
    core = client.CoreV1Api(api)
    try:
        current = await raw_json(
            core.read_namespaced_secret(name, namespace, _preload_content=False)
        )
    except client.ApiException as exc:
        if is_not_found(exc):
            return False
        raise
    if not is_ours(current, owner_uid):
        return False
    # Preconditions: exactly the Secret we just read (not a re-created foreign one).
    options = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(
            uid=current["metadata"]["uid"],
            resource_version=current["metadata"]["resourceVersion"],
        )
    )
    try:
        await core.delete_namespaced_secret(name, namespace, body=options)
    except client.ApiException as exc:
        if is_not_found(exc) or exc.status == 409:  # gone, or changed since: leave it
            return False
        raise
    metrics.SECRET_WRITES.labels("delete").inc()
    return True
