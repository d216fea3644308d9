"""Webhook alerts: bodies per format, retries with backoff, a receiver never slows a sync."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmhub_common.tokens import TokenHealth, TokenStatus, classify
from llmhub_operator import notify
from llmhub_operator.metrics import ALERTS
from llmhub_operator.model import parse_spec
from llmhub_operator.notify import Webhook, alert_for, body, detect_format
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.waiting import eventually

SPEC = parse_spec(
    "claude",
    "hub",
    {
        "provider": "claude",
        "source": {
            "azureKeyVault": {
                "vaultUrl": "https://kv.vault.azure.net",
                "secretName": "claude-oauth-token",
            }
        },
    },
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.stop()


def health(days: float) -> TokenHealth:
    return classify(datetime.now(UTC) + timedelta(days=days), warn_before_days=3)


def expiring() -> notify.Alert:
    return alert_for("TokenExpiring", SPEC, "valid", health(2.5), "Token expires soon")


def test_formats_are_detected_from_the_webhook_host() -> None:
    assert detect_format("https://hooks.slack.com/services/T/B/x") == "slack"
    assert detect_format("https://contoso.webhook.office.com/webhookb2/x") == "teams"
    assert detect_format("https://prod-1.westeurope.logic.azure.com/workflows/x") == "teams"
    assert detect_format("https://alerts.example.com/hook") == "generic"
    assert detect_format("https://hooks.slack.com.evil.example/x") == "generic"


def test_each_body_names_the_provider_the_state_and_how_to_renew() -> None:
    alert = expiring()
    slack = body(alert, "slack")
    assert set(slack) == {"text"}
    assert "TokenExpiring for hub/claude (claude)" in slack["text"]
    assert "llm-mcp-hub token push claude --vault-url https://kv.vault.azure.net" in slack["text"]
    teams = body(alert, "teams")
    (attachment,) = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    texts = [b["text"] for b in attachment["content"]["body"]]
    assert "TokenExpiring for hub/claude" in texts[0]
    assert "Renew" in texts[1]
    generic = body(alert, "generic")
    assert generic["event"] == "TokenExpiring"
    assert (generic["status"], generic["previous_status"]) == ("warning", "valid")
    assert generic["days_remaining"] == 2
    assert generic["severity"] == "warning"


async def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    receiver: WebhookReceiver,
) -> None:
    receiver.answers = [500, 429, 503]
    hook = Webhook(url=receiver.url, fmt="slack", attempts=5, backoff_s=0.05)
    sent = ALERTS.labels("sent")._value.get()
    hook.start()
    try:
        assert hook.send(expiring())
        await eventually(lambda: _async(receiver.bodies()), lambda b: len(b) == 1, timeout=10)
    finally:
        await hook.close()
    assert receiver.attempts == 4
    assert receiver.bodies()[0]["text"].startswith(":warning: *llm-mcp-hub: TokenExpiring")
    assert ALERTS.labels("sent")._value.get() == sent + 1


async def test_a_client_error_is_not_retried_and_attempts_are_bounded(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers = [400, 500, 500, 500]
    hook = Webhook(url=receiver.url, attempts=3, backoff_s=0.01)
    failed = ALERTS.labels("failed")._value.get()
    hook.start()
    hook.send(expiring())  # 400: given up at once
    hook.send(expiring())  # 500 x3: given up after 3 attempts
    await hook.close(seconds=10)
    assert receiver.attempts == 4
    assert receiver.bodies() == []
    assert ALERTS.labels("failed")._value.get() == failed + 2
    assert "secretpart" not in caplog.text  # the URL is a credential: never logged


@pytest.mark.parametrize("redirect", [307, 308, 302])
async def test_a_redirect_is_never_followed_so_the_alert_goes_nowhere_else(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture, redirect: int
) -> None:
    elsewhere = WebhookReceiver()
    try:
        receiver.answers = [redirect]
        receiver.redirect_to = elsewhere.url
        hook = Webhook(url=receiver.url, attempts=3, backoff_s=0.01)
        failed = ALERTS.labels("failed")._value.get()
        hook.start()
        hook.send(expiring())
        await hook.close(seconds=10)
        assert elsewhere.attempts == 0, "a redirect re-posted the alert to another receiver"
        assert receiver.attempts == 1, "a redirect is an answer, not worth another try"
        assert receiver.bodies() == []
        assert ALERTS.labels("failed")._value.get() == failed + 1
        assert f"HTTP {redirect}: a redirect, not followed" in caplog.text
    finally:
        elsewhere.stop()


async def test_a_receiver_that_hangs_or_is_down_never_blocks_the_caller(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.hang = True
    url_file = tmp_path / "url"
    url_file.write_text(receiver.url + "\n")
    hook = Webhook(url_file=url_file, timeout_s=30, attempts=5, queue_size=3)
    hook.start()
    started = time.monotonic()
    accepted = [hook.send(expiring()) for _ in range(10)]
    elapsed = time.monotonic() - started
    assert elapsed < 0.05
    # One in the worker's hands, three queued, the rest dropped (and counted), never waited on.
    await asyncio.sleep(0.2)
    assert accepted[:3] == [True, True, True]
    assert accepted.count(False) >= 6
    closing = time.monotonic()
    await hook.close(seconds=0.5)
    assert time.monotonic() - closing < 3


async def test_token_changes_alert_once_per_state_and_back_on_renewal(
    receiver: WebhookReceiver,
) -> None:
    hook = Webhook(url=receiver.url, fmt="generic", backoff_s=0.01)
    notify.use(hook)
    body_ = {"metadata": {"name": "claude", "namespace": "hub"}}
    try:
        notify.token_changed(body_, SPEC, None, health(100))  # first sight, valid: nothing
        notify.token_changed(body_, SPEC, "valid", health(2))
        notify.token_changed(
            body_,
            SPEC,
            "warning",
            TokenHealth(TokenStatus.EXPIRED, datetime.now(UTC), 0, "Token has expired"),
        )
        notify.token_changed(body_, SPEC, "expired", health(365))
        notify.token_changed(body_, SPEC, "unknown", health(365))  # not a renewal: nothing
        await eventually(lambda: _async(receiver.bodies()), lambda b: len(b) == 3, timeout=10)
    finally:
        await notify.close()
    events = [(b["event"], b["previous_status"], b["status"]) for b in receiver.bodies()]
    assert events == [
        ("TokenExpiring", "valid", "warning"),
        ("TokenExpired", "warning", "expired"),
        ("TokenRenewed", "expired", "valid"),
    ]
    assert receiver.bodies()[2]["message"].startswith("Token renewed: valid again (was expired)")


async def _async(value: object) -> object:
    return value
