"""`helm install` on a real API server, and the operator's RBAC proven with its own ServiceAccount.

One release for the module: two operator replicas watching the release namespace and one more
(named-namespaces mode), two providers, Pod Security "restricted" enforced on the release
namespace. The CRD is the session's (crds.install=false: a cluster has one owner of it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from llmhub_operator.kube import make_api_client
from tests.chart_k8s.conftest import (
    PROVIDERS,
    as_admin,
    create_namespaces,
    delete_namespaces,
    status_of,
    unique,
)
from tests.chart_k8s.helm import Helm
from tests.chart_k8s.rbac import granted, operator_needs
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kube import GROUP, PLURAL, VERSION, RealKube
from tests.waiting import eventually

RELEASE = "hub"
MERGE = {"_content_type": "application/merge-patch+json"}
OPERATOR, GATEWAY = "hub-llm-mcp-hub-operator", "hub-llm-mcp-hub-gateway"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@dataclass(frozen=True)
class Release:
    helm: Helm
    namespace: str  # the release namespace, watched
    watched: str  # a second watched namespace
    other: str  # a namespace the operator does not watch
    manifests: list[dict[str, Any]]


@pytest.fixture(scope="module")
def release(control_plane: ControlPlane, helm_k8s: Helm) -> Iterator[Release]:
    ns, watched, other = unique("hub"), unique("team"), unique("other")
    as_admin(control_plane, lambda api: create_namespaces(api, [ns, watched, other], RESTRICTED))
    values = {
        "crds": {"install": False},
        "operator": {"replicaCount": 2, "watchNamespaces": [ns, watched]},
        "providers": PROVIDERS,
    }
    try:
        helm_k8s.install(RELEASE, ns, values)
        yield Release(helm_k8s, ns, watched, other, helm_k8s.manifest(RELEASE, ns))
    finally:
        helm_k8s.run("uninstall", RELEASE, "-n", ns)
        as_admin(control_plane, lambda api: delete_namespaces(api, [ns, watched, other]))


@pytest.fixture
async def operator_api(release: Release, admin: client.ApiClient, tmp_path: Path) -> Any:
    """A client that is the chart's operator ServiceAccount (a TokenRequest token)."""
    kube = RealKube(api=admin, namespace=release.namespace, plane=release.helm.plane)
    token = await kube.service_account_token(OPERATOR)
    api = await make_api_client(str(kube.token_kubeconfig(tmp_path / "operator.kubeconfig", token)))
    try:
        yield api
    finally:
        await api.close()


def _pods_of(pods: client.V1PodList, component: str) -> list[client.V1Pod]:
    return [p for p in pods.items if p.metadata.labels["app.kubernetes.io/component"] == component]


async def test_install_creates_every_object_and_restricted_pods_for_two_operators(
    release: Release, admin: client.ApiClient
) -> None:
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    rendered = {(m["kind"], m["metadata"]["name"]) for m in release.manifests}
    assert ("Role", "hub-llm-mcp-hub-operator-leader") in rendered
    assert not [kind for kind, _ in rendered if kind in ("CustomResourceDefinition", "KopfPeering")]
    operator = await apps.read_namespaced_deployment(OPERATOR, release.namespace)
    assert operator.spec.replicas == 2
    assert operator.spec.strategy.type == "RollingUpdate"
    # No kubelet: pods stay Pending, but the ReplicaSets create them through admission, so the
    # API server's Pod Security "restricted" check passes on every pod of the chart.
    pods = await eventually(
        lambda: core.list_namespaced_pod(release.namespace),
        lambda listed: (
            len(_pods_of(listed, "operator")) == 2
            and len(_pods_of(listed, "gateway")) == 2
            and len(_pods_of(listed, "redis")) == 1
        ),
        timeout=30,
    )
    for pod in _pods_of(pods, "operator"):
        env = {e.name: e for e in pod.spec.containers[0].env}
        assert env["POD_NAME"].value_from.field_ref.field_path == "metadata.name"
        assert env["LEASE_NAME"].value == OPERATOR
    providers = await client.CustomObjectsApi(admin).list_namespaced_custom_object(
        GROUP, VERSION, release.namespace, PLURAL
    )
    assert sorted(p["metadata"]["name"] for p in providers["items"]) == ["claude", "gemini"]
    for p in providers["items"]:  # accepted by the real CRD schema, rolling this release's gateway
        assert p["spec"]["gateway"]["deploymentName"] == GATEWAY
        assert not p["metadata"].get("finalizers")


async def test_operator_service_account_may_do_exactly_what_the_operator_needs(
    release: Release, operator_api: client.ApiClient
) -> None:
    """Every verb on every resource the operator touches, asked of the real RBAC authorizer."""
    namespaces = [release.namespace, release.watched, release.other]
    needs = operator_needs(
        RELEASE, namespaces, {release.namespace, release.watched}, cluster_wide=False
    )
    assert await granted(operator_api, list(needs)) == needs


