"""An LLMProvider's life: Pending before the first sync, a failed roll retried soon, and no
state left behind once it is deleted."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes_asyncio import client

from llmhub_operator import metrics
from llmhub_operator.credential import content_hash
from llmhub_operator.reconcile import Deps
from llmhub_operator.rollout import Roller
from tests.operator.kopf_harness import (
    FakeSource,
    GatedSource,
    Kube,
    condition,
    eventually,
)
from tests.operator.kstatus import kstatus

TOKEN = "sk-ant-oat01-lifecycle-token-4444444444444"


async def test_pending_with_synced_unknown_until_the_first_sync_completes(kube: Kube) -> None:
    source = GatedSource()
    source.set_secret("claude-token", TOKEN)
    async with kube.operator(source):
        await kube.create_provider("claude", gateway={})
        pending = await eventually(
            lambda: kube.provider("claude"),
            lambda b: b.get("status", {}).get("phase") == "Pending",
        )
        source.gate.set()
        ready = await eventually(
            lambda: kube.provider("claude"),
            lambda b: b.get("status", {}).get("phase") == "Ready",
        )

    syncing = condition(pending, "Synced")
    assert (syncing["status"], syncing["reason"]) == ("Unknown", "Syncing")
    assert condition(ready, "Synced")["status"] == "True"


async def test_failed_deployment_patch_is_retried_before_the_refresh_interval(
    kube: Kube, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient API error (a 500 while the API server restarts) is retried with backoff."""
    source.set_secret("claude-token", TOKEN)
    await kube.create_deployment("gateway")
    original, failures = Roller.ensure, [client.ApiException(status=500, reason="restarting")]

    async def flaky(self: Roller, *args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await original(self, *args)

    monkeypatch.setattr(Roller, "ensure", flaky)
    async with kube.operator(source):
        await kube.create_provider("claude", refreshInterval="1h")
        failed = await eventually(
            lambda: kube.provider("claude"),
            lambda b: condition(b, "GatewayRolled").get("reason") == "PatchFailed",
        )
        rolled = await eventually(
            lambda: kube.provider("claude"),
            lambda b: condition(b, "GatewayRolled").get("status") == "True",
            timeout=8,
        )
        annotations = await kube.template_annotations("gateway")

    assert "HTTP 500" in condition(failed, "GatewayRolled")["message"]
    assert kstatus(failed) == "InProgress"  # retried on its own soon: Reconciling, not Stalled
    assert failed["status"]["phase"] == "Degraded"
    assert condition(rolled, "GatewayRolled")["reason"] == "Rolled"
    assert annotations["llm-mcp-hub.io/claude-hash"] == content_hash(TOKEN)
    assert await kube.rollouts("gateway") == 1  # the retry's; the refused one changed nothing


async def test_delete_drops_cached_reads_holds_and_token_metrics(
    kube: Kube, source: FakeSource
) -> None:
    source.set_secret("claude-token", TOKEN, expires=datetime(2099, 1, 1, tzinfo=UTC))
    key = (kube.namespace, "claude")
    async with kube.operator(source) as memo:
        deps: Deps = memo.deps
        for _cycle in range(2):
            await kube.create_provider("claude", gateway={})
            await eventually(
                lambda: kube.provider("claude"),
                lambda b: b.get("status", {}).get("phase") == "Ready",
            )
            before = _state(deps, key)
            deps.not_before[key] = time.monotonic() - 1  # a Retry-After hold, already over
            await kube.delete_provider("claude")
            await eventually(kube.provider_names, lambda names: "claude" not in names)
            after = await eventually(
                _probe_state(deps, key), lambda state: state == (False, False, [])
            )
            assert before[0], before  # the state was there while the provider lived
            assert before[2], before
            assert after == (False, False, [])


State = tuple[bool, bool, list[tuple[str, ...]]]


def _state(deps: Deps, key: tuple[str, str]) -> State:
    """Last read cached?, Retry-After hold?, token metric series: everything kept per object."""
    return key in deps.fetched, key in deps.not_before, _series(key)


def _probe_state(deps: Deps, key: tuple[str, str]) -> Callable[[], Awaitable[State]]:
    async def probe() -> State:
        return _state(deps, key)

    return probe


def _series(key: tuple[str, str]) -> list[tuple[str, ...]]:
    return [
        labels
        for gauge in metrics._PER_PROVIDER
        for labels in metrics.label_sets(gauge)
        if labels[:2] == key
    ]
