"""Errors that need a person are reported and retried at the refresh interval, never hot."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube
from tests.operator.identity import operator_kubeconfig
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

TOKEN = "sk-ant-oat01-" + "api-errors-token-0010"


def _rolled(body: dict) -> dict:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == "GatewayRolled":
            return dict(cond)
    return {}


async def test_forbidden_gateway_patch_says_what_to_fix_and_waits_for_the_interval(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator, tmp_path: Path
) -> None:
    # Everything the operator needs, except patching Deployments.
    kubeconfig = await operator_kubeconfig(k8s, tmp_path / "op.kubeconfig", {"verbs": ["get"]})
    fake_azure.set_secret("claude-token", TOKEN)
    await k8s.create_deployment("gateway")
    await k8s.create_provider("claude", fake_azure.base_url, refreshInterval="10s")
    start_operator(kubeconfig=kubeconfig)
    body = await eventually(
        lambda: k8s.provider("claude"), lambda b: _rolled(b).get("status") == "False", timeout=30
    )
    rolled = _rolled(body)
    assert rolled["reason"] == "PatchFailed"
    assert "Deployment gateway" in rolled["message"]
    assert "403" in rolled["message"]
    assert "RBAC" in rolled["message"]
    assert (await k8s.secret("claude-credentials")).data  # the Secret itself was written
    # Not a hot retry loop: within 8 s (less than the 10 s interval) no second Key Vault read.
    reads = len(fake_azure.requests("claude-token", method="GET"))
    await asyncio.sleep(8)
    assert len(fake_azure.requests("claude-token", method="GET")) == reads


async def test_each_key_vault_read_is_counted_once_in_the_metrics(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", TOKEN)
    await k8s.create_provider("claude", fake_azure.base_url, gateway={}, refreshInterval="1h")
    operator = start_operator()
    await k8s.wait_phase("claude")
    served = [r for r in fake_azure.requests("claude-token", method="GET") if r.status == 200]
    assert len(served) == 1
    count = operator.metric("llmhub_operator_keyvault_request_duration_seconds_count")
    assert count == 1.0
