"""The operator image as the chart runs it (uid 10001, read-only root, no capabilities, the
chart's /tmp emptyDir), on the host network so it reaches the suite's real API server on
127.0.0.1: it serves /healthz and /metrics and takes its Lease on the API server."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
from kubernetes_asyncio import client

from tests.containers.engine import Engine
from tests.containers.images import Images, tag
from tests.containers.pods import run_flags
from tests.containers.running import run
from tests.k8s.controlplane import ControlPlane, free_port
from tests.k8s.kube import RealKube


async def test_operator_serves_probes_and_metrics_and_talks_to_the_api_server(
    images: Images, engine: Engine, control_plane: ControlPlane, k8s: RealKube, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(control_plane.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o444)  # readable by the image's user, as a mounted Secret would be
    metrics, health = free_port(), free_port()
    flags = [
        *run_flags("operator"),
        "--network=host",
        f"--volume={kubeconfig}:/kube/config:ro",
        "--env=KUBECONFIG=/kube/config",
        f"--env=METRICS_PORT={metrics}",
        f"--env=HEALTH_PORT={health}",
        f"--env=WATCH_NAMESPACES={k8s.namespace}",
        "--env=LEADER_ELECTION=true",
        f"--env=POD_NAMESPACE={k8s.namespace}",
        "--env=POD_NAME=contract-operator",
    ]
    with run(engine, tag("operator"), *flags) as operator:
        await asyncio.to_thread(
            operator.wait_http, f"http://127.0.0.1:{health}/healthz", lambda r: r.is_success
        )
        answer = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10)
        assert answer.status_code == 200
        assert "# TYPE " in answer.text
        leases = client.CoordinationV1Api(k8s.api)
        holder = ""
        for _ in range(300):
            found = await leases.list_namespaced_lease(k8s.namespace)
            holders = [lease.spec.holder_identity or "" for lease in found.items]
            holder = next((h for h in holders if h.startswith("contract-operator_")), "")
            if holder:
                break
            await asyncio.sleep(0.2)
        assert holder, f"no Lease taken by the container\n{operator.logs()}"
        assert "Traceback" not in operator.logs()
