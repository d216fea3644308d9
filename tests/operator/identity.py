"""An operator identity with the chart's least privilege, for tests that run it on the real API
server as a ServiceAccount instead of as cluster-admin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.k8s.kube import RealKube

CLUSTER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
]


def namespace_rules(deployments: dict[str, Any]) -> list[dict[str, Any]]:
    """What the operator needs in a watched namespace, with ``deployments`` as its one rule on
    Deployments (the chart's: get/list/watch/patch with resourceNames of its gateway)."""
    return [
        {
            "apiGroups": ["llm-mcp-hub.io"],
            "resources": ["llmproviders"],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {
            "apiGroups": ["llm-mcp-hub.io"],
            "resources": ["llmproviders/status"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "list", "watch", "create", "update"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], **deployments},
    ]


async def operator_kubeconfig(k8s: RealKube, path: Path, deployments: dict[str, Any]) -> Path:
    """A ServiceAccount ``op`` with exactly those rights, and a kubeconfig with its token."""
    await k8s.core.create_namespaced_service_account(k8s.namespace, {"metadata": {"name": "op"}})
    await k8s.grant("op", namespace_rules(deployments))
    await k8s.grant("op", CLUSTER_RULES, cluster=True)
    token = await k8s.service_account_token("op")
    return k8s.token_kubeconfig(path, token)
