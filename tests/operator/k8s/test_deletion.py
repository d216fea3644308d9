"""Deletion never depends on the operator: no finalizer, the Secret goes by ownerReference."""

from __future__ import annotations

from kubernetes_asyncio import client

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import GROUP, PLURAL, VERSION, RealKube, provider_body
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

TOKEN = "sk-ant-oat01-" + "deletion-token-0005"
OLD_FINALIZER = "llm-mcp-hub.io/finalizer"


async def test_delete_with_the_operator_stopped_completes_and_takes_the_secret(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", TOKEN)
    await k8s.create_provider("claude", fake_azure.base_url, gateway={})
    operator = start_operator()
    await k8s.wait_phase("claude")
    assert operator.stop() is not None  # uninstalled, crashed or scaled to 0
    await k8s.delete_provider("claude")
    await eventually(lambda: k8s.provider_or_none("claude"), lambda b: b is None, timeout=10)
    await eventually(
        lambda: k8s.secret_or_none("claude-credentials"), lambda s: s is None, timeout=30
    )


async def test_namespace_deletion_completes_with_the_operator_stopped(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", TOKEN)
    await k8s.create_provider("claude", fake_azure.base_url, gateway={})
    operator = start_operator()
    await k8s.wait_phase("claude")
    operator.stop()
    await k8s.core.delete_namespace(k8s.namespace)

    async def namespace() -> client.V1Namespace | None:
        try:
            return await k8s.core.read_namespace(k8s.namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    await eventually(namespace, lambda ns: ns is None, timeout=60)


async def test_the_old_finalizer_is_released_on_upgrade(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    """Objects from releases that ran a kopf daemon carry its finalizer; we let it go."""
    fake_azure.set_secret("claude-token", TOKEN)
    body = provider_body("claude", k8s.namespace, fake_azure.base_url, gateway={})
    body["metadata"]["finalizers"] = [OLD_FINALIZER, "example.com/keep-me"]
    await k8s.custom.create_namespaced_custom_object(GROUP, VERSION, k8s.namespace, PLURAL, body)
    operator = start_operator()
    await eventually(
        lambda: k8s.provider("claude"),
        lambda b: b["metadata"].get("finalizers") == ["example.com/keep-me"],
        timeout=30,
    )
    await k8s.wait_phase("claude")  # and it is served as before
    operator.stop()
    await k8s.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        k8s.namespace,
        PLURAL,
        "claude",
        [{"op": "remove", "path": "/metadata/finalizers"}],
        _content_type="application/json-patch+json",
    )  # the other finalizer is its owner's business; ours is gone
    await k8s.delete_provider("claude")
    await eventually(lambda: k8s.provider_or_none("claude"), lambda b: b is None, timeout=10)
