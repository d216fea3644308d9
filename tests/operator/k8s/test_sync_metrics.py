"""The series LLMHubSyncFailing reads, scraped from a real operator process: a first sync that
fails is visible (failing since, interval) before any success exists; a success resets it.
The rule's logic on such series is checked by promtool in tests/chart/test_alert_rules.py."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube
from tests.operator.k8s.conftest import StartOperator
from tests.operator.k8s.operators import OperatorProcess
from tests.waiting import eventually

CLAUDE = "sk-ant-oat01-" + "k8s-sync-metrics-0001"
NAME = "never-synced"  # its Key Vault secret, never-synced-token, is this test's alone
DAY = 86400


async def _series(operator: OperatorProcess) -> dict[str, float]:
    """Per-provider sync series of this test's LLMProvider, by metric name."""
    found = {}
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            if sample.labels.get("name") == NAME and sample.name.startswith(
                (
                    "llmhub_operator_sync_failing",
                    "llmhub_operator_last_sync",
                    "llmhub_operator_refresh",
                )
            ):
                assert sample.labels["provider"] == "claude"
                found[sample.name] = sample.value
    return found


async def test_a_failing_first_sync_exports_since_when_and_a_success_resets_it(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    before = time.time()
    await k8s.create_provider(NAME, fake_azure.base_url)  # its Key Vault secret is missing
    operator = start_operator()
    await k8s.wait_phase(NAME, "Degraded")
    failing = await eventually(
        lambda: _series(operator),
        lambda s: s.get("llmhub_operator_sync_failing_since_timestamp_seconds", 0) > 0,
        timeout=10,
    )
    since = failing["llmhub_operator_sync_failing_since_timestamp_seconds"]
    assert before - 1 <= since <= time.time()
    assert failing["llmhub_operator_refresh_interval_seconds"] == 2.0
    assert "llmhub_operator_last_sync_success_timestamp_seconds" not in failing

    # Later failures keep the start of the run: the alert measures how long it has failed.
    await eventually(
        lambda: _async(operator.metric("llmhub_operator_sync_errors_total")),
        lambda n: n >= 3,
        timeout=15,
    )
    again = await _series(operator)
    assert again["llmhub_operator_sync_failing_since_timestamp_seconds"] == since

    fake_azure.set_secret(f"{NAME}-token", CLAUDE, expires=time.time() + 90 * DAY)
    synced = await eventually(
        lambda: _series(operator),
        lambda s: s.get("llmhub_operator_sync_failing_since_timestamp_seconds") == 0,
        timeout=15,
    )
    assert synced["llmhub_operator_last_sync_success_timestamp_seconds"] > since

    fake_azure.fail(f"{NAME}-token", 404, times=100)  # failing again: a new run begins
    refailed = await eventually(
        lambda: _series(operator),
        lambda s: s.get("llmhub_operator_sync_failing_since_timestamp_seconds", 0) > 0,
        timeout=15,
    )
    assert refailed["llmhub_operator_sync_failing_since_timestamp_seconds"] > since


async def _async(value: object) -> object:
    return value
