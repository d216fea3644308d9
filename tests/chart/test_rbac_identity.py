"""Least-privilege RBAC for the operator, none for the gateway, and the Azure identity wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.conftest import (
    CHART,
    CI_VALUES,
    Manifest,
    ci_file,
    container,
    env_of,
    find,
    one,
    render,
    run_helm,
)
from tests.chart_k8s.rbac import GATEWAY_KINDS

VALUE_SETS: list[list[Path]] = [[], *([p] for p in CI_VALUES)]
IDS = ["default", *(p.name.removesuffix("-values.yaml") for p in CI_VALUES)]
ROLE_KINDS = ("Role", "ClusterRole")
WI_LABEL = "azure.workload.identity/use"


def _rules(docs: list[Manifest]) -> list[Manifest]:
    return [r for d in docs if d["kind"] in ROLE_KINDS for r in d["rules"]]


def _grants(docs: list[Manifest], group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for r in _rules(docs):
        if group in r["apiGroups"] and resource in r["resources"]:
            verbs |= set(r["verbs"])
    return verbs


# What an LLMGateway owns: deleted one by one (uid precondition) when its spec drops it.
GATEWAY_OWNED = set(GATEWAY_KINDS)


@pytest.mark.parametrize("files", VALUE_SETS, ids=IDS)
def test_rbac_names_every_verb_resource_and_group_explicitly(files: list[Path]) -> None:
    rules = _rules(render(files))
    assert rules
    for r in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in r[field], r
        assert not {"deletecollection", "escalate", "bind", "impersonate"} & set(r["verbs"]), r
        if "delete" in r["verbs"]:  # only an LLMGateway's own kinds, never Secrets
            assert {(g, res) for g in r["apiGroups"] for res in r["resources"]} <= GATEWAY_OWNED, r


def test_llm_gateway_rights_follow_the_switch_and_add_no_secret_right() -> None:
    on = render(sets=("operator.llmGateways.namespaces={hub}",))
    off = render(
        sets=("operator.llmGateways.enabled=false", "operator.llmGateways.namespaces={hub}")
    )
    assert _grants(on, "llm-mcp-hub.io", "llmgateways") == {"get", "list", "watch"}
    assert _grants(on, "llm-mcp-hub.io", "llmgateways/status") == {"patch"}
    for group, resource in GATEWAY_OWNED:
        assert _grants(on, group, resource) >= {"get", "list", "create", "patch", "delete"}
        assert "delete" not in _grants(off, group, resource)
    assert _grants(off, "llm-mcp-hub.io", "llmgateways") == set()
    assert _grants(on, "", "secrets") == _grants(off, "", "secrets")
    assert "serviceaccounts/token" not in {res for r in _rules(on) for res in r["resources"]}


TOKEN_REVIEW = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
]


def _gateway_rules(docs: list[Manifest]) -> list[list[Manifest]]:
    """The rules of every role bound to the gateway's ServiceAccount."""
    gateway_sa = one(docs, "ServiceAccount", "-gateway")["metadata"]["name"]
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ROLE_KINDS}
    bound = []
    for b in docs:
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(
            s["name"] == gateway_sa for s in b["subjects"]
        ):
            bound.append(roles[(b["roleRef"]["kind"], b["roleRef"]["name"])]["rules"])
    return bound


@pytest.mark.parametrize("files", VALUE_SETS, ids=IDS)
def test_gateway_service_account_may_only_create_token_reviews(files: list[Path]) -> None:
    docs = render(files)
    modes = env_of(container(one(docs, "Deployment", "-gateway")))["AUTH_MODES"]["value"]
    expected = [TOKEN_REVIEW] if "kubernetes" in modes.split(",") else []
    assert _gateway_rules(docs) == expected


def test_without_the_kubernetes_mode_the_gateway_is_bound_to_nothing() -> None:
    docs = render(sets=["gateway.auth.modes={static}", "gateway.auth.static.existingSecret=k"])
    assert _gateway_rules(docs) == []
    assert not [d for d in docs if d["metadata"]["name"].endswith("-tokenreview")]


