"""Token state alerts: a Kubernetes Event and, when configured, a chat webhook.

Called once per token state change (the caller compares with the previous status): entering
``warning`` or ``expired``, and back to ``valid`` after a renewal. The webhook URL is a secret
(Slack and Teams URLs carry their own credential), read from ``LLMHUB_ALERT_WEBHOOK_URL_FILE``
(the chart mounts a Secret there; re-read on each delivery, so rotating it needs no restart) or
``LLMHUB_ALERT_WEBHOOK_URL``, and registered with the log redactor. Bodies are Slack-compatible
(``text``), Teams-compatible (an Adaptive Card message, what Teams Workflows webhooks take) or
generic JSON. Delivery is fire-and-forget: a bounded queue and one worker with retries and
exponential backoff (tenacity), so a slow or failing receiver never delays a sync; when the queue
is full the alert is dropped, logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from llmhub_common.logging import secrets
from llmhub_common.tokens import TokenHealth, TokenStatus, format_rfc3339
from llmhub_operator import events, metrics
from llmhub_operator.model import ProviderSpec

log = logging.getLogger(__name__)

Format = Literal["slack", "teams", "generic"]
URL_ENV, URL_FILE_ENV = "LLMHUB_ALERT_WEBHOOK_URL", "LLMHUB_ALERT_WEBHOOK_URL_FILE"
FORMAT_ENV = "LLMHUB_ALERT_WEBHOOK_FORMAT"  # auto (default) | slack | teams | generic
TIMEOUT_ENV = "LLMHUB_ALERT_WEBHOOK_TIMEOUT_SECONDS"
ATTEMPTS_ENV = "LLMHUB_ALERT_WEBHOOK_ATTEMPTS"
BACKOFF_ENV = "LLMHUB_ALERT_WEBHOOK_BACKOFF_SECONDS"
CLUSTER_ENV = "LLMHUB_CLUSTER_NAME"
QUEUE_SIZE = 100
_SEVERITY = {"TokenExpiring": "warning", "TokenExpired": "critical", "TokenRenewed": "info"}
_COLOR = {"warning": "warning", "critical": "attention", "info": "good"}
_ICON = {"warning": ":warning:", "critical": ":rotating_light:", "info": ":white_check_mark:"}


@dataclass(frozen=True, slots=True)
class Alert:
    """What one state change says; names and dates only, never a credential."""

    event: str  # TokenExpiring | TokenExpired | TokenRenewed
    severity: str  # warning | critical | info
    namespace: str
    name: str
    provider: str
    status: str
    previous_status: str | None
    expires_at: str | None
    days_remaining: int | None
    message: str
    renew: str  # the command that renews it
    cluster: str
    time: str


class _Retryable(Exception):
    """A delivery worth another try (connection error, timeout, 429, 5xx)."""


class Webhook:
    """A bounded queue and one delivery worker; ``send`` never waits."""

    def __init__(
        self,
        *,
        url: str | None = None,
        url_file: Path | None = None,
        fmt: Format | None = None,
        timeout_s: float = 5.0,
        attempts: int = 5,
        backoff_s: float = 1.0,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._url, self._url_file, self._fmt = url, url_file, fmt
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts, self._backoff_s = max(1, attempts), backoff_s
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_env(cls) -> Webhook | None:
        """None when no URL is configured (alerts are then Events only)."""
        url_file = os.environ.get(URL_FILE_ENV) or None
        url = os.environ.get(URL_ENV) or None
        if not url and not url_file:
            return None
        fmt = (os.environ.get(FORMAT_ENV) or "auto").strip().lower()
        return cls(
            url=url,
            url_file=Path(url_file) if url_file else None,
            fmt=fmt if fmt in ("slack", "teams", "generic") else None,  # type: ignore[arg-type]
            timeout_s=float(os.environ.get(TIMEOUT_ENV) or 5.0),
            attempts=int(os.environ.get(ATTEMPTS_ENV) or 5),
            backoff_s=float(os.environ.get(BACKOFF_ENV) or 1.0),
        )

    def start(self) -> None:
        if self._worker is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._worker = asyncio.create_task(self._run(), name="alert-webhook")

    def send(self, alert: Alert) -> bool:
        """Queue ``alert``; False (logged, counted) when the queue is full."""
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            metrics.ALERTS.labels("dropped").inc()
            log.warning(
                "alert queue full: %s for %s/%s dropped", alert.event, alert.namespace, alert.name
            )
            return False
        return True

    async def close(self, seconds: float = 5.0) -> None:
        """Give queued alerts ``seconds`` to go out, then stop."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), seconds)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: Alert) -> None:
        url = self._current_url()
        if not url:
            log.warning("alert webhook URL is empty; %s not sent", alert.event)
            metrics.ALERTS.labels("failed").inc()
            return
        secrets.add(url)
        fmt = self._fmt or detect_format(url)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(
                multiplier=self._backoff_s, max=60, jitter=self._backoff_s
            ),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._post(url, body(alert, fmt))
        except Exception as exc:  # the worker must survive any one receiver
            metrics.ALERTS.labels("failed").inc()
            log.warning(
                "alert %s for %s/%s not delivered: %s",
                alert.event,
                alert.namespace,
                alert.name,
                _why(exc),
            )
            return
        metrics.ALERTS.labels("sent").inc()
        log.info("alert %s for %s/%s delivered", alert.event, alert.namespace, alert.name)

    async def _post(self, url: str, payload: Mapping[str, Any]) -> None:
        assert self._session is not None
        try:
            # Never follow a redirect: a 307/308 would re-post the alert to whatever host the
            # receiver (or whoever answers for it) names.
            async with self._session.post(url, json=payload, allow_redirects=False) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retryable(_why(exc)) from None
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}")
        if 300 <= status < 400:
            raise RuntimeError(f"HTTP {status}: a redirect, not followed (not retried)")
        if status >= 400:
            raise RuntimeError(f"HTTP {status} (not retried)")

    def _current_url(self) -> str | None:
        if self._url_file is not None:
            try:
                return self._url_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                log.warning("alert webhook URL file unreadable: %s", type(exc).__name__)
                return None
        return self._url


