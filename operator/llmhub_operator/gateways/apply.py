"""Server-side apply of a gateway's objects under one field manager.

Applying with ``force`` takes back every field we render from whoever changed it (a hand-edit is
reverted on the next pass) and drops the fields we no longer render; fields others own (an HPA's
replicas, the LLMProvider rollout's annotations) stay theirs. An object of the same name that
the LLMGateway does not own is never taken over: that is a conflict a person resolves.
Objects the spec no longer asks for (HPA off, Redis off) are deleted, if they are ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client

from llmhub_operator.gateways.render import Manifest

FIELD_MANAGER = "llm-mcp-hub-operator"
# Every kind a gateway may own: (apiVersion, kind) -> the plural in its REST path.
KINDS: Mapping[tuple[str, str], str] = {
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Service"): "services",
    ("apps/v1", "Deployment"): "deployments",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
}


class NotOurs(Exception):
    """An object of a rendered name exists and is not owned by this LLMGateway."""


def path(api_version: str, kind: str, namespace: str, name: str = "") -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    tail = f"/{name}" if name else ""
    return f"{prefix}/namespaces/{namespace}/{KINDS[(api_version, kind)]}{tail}"


async def apply_all(
    api: client.ApiClient, owner_uid: str, objects: Sequence[Manifest]
) -> dict[str, dict[str, Any]]:
    """Apply each object in order; the API server's answers by ``Kind/name``."""
    applied: dict[str, dict[str, Any]] = {}
    for obj in objects:
        meta = obj["metadata"]
        where = path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        current = await _get(api, where)
        if current is not None and not owned_by(current, owner_uid):
            raise NotOurs(f"{obj['kind']} {meta['name']} exists and is not this LLMGateway's")
        answer = await _call(
            api,
            where,
            "PATCH",
            body=obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        applied[f"{obj['kind']}/{meta['name']}"] = answer
    return applied


async def prune(
    api: client.ApiClient, namespace: str, owner_uid: str, keep: Sequence[Manifest], selector: str
) -> list[str]:
    """Delete the objects of this gateway (by label) that ``keep`` no longer lists."""
    wanted = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in keep}
    deleted: list[str] = []
    for (api_version, kind), _ in KINDS.items():
        listed = await _call(
            api, path(api_version, kind, namespace), "GET", query=[("labelSelector", selector)]
        )
        for item in listed.get("items") or []:
            name = item["metadata"]["name"]
            if (api_version, kind, name) in wanted or not owned_by(item, owner_uid):
                continue
            uid = item["metadata"]["uid"]
            body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
            try:
                await _call(api, path(api_version, kind, namespace, name), "DELETE", body=body)
            except client.ApiException as exc:
                if exc.status not in (404, 409):  # gone, or a new object of that name
                    raise
            deleted.append(f"{kind}/{name}")
    return deleted


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


async def _get(api: client.ApiClient, where: str) -> dict[str, Any] | None:
    try:
        return await _call(api, where, "GET")
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def _call(
    api: client.ApiClient,
    where: str,
    method: str,
    *,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    answer: dict[str, Any] = await api.call_api(
        where,
        method,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        response_types_map={200: "object", 201: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    return answer
