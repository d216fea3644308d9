"""A deletion the operator never saw (cut off, then a watch that resumes with 410 Gone): nothing
is written for the dead object, the gateway does not roll and its Secret does not come back."""

from __future__ import annotations

import asyncio

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kube import RealKube
from tests.operator.k8s.conftest import StartOperator
from tests.tcp_proxy import FaultyProxy
from tests.waiting import eventually

TOKEN = "sk-ant-oat01-" + "missed-deletion-token-0017"
QUIET_S = 5  # watched past the re-list's LIST and two refresh intervals of "claude"


def forgot(name: str, log: str) -> bool:
    return any(f"/{name} " in line and "forgot it" in line for line in log.splitlines())


async def test_a_deletion_missed_behind_a_410_rolls_nothing_and_restores_no_secret(
    k8s: RealKube,
    fake_azure: FakeAzure,
    start_operator: StartOperator,
    control_plane: ControlPlane,
) -> None:
    """ "claude" is re-read every 2 s: its next pass finds it gone before writing anything.
    "idle" (an hour) has no pass to come: the LIST after kopf's re-list drops it (the periodic
    LIST is off here, so only the watch restart can have triggered it); "keeper" stays."""
    for name in ("claude", "idle", "keeper"):
        fake_azure.set_secret(f"{name}-token", TOKEN)
    await k8s.create_deployment("gateway")
    await k8s.create_provider("claude", fake_azure.base_url)
    await k8s.create_provider("idle", fake_azure.base_url, gateway={}, refreshInterval="1h")
    await k8s.create_provider("keeper", fake_azure.base_url, gateway={}, refreshInterval="1h")
    with FaultyProxy(control_plane.apiserver_port) as proxy:
        operator = start_operator(
            kubeconfig=control_plane.kubeconfig_via(proxy.port),
            log_level="DEBUG",  # kopf says "Restarting the watch-stream" (its 410) only at DEBUG
            extra_env={"LLMHUB_RESYNC_SECONDS": "3600"},
        )
        for name in ("claude", "idle", "keeper"):
            await k8s.wait_phase(name)
        await eventually(
            lambda: k8s.template_annotations("gateway"),
            lambda a: "llm-mcp-hub.io/claude-secret-uid" in a,
        )
        generation = (await k8s.deployment("gateway")).metadata.generation
        writes = operator.metric("llmhub_operator_secret_writes_total")

        proxy.partition()  # the operator is cut off: it will not see the DELETED events
        for name in ("claude", "idle"):
            await k8s.delete_provider(name)
        for name in ("claude", "idle"):  # the garbage collector takes the Secrets
            await eventually(
                lambda n=name: k8s.secret_or_none(f"{n}-credentials"),  # type: ignore[misc]
                lambda s: s is None,
                timeout=30,
            )
        await asyncio.to_thread(control_plane.compact_etcd)
        await asyncio.to_thread(control_plane.restart_apiserver)  # the watch cache is gone too
        proxy.partition(False)
        proxy.drop_connections()  # requests stuck in the black hole fail now, not in minutes

        await eventually(
            lambda: asyncio.to_thread(operator.log),
            lambda log: forgot("claude", log) and forgot("idle", log),
            timeout=30,
        )
        loop = asyncio.get_running_loop()
        quiet_until = loop.time() + QUIET_S
        while loop.time() < quiet_until:
            assert await k8s.secret_or_none("claude-credentials") is None
            assert await k8s.secret_or_none("idle-credentials") is None
            assert (await k8s.deployment("gateway")).metadata.generation == generation
            await asyncio.sleep(0.25)
        log = operator.log()
        keeper = await k8s.secret_or_none("keeper-credentials")

    assert "Restarting the watch-stream for llmproviders" in log  # kopf's watch got 410 Gone
    assert "is not in a fresh LIST" in log  # "idle" went by the LIST after the re-list
    assert "restoring it" not in log
    assert operator.metric("llmhub_operator_secret_writes_total") == writes
    # Forgotten everywhere (one provider left): a gone provider must not look like a live token.
    assert operator.metric("llmhub_operator_refresh_interval_seconds") == 3600
    assert keeper is not None
    assert operator.alive
