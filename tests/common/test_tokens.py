from datetime import UTC, datetime, timedelta

import pytest

from llmhub_common.tokens import TokenStatus, classify, format_rfc3339, parse_rfc3339

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "status", "days"),
    [
        (timedelta(days=41, hours=3), TokenStatus.VALID, 41),
        (timedelta(days=3, seconds=1), TokenStatus.VALID, 3),
        (timedelta(days=3), TokenStatus.WARNING, 3),
        (timedelta(hours=23), TokenStatus.WARNING, 0),
        (timedelta(seconds=0), TokenStatus.EXPIRED, 0),
        (-timedelta(days=5), TokenStatus.EXPIRED, 0),
    ],
)
def test_classify_draws_the_lines_at_warn_window_and_expiry(delta, status, days):
    health = classify(NOW + delta, now=NOW, warn_before_days=3)
    assert health.status is status
    assert health.days_remaining == days


def test_unknown_expiry_is_reported_as_unknown_not_valid():
    health = classify(None, now=NOW)
    assert health.status is TokenStatus.UNKNOWN
    assert health.as_dict()["expires_at"] is None


def test_health_dict_has_the_seed_shape():
    data = classify(NOW + timedelta(days=2), now=NOW).as_dict()
    assert data == {
        "status": "warning",
        "expires_at": "2026-01-12T12:00:00Z",
        "days_remaining": 2,
        "message": "Token expires soon, please refresh",
    }


def test_rfc3339_round_trips_and_refuses_naive_times():
    assert parse_rfc3339(format_rfc3339(NOW)) == NOW
    with pytest.raises(ValueError, match="time zone"):
        parse_rfc3339("2026-01-10T12:00:00")