def test_tenant_gateways_may_only_create_token_reviews_and_only_in_named_namespaces() -> None:
    sets = ("operator.llmGateways.namespaces={team-a,team-b}",)
    docs = render(sets=sets)
    bindings = [d for d in docs if d["metadata"]["name"].endswith("gateways-tokenreview-hub")]
    binding = one(bindings, "ClusterRoleBinding", "gateways-tokenreview-hub")
    assert [s["name"] for s in binding["subjects"]] == [
        "system:serviceaccounts:team-a",
        "system:serviceaccounts:team-b",
    ]
    role = one(bindings, "ClusterRole", "gateways-tokenreview-hub")
    assert role["rules"] == TOKEN_REVIEW
    off = render(sets=(*sets, "operator.llmGateways.tokenReviews=false"))
    assert not [d for d in off if "gateways-tokenreview" in d["metadata"]["name"]]
    assert not [d for d in render() if "gateways-tokenreview" in d["metadata"]["name"]]


def test_operator_gets_exactly_what_it_needs_in_the_release_namespace(
    default_docs: list[Manifest],
) -> None:
    # patch on llmproviders only releases the finalizer of older operator versions.
    assert _grants(default_docs, "llm-mcp-hub.io", "llmproviders") == {
        "get",
        "list",
        "watch",
        "patch",
    }
    assert _grants(default_docs, "llm-mcp-hub.io", "llmproviders/status") == {"patch"}
    # Secrets are replaced guarded by resourceVersion, never patched; the GC deletes them.
    assert _grants(default_docs, "", "secrets") == {"get", "list", "watch", "create", "update"}
    assert _grants(default_docs, "", "events") == {"create"}
    assert _grants(default_docs, "events.k8s.io", "events") == set(), "only core v1 Events"
    assert _grants(default_docs, "", "serviceaccounts") == set()
    assert _grants(default_docs, "", "serviceaccounts/token") == set(), "no token by default"
    assert _grants(default_docs, "apiextensions.k8s.io", "customresourcedefinitions") == {
        "get",
        "list",
        "watch",
    }
    # kopf lists namespaces only when watching named ones (kopf/_core/reactor/observation.py).
    assert _grants(default_docs, "", "namespaces") == {"list", "watch"}
    assert _grants(default_docs, "coordination.k8s.io", "leases") == {"get", "create", "update"}
    sa = one(default_docs, "ServiceAccount", "-operator")["metadata"]["name"]
    roles = find(default_docs, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"hub"}
    bindings = find(default_docs, "RoleBinding")
    assert {b["roleRef"]["name"] for b in bindings} == {r["metadata"]["name"] for r in roles}
    assert all(
        b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "hub"}]
        for b in bindings
    )


def test_operator_may_get_watch_and_patch_only_the_gateway_deployment(
    default_docs: list[Manifest],
) -> None:
    docs = default_docs  # LLMGateways' objects only in operator.llmGateways.namespaces
    gateway = one(docs, "Deployment", "-gateway")["metadata"]["name"]
    deployment_rules = [r for r in _rules(docs) if "deployments" in r["resources"]]
    assert deployment_rules == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": [gateway],
            "verbs": ["get", "list", "watch", "patch"],
        }
    ]


def test_operator_gets_one_role_per_watched_namespace_and_its_lease_role_at_home() -> None:
    docs = render(sets=("operator.watchNamespaces={team-a,team-b}",))
    namespaced = [r for r in find(docs, "Role") if "secrets" in str(r["rules"])]
    assert sorted(r["metadata"]["namespace"] for r in namespaced) == ["team-a", "team-b"]
    (lease_role,) = [r for r in find(docs, "Role") if "leases" in str(r["rules"])]
    assert lease_role["metadata"]["namespace"] == "hub", "the Lease lives in the release namespace"
    assert sorted(b["metadata"]["namespace"] for b in find(docs, "RoleBinding")) == [
        "hub",
        "team-a",
        "team-b",
    ]
    env = env_of(container(one(docs, "Deployment", "-operator")))
    assert env["WATCH_NAMESPACES"]["value"] == "team-a,team-b"


