"""The chart installed by real helm on the real control plane (tests/k8s): fixtures and helpers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from llmhub_operator.kube import make_api_client
from tests.chart_k8s.helm import Helm
from tests.k8s.controlplane import ControlPlane
from tests.operator.conftest import fake_azure  # noqa: F401

PROVIDERS = [
    {
        "name": "claude",
        "provider": "claude",
        "vaultUrl": "https://kv.vault.azure.net",
        "secretName": "claude-oauth-token",
    },
    {
        "name": "gemini",
        "provider": "gemini",
        "vaultUrl": "https://kv.vault.azure.net",
        "secretName": "gemini-oauth-creds",
    },
]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_namespaces(
    api: client.ApiClient, names: Iterable[str], labels: dict[str, str] | None = None
) -> None:
    core = client.CoreV1Api(api)
    for name in names:
        await core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})


async def delete_namespaces(api: client.ApiClient, names: Iterable[str]) -> None:
    core = client.CoreV1Api(api)
    for name in names:
        try:
            await core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def as_admin(plane: ControlPlane, fn: Callable[[client.ApiClient], Awaitable[None]]) -> None:
    """Run ``fn(api)`` with a fresh admin client, from sync (module-scoped) fixtures."""

    async def run() -> None:
        api = await make_api_client(str(plane.kubeconfig))
        try:
            await fn(api)
        finally:
            await api.close()

    asyncio.run(run())


async def status_of(call: Awaitable[Any]) -> int:
    """HTTP status of one API call: 200/201 when it went through, else the error's status."""
    try:
        await call
    except client.ApiException as exc:
        return int(exc.status)
    return 200


@pytest.fixture(scope="module")
def helm_k8s(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(control_plane, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture
async def admin(control_plane: ControlPlane) -> AsyncIterator[client.ApiClient]:
    api = await make_api_client(str(control_plane.kubeconfig))
    try:
        yield api
    finally:
        await api.close()


AKS_DOC = Path(__file__).resolve().parents[2] / "docs" / "aks.md"
GRANT_MARKER = "<!-- operator-token-grant -->"


def documented_token_grant(namespace: str, operator: str, home: str) -> list[dict[str, Any]]:
    """docs/aks.md's Role + RoleBinding a team creates, for ``namespace`` and this operator."""
    text = AKS_DOC.read_text().split(GRANT_MARKER, 1)[1]
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    docs = [d for d in yaml.safe_load_all(block) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            subject.update(name=operator, namespace=home)
    return docs


async def apply_rbac(api: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    for doc in docs:
        namespace = doc["metadata"]["namespace"]
        if doc["kind"] == "Role":
            await rbac.create_namespaced_role(namespace, doc)
        else:
            await rbac.create_namespaced_role_binding(namespace, doc)
