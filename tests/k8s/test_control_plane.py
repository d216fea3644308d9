"""The fixture really is a control plane: RBAC, garbage collection and CRD validation work."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client

from llmhub_operator.kube import make_api_client
from tests.k8s.kube import GROUP, PLURAL, VERSION, RealKube, provider_body
from tests.waiting import eventually


async def test_garbage_collector_deletes_owned_objects(k8s: RealKube) -> None:
    owner = await k8s.core.create_namespaced_config_map(k8s.namespace, {"metadata": {"name": "o"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "o",
        "uid": owner.metadata.uid,
        "controller": True,
    }
    await k8s.core.create_namespaced_secret(
        k8s.namespace, {"metadata": {"name": "owned", "ownerReferences": [ref]}}
    )
    await k8s.core.delete_namespaced_config_map("o", k8s.namespace)
    await eventually(lambda: k8s.secret_or_none("owned"), lambda s: s is None, timeout=30)


async def test_rbac_denies_a_service_account_without_roles(k8s: RealKube, tmp_path) -> None:
    await k8s.core.create_namespaced_service_account(
        k8s.namespace, {"metadata": {"name": "nobody"}}
    )
    token = await k8s.service_account_token("nobody")
    api = await make_api_client(str(k8s.token_kubeconfig(tmp_path / "kc", token)))
    try:
        with pytest.raises(client.ApiException) as denied:
            await client.CoreV1Api(api).list_namespaced_secret(k8s.namespace)
        assert denied.value.status == 403
    finally:
        await api.close()


async def test_crd_schema_is_enforced(k8s: RealKube) -> None:
    body = provider_body("bad", k8s.namespace, "http://not-https.example")
    with pytest.raises(client.ApiException) as refused:
        await k8s.custom.create_namespaced_custom_object(
            GROUP, VERSION, k8s.namespace, PLURAL, body
        )
    assert refused.value.status == 422
    assert "vaultUrl" in refused.value.body
