"""Roll the gateway by changing one pod-template annotation, only when the hash really changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client

from llmhub_common.contract import rollout_annotation
from llmhub_operator import metrics
from llmhub_operator.kube import is_not_found


@dataclass(frozen=True, slots=True)
class RolloutResult:
    found: bool
    rolled: bool


def rollout_patch(provider_resource_name: str, content_hash: str) -> dict[str, Any]:
    """The merge patch that sets our annotation on the pod template (and nothing else)."""
    annotation = rollout_annotation(provider_resource_name)
    return {"spec": {"template": {"metadata": {"annotations": {annotation: content_hash}}}}}


async def ensure_rolled(
    api: client.ApiClient,
    *,
    namespace: str,
    deployment: str,
    provider_resource_name: str,
    content_hash: str,
) -> RolloutResult:
    """Patch the Deployment unless its template already carries ``content_hash``.

    Comparing with the Deployment itself (not our memory) is what makes operator restarts
    and "same value, new Key Vault version" roll nothing.
    """
    apps = client.AppsV1Api(api)
    try:
        current = await apps.read_namespaced_deployment(deployment, namespace)
    except client.ApiException as exc:
        if is_not_found(exc):
            return RolloutResult(found=False, rolled=False)
        raise
    template_meta = current.spec.template.metadata
    annotations = (template_meta.annotations if template_meta else None) or {}
    if annotations.get(rollout_annotation(provider_resource_name)) == content_hash:
        return RolloutResult(found=True, rolled=False)
    body = rollout_patch(provider_resource_name, content_hash)
    await apps.patch_namespaced_deployment(deployment, namespace, body)
    metrics.ROLLOUTS.labels(namespace, deployment).inc()
    return RolloutResult(found=True, rolled=True)
