"""Watches break (an API server restart, an expired resourceVersion); the operator re-watches."""

from __future__ import annotations

import asyncio

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kube import RealKube, decode
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

TOKEN = "sk-ant-oat01-" + "watch-restart-token-0011"


async def test_after_an_api_server_restart_both_watches_still_act(
    k8s: RealKube,
    fake_azure: FakeAzure,
    start_operator: StartOperator,
    control_plane: ControlPlane,
) -> None:
    fake_azure.set_secret("claude-token", TOKEN)
    # An hour between refreshes: whatever happens below within seconds came from a watch.
    await k8s.create_provider("claude", fake_azure.base_url, gateway={}, refreshInterval="1h")
    start_operator()
    await k8s.wait_phase("claude")
    await asyncio.to_thread(control_plane.restart_apiserver)

    # The managed-Secret watch: a deleted Secret is restored.
    first = await eventually(lambda: k8s.secret("claude-credentials"), bool, timeout=30)
    await k8s.core.delete_namespaced_secret("claude-credentials", k8s.namespace)

    secret = await k8s.wait_recreated("claude-credentials", first.metadata.uid, timeout=30)
    assert decode(secret, "CLAUDE_CODE_OAUTH_TOKEN") == TOKEN

    # kopf's LLMProvider watch: a spec change is acted on (a new target Secret appears).
    await k8s.patch_spec("claude", {"target": {"secretName": "claude-moved"}})
    moved = await eventually(lambda: k8s.secret_or_none("claude-moved"), bool, timeout=30)
    assert decode(moved, "CLAUDE_CODE_OAUTH_TOKEN") == TOKEN
