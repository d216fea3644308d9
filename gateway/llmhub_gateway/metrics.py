"""Prometheus metrics, one registry per app so several apps can live in one process (tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Every series the gateway exports; names are a contract with dashboards and alerts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llmhub_gateway_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.provider_latency = Histogram(
            "llmhub_gateway_provider_latency_seconds",
            "Time from sending a prompt to the provider until its answer ended.",
            ["provider", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "llmhub_gateway_provider_in_flight",
            "Provider calls running now, per provider.",
            ["provider"],
            registry=self.registry,
        )
        # Named as the caller-identity issue asks; caller is the bounded label (names from
        # configuration, "other" for the rest), never a raw subject.
        self.tokens = Counter(
            "llm_mcp_hub_gateway_tokens",
            "Tokens the providers reported, by caller, provider and direction (in/out).",
            ["caller", "provider", "direction"],
            registry=self.registry,
        )
        self.token_days = Gauge(
            "llmhub_gateway_token_days_remaining",
            "Whole days until the provider credential expires (-1 when unknown).",
            ["provider"],
            registry=self.registry,
        )

        # The subscriptions' rate-limit state (subscription_state.py); ``window`` is one of
        # its fixed WINDOWS, ``reason`` one of its REASONS.
        self.subscription_utilization = Gauge(
            "llm_mcp_hub_gateway_subscription_utilization",
            "Share of the subscription's rate-limit window used (0..1), as the CLI reported.",
            ["provider", "window"],
            registry=self.registry,
        )
        self.subscription_resets_at = Gauge(
            "llm_mcp_hub_gateway_subscription_resets_at_seconds",
            "When the subscription's rate-limit window resets (Unix time), as the CLI reported.",
            ["provider", "window"],
            registry=self.registry,
        )
        self.subscription_limited = Gauge(
            "llm_mcp_hub_gateway_subscription_limited",
            "1 while the gateway refuses turns of this subscription (rate-limited, or overage "
            "blocked), else 0.",
            ["provider"],
            registry=self.registry,
        )
        self.subscription_refusals = Counter(
            "llm_mcp_hub_gateway_subscription_refusals",
            "Turns refused because of the subscription's reported state, by reason.",
            ["provider", "reason"],
            registry=self.registry,
        )

        # Masking (masking/): replacements per recognizer; the label is a configured name.
        self.masked = Counter(
            "llmhub_gateway_masked_total",
            "Identifiers replaced by placeholders before a provider saw them, by recognizer.",
            ["provider", "recognizer"],
            registry=self.registry,
        )

    @contextmanager
    def provider_call(self, provider: str) -> Iterator[dict[str, str]]:
        """Track one provider call; the caller sets ``outcome`` in the yielded dict."""
        state = {"outcome": "error"}
        gauge = self.in_flight.labels(provider)
        gauge.inc()
        started = time.perf_counter()
        try:
            yield state
        finally:
            gauge.dec()
            self.provider_latency.labels(provider, state["outcome"]).observe(
                time.perf_counter() - started
            )


class RequestMetricsMiddleware:
    """Counts every HTTP request by its route template (never the raw path: ids are unbounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope["method"], str(status["code"])).inc()
