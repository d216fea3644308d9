"""The LLMProvider CRD is a chart template: Helm adopts, upgrades and (on uninstall) keeps it.

The session's CRD was applied without Helm, exactly like the crds/ of earlier chart versions, so
this also walks the documented upgrade from such a release: label and annotate it once (the chart
refuses up front and prints the command). The same for a reinstall under another release name
after an uninstall kept the CRD, and for crds.install=false while the release owns the CRD (a
rollback across that toggle could never work). Then, on a cluster without the CRD, one helm
install brings the CRD and the LLMProviders (these as a hook; the next upgrade adopts them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client

from tests.chart.conftest import CHART
from tests.chart_k8s.conftest import PROVIDERS, create_namespaces, delete_namespaces, unique
from tests.chart_k8s.helm import Helm
from tests.k8s.fixtures import GATEWAY_CRD_FILE, apply_crd
from tests.k8s.kube import GROUP, PLURAL, VERSION
from tests.waiting import eventually

RELEASE = "crd"
CRD = f"{PLURAL}.{GROUP}"
GATEWAY_CRD = f"llmgateways.{GROUP}"
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


def adoption_command(release: str, namespace: str) -> str:
    """What the chart's refusal tells to run (adopt() below does the same through the API)."""
    crd = f"crd {CRD}"
    return (
        f"kubectl label {crd} app.kubernetes.io/managed-by=Helm --overwrite && "
        f"kubectl annotate {crd} meta.helm.sh/release-name={release} "
        f"meta.helm.sh/release-namespace={namespace} --overwrite"
    )


async def adopt(ext: client.ApiextensionsV1Api, release: str, namespace: str) -> None:
    """Both CRDs of the chart (the LLMGateway one is refused the same way when not adopted)."""
    for crd in (CRD, GATEWAY_CRD):
        await ext.patch_custom_resource_definition(
            crd,
            {
                "metadata": {
                    "labels": {"app.kubernetes.io/managed-by": "Helm"},
                    "annotations": {
                        "meta.helm.sh/release-name": release,
                        "meta.helm.sh/release-namespace": namespace,
                    },
                }
            },
        )


def refused(helm_k8s: Helm, verb: str, release: str, ns: str, values: dict[str, Any]) -> str:
    """A helm install/upgrade the chart refuses at render: nothing reached the cluster."""
    done = helm_k8s.run(verb, release, str(CHART), "-n", ns, "-f", str(helm_k8s.values(values)))
    assert done.returncode != 0
    assert "execution error" in done.stderr, done.stderr
    return done.stderr


async def provider_uids(api: client.ApiClient, namespace: str) -> dict[str, str]:
    custom = client.CustomObjectsApi(api)
    listed = await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in listed["items"]}


async def test_helm_adopts_upgrades_and_keeps_the_crd_and_refuses_what_would_fail_half_way(
    helm_k8s: Helm, admin: client.ApiClient, tmp_path: Path
) -> None:
    ns = unique("crd")
    await create_namespaces(admin, [ns])
    ext = client.ApiextensionsV1Api(admin)
    values = {"providers": PROVIDERS}  # crds.install defaults to true
    try:
        # The session's CRD was applied without Helm: refused up front, with the fix.
        message = refused(helm_k8s, "install", RELEASE, ns, values)
        assert "the LLMProvider CRD in the cluster belongs to / (release/namespace" in message
        assert adoption_command(RELEASE, ns) in message
        await adopt(ext, RELEASE, ns)
        helm_k8s.install(RELEASE, ns, values)
        crd = await ext.read_custom_resource_definition(CRD)
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"
        assert crd.metadata.labels["app.kubernetes.io/instance"] == RELEASE
        assert "Vault" not in await served_columns(admin, ns)

        helm_k8s.upgrade(RELEASE, ns, values, chart=chart_with_an_extra_printer_column(tmp_path))
        assert "Vault" in await served_columns(admin, ns)

        # Dropping a CRD it owns would make a later rollback fail: refused, with the hand-over.
        off = {**values, "crds": {"install": False}}
        message = refused(helm_k8s, "upgrade", RELEASE, ns, off)
        assert "crds.install=false, but this release owns the LLMProvider CRD" in message
        assert f"kubectl annotate crd {CRD} meta.helm.sh/release-name-" in message
        history = json.loads(helm_k8s.must("history", RELEASE, "-n", ns, "-o", "json"))
        assert [r["revision"] for r in history] == [1, 2], "a refusal records no revision"
        # So every revision has the CRD, and a rollback works (and rolls the CRD back too).
        helm_k8s.must("rollback", RELEASE, "1", "-n", ns)
        assert "Vault" not in await served_columns(admin, ns)

        helm_k8s.uninstall(RELEASE, ns)  # --wait: LLMProviders carry no finalizer to wait for
        assert await provider_uids(admin, ns) == {}
        kept = await ext.read_custom_resource_definition(CRD)
        assert kept.metadata.deletion_timestamp is None
        assert "Provider" in await served_columns(admin, ns)  # still served: kept

        # Reinstalled under another name: the kept CRD names the old release. Refused, fixed.
        message = refused(helm_k8s, "install", "again", ns, values)
        assert f"belongs to {RELEASE}/{ns} (release/namespace" in message
        assert "If that release is still installed, set crds.install=false" in message
        await adopt(ext, "again", ns)
        helm_k8s.install("again", ns, values)
        assert sorted(await provider_uids(admin, ns)) == ["claude", "gemini"]
        helm_k8s.uninstall("again", ns)

        # A cluster without the CRD: one helm install brings the CRD and the LLMProviders.
        await ext.delete_custom_resource_definition(CRD)
        await ext.delete_custom_resource_definition(GATEWAY_CRD)
        await eventually(lambda: crd_or_none(ext), lambda found: found is None, timeout=30)
        helm_k8s.install(RELEASE, ns, values)
        first = await provider_uids(admin, ns)
        assert sorted(first) == ["claude", "gemini"]
        assert "LLMProvider" not in {m["kind"] for m in helm_k8s.manifest(RELEASE, ns)}
        # The next upgrade adopts them (same objects, so their Secrets stay) as release objects.
        helm_k8s.upgrade(RELEASE, ns, values)
        assert await provider_uids(admin, ns) == first
        kinds = [m["kind"] for m in helm_k8s.manifest(RELEASE, ns)]
        assert kinds.count("LLMProvider") == 2
        helm_k8s.uninstall(RELEASE, ns)
        assert await provider_uids(admin, ns) == {}
    finally:
        helm_k8s.run("uninstall", RELEASE, "-n", ns)
        helm_k8s.run("uninstall", "again", "-n", ns)
        await apply_crd(admin)  # the session's CRDs again, without Helm's metadata
        await apply_crd(admin, GATEWAY_CRD_FILE)
        await delete_namespaces(admin, [ns])