async def test_operator_identity_writes_what_it_must_and_is_refused_the_rest(
    release: Release, admin: client.ApiClient, operator_api: client.ApiClient
) -> None:
    """The same, as real requests: what the operator does passes, the rest gets 403."""
    core, apps = client.CoreV1Api(operator_api), client.AppsV1Api(operator_api)
    custom = client.CustomObjectsApi(operator_api)
    coordination = client.CoordinationV1Api(operator_api)
    events = client.EventsV1Api(operator_api)
    ns, watched, other = release.namespace, release.watched, release.other

    # Secrets in a watched namespace: create, read, list, replace guarded by resourceVersion.
    body = {"metadata": {"name": "probe"}, "stringData": {"k": "v1"}}
    await core.create_namespaced_secret(watched, body)
    secret = await core.read_namespaced_secret("probe", watched)
    assert (await core.list_namespaced_secret(watched)).items
    secret.string_data = {"k": "v2"}
    await core.replace_namespaced_secret("probe", watched, secret)
    stale = {
        **body,
        "metadata": {"name": "probe", "resourceVersion": secret.metadata.resource_version},
    }
    assert await status_of(core.replace_namespaced_secret("probe", watched, stale)) == 409
    assert (
        await status_of(core.patch_namespaced_secret("probe", watched, {"data": {}}, **MERGE))
        == 403
    )
    assert await status_of(core.delete_namespaced_secret("probe", watched)) == 403

    # A namespace it does not watch: nothing, not even reading.
    await client.CoreV1Api(admin).create_namespaced_secret(other, body)
    assert await status_of(core.read_namespaced_secret("probe", other)) == 403
    assert await status_of(core.list_namespaced_secret(other)) == 403
    assert (
        await status_of(core.patch_namespaced_secret("probe", other, {"data": {}}, **MERGE)) == 403
    )
    assert await status_of(core.create_namespaced_secret(other, {"metadata": {"name": "x"}})) == 403

    # The gateway Deployment of this release only.
    roll = {
        "spec": {"template": {"metadata": {"annotations": {"llm-mcp-hub.io/claude-hash": "x"}}}}
    }
    assert (await apps.read_namespaced_deployment(GATEWAY, ns)).metadata.name == GATEWAY
    await apps.patch_namespaced_deployment(GATEWAY, ns, roll, **MERGE)
    assert await status_of(apps.patch_namespaced_deployment(OPERATOR, ns, roll, **MERGE)) == 403
    assert await status_of(apps.list_namespaced_deployment(ns)) == 403

    # The Lease, in the release namespace only.
    lease = {"metadata": {"name": OPERATOR}, "spec": {"holderIdentity": "pod-a"}}
    await coordination.create_namespaced_lease(ns, lease)
    current = await coordination.read_namespaced_lease(OPERATOR, ns)
    current.spec.holder_identity = "pod-b"
    await coordination.replace_namespaced_lease(OPERATOR, ns, current)
    assert await status_of(coordination.delete_namespaced_lease(OPERATOR, ns)) == 403
    assert await status_of(coordination.create_namespaced_lease(watched, lease)) == 403

    # LLMProvider status, and Events in both API groups.
    await custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "claude", {"status": {"phase": "Pending"}}, **MERGE
    )
    deleting = custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "claude")
    assert await status_of(deleting) == 403
    involved = {"kind": "LLMProvider", "namespace": ns, "name": "claude"}
    await core.create_namespaced_event(
        ns, {"metadata": {"generateName": "claude-"}, "involvedObject": involved, "reason": "T"}
    )
    await events.create_namespaced_event(
        ns,
        {
            "metadata": {"generateName": "claude-"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "llm-mcp-hub.io/operator",
            "reportingInstance": "test",
            "action": "Sync",
            "reason": "T",
            "type": "Normal",
            "regarding": involved,
        },
    )


async def test_helm_uninstall_completes_and_takes_the_llmproviders_with_it(
    release: Release, admin: client.ApiClient
) -> None:
    """Last in the module: no finalizer holds anything, so `--wait` returns promptly."""
    release.helm.uninstall(RELEASE, release.namespace)
    custom = client.CustomObjectsApi(admin)
    left = await custom.list_namespaced_custom_object(GROUP, VERSION, release.namespace, PLURAL)
    assert left["items"] == []
    deployments = await client.AppsV1Api(admin).list_namespaced_deployment(release.namespace)
    assert deployments.items == []
    crd = await client.ApiextensionsV1Api(admin).read_custom_resource_definition(
        f"{PLURAL}.{GROUP}"
    )
    assert crd.metadata.name == f"{PLURAL}.{GROUP}"