def test_llm_gateways_objects_are_owned_only_in_the_namespaces_named() -> None:
    docs = render([ci_file("ha-operator")])
    owned = [r for d in find(docs, "ClusterRole") for r in d["rules"] if "delete" in r["verbs"]]
    assert owned == [], "never cluster-wide: pods as any ServiceAccount of any namespace"
    assert _grants(find(docs, "ClusterRole"), "llm-mcp-hub.io", "llmgateways") == {
        "get",
        "list",
        "watch",
    }
    named = render([ci_file("ha-operator")], sets=("operator.llmGateways.namespaces={team-a}",))
    (role,) = [r for r in find(named, "Role") if r["metadata"]["name"].endswith("-gateways")]
    assert role["metadata"]["namespace"] == "team-a"
    (binding,) = [
        b for b in find(named, "RoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert binding["metadata"]["namespace"] == "team-a"
    assert binding["subjects"][0]["name"].endswith("-operator")


def test_ha_operator_watches_all_namespaces_and_elects_a_leader_by_lease() -> None:
    docs = render([ci_file("ha-operator")])
    (lease_role,) = find(docs, "Role")
    assert lease_role["metadata"]["namespace"] == "hub"
    assert _grants([lease_role], "coordination.k8s.io", "leases") == {"get", "create", "update"}
    assert _grants(docs, "", "namespaces") == set(), "cluster-wide kopf never lists namespaces"
    cluster_secrets = [
        r for d in find(docs, "ClusterRole") for r in d["rules"] if "secrets" in r["resources"]
    ]
    assert cluster_secrets, "watchAllNamespaces grants the namespaced rules cluster-wide"
    operator = one(docs, "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 2
    assert operator["spec"]["strategy"]["type"] == "RollingUpdate"
    env = env_of(container(operator))
    assert env["LEADER_ELECTION"]["value"] == "true"
    assert env["LEASE_NAME"]["value"] == operator["metadata"]["name"]
    assert env["WATCH_NAMESPACES"]["value"] == ""


def test_nothing_of_kopf_peering_is_left() -> None:
    for docs in (render(), render([ci_file("ha-operator")])):
        assert not [d for d in docs if d["apiVersion"].startswith("kopf.dev/")]
        assert not [r for r in _rules(docs) if "kopf.dev" in r["apiGroups"]]
        env = env_of(container(one(docs, "Deployment", "-operator")))
        assert "PEERING_NAME" not in env
    assert not list((CHART / "templates").glob("*peering*"))


def test_no_lease_role_without_leader_election() -> None:
    docs = render(sets=("operator.leaderElection.enabled=false",))
    assert _grants(docs, "coordination.k8s.io", "leases") == set()
    operator = one(docs, "Deployment", "-operator")
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    assert env_of(container(operator))["LEADER_ELECTION"]["value"] == "false"


def test_workload_identity_annotates_the_service_account_and_labels_the_pod() -> None:
    docs = render([ci_file("aks-workload-identity")])
    sa = one(docs, "ServiceAccount", "-operator")
    assert sa["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": "00000000-1111-2222-3333-444444444444",
        "azure.workload.identity/tenant-id": "55555555-6666-7777-8888-999999999999",
    }
    operator = one(docs, "Deployment", "-operator")
    assert operator["spec"]["template"]["metadata"]["labels"][WI_LABEL] == "true"
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    env = env_of(container(operator))
    assert not {k for k in env if k.startswith("AZURE_")}, "the webhook injects them"
    gateway = one(docs, "Deployment", "-gateway")
    assert WI_LABEL not in gateway["spec"]["template"]["metadata"]["labels"]


def test_token_projection_renders_the_projected_token_and_azure_env() -> None:
    docs = render([ci_file("kind")])
    operator = one(docs, "Deployment", "-operator")
    spec = operator["spec"]["template"]["spec"]
    assert WI_LABEL not in operator["spec"]["template"]["metadata"]["labels"]
    assert "annotations" not in one(docs, "ServiceAccount", "-operator")["metadata"]
    volume = next(v for v in spec["volumes"] if v["name"] == "azure-identity-token")
    assert volume["projected"]["sources"] == [
        {
            "serviceAccountToken": {
                "audience": "api://AzureADTokenExchange",
                "expirationSeconds": 3600,
                "path": "azure-identity-token",
            }
        }
    ]
    c = container(operator)
    mount = next(m for m in c["volumeMounts"] if m["name"] == "azure-identity-token")
    assert mount == {
        "name": "azure-identity-token",
        "mountPath": "/var/run/secrets/azure/tokens",
        "readOnly": True,
    }
    env = {k: v["value"] for k, v in env_of(c).items() if "value" in v}
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == "/var/run/secrets/azure/tokens/azure-identity-token"
    assert env["AZURE_CLIENT_ID"] == "11111111-2222-3333-4444-555555555555"
    assert env["AZURE_TENANT_ID"] == "66666666-7777-8888-9999-000000000000"
    assert env["AZURE_AUTHORITY_HOST"] == "https://fake-azure.llm-mcp-hub-system.svc:8443"
    assert env["LLMHUB_AZURE_CA_BUNDLE"] == "/etc/llmhub/azure-ca/ca.crt"
    assert env["LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE"] == "false"
    ca = next(v for v in spec["volumes"] if v["name"] == "azure-ca")
    assert ca["configMap"]["name"] == "fake-azure-ca"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("operator.azure.tokenProjection.enabled=true",), "needs operator.azure.clientId"),
        (
            (
                "operator.azure.tokenProjection.enabled=true",
                "operator.azure.clientId=11111111-2222-3333-4444-555555555555",
            ),
            "needs operator.azure.tenantId",
        ),
    ],
)
def test_token_projection_without_identity_is_refused(sets: tuple[str, ...], message: str) -> None:
    args = ["template", "x", str(CHART)]
    for s in sets:
        args += ["--set", s]
    done = run_helm(*args)
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize("files", VALUE_SETS, ids=IDS)
def test_no_value_set_lets_the_operator_mint_a_token_for_an_unnamed_service_account(
    files: list[Path],
) -> None:
    for r in _rules(render(files)):
        if "serviceaccounts/token" in r["resources"]:
            assert r.get("resourceNames"), r
        elif "serviceaccounts" in r["resources"] and not r.get("resourceNames"):
            # LLMGateways' own ServiceAccounts: never a token, never an update of another's.
            assert "update" not in r["verbs"], r


