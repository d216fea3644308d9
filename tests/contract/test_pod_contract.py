"""Stands in for a cluster's kubelet: the chart installed by helm on a real API server, its pods
run locally as the images and the installed pod specs say.

The operator pod runs with the chart's ServiceAccount identity and RBAC against kube-apiserver and
the fake Entra + Key Vault, and writes the Secrets; the gateway pod then runs on exactly those
Secrets (env and the mounted Gemini file). If the chart, the Dockerfiles and the code disagree on
any name, path, port, permission or Lease, a step here fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets as pysecrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from kubernetes_asyncio import client

from tests.chart_k8s.helm import Helm
from tests.contract.pods import REPO, Image, LocalPod, decode_secret
from tests.fakes.fake_azure import DEFAULT_CLIENT_ID, FakeAzure
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kube import RealKube
from tests.waiting import eventually

RELEASE = "pods"
FAKES = REPO / "tests" / "fakes"
# Where kind's gateway-fakes image puts the fake CLIs (kind/Dockerfile.gateway-fakes).
FAKE_CLIS = {f"/opt/fakes/{name}": FAKES / name for name in ("fake_claude.py", "fake_gemini.py")}
CLAUDE_TOKEN = "sk-ant-oat01-" + pysecrets.token_urlsafe(24)
ROTATED_TOKEN = "sk-ant-oat01-" + pysecrets.token_urlsafe(24)
CALLER_KEY = "contract-key-" + pysecrets.token_urlsafe(16)
CALLER_KEY_HASH = hashlib.sha256(CALLER_KEY.encode()).hexdigest()
KEYS_SECRET = "gateway-caller-keys"
GEMINI_CREDS = {
    "access_token": "ya29.contract-" + pysecrets.token_urlsafe(16),
    "refresh_token": "1//contract-" + pysecrets.token_urlsafe(16),
    "token_type": "Bearer",
    "scope": "https://www.googleapis.com/auth/cloud-platform",
    "expiry_date": int(time.time() * 1000) + 3_600_000,
}


def chart_values(fake: FakeAzure, redis_url: str) -> dict[str, Any]:
    """Realistic values: chart-projected Workload Identity token, external Redis, two providers."""
    provider = {"vaultUrl": fake.base_url, "refreshInterval": "2s"}
    return {
        # The session's CRD stands: it has one owner per cluster (see tests/chart_k8s).
        "crds": {"install": False},
        "operator": {
            "azure": {
                "clientId": DEFAULT_CLIENT_ID,
                "tenantId": fake.tenant,
                "authorityHost": fake.base_url,
                "tokenProjection": {"enabled": True},
                "caBundle": {"configMapName": "azure-ca", "key": "ca.crt"},
                "verifyChallengeResource": False,
            },
            # The stand-in vault, named on purpose (required with the challenge check off).
            "keyVault": {"allowedVaults": [fake.base_url.removeprefix("https://")]},
        },
        "gateway": {
            "claude": {"cliPath": "/opt/fakes/fake_claude.py"},
            "gemini": {"cliPath": "/opt/fakes/fake_gemini.py"},
            # Callers by named key: the kubernetes default needs an API server to review tokens.
            "auth": {"modes": ["static"], "static": {"existingSecret": KEYS_SECRET}},
        },
        "redis": {"enabled": False, "external": {"url": redis_url}},
        "providers": [
            {"name": "claude", "provider": "claude", "secretName": "claude-oauth", **provider},
            {"name": "gemini", "provider": "gemini", "secretName": "gemini-oauth", **provider},
        ],
    }


def component_of(obj: Any) -> str:
    return str(obj.metadata.labels.get("app.kubernetes.io/component", ""))


async def installed_deployment(kube: RealKube, component: str) -> dict[str, Any]:
    """The Deployment as the API server holds it, in manifest (camelCase) form."""
    listed = await kube.apps.list_namespaced_deployment(kube.namespace)
    (found,) = [d for d in listed.items if component_of(d) == component]
    return dict(kube.api.sanitize_for_serialization(found))


async def pod_of(kube: RealKube, component: str) -> str:
    """Name of the Pending pod the ReplicaSet made for a component (no kubelet runs it)."""

    async def names() -> list[str]:
        pods = await kube.core.list_namespaced_pod(kube.namespace)
        return [p.metadata.name for p in pods.items if component_of(p) == component]

    (name,) = await eventually(names, lambda found: len(found) == 1, timeout=30)
    return name


async def projected_token(kube: RealKube, deploy: dict[str, Any]) -> str:
    """What the kubelet would project for the Azure token volume: a TokenRequest token."""
    spec = deploy["spec"]["template"]["spec"]
    (source,) = [
        s["serviceAccountToken"]
        for v in spec["volumes"]
        for s in v.get("projected", {}).get("sources", [])
        if "serviceAccountToken" in s
    ]
    return await kube.service_account_token(spec["serviceAccountName"], audience=source["audience"])


@contextlib.asynccontextmanager
async def running(argv: list[str], env: dict[str, str], log: Path) -> AsyncIterator[None]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT, cwd=log.parent
        )
        try:
            yield
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def get(http: httpx.AsyncClient, url: str) -> httpx.Response | None:
    try:
        return await http.get(url)
    except httpx.TransportError:
        return None


def ok(response: httpx.Response | None) -> bool:
    return response is not None and response.status_code == 200


async def test_operator_and_gateway_pods_agree_with_chart_images_and_code(
    k8s: RealKube,
    control_plane: ControlPlane,
    fake_azure: FakeAzure,
    redis_url: str,
    pod_root: Path,
    tmp_path: Path,
) -> None:
    fake_azure.set_secret("claude-oauth", CLAUDE_TOKEN, expires=time.time() + 40 * 86400)
    fake_azure.set_secret("gemini-oauth", json.dumps(GEMINI_CREDS))
    ca_pem = Path(str(fake_azure.ca_file)).read_text()
    await k8s.core.create_namespaced_config_map(
        k8s.namespace, {"metadata": {"name": "azure-ca"}, "data": {"ca.crt": ca_pem}}
    )
    helm = Helm(control_plane, tmp_path / "helm-home")
    helm.install(RELEASE, k8s.namespace, chart_values(fake_azure, redis_url))
    try:
        await operator_then_gateway(k8s, fake_azure, pod_root, tmp_path)
    finally:
        helm.uninstall(RELEASE, k8s.namespace)


async def operator_then_gateway(
    k8s: RealKube, fake_azure: FakeAzure, pod_root: Path, tmp_path: Path
) -> None:
    operator_deploy = await installed_deployment(k8s, "operator")
    spec = operator_deploy["spec"]["template"]["spec"]
    azure_ca = await k8s.core.read_namespaced_config_map("azure-ca", k8s.namespace)
    operator = LocalPod(
        operator_deploy,
        Image.parse(REPO / "Dockerfile.operator"),
        pod_root,
        secrets={},
        config_maps={"azure-ca": dict(azure_ca.data)},
        sa_token=await projected_token(k8s, operator_deploy),
        pod_name=await pod_of(k8s, "operator"),
    )
    assert set(operator.ports) <= operator.image.exposed
    operator.mount_volumes()
    operator_log = tmp_path / "operator.log"
    # The operator's API identity is the chart's ServiceAccount, through a TokenRequest token in
    # a kubeconfig (KUBECONFIG). Not the in-pod path: the in-cluster loader reads the fixed,
    # machine-wide /var/run/secrets/kubernetes.io/serviceaccount/ (shared with every other test
    # and engineer on this host) plus KUBERNETES_SERVICE_HOST; a kubeconfig carries the same
    # token, so RBAC sees exactly the identity a pod of this Deployment would have.
    token = await k8s.service_account_token(spec["serviceAccountName"])
    kubeconfig = k8s.token_kubeconfig(tmp_path / "operator.kubeconfig", token)
    operator_env = operator.process_env(KUBECONFIG=str(kubeconfig))

    gateway_name = (await installed_deployment(k8s, "gateway"))["metadata"]["name"]
    async with (
        running(operator.argv(), operator_env, operator_log),
        httpx.AsyncClient(timeout=5) as http,
    ):
        await eventually(lambda: get(http, operator.probe_url("livenessProbe")), ok, timeout=30)
        metrics = await get(http, operator.port_url(9090, "/metrics"))
        assert metrics is not None
        assert "llmhub_operator_syncs_total" in metrics.text

        # Leader election as the chart wires it: the Lease it may write, held by this pod.
        env = operator.env()
        lease = await eventually(
            lambda: lease_or_none(k8s, env["LEASE_NAME"]),
            lambda found: found is not None,
            timeout=30,
        )
        assert env["LEASE_NAME"] == operator_deploy["metadata"]["name"]
        # The holder is this pod (plus a per-process suffix: a restart is a new holder).
        assert lease.spec.holder_identity.startswith(f"{operator.pod_name}_")

        # Every Secret key the gateway pod reads must be one the operator wrote.
        gateway_refs = secret_refs(await installed_deployment(k8s, "gateway"))
        names = {name for name, _ in gateway_refs}
        await eventually(  # compares key names only: a failure message never shows a value
            lambda: secret_keys(k8s, names),
            lambda found: all(key in found.get(name, ()) for name, key in gateway_refs),
            timeout=45,
        )
        # ... and the rollout annotations land on the Deployment the chart installed.
        wanted = {"llm-mcp-hub.io/claude-hash", "llm-mcp-hub.io/gemini-hash"}
        await eventually(
            lambda: k8s.template_annotations(gateway_name),
            lambda annotations: wanted <= set(annotations),
            timeout=20,
        )
        claude = await k8s.provider("claude")
        status = await eventually(
            lambda: k8s.provider("claude"),
            lambda obj: obj.get("status", {}).get("phase") == "Ready",
            timeout=20,
        )
        assert status["status"]["targetSecret"] == claude["spec"]["target"]["secretName"]

        # A rotation in Key Vault replaces the Secret (RBAC: update) and rolls the gateway again.
        rolled = (await k8s.template_annotations(gateway_name))["llm-mcp-hub.io/claude-hash"]
        fake_azure.set_secret("claude-oauth", ROTATED_TOKEN, expires=time.time() + 40 * 86400)
        await eventually(lambda: holds_rotated_token(k8s, names), lambda found: found, timeout=20)
        await eventually(
            lambda: k8s.template_annotations(gateway_name),
            lambda annotations: annotations["llm-mcp-hub.io/claude-hash"] != rolled,
            timeout=20,
        )
        written = await operator_secrets(k8s, names)

    # The gateway pod as the API server now holds it: the operator's roll annotations included.
    gateway_deploy = await installed_deployment(k8s, "gateway")
    gateway = LocalPod(
        gateway_deploy,
        Image.parse(REPO / "Dockerfile.gateway"),
        pod_root,
        secrets={
            **written,
            KEYS_SECRET: {
                "keys": f"contract sha256:{hashlib.sha256(CALLER_KEY.encode()).hexdigest()}"
            },
        },
        image_files=FAKE_CLIS,
    )
    assert set(gateway.ports) <= gateway.image.exposed
    gateway.mount_volumes()
    gateway_log = tmp_path / "gateway.log"
    async with (
        running(gateway.argv(), gateway.process_env(), gateway_log),
        httpx.AsyncClient(timeout=30) as http,
    ):
        await eventually(lambda: get(http, gateway.probe_url("livenessProbe")), ok, timeout=30)
        await eventually(lambda: get(http, gateway.probe_url("readinessProbe")), ok, timeout=30)

        for path in ("/health/tokens", "/metrics"):  # not for whoever reaches the callers' port
            assert (await http.get(gateway.port_url(8000, path))).status_code == 404
        admin = next(p["containerPort"] for p in gateway.container["ports"] if p["name"] == "admin")
        assert urlsplit(operator_env["LLMHUB_GATEWAY_URL"]).port == admin  # where it reads them
        tokens = (await http.get(gateway.port_url(admin, "/health/tokens"))).json()
        scraped = await http.get(gateway.port_url(admin, "/metrics"))
        assert "llmhub_gateway_requests_total" in scraped.text
        assert tokens["claude"]["status"] == "valid"
        assert tokens["claude"]["days_remaining"] in (39, 40)
        assert tokens["gemini"]["status"] == "valid"
        assert tokens["gemini"]["days_remaining"] in (364, 365)  # created + maxAgeDays

        for provider, marker in [
            ("claude", "[fake-claude model=claude-sonnet-4-5-20250929 token=present]"),
            ("gemini", "[fake-gemini model=gemini-2.5-pro acp=yes turn=1]"),  # warm ACP
        ]:
            reply = await http.post(
                gateway.port_url(8000, "/v1/chat"),
                json={"provider": provider, "prompt": "hello from the pod contract"},
                headers={"Authorization": f"Bearer {CALLER_KEY}"},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["text"].startswith(marker)
            anonymous = await http.post(
                gateway.port_url(8000, "/v1/chat"), json={"provider": provider, "prompt": "x"}
            )
            assert anonymous.status_code == 401  # the chart's auth values reached the gateway
            assert "hello from the pod contract" in reply.json()["text"]

    # The logs were really captured: the operator's Lease line, the gateway's start-up.
    logs = operator_log.read_text() + gateway_log.read_text()
    assert f"leading: {operator.pod_name}_" in logs
    assert "Application startup complete" in logs
    values = {
        "claude": CLAUDE_TOKEN,
        "claude rotated": ROTATED_TOKEN,
        "caller key": CALLER_KEY,
        **{k: str(GEMINI_CREDS[k]) for k in ("access_token", "refresh_token")},
    }
    leaked = sorted(label for label, value in values.items() if value in logs)
    assert not leaked, "token values in the pod logs"  # labels only: never echo a value


async def lease_or_none(kube: RealKube, name: str) -> Any:
    try:
        return await client.CoordinationV1Api(kube.api).read_namespaced_lease(name, kube.namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def secret_refs(deploy: dict[str, Any]) -> set[tuple[str, str]]:
    """(Secret, key) pairs the pod reads through env and through its Gemini credentials mount."""
    spec = deploy["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    for volume in spec.get("volumes", []):
        if volume["name"] == "static-keys":
            continue  # the caller keys Secret is the installer's, not the operator's
        if "secret" in volume and volume["name"] in mounts:
            auth_path = Path(env["GEMINI_AUTH_PATH"])
            assert str(auth_path.parent) == mounts[volume["name"]]
            refs.add((volume["secret"]["secretName"], auth_path.name))
    return {r for r in refs if not r[0].endswith("redis")}


async def holds_rotated_token(kube: RealKube, names: set[str]) -> bool:
    """Whether a managed Secret carries the rotated token (a bool: never a value in a message)."""
    found = await operator_secrets(kube, names)
    return any(ROTATED_TOKEN in data.values() for data in found.values())


async def secret_keys(kube: RealKube, names: set[str]) -> dict[str, list[str]]:
    return {name: sorted(data) for name, data in (await operator_secrets(kube, names)).items()}


async def operator_secrets(kube: RealKube, names: set[str]) -> dict[str, dict[str, str]]:
    found = {}
    for name in names:
        secret = await kube.secret_or_none(name)
        if secret is not None:
            found[name] = decode_secret(kube.api.sanitize_for_serialization(secret))
    return found
