"""LLMGateway bench: what 100 tenants' gateways cost the operator on a real control plane.

One LLMProvider (synced from the fake Key Vault) served by N LLMGateways in one namespace
(the operator bench's process, fake and namespace).
Measured: wall time until every LLMGateway's objects are applied and its status written (the
first passes), RSS of the operator process with them, and the time until a rotation of the
provider has rolled all N Deployments (each template carries the new content hash).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from bench.operator_bench import NS, QUICK, Bench, _bench, _progress
from llmhub_common.contract import API_GROUP, API_VERSION, rollout_annotation
from llmhub_operator.kube import make_api_client
from tests.k8s.controlplane import ControlPlane, MissingBinaries, find_binaries
from tests.k8s.fixtures import GATEWAY_CRD_FILE, apply_crd
from tests.k8s.kube import provider_body

TOKEN = "sk-ant-oat01-bench-gateways-{}-" + "x" * 40


async def _rolled(api: client.ApiClient, annotation: str, value: str) -> int:
    """How many gateway Deployments' pod templates carry ``annotation: value``."""
    listed = await client.AppsV1Api(api).list_namespaced_deployment(
        NS, label_selector="app.kubernetes.io/component=gateway"
    )
    return sum(
        1
        for d in listed.items
        if (d.spec.template.metadata.annotations or {}).get(annotation) == value
    )


async def _statuses(api: client.ApiClient) -> int:
    listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        API_GROUP, API_VERSION, NS, "llmgateways"
    )
    return sum(1 for g in listed["items"] if (g.get("status") or {}).get("providers"))


async def _synced(custom: client.CustomObjectsApi) -> int:
    return int(bool(((await _provider(custom)).get("status") or {}).get("contentHash")))


async def _until(probe: Any, wanted: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await probe() >= wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise RuntimeError(f"not reached within {timeout:g}s")


async def run(count: int, workdir: Path) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    with _bench(QUICK, workdir) as b:
        (workdir / "k8s").mkdir()
        plane = ControlPlane(workdir / "k8s", find_binaries())
        try:
            await asyncio.to_thread(plane.start)
            api = await make_api_client(str(plane.kubeconfig))
            try:
                await _measure(b, api, plane.kubeconfig, count, rows)
            finally:
                await api.close()
        finally:
            plane.cleanup()
    return rows


async def _measure(
    b: Bench, api: client.ApiClient, kubeconfig: Path, count: int, rows: list[tuple[str, float]]
) -> None:
    await apply_crd(api)
    await apply_crd(api, GATEWAY_CRD_FILE)
    await client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
    b.fake.set_secret("shared-token", TOKEN.format(0))
    body = provider_body("shared", NS, b.fake.base_url, gateway={}, refreshInterval="2s")
    body["spec"]["source"]["azureKeyVault"]["secretName"] = "shared-token"
    custom = client.CustomObjectsApi(api)
    await custom.create_namespaced_custom_object(API_GROUP, API_VERSION, NS, "llmproviders", body)
    b.start_operator(kubeconfig)
    await _until(lambda: _synced(custom), 1, 120)  # the gateways come next
    rss_before = b.operator_rss_mib()
    started = time.monotonic()
    for i in range(count):
        gateway = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "LLMGateway",
            "metadata": {"name": f"gw-{i:03d}", "namespace": NS},
            "spec": {"replicas": 1, "providers": {"names": ["shared"]}},
        }
        await custom.create_namespaced_custom_object(
            API_GROUP, API_VERSION, NS, "llmgateways", gateway
        )
    await _until(lambda: _statuses(api), count, 600)
    rows.append((f"first passes of {count} LLMGateways (s)", time.monotonic() - started))
    rows.append(("operator RSS before the LLMGateways (MiB)", rss_before))
    rows.append((f"operator RSS with {count} LLMGateways (MiB)", b.operator_rss_mib()))
    old = (await _provider(custom))["status"]["contentHash"]
    b.fake.set_secret("shared-token", TOKEN.format(1))
    started = time.monotonic()
    while (new := (await _provider(custom))["status"]["contentHash"]) == old:
        await asyncio.sleep(0.1)
    await _until(lambda: _rolled(api, rollout_annotation("shared"), new), count, 600)
    rows.append((f"rotation → {count} gateway Deployments rolled (s)", time.monotonic() - started))
    rows.append(("operator CPU in all (s)", b.cpu_seconds()[0]))


async def _provider(custom: client.CustomObjectsApi) -> dict[str, Any]:
    body: dict[str, Any] = await custom.get_namespaced_custom_object(
        API_GROUP, API_VERSION, NS, "llmproviders", "shared"
    )
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 LLMGateways instead of 100")
    parser.add_argument("--gateways", type=int, default=None)
    args = parser.parse_args(argv)
    count = args.gateways or (10 if args.quick else 100)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with tempfile.TemporaryDirectory(prefix="llmhub-gw-bench-") as tmp:
            rows = asyncio.run(run(count, Path(tmp)))
    except (RuntimeError, MissingBinaries) as exc:
        print(f"bench incomplete: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"LLMGateway bench: {count} LLMGateways, one LLMProvider")
    for metric, value in rows:
        print(f"{metric:58} {value:10.2f}")
    _progress("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