_webhook: Webhook | None = None


def use(webhook: Webhook | None) -> None:
    """Deliver through ``webhook`` (started here); None: Events only."""
    global _webhook
    _webhook = webhook
    if webhook is not None:
        webhook.start()


async def close(seconds: float = 2.0) -> None:
    global _webhook
    if _webhook is not None:
        await _webhook.close(seconds)
    _webhook = None


def token_changed(
    body: Mapping[str, Any], spec: ProviderSpec, previous: str | None, health: TokenHealth
) -> None:
    """The token's status differs from the last one written: alert if it is worth a person."""
    if health.status in (TokenStatus.WARNING, TokenStatus.EXPIRED):
        events.token_state(body, status=health.status, message=health.message)
        event = "TokenExpired" if health.status is TokenStatus.EXPIRED else "TokenExpiring"
        message = health.message
    elif health.status is TokenStatus.VALID and previous in ("warning", "expired"):
        days = health.days_remaining
        message = f"Token renewed: valid again (was {previous}), {days} days left"
        events.token_renewed(body, message=message)
        event = "TokenRenewed"
    else:
        return
    if _webhook is not None:
        _webhook.send(alert_for(event, spec, previous, health, message))


def alert_for(
    event: str, spec: ProviderSpec, previous: str | None, health: TokenHealth, message: str
) -> Alert:
    renew = (
        f"llm-mcp-hub token push {spec.provider} --vault-url {spec.vault_url} "
        f"--secret-name {spec.secret_name}"
    )
    return Alert(
        event=event,
        severity=_SEVERITY[event],
        namespace=spec.namespace,
        name=spec.name,
        provider=spec.provider,
        status=health.status.value,
        previous_status=previous,
        expires_at=format_rfc3339(health.expires_at) if health.expires_at else None,
        days_remaining=health.days_remaining,
        message=message,
        renew=renew,
        cluster=os.environ.get(CLUSTER_ENV, ""),
        time=format_rfc3339(datetime.now(UTC)),
    )


def detect_format(url: str) -> Format:
    """Slack and Teams by their webhook hosts; anything else gets the generic body."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    teams_hosts = ("webhook.office.com", "logic.azure.com", "api.powerplatform.com")
    if any(host == h or host.endswith("." + h) for h in teams_hosts):
        return "teams"
    return "generic"


def body(alert: Alert, fmt: Format) -> dict[str, Any]:
    """The JSON body for the receiver's format."""
    title = f"llm-mcp-hub: {alert.event} for {alert.namespace}/{alert.name} ({alert.provider})"
    if alert.cluster:
        title += f" in {alert.cluster}"
    expiry = f"expires {alert.expires_at}" if alert.expires_at else "expiry unknown"
    detail = f"{alert.message}; {expiry}."
    if alert.event != "TokenRenewed":
        detail += f" Renew: `{alert.renew}`"
    if fmt == "slack":
        return {"text": f"{_ICON[alert.severity]} *{title}*\n{detail}"}
    if fmt == "teams":
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {
                    "type": "TextBlock",
                    "text": title,
                    "weight": "Bolder",
                    "wrap": True,
                    "color": _COLOR[alert.severity],
                },
                {"type": "TextBlock", "text": detail, "wrap": True},
            ],
        }
        return {
            "type": "message",
            "summary": title,
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
            ],
        }
    return {"source": "llm-mcp-hub", **asdict(alert)}


def _why(exc: BaseException) -> str:
    """A reason without the URL (aiohttp puts it in some messages)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    text = str(exc)
    return text if isinstance(exc, _Retryable) or text.startswith("HTTP ") else type(exc).__name__
