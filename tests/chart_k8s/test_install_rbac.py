"""`helm install` on a real API server, and the operator's RBAC proven with its own ServiceAccount.

One release for the module: two operator replicas watching the release namespace and one more
(named-namespaces mode), two providers, Pod Security "restricted" enforced on the release
namespace. The CRD is the session's (crds.install=false: a cluster has one owner of it). Tokens:
the release namespace grants kv-reader through the chart value, the team namespace through the
Role of docs/aks.md; nothing else is granted anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from llmhub_operator.kube import make_api_client
from tests.chart_k8s.conftest import (
    PROVIDERS,
    apply_rbac,
    as_admin,
    create_namespaces,
    delete_namespaces,
    documented_token_grant,
    status_of,
    unique,
)
from tests.chart_k8s.helm import Helm
from tests.chart_k8s.rbac import SYSTEM_ACCOUNT, granted, operator_needs
from tests.fakes.fake_azure import FakeAzure
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kube import GROUP, PLURAL, VERSION, RealKube, decode
from tests.operator.k8s.operators import OperatorProcess
from tests.operator.k8s.test_llmgateways import condition, create_gateway, read_gateway
from tests.waiting import eventually

RELEASE = "hub"
MERGE = {"_content_type": "application/merge-patch+json"}
OPERATOR, GATEWAY = "hub-llm-mcp-hub-operator", "hub-llm-mcp-hub-gateway"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
READER = "kv-reader"  # the ServiceAccount each namespace grants the operator, by name
CLIENT_ID = "azure.workload.identity/client-id"
TEAM_TOKEN = "sk-ant-oat01-" + "chart-rbac-team-token-0021"


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
        "operator": {
            "replicaCount": 2,
            "watchNamespaces": [ns, watched],
            "keyVault": {"tokenRequestServiceAccounts": [READER]},
            "llmGateways": {"namespaces": [watched]},  # a tenant's LLMGateways: there only
        },
        "providers": PROVIDERS,
    }
    try:
        helm_k8s.install(RELEASE, ns, values)
        grant = documented_token_grant(watched, OPERATOR, ns)
        as_admin(control_plane, lambda api: apply_rbac(api, grant))
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
        RELEASE,
        namespaces,
        {release.namespace, release.watched},
        cluster_wide=False,
        token_grants={release.namespace: {READER}, release.watched: {READER}},
        gateway_namespaces={release.watched},
    )
    assert await granted(operator_api, list(needs)) == needs


async def test_operator_identity_owns_llm_gateway_objects_only_in_the_named_namespace(
    release: Release, operator_api: client.ApiClient
) -> None:
    """Real requests: a gateway's objects in the opted-in namespace pass; elsewhere 403, and
    no Secret right comes with them."""
    core, apps = client.CoreV1Api(operator_api), client.AppsV1Api(operator_api)
    account = {"metadata": {"name": "gw-probe"}}
    await core.create_namespaced_service_account(release.watched, account)
    await core.patch_namespaced_service_account("gw-probe", release.watched, account, **MERGE)
    await core.delete_namespaced_service_account("gw-probe", release.watched)
    for ns in (release.namespace, release.other):
        assert await status_of(core.create_namespaced_service_account(ns, account)) == 403
        assert await status_of(apps.list_namespaced_deployment(ns)) == 403
    assert await status_of(apps.list_namespaced_deployment(release.watched)) == 200
    assert await status_of(core.delete_namespaced_secret("x", release.watched)) == 403


async def test_gateways_of_the_named_namespace_may_review_tokens_and_nothing_more(
    release: Release, admin: client.ApiClient
) -> None:
    """The `kubernetes` caller mode of an operator-rendered gateway: its ServiceAccount (any name,
    in a namespace of operator.llmGateways.namespaces) may create TokenReviews, asked of the real
    authorizer by SubjectAccessReview; one of another namespace may not, and the grant reads no
    Secret."""
    authz = client.AuthorizationV1Api(admin)

    async def may(namespace: str, verb: str, group: str, resource: str) -> bool:
        user = f"system:serviceaccount:{namespace}:tenant-gateway"
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        attributes = {"verb": verb, "group": group, "resource": resource}
        if resource == "secrets":
            attributes["namespace"] = namespace
        review = await authz.create_subject_access_review(
            {"spec": {"user": user, "groups": groups, "resourceAttributes": attributes}}
        )
        return bool(review.status.allowed)

    assert await may(release.watched, "create", "authentication.k8s.io", "tokenreviews")
    assert not await may(release.other, "create", "authentication.k8s.io", "tokenreviews")
    assert not await may(release.watched, "get", "", "secrets")
    assert not await may(release.watched, "create", "authorization.k8s.io", "subjectaccessreviews")


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

    # LLMProvider status (patched, never read), and core v1 Events only.
    await custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "claude", {"status": {"phase": "Pending"}}, **MERGE
    )
    reading = custom.get_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "claude")
    assert await status_of(reading) == 403
    deleting = custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "claude")
    assert await status_of(deleting) == 403
    involved = {"kind": "LLMProvider", "namespace": ns, "name": "claude"}
    await core.create_namespaced_event(
        ns, {"metadata": {"generateName": "claude-"}, "involvedObject": involved, "reason": "T"}
    )
    refused_event = events.create_namespaced_event(
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
    assert await status_of(refused_event) == 403

    # Tokens: the granted account of each namespace, never another, never kube-system.
    token = {"spec": {"audiences": ["api://AzureADTokenExchange"], "expirationSeconds": 600}}
    admin_core = client.CoreV1Api(admin)
    for namespace in (ns, watched, other):
        for account in (READER, "builder"):
            await admin_core.create_namespaced_service_account(
                namespace, {"metadata": {"name": account}}
            )
    for namespace in (ns, watched):
        await core.create_namespaced_service_account_token(READER, namespace, token)
        minting = core.create_namespaced_service_account_token("builder", namespace, token)
        assert await status_of(minting) == 403
    assert (
        await status_of(core.create_namespaced_service_account_token(READER, other, token)) == 403
    )
    system = core.create_namespaced_service_account_token(SYSTEM_ACCOUNT, "kube-system", token)
    assert await status_of(system) == 403


async def test_chart_rbac_operator_reads_as_granted_accounts_only_and_keeps_a_renamed_secret(
    release: Release, admin: client.ApiClient, fake_azure: FakeAzure, tmp_path: Path
) -> None:
    """The real operator as the chart's ServiceAccount: a granted identity works, an un-granted
    one is a clear status (the operator keeps running), and a renamed target leaves the old
    Secret to the garbage collector, as docs/operator.md says."""
    ns, watched = release.namespace, release.watched
    team = RealKube(api=admin, namespace=watched, plane=release.helm.plane)
    for account in (READER, "builder"):  # both annotated and federated: only RBAC differs
        await team.core.patch_namespaced_service_account(
            account, watched, {"metadata": {"annotations": {CLIENT_ID: f"{account}-client"}}}
        )
    keyset = await client.OpenidApi(admin).get_service_account_issuer_open_id_keyset(
        _preload_content=False
    )
    fake_azure.reset()
    fake_azure.jwks = json.loads(await keyset.read())
    for account in (READER, "builder"):
        subject = f"system:serviceaccount:{watched}:{account}"
        fake_azure.federate(f"{account}-client", subject, readers_of=("team-token",))
    fake_azure.set_secret("team-token", TEAM_TOKEN)
    for name, account in (("granted", READER), ("ungranted", "builder")):
        source = {
            "azureKeyVault": {
                "vaultUrl": fake_azure.base_url,
                "secretName": "team-token",
                "serviceAccountName": account,
            }
        }
        await team.create_provider(name, fake_azure.base_url, gateway={}, source=source)
    token = await team.service_account_token(OPERATOR, ns)
    kubeconfig = team.token_kubeconfig(tmp_path / "operator.kubeconfig", token)
    env = {
        **fake_azure.env(),
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACES": f"{ns},{watched}",
        "POD_NAMESPACE": ns,
        "LEADER_ELECTION": "false",
    }
    # LLMGateways: owned where the chart names the namespace, a clear refusal elsewhere.
    await create_gateway(team, "tenant", watched, providers={"names": ["granted"]})
    await create_gateway(team, "home", ns, providers={"names": ["claude"]})
    operator = OperatorProcess(env=env, log_path=tmp_path / "operator.log").start()
    try:
        await team.wait_phase("granted", "Ready", timeout=60)
        assert decode(await team.secret("granted-credentials"), "CLAUDE_CODE_OAUTH_TOKEN") == (
            TEAM_TOKEN
        )
        tenant = await eventually(
            lambda: read_gateway(team, "tenant", watched),
            lambda b: condition(b, "Reconciling").get("status") == "True",
            timeout=60,
        )
        assert [p["name"] for p in tenant["status"]["providers"]] == ["granted"]
        pods = await eventually(  # admitted under Pod Security "restricted" in that namespace
            lambda: team.core.list_namespaced_pod(watched, label_selector="llm-mcp-hub.io/gateway"),
            lambda listed: len(listed.items) >= 1,
            timeout=60,
        )
        assert {p.spec.service_account_name for p in pods.items} == {"tenant"}
        home = await eventually(
            lambda: read_gateway(team, "home", ns),
            lambda b: condition(b, "Stalled").get("reason") == "ApiRefused",
            timeout=60,
        )
        assert "operator.llmGateways.namespaces" in condition(home, "Stalled")["message"]
        assert await status_of(team.apps.read_namespaced_deployment("home", ns)) == 404
        refused = await eventually(
            lambda: team.provider("ungranted"),
            lambda b: _synced(b).get("reason") == "ServiceAccountNotGranted",
            timeout=60,
        )
        assert refused["status"]["phase"] == "Degraded"
        assert (
            f"namespace {watched} has not granted the operator ServiceAccount builder"
            in (_synced(refused)["message"])
        )
        subjects = {r.subject for r in fake_azure.token_requests() if r.status == 200}
        assert subjects == {f"system:serviceaccount:{watched}:{READER}"}

        # No delete on Secrets: the old one stays, owned by the LLMProvider, and is named.
        old = await team.secret("granted-credentials")
        await team.patch_spec("granted", {"target": {"secretName": "granted-renamed"}})
        await eventually(
            lambda: team.secret_or_none("granted-renamed"), lambda s: s is not None, timeout=30
        )
        [stale] = await eventually(lambda: team.events("StaleSecret"), lambda e: len(e) == 1)
        assert "granted-credentials" in stale.message
        assert (await team.secret("granted-credentials")).metadata.uid == old.metadata.uid
        assert operator.proc is not None
        assert operator.proc.poll() is None, "a refused identity never crashes the operator"

        await team.delete_provider("granted")  # ... until the LLMProvider goes
        for name in ("granted-credentials", "granted-renamed"):
            await eventually(lambda n=name: team.secret_or_none(n), lambda s: s is None, timeout=30)
    finally:
        operator.stop()


def _synced(body: dict[str, Any]) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Synced"), {})


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
