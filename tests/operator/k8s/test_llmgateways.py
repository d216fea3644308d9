"""LLMGateway on the real control plane: the operator renders, owns and converges each tenant's
gateway; the garbage collector (the real controller-manager) removes it with the operator
stopped. Pods stay Pending here (no kubelet), so the tests assert on the objects, and on the
Pods the ReplicaSet controller could create under Pod Security ``restricted``."""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, API_VERSION, rollout_annotation
from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

PLURAL = "llmgateways"
CLAUDE_A = "sk-ant-oat01-" + "tenant-a-gw-0001"
CLAUDE_A2 = "sk-ant-oat01-" + "tenant-a-gw-0002"
CLAUDE_B = "sk-ant-oat01-" + "tenant-b-gw-0001"
GEMINI_A = json.dumps({"access_token": "ya29.tenant-a-gw", "refresh_token": "1//tenant-a-gw"})
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "v1.31",
}
OWNED = (
    ("v1", "ServiceAccount", "serviceaccounts", ""),
    ("v1", "Service", "services", ""),
    ("v1", "Service", "services", "-replicas"),
    ("apps/v1", "Deployment", "deployments", ""),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", ""),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", ""),
    ("networking.k8s.io/v1", "Ingress", "ingresses", ""),
)


def gateway_body(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "LLMGateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, **spec},
    }


async def create_gateway(k8s: RealKube, name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body = gateway_body(name, namespace, **spec)
    created: dict[str, Any] = await k8s.custom.create_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, PLURAL, body
    )
    return created


async def read_gateway(k8s: RealKube, name: str, namespace: str) -> dict[str, Any]:
    got: dict[str, Any] = await k8s.custom.get_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, PLURAL, name
    )
    return got


async def raw(k8s: RealKube, api_version: str, plural: str, namespace: str, name: str) -> Any:
    """An object as JSON, or None when it does not exist."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    try:
        return await k8s.api.call_api(
            f"{prefix}/namespaces/{namespace}/{plural}/{name}",
            "GET",
            header_params={"Accept": "application/json"},
            response_types_map={200: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def template(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"])


def secrets_referenced(pod_spec: dict[str, Any]) -> set[str]:
    """Every Secret a pod spec can read: volumes and env references."""
    names = {v["secret"]["secretName"] for v in pod_spec.get("volumes") or [] if "secret" in v}
    for container in pod_spec["containers"]:
        for var in container.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
    return names


async def can(k8s: RealKube, user: str, verb: str, namespace: str, resource: str) -> bool:
    """The real authorizer's answer for ``user`` (a SubjectAccessReview, as `auth can-i --as`)."""
    attrs = {"verb": verb, "resource": resource, "namespace": namespace}
    own = user.split(":")[2]  # system:serviceaccount:<namespace>:<name>
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{own}", "system:authenticated"]
    review = await client.AuthorizationV1Api(k8s.api).create_subject_access_review(
        {"spec": {"user": user, "groups": groups, "resourceAttributes": attrs}}
    )
    return bool(review.status.allowed)