def test_token_requests_are_granted_by_name_in_the_release_namespace_only() -> None:
    docs = render(
        sets=(
            "operator.watchAllNamespaces=true",
            "operator.keyVault.tokenRequestServiceAccounts={kv-reader,kv-other}",
            "operator.llmGateways.enabled=false",  # its ServiceAccount rule: tested above
        )
    )
    rules = [
        (d["kind"], d["metadata"].get("namespace"), r)
        for d in docs
        if d["kind"] in ROLE_KINDS
        for r in d["rules"]
        if {"serviceaccounts", "serviceaccounts/token"} & set(r["resources"])
    ]
    assert rules == [
        (
            "Role",
            "hub",
            {
                "apiGroups": [""],
                "resources": ["serviceaccounts"],
                "resourceNames": ["kv-reader", "kv-other"],
                "verbs": ["get"],
            },
        ),
        (
            "Role",
            "hub",
            {
                "apiGroups": [""],
                "resources": ["serviceaccounts/token"],
                "resourceNames": ["kv-reader", "kv-other"],
                "verbs": ["create"],
            },
        ),
    ]
    (binding,) = find(docs, "RoleBinding", "-operator-tokens")
    assert (
        binding["subjects"][0]["name"]
        == one(docs, "ServiceAccount", "-operator")["metadata"]["name"]
    )
