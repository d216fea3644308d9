"""Prometheus metrics of the operator. Labels carry names, never values."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TOKEN_DAYS_REMAINING = Gauge(
    "llmhub_operator_token_days_remaining",
    "Whole days until the provider's credential expires (0 when expired).",
    ["namespace", "name", "provider"],
)
TOKEN_EXPIRY_TIMESTAMP = Gauge(
    "llmhub_operator_token_expiry_timestamp_seconds",
    "Unix time at which the provider's credential expires.",
    ["namespace", "name", "provider"],
)
LAST_SYNC_SUCCESS = Gauge(
    "llmhub_operator_last_sync_success_timestamp_seconds",
    "Unix time of the provider's last successful sync (alert: older than 3 refresh intervals).",
    ["namespace", "name", "provider"],
)
SYNC_FAILING_SINCE = Gauge(
    "llmhub_operator_sync_failing_since_timestamp_seconds",
    "Unix time of the first failed sync since the last success (the very first sync included); "
    "0 while the last sync succeeded.",
    ["namespace", "name", "provider"],
)
REFRESH_INTERVAL = Gauge(
    "llmhub_operator_refresh_interval_seconds",
    "The provider's spec.refreshInterval in seconds (set on every sync, failed ones too).",
    ["namespace", "name", "provider"],
)
ROLLOUT_FAILING = Gauge(
    "llmhub_operator_rollout_failing",
    "1 while the gateway Deployment could not be patched (GatewayRolled PatchFailed): the "
    "Secret is current, the running pods may not be; 0 otherwise.",
    ["namespace", "name", "provider"],
)
SYNCS = Counter(
    "llmhub_operator_syncs_total",
    "Reconciliations of an LLMProvider against Key Vault, by result (ok|error).",
    ["result"],
)
SYNC_ERRORS = Counter(
    "llmhub_operator_sync_errors_total",
    "Failed reconciliations by reason (auth, not_found, throttled, unavailable, invalid, ...).",
    ["reason"],
)
KEYVAULT_REQUEST_SECONDS = Histogram(
    "llmhub_operator_keyvault_request_duration_seconds",
    "Duration of Key Vault secret reads, by outcome (ok or the error reason).",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ROLLOUTS = Counter(
    "llmhub_operator_rollouts_total",
    "Gateway Deployment rollouts triggered by a credential change.",
    ["namespace", "deployment"],
)
SECRET_WRITES = Counter(
    "llmhub_operator_secret_writes_total",
    "Creates or updates of a target Secret, by action (create|update|annotate).",
    ["action"],
)
ALERTS = Counter(
    "llmhub_operator_alerts_total",
    "Token state alerts for the webhook, by outcome (sent|failed|dropped).",
    ["outcome"],
)

LEADER = Gauge(
    "llmhub_operator_leader",
    "1 while this replica holds the leader Lease (or runs alone), else 0.",
)
KEYVAULT_EVENTS = Counter(
    "llmhub_operator_keyvault_events_total",
    "Key Vault events from Event Grid, by outcome (received|acknowledged|released|rejected).",
    ["outcome"],
)
EVENT_TO_ROLLOUT_SECONDS = Histogram(
    "llmhub_operator_keyvault_event_to_rollout_seconds",
    "From a Key Vault event's time to the end of the sync it caused (Secret written, rollout "
    "requested).",
    buckets=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
EVENTGRID_UP = Gauge(
    "llmhub_operator_eventgrid_up",
    "1 while receiving Key Vault events from Event Grid works; 0 while it fails and polling at "
    "the fallback interval stands in (push rotation on, leader only).",
)

_PER_PROVIDER = (
    TOKEN_DAYS_REMAINING,
    TOKEN_EXPIRY_TIMESTAMP,
    LAST_SYNC_SUCCESS,
    SYNC_FAILING_SINCE,
    REFRESH_INTERVAL,
    ROLLOUT_FAILING,
)


def forget_provider(namespace: str, name: str) -> None:
    """Remove a deleted LLMProvider's series: a gone provider must not look like a live token."""
    for gauge in _PER_PROVIDER:
        for labels in list(label_sets(gauge)):
            if labels[:2] == (namespace, name):
                gauge.remove(*labels)


def label_sets(gauge: Gauge) -> list[tuple[str, ...]]:
    """The (namespace, name, provider) label sets a per-provider gauge currently exports."""
    return [
        (s.labels["namespace"], s.labels["name"], s.labels["provider"])
        for metric in gauge.collect()
        for s in metric.samples
    ]
