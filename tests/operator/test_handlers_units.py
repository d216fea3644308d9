"""Small rules behind the handlers: refresh jitter and how source failures are described."""

from __future__ import annotations

from llmhub_operator.errors import SourceAuthError, SourceThrottled
from llmhub_operator.model import DEFAULT_REFRESH_SECONDS
from llmhub_operator.scheduler import jittered as _jittered
from llmhub_operator.source import describe_failure


def test_refresh_interval_is_jittered_within_ten_percent() -> None:
    waits = {_jittered("10s") for _ in range(50)}
    assert all(9.0 <= w <= 11.0 for w in waits)
    assert len(waits) > 1  # not one fixed instant for every object


def test_unparseable_interval_falls_back_to_the_default() -> None:
    assert 0.9 * DEFAULT_REFRESH_SECONDS <= _jittered("soon") <= 1.1 * DEFAULT_REFRESH_SECONDS
    assert 0.9 * DEFAULT_REFRESH_SECONDS <= _jittered(None) <= 1.1 * DEFAULT_REFRESH_SECONDS


def test_source_errors_keep_reason_retry_and_permanence() -> None:
    throttled = describe_failure(SourceThrottled("slow down", retry_after=7.0))
    assert (throttled.reason, throttled.retry_after, throttled.permanent) == (
        "throttled",
        7.0,
        False,
    )
    denied = describe_failure(SourceAuthError("check the role"))
    assert (denied.reason, denied.message, denied.permanent) == ("auth", "check the role", True)


def test_unknown_errors_never_repeat_their_text() -> None:
    failure = describe_failure(RuntimeError("body: sk-ant-oat01-leaky-value-000000"))
    assert failure.reason == "Unexpected"
    assert "leaky" not in failure.message
    assert "RuntimeError" in failure.message
