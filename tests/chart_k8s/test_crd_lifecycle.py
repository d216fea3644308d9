"""The LLMProvider CRD is a chart template: Helm adopts, upgrades and (on uninstall) keeps it.

The session's CRD was applied without Helm, exactly like the crds/ of earlier chart versions, so
this also walks the documented upgrade from such a release: label and annotate it once. Then, on
a cluster without the CRD, the documented first install: the chart creates the CRD, the
LLMProviders follow with the next upgrade (Helm cannot map objects of a CRD it has yet to create).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client

from tests.chart.conftest import CHART
from tests.chart_k8s.conftest import PROVIDERS, create_namespaces, delete_namespaces, unique
from tests.chart_k8s.helm import Helm
from tests.k8s.fixtures import apply_crd
from tests.k8s.kube import GROUP, PLURAL, VERSION
from tests.waiting import eventually

RELEASE = "crd"
CRD = f"{PLURAL}.{GROUP}"
CRD_FILE = Path("files") / "crds" / "llm-mcp-hub.io_llmproviders.yaml"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def chart_with_an_extra_printer_column(tmp_path: Path) -> Path:
    """A copy of the chart whose CRD gained a column, as a new chart version would ship it."""
    copy = tmp_path / "llm-mcp-hub"
    shutil.copytree(CHART, copy)
    crd = yaml.safe_load((copy / CRD_FILE).read_text())
    crd["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "Vault", "type": "string", "jsonPath": ".spec.source.azureKeyVault.vaultUrl"}
    )
    (copy / CRD_FILE).write_text(yaml.safe_dump(crd))
    return copy


async def served_columns(api: client.ApiClient, namespace: str) -> list[str]:
    """Columns the API server prints for LLMProviders (what `kubectl get llmp` shows)."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    table: Any = await api.call_api(
        path,
        "GET",
        header_params={"Accept": TABLE},
        response_types_map={200: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    return [c["name"] for c in table["columnDefinitions"]]


async def crd_or_none(ext: client.ApiextensionsV1Api) -> Any:
    try:
        return await ext.read_custom_resource_definition(CRD)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def test_helm_adopts_upgrades_and_keeps_the_crd_and_creates_it_on_a_fresh_cluster(
    helm_k8s: Helm, admin: client.ApiClient, tmp_path: Path
) -> None:
    ns = unique("crd")
    await create_namespaces(admin, [ns])
    ext = client.ApiextensionsV1Api(admin)
    values = {"providers": PROVIDERS}  # crds.install defaults to true
    try:
        refused = helm_k8s.run(
            "install", RELEASE, str(CHART), "-n", ns, "-f", str(helm_k8s.values(values))
        )
        assert refused.returncode != 0
        assert "invalid ownership metadata" in refused.stderr

        await ext.patch_custom_resource_definition(
            CRD,
            {
                "metadata": {
                    "labels": {"app.kubernetes.io/managed-by": "Helm"},
                    "annotations": {
                        "meta.helm.sh/release-name": RELEASE,
                        "meta.helm.sh/release-namespace": ns,
                    },
                }
            },
        )
        helm_k8s.install(RELEASE, ns, values)
        crd = await ext.read_custom_resource_definition(CRD)
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"
        assert crd.metadata.labels["app.kubernetes.io/instance"] == RELEASE
        assert "Vault" not in await served_columns(admin, ns)

        helm_k8s.upgrade(RELEASE, ns, values, chart=chart_with_an_extra_printer_column(tmp_path))
        assert "Vault" in await served_columns(admin, ns)

        helm_k8s.uninstall(RELEASE, ns)  # --wait: LLMProviders carry no finalizer to wait for
        custom = client.CustomObjectsApi(admin)
        assert (await custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL))[
            "items"
        ] == []
        kept = await ext.read_custom_resource_definition(CRD)
        assert kept.metadata.deletion_timestamp is None
        assert "Vault" in await served_columns(admin, ns)

        await ext.delete_custom_resource_definition(CRD)
        await eventually(lambda: crd_or_none(ext), lambda found: found is None, timeout=30)
        first = helm_k8s.run(
            "install", RELEASE, str(CHART), "-n", ns, "-f", str(helm_k8s.values(values))
        )
        assert first.returncode != 0
        assert "Install once without providers (the chart creates the CRD)" in first.stderr
        helm_k8s.install(RELEASE, ns, {})
        helm_k8s.upgrade(RELEASE, ns, values)
        listed = await custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
        assert sorted(p["metadata"]["name"] for p in listed["items"]) == ["claude", "gemini"]
        helm_k8s.uninstall(RELEASE, ns)
    finally:
        helm_k8s.run("uninstall", RELEASE, "-n", ns)
        await apply_crd(admin)  # the session's CRD again, without Helm's metadata
        await delete_namespaces(admin, [ns])
