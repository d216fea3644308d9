"""Token alerts from a real operator process: Events and the webhook, once per state change."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.fakes.fake_azure import FakeAzure
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.k8s.kube import RealKube
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

CLAUDE = "sk-ant-oat01-" + "k8s-alerts-token-0001"
RENEWED = "sk-ant-oat01-" + "k8s-alerts-token-0002"
DAY = 86400


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.stop()


async def _bodies(receiver: WebhookReceiver) -> list[dict]:
    return receiver.bodies()


async def test_warning_then_renewal_alert_once_each_by_event_and_webhook(
    k8s: RealKube,
    fake_azure: FakeAzure,
    start_operator: StartOperator,
    receiver: WebhookReceiver,
) -> None:
    fake_azure.set_secret("claude-token", CLAUDE, expires=time.time() + DAY)
    await k8s.create_provider("claude", fake_azure.base_url)
    start_operator(
        extra_env={"LLMHUB_ALERT_WEBHOOK_URL": receiver.url, "LLMHUB_CLUSTER_NAME": "test-cluster"}
    )
    (expiring,) = await eventually(lambda: _bodies(receiver), lambda b: len(b) == 1, timeout=20)
    assert expiring["event"] == "TokenExpiring"
    assert (expiring["namespace"], expiring["name"]) == (k8s.namespace, "claude")
    assert (expiring["previous_status"], expiring["status"]) == (None, "warning")  # first sync
    assert expiring["cluster"] == "test-cluster"
    assert expiring["renew"].endswith("--secret-name claude-token")
    await eventually(lambda: k8s.events("TokenExpiring"), lambda e: len(e) == 1, timeout=10)

    fake_azure.set_secret("claude-token", RENEWED, expires=time.time() + 100 * DAY)
    bodies = await eventually(lambda: _bodies(receiver), lambda b: len(b) == 2, timeout=20)
    renewed = bodies[1]
    assert renewed["event"] == "TokenRenewed"
    assert (renewed["previous_status"], renewed["status"]) == ("warning", "valid")
    assert renewed["days_remaining"] == 99
    (event,) = await eventually(
        lambda: k8s.events("TokenRenewed"), lambda e: len(e) == 1, timeout=10
    )
    assert event.type == "Normal"
    assert "was warning" in event.message

    # Several 2 s refreshes later: still one alert per change, and no token in any of them.
    first_sync = (await k8s.provider("claude"))["status"]["lastSyncTime"]
    await eventually(
        lambda: k8s.provider("claude"),
        lambda b: b["status"]["lastSyncTime"] > first_sync,
        timeout=15,
    )
    assert len(receiver.bodies()) == 2
    assert len(await k8s.events("TokenExpiring")) == 1
    text = json.dumps(receiver.bodies())
    assert CLAUDE not in text
    assert RENEWED not in text


async def test_a_receiver_that_never_answers_does_not_delay_syncing(
    k8s: RealKube,
    fake_azure: FakeAzure,
    start_operator: StartOperator,
    receiver: WebhookReceiver,
) -> None:
    receiver.hang = True
    fake_azure.set_secret("claude-token", CLAUDE, expires=time.time() + DAY)
    await k8s.create_provider("claude", fake_azure.base_url, gateway={})
    start_operator(
        extra_env={
            "LLMHUB_ALERT_WEBHOOK_URL": receiver.url,
            "LLMHUB_ALERT_WEBHOOK_TIMEOUT_SECONDS": "60",
        }
    )
    body = await k8s.wait_phase("claude", "Ready")
    assert body["status"]["token"]["status"] == "warning"
    await eventually(lambda: _async(receiver.attempts), lambda n: n >= 1, timeout=10)
    # The alert hangs in the worker; the 2 s refresh goes on regardless.
    seen = body["status"]["lastSyncTime"]
    for _ in range(2):
        later = await eventually(
            lambda: k8s.provider("claude"),
            lambda b, s=seen: b["status"]["lastSyncTime"] > s,
            timeout=5,
        )
        seen = later["status"]["lastSyncTime"]
    assert receiver.bodies() == []


async def _async(value: object) -> object:
    return value
