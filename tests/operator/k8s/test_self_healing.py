"""A managed Secret deleted or edited by hand comes back within seconds; a re-created one rolls."""

from __future__ import annotations

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube, decode
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

TOKEN = "sk-ant-oat01-" + "self-healing-token-0004"


async def test_deleted_secret_is_restored_and_the_gateway_rolls_once(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", TOKEN)
    await k8s.create_deployment("gateway")
    await k8s.create_provider("claude", fake_azure.base_url, refreshInterval="1h")
    start_operator()
    await k8s.wait_phase("claude")
    first = await k8s.secret("claude-credentials")
    generation = (await k8s.deployment("gateway")).metadata.generation
    reads = len(fake_azure.requests("claude-token", method="GET"))

    await k8s.core.delete_namespaced_secret("claude-credentials", k8s.namespace)

    secret = await k8s.wait_recreated("claude-credentials", first.metadata.uid)
    assert decode(secret, "CLAUDE_CODE_OAUTH_TOKEN") == TOKEN
    # Pods started while it was gone had no credentials: the gateway rolls, exactly once.
    dep = await eventually(
        lambda: k8s.deployment("gateway"),
        lambda d: d.metadata.generation == generation + 1,
        timeout=15,
    )
    annotations = dep.spec.template.metadata.annotations
    assert annotations["llm-mcp-hub.io/claude-secret-uid"] == secret.metadata.uid
    # Restored from the last read: no extra Key Vault request (interval is an hour).
    assert len(fake_azure.requests("claude-token", method="GET")) == reads
    again = await k8s.deployment("gateway")
    assert again.metadata.generation == generation + 1


async def test_operator_restart_rolls_nothing_and_rewrites_nothing(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", TOKEN)
    await k8s.create_deployment("gateway")
    await k8s.create_provider("claude", fake_azure.base_url, refreshInterval="1h")
    first = start_operator("op-a")
    await k8s.wait_phase("claude")
    secret = await k8s.secret("claude-credentials")
    generation = (await k8s.deployment("gateway")).metadata.generation
    first.stop()
    reads = len(fake_azure.requests("claude-token", method="GET"))
    start_operator("op-b")

    async def read_count() -> int:
        return len(fake_azure.requests("claude-token", method="GET"))

    await eventually(read_count, lambda n: n > reads, timeout=20)  # the restart's first sync

    def rolled_reason(body: dict) -> str:
        conditions = {c["type"]: c for c in body["status"]["conditions"]}
        return str(conditions["GatewayRolled"]["reason"])

    await eventually(
        lambda: k8s.provider("claude"), lambda b: rolled_reason(b) == "UpToDate", timeout=10
    )
    assert (await k8s.deployment("gateway")).metadata.generation == generation
    after = await k8s.secret("claude-credentials")
    assert after.metadata.resource_version == secret.metadata.resource_version