async def test_each_tenant_gets_its_own_converged_gateway_that_rolls_alone_and_goes_with_its_owner(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    team_a, team_b = k8s.namespace, f"{k8s.namespace}-b"
    await k8s.create_namespace(team_b)
    try:
        await k8s.core.patch_namespace(team_a, {"metadata": {"labels": RESTRICTED}})
        fake_azure.set_secret("a-claude-token", CLAUDE_A)
        fake_azure.set_secret("a-gemini-token", GEMINI_A)
        fake_azure.set_secret("b-claude-token", CLAUDE_B)
        for name, kind in (("a-claude", "claude"), ("a-gemini", "gemini")):
            await k8s.create_provider(
                name, fake_azure.base_url, provider=kind, gateway={}, refreshInterval="1s"
            )
        await k8s.create_provider("b-claude", fake_azure.base_url, namespace=team_b, gateway={})
        await create_gateway(
            k8s,
            "hub",
            team_a,
            providers={"names": ["a-claude", "a-gemini"]},
            exposure={"ingressHost": "hub.team-a.example", "tlsSecretName": "hub-tls"},
            auth={
                "modes": ["entra"],
                "entra": {"tenants": ["tenant-a"], "audiences": ["api://hub-a"]},
            },
        )
        await create_gateway(k8s, "solo", team_a, providers={"names": ["a-gemini"]})
        await create_gateway(k8s, "hub", team_b, providers={"names": ["b-claude"]})
        await create_gateway(k8s, "broken", team_a, providers={"names": ["a-claude", "nope"]})
        operator = start_operator(
            extra_env={
                "WATCH_NAMESPACES": f"{team_a},{team_b}",
                "LLMHUB_LLMGATEWAYS_RESYNC_SECONDS": "1",
                "LLMHUB_LLMGATEWAYS_IMAGE": "registry.example/gateway:1.2.3",
            }
        )
        await k8s.wait_phase("a-claude")
        await k8s.wait_phase("a-gemini")
        hub_a = await read_gateway(k8s, "hub", team_a)

        # Rendered: every object owned by its LLMGateway, labelled, the pods restricted.
        for api_version, _, plural, suffix in OWNED:
            obj = await eventually(
                lambda v=api_version, p=plural, s=suffix: raw(k8s, v, p, team_a, f"hub{s}"),
                lambda found: found is not None,
                timeout=30,
            )
            [ref] = obj["metadata"]["ownerReferences"]
            assert (ref["kind"], ref["name"], ref["uid"]) == (
                "LLMGateway",
                "hub",
                hub_a["metadata"]["uid"],
            )
            assert obj["metadata"]["labels"]["llm-mcp-hub.io/gateway"] == "hub"
        deployment = await eventually(
            lambda: raw(k8s, "apps/v1", "deployments", team_a, "hub"),
            lambda d: (
                rollout_annotation("a-claude") in (template(d)["metadata"].get("annotations") or {})
            ),
            timeout=30,
        )
        pod = template(deployment)["spec"]
        [container] = pod["containers"]
        assert container["image"] == "registry.example/gateway:1.2.3"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["serviceAccountName"] == "hub"
        assert pod["automountServiceAccountToken"] is False
        # Only the Secrets of the providers it serves.
        assert secrets_referenced(pod) == {"a-claude-credentials", "a-gemini-credentials"}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/mnt/auth/gemini"]["readOnly"] is True
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AUTH_MODES"] == "entra"
        assert env["AUTH_ENTRA_TENANTS"] == "tenant-a"
        solo = await eventually(
            lambda: raw(k8s, "apps/v1", "deployments", team_a, "solo"),
            lambda found: found is not None,
            timeout=30,
        )
        assert secrets_referenced(template(solo)["spec"]) == {"a-gemini-credentials"}
        hub_b = await eventually(
            lambda: raw(k8s, "apps/v1", "deployments", team_b, "hub"),
            lambda found: found is not None,
            timeout=30,
        )
        assert secrets_referenced(template(hub_b)["spec"]) == {"b-claude-credentials"}

        # Pod Security restricted admits the pods the ReplicaSet controller makes.
        pods = await eventually(
            lambda: k8s.core.list_namespaced_pod(
                team_a, label_selector="llm-mcp-hub.io/gateway=hub"
            ),
            lambda listed: len(listed.items) >= 1,
            timeout=30,
        )
        assert pods.items[0].spec.service_account_name == "hub"

        # Status: not Ready while no pod is Available (kstatus InProgress), providers, URLs.
        status = (
            await eventually(
                lambda: read_gateway(k8s, "hub", team_a),
                lambda b: (
                    condition(b, "Reconciling").get("status") == "True"
                    and [p.get("token") for p in b["status"].get("providers", [])] == ["valid"] * 2
                ),
                timeout=30,
            )
        )["status"]
        assert [(p["name"], p["token"]) for p in status["providers"]] == [
            ("a-claude", "valid"),
            ("a-gemini", "valid"),
        ]
        assert status["urls"]["mcp"] == "https://hub.team-a.example/mcp"
        solo_urls = (await read_gateway(k8s, "solo", team_a))["status"]["urls"]
        assert solo_urls["openai"] == f"http://solo.{team_a}.svc.cluster.local:8000/v1"
        assert condition({"status": status}, "Ready")["status"] == "False"
        broken = await eventually(
            lambda: read_gateway(k8s, "broken", team_a),
            lambda b: condition(b, "Stalled").get("status") == "True",
            timeout=30,
        )
        assert "nope" in condition(broken, "Stalled")["message"]
        assert await raw(k8s, "apps/v1", "deployments", team_a, "broken") is None

        # A hand-edit is reverted, a deleted object re-created.
        await k8s.apps.patch_namespaced_deployment(
            "hub", team_a, {"spec": {"template": {"spec": {"serviceAccountName": "default"}}}}
        )
        await k8s.core.delete_namespaced_service("hub", team_a)
        await eventually(
            lambda: raw(k8s, "apps/v1", "deployments", team_a, "hub"),
            lambda d: template(d)["spec"]["serviceAccountName"] == "hub",
            timeout=30,
        )
        await eventually(
            lambda: raw(k8s, "v1", "services", team_a, "hub"), lambda s: s is not None, timeout=30
        )

        # What the spec no longer asks for goes (a PDB turned off), and only that.
        await k8s.custom.patch_namespaced_custom_object(  # type: ignore[call-arg]
            API_GROUP,
            API_VERSION,
            team_a,
            PLURAL,
            "solo",
            {"spec": {"pdb": {"enabled": False}}},
            _content_type="application/merge-patch+json",
        )
        await eventually(
            lambda: raw(k8s, "policy/v1", "poddisruptionbudgets", team_a, "solo"),
            lambda found: found is None,
            timeout=30,
        )
        assert await raw(k8s, "policy/v1", "poddisruptionbudgets", team_a, "hub") is not None

        # Rotating a-claude rolls hub (which serves it) and nothing else.
        before = {
            (ns, name): template(await raw(k8s, "apps/v1", "deployments", ns, name))
            for ns, name in ((team_a, "hub"), (team_a, "solo"), (team_b, "hub"))
        }
        old_hash = before[(team_a, "hub")]["metadata"]["annotations"][
            rollout_annotation("a-claude")
        ]
        fake_azure.set_secret("a-claude-token", CLAUDE_A2)
        rolled = await eventually(
            lambda: raw(k8s, "apps/v1", "deployments", team_a, "hub"),
            lambda d: (
                template(d)["metadata"]["annotations"][rollout_annotation("a-claude")] != old_hash
            ),
            timeout=30,
        )
        assert rolled["metadata"]["generation"] >= 2
        for (ns, name), previous in before.items():
            if (ns, name) != (team_a, "hub"):
                now = await raw(k8s, "apps/v1", "deployments", ns, name)
                assert template(now) == previous, f"{ns}/{name} rolled"

        # Isolation: neither tenant's gateway identity reads any Secret, its own or the other's
        # (the authorizer does answer yes to what is granted: a ConfigMap read, as a control).
        configmaps = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
        await k8s.grant("hub", configmaps)
        await eventually(  # the authorizer's RBAC cache sees the new binding shortly
            lambda: can(k8s, f"system:serviceaccount:{team_a}:hub", "get", team_a, "configmaps"),
            lambda allowed: allowed,
            timeout=15,
        )
        for ns in (team_a, team_b):
            user = f"system:serviceaccount:{ns}:hub"
            for target in (team_a, team_b):
                assert not await can(k8s, user, "get", target, "secrets")
                assert not await can(k8s, user, "list", target, "secrets")

        # Deleted with the operator stopped: the garbage collector removes everything it owned.
        operator.stop()
        await k8s.custom.delete_namespaced_custom_object(
            API_GROUP, API_VERSION, team_a, PLURAL, "hub"
        )
        for api_version, _, plural, suffix in OWNED:
            await eventually(
                lambda v=api_version, p=plural, s=suffix: raw(k8s, v, p, team_a, f"hub{s}"),
                lambda found: found is None,
                timeout=60,
            )
        assert await raw(k8s, "apps/v1", "deployments", team_a, "solo") is not None
        assert await raw(k8s, "apps/v1", "deployments", team_b, "hub") is not None
        assert CLAUDE_A2 not in operator.log()
        assert CLAUDE_A not in operator.log()
    finally:
        await k8s.core.delete_namespace(team_b)
