"""Stands in for a cluster: the chart's pods, run locally as the images and pod specs say.

The operator pod runs against kmock and the fake Entra + Key Vault and writes the Secrets; the
gateway pod then runs on exactly those Secrets (env and the mounted Gemini file). If the chart,
the Dockerfiles and the code disagree on any name, path or port, a step here fails.
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

import httpx
import yaml
from kubernetes_asyncio import client

from tests.chart.conftest import CHART, run_helm
from tests.contract.pods import REPO, Image, LocalPod, decode_secret
from tests.fakes.fake_azure import DEFAULT_CLIENT_ID, FakeAzure
from tests.operator.kopf_harness import GROUP, PLURAL, VERSION, Kube, eventually

FAKES = REPO / "tests" / "fakes"
# Where kind's gateway-fakes image puts the fake CLIs (kind/Dockerfile.gateway-fakes).
FAKE_CLIS = {f"/opt/fakes/{name}": FAKES / name for name in ("fake_claude.py", "fake_gemini.py")}
CLAUDE_TOKEN = "sk-ant-oat01-" + pysecrets.token_urlsafe(24)
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
        # kmock 0.8 cannot parse GET /api/v1/namespaces, which kopf sends to resolve a named
        # namespace list, so the operator pod here runs in the chart's cluster-wide mode.
        "operator": {
            "watchAllNamespaces": True,
            "azure": {
                "clientId": DEFAULT_CLIENT_ID,
                "tenantId": fake.tenant,
                "authorityHost": fake.base_url,
                "tokenProjection": {"enabled": True},
                "caBundle": {"configMapName": "azure-ca", "key": "ca.crt"},
                "verifyChallengeResource": False,
            },
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


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m and m["kind"] == kind]


def deployment(manifests: list[dict[str, Any]], component: str) -> dict[str, Any]:
    (found,) = [
        d
        for d in by_kind(manifests, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    return found


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
    kube: Kube, fake_azure: FakeAzure, redis_url: str, pod_root: Path, tmp_path: Path
) -> None:
    fake_azure.set_secret("claude-oauth", CLAUDE_TOKEN, expires=time.time() + 40 * 86400)
    fake_azure.set_secret("gemini-oauth", json.dumps(GEMINI_CREDS))
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(chart_values(fake_azure, redis_url)))
    rendered = run_helm(
        "template", "hub", str(CHART), "--namespace", kube.namespace, "-f", str(values)
    )
    assert rendered.returncode == 0, rendered.stderr
    manifests = [m for m in yaml.safe_load_all(rendered.stdout) if m]
    assert {m["metadata"].get("namespace") for m in by_kind(manifests, "Deployment")} == {
        kube.namespace
    }

    # The cluster state the chart creates and the operator works on.
    for provider in by_kind(manifests, "LLMProvider"):
        await kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, kube.namespace, PLURAL, provider
        )
    gateway_deploy = deployment(manifests, "gateway")
    await client.AppsV1Api(kube.api).create_namespaced_deployment(kube.namespace, gateway_deploy)

    operator = LocalPod(
        deployment(manifests, "operator"),
        Image.parse(REPO / "Dockerfile.operator"),
        pod_root,
        secrets={},
        config_maps={"azure-ca": {"ca.crt": Path(str(fake_azure.ca_file)).read_text()}},
        sa_token=Path(str(fake_azure.token_file)).read_text(),
    )
    assert set(operator.ports) <= operator.image.exposed
    operator.mount_volumes()
    operator_log = tmp_path / "operator.log"
    # KUBECONFIG is the one addition: in a pod the in-cluster config points at the API server.
    operator_env = operator.process_env(KUBECONFIG=str(kube_config_path()))

    async with (
        running(operator.argv(), operator_env, operator_log),
        httpx.AsyncClient(timeout=5) as http,
    ):
        await eventually(lambda: get(http, operator.probe_url("livenessProbe")), ok, timeout=30)
        metrics = await get(http, operator.port_url(9090, "/metrics"))
        assert metrics is not None
        assert "llmhub_operator_syncs_total" in metrics.text

        # Every Secret key the gateway pod reads must be one the operator wrote.
        gateway_refs = secret_refs(gateway_deploy)
        names = {name for name, _ in gateway_refs}
        await eventually(  # compares key names only: a failure message never shows a value
            lambda: secret_keys(kube, names),
            lambda found: all(key in found.get(name, ()) for name, key in gateway_refs),
            timeout=45,
        )
        written = await operator_secrets(kube, names)
        # ... and the rollout annotations land on the Deployment the chart rendered.
        wanted = {"llm-mcp-hub.io/claude-hash", "llm-mcp-hub.io/gemini-hash"}
        await eventually(
            lambda: kube.template_annotations(gateway_deploy["metadata"]["name"]),
            lambda annotations: wanted <= set(annotations),
            timeout=20,
        )
        (claude,) = [
            p for p in by_kind(manifests, "LLMProvider") if p["metadata"]["name"] == "claude"
        ]
        body = await eventually(
            lambda: kube.provider("claude"),
            lambda b: b.get("status", {}).get("phase") == "Ready",
            timeout=20,
        )
        status = body["status"]
        assert status["targetSecret"] == claude["spec"]["target"]["secretName"]

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

        tokens = (await http.get(gateway.port_url(8000, "/health/tokens"))).json()
        assert tokens["claude"]["status"] == "valid"
        assert tokens["claude"]["days_remaining"] in (39, 40)
        assert tokens["gemini"]["status"] == "valid"
        assert tokens["gemini"]["days_remaining"] in (364, 365)  # created + maxAgeDays

        for provider, marker in [
            ("claude", "[fake-claude model=claude-sonnet-4-5-20250929 token=present]"),
            ("gemini", "[fake-gemini model=gemini-2.5-pro tty=yes]"),
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

    logs = operator_log.read_text() + gateway_log.read_text()
    assert "Handler" in logs or "sync" in logs.lower()  # the logs were really captured
    values = {
        "claude": CLAUDE_TOKEN,
        "caller key": CALLER_KEY,
        **{k: str(GEMINI_CREDS[k]) for k in ("access_token", "refresh_token")},
    }
    leaked = sorted(label for label, value in values.items() if value in logs)
    assert not leaked, "token values in the pod logs"  # labels only: never echo a value


def kube_config_path() -> Path:
    import os

    return Path(os.environ["KUBECONFIG"])  # written by the kube fixture


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


async def secret_keys(kube: Kube, names: set[str]) -> dict[str, list[str]]:
    return {name: sorted(data) for name, data in (await operator_secrets(kube, names)).items()}


async def operator_secrets(kube: Kube, names: set[str]) -> dict[str, dict[str, str]]:
    found = {}
    for name in names:
        with contextlib.suppress(client.ApiException):
            found[name] = decode_secret(await kube.secret_raw(name))
    return found
