"""Events once per state change, metrics on /metrics, and no secret in any output channel."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest

from tests.fakes.fake_azure import FakeAzure
from tests.leaks import assert_no_leak
from tests.operator.kopf_harness import (
    FakeSource,
    Kube,
    condition,
    eventually,
)

TOKEN = "sk-ant-oat01-observability-token-4444444444"


def token_is(state: str) -> Any:
    return lambda b: b.get("status", {}).get("token", {}).get("status") == state


async def test_token_events_fire_once_when_entering_warning_and_expired(
    kube: Kube, source: FakeSource
) -> None:
    now = datetime.now(UTC)
    source.set_secret("claude-token", TOKEN, expires=now + timedelta(days=2, hours=1))
    async with kube.operator(source):
        await kube.create_provider("claude", gateway={})
        warned = await eventually(lambda: kube.provider("claude"), token_is("warning"))
        await kube.wait_fetches(source, 3)
        source.set_secret("claude-token", TOKEN + "-v2", expires=now - timedelta(hours=1))
        expired = await eventually(lambda: kube.provider("claude"), token_is("expired"))
        await kube.wait_fetches(source, 3)

    assert warned["status"]["phase"] == "Ready"
    assert warned["status"]["token"]["daysRemaining"] == 2
    assert condition(warned, "TokenValid")["reason"] == "ExpiresSoon"
    assert expired["status"]["phase"] == "Expired"
    assert condition(expired, "TokenValid")["status"] == "False"
    assert len(await kube.event_reasons("TokenExpiring")) == 1
    assert len(await kube.event_reasons("TokenExpired")) == 1
    assert all(e["type"] == "Warning" for e in await kube.event_reasons("TokenExpired"))


async def test_metrics_count_syncs_rollouts_and_export_token_expiry(
    kube: Kube, source: FakeSource
) -> None:
    expires = datetime.now(UTC) + timedelta(days=40, hours=1)
    source.set_secret("metrics-token", TOKEN, expires=expires)
    labels = {"namespace": kube.namespace, "name": "metrics", "provider": "claude"}
    roll_labels = {"namespace": kube.namespace, "deployment": "gateway"}
    ok_before = REGISTRY.get_sample_value("llmhub_operator_syncs_total", {"result": "ok"}) or 0
    rolls_before = REGISTRY.get_sample_value("llmhub_operator_rollouts_total", roll_labels) or 0
    await kube.create_deployment("gateway")
    async with kube.operator(source):
        await kube.create_provider("metrics")
        await eventually(lambda: kube.provider("metrics"), token_is("valid"))
        await kube.wait_fetches(source, 2)

        async def ok_syncs() -> float:
            return REGISTRY.get_sample_value("llmhub_operator_syncs_total", {"result": "ok"}) or 0

        # A fetch starting is not its sync finishing: wait for the counter, not the fetches.
        await eventually(ok_syncs, lambda count: count >= ok_before + 3)
    text = generate_latest(REGISTRY).decode()

    assert REGISTRY.get_sample_value("llmhub_operator_token_days_remaining", labels) == 40
    stamp = REGISTRY.get_sample_value("llmhub_operator_token_expiry_timestamp_seconds", labels)
    assert stamp == pytest.approx(expires.timestamp(), abs=1)
    assert (REGISTRY.get_sample_value("llmhub_operator_syncs_total", {"result": "ok"}) or 0) >= (
        ok_before + 3
    )
    assert REGISTRY.get_sample_value("llmhub_operator_rollouts_total", roll_labels) == (
        rolls_before + 1
    )
    assert 'llmhub_operator_secret_writes_total{action="create"}' in text
    # (Key Vault request durations: the real source's metric, see keyvault/test_errors.py;
    # this test's source is the in-process fake, so asserting it here depended on test order.)


async def test_no_secret_value_reaches_logs_events_status_metrics_or_errors(
    kube: Kube,
    fake_azure: FakeAzure,
    azure_env: dict[str, str],
    vault_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    claude = "sk-ant-oat01-hygiene-claude-5555555555"
    rotated = "sk-ant-oat01-hygiene-rotated-6666666666"
    gemini = json.dumps(
        {"access_token": "ya29.hygiene-access-77777", "refresh_token": "1//hygiene-refresh-8888"}
    )
    broken = json.dumps({"access_token": "ya29.hygiene-broken-99999"})
    fake_azure.set_secret("hygiene-claude", claude)
    fake_azure.set_secret("hygiene-gemini", gemini)
    source = {"vaultUrl": vault_url}
    async with kube.operator(None):
        await kube.create_provider(
            "claude", source={"azureKeyVault": {**source, "secretName": "hygiene-claude"}}
        )
        await kube.create_provider(
            "gemini",
            provider="gemini",
            source={"azureKeyVault": {**source, "secretName": "hygiene-gemini"}},
        )
        await kube.create_deployment("gateway")
        await eventually(lambda: kube.provider("gemini"), token_is("valid"), timeout=20)
        fake_azure.fail("hygiene-claude", 403, times=2)
        await eventually(
            lambda: kube.provider("claude"),
            lambda b: condition(b, "Synced").get("reason") == "Auth",
            timeout=20,
        )
        fake_azure.set_secret("hygiene-claude", rotated)
        fake_azure.set_secret("hygiene-gemini", broken)
        await eventually(
            lambda: kube.provider("gemini"),
            lambda b: condition(b, "Synced").get("reason") == "InvalidCredential",
            timeout=20,
        )
        await eventually(
            lambda: kube.provider("claude"),
            lambda b: b.get("status", {}).get("phase") == "Ready",
            timeout=20,
        )
        providers = [await kube.provider("claude"), await kube.provider("gemini")]

    outputs = {
        "logs": "\n".join(
            f"{r.getMessage()} {r.exc_text or ''} {r.exc_info!r}" for r in caplog.records
        ),
        "events": json.dumps(await kube.events(), default=str),
        "status": json.dumps(providers, default=str),
        "metrics": generate_latest(REGISTRY).decode(),
    }
    values = [claude, rotated, gemini, broken, *fake_azure.issued_tokens()]
    values += ["ya29.hygiene-access-77777", "1//hygiene-refresh-8888", "ya29.hygiene-broken-99999"]
    assert len(caplog.records) > 10  # the run really logged
    assert await kube.event_reasons("SyncFailed")
    for channel, text in outputs.items():
        assert_no_leak(text, **{f"{channel}#{i}": value for i, value in enumerate(values)})
