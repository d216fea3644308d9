"""`operator.watchAllNamespaces`: the namespaced rules cluster-wide, the Lease only at home."""

from __future__ import annotations

from pathlib import Path

from kubernetes_asyncio import client

from llmhub_operator.kube import make_api_client
from tests.chart_k8s.conftest import create_namespaces, delete_namespaces, unique
from tests.chart_k8s.helm import Helm
from tests.chart_k8s.rbac import granted, operator_needs
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kube import RealKube

RELEASE = "wide"


async def test_cluster_wide_operator_may_do_exactly_what_it_needs_anywhere(
    control_plane: ControlPlane, helm_k8s: Helm, admin: client.ApiClient, tmp_path: Path
) -> None:
    home, elsewhere = unique("wide"), unique("apps")
    await create_namespaces(admin, [home, elsewhere])
    values = {"crds": {"install": False}, "operator": {"watchAllNamespaces": True}}
    try:
        helm_k8s.install(RELEASE, home, values)
        kube = RealKube(api=admin, namespace=home, plane=control_plane)
        token = await kube.service_account_token(f"{RELEASE}-llm-mcp-hub-operator")
        api = await make_api_client(str(kube.token_kubeconfig(tmp_path / "kubeconfig", token)))
        try:
            needs = operator_needs(RELEASE, [home, elsewhere], None, cluster_wide=True)
            assert await granted(api, list(needs)) == needs
        finally:
            await api.close()
    finally:
        helm_k8s.run("uninstall", RELEASE, "-n", home)
        await delete_namespaces(admin, [home, elsewhere])
