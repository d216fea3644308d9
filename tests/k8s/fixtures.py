"""pytest fixtures for the real control plane: one per test session, a fresh namespace per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client

from llmhub_operator.kube import make_api_client
from tests.k8s.controlplane import ControlPlane, MissingBinaries, find_binaries
from tests.k8s.kube import RealKube

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "llm-mcp-hub.io_llmproviders.yaml"
GATEWAY_CRD_FILE = CRD_FILE.with_name("llm-mcp-hub.io_llmgateways.yaml")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager v1.31 on free loopback ports."""
    try:
        binaries = find_binaries()
    except MissingBinaries as exc:
        if _in_ci():  # CI always runs this tier: a missing binary is a failure, not a skip
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    plane = ControlPlane(tmp_path_factory.mktemp("k8s"), binaries)
    try:
        plane.start()
        asyncio.run(_install_crd(plane.kubeconfig))
        yield plane
    finally:
        plane.cleanup()


async def _install_crd(kubeconfig: Path) -> None:
    api = await make_api_client(str(kubeconfig))
    try:
        await apply_crd(api)
        await apply_crd(api, GATEWAY_CRD_FILE)
    finally:
        await api.close()


async def apply_crd(api: client.ApiClient, path: Path = CRD_FILE) -> None:
    """Create (or replace) the LLMProvider CRD and wait until it is served."""
    ext = client.ApiextensionsV1Api(api)
    body = yaml.safe_load(path.read_text())
    name = body["metadata"]["name"]
    try:
        await ext.create_custom_resource_definition(body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        current = await ext.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        await ext.replace_custom_resource_definition(name, body)
    for _ in range(200):
        crd = await ext.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in (crd.status.conditions or [])}
        if conditions.get("Established") == "True":
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"CRD {name} not established")


@pytest.fixture
async def k8s(control_plane: ControlPlane) -> AsyncIterator[RealKube]:
    """An admin client and a fresh namespace of its own; the namespace is deleted afterwards."""
    api = await make_api_client(str(control_plane.kubeconfig))
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    kube = RealKube(api=api, namespace=namespace, plane=control_plane)
    await kube.create_namespace(namespace)
    try:
        yield kube
    finally:
        try:
            await client.CoreV1Api(api).delete_namespace(namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        await api.close()
