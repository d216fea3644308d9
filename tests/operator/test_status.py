"""Status rules: phase, token block, conditions with stable lastTransitionTime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmhub_common.tokens import TokenStatus, classify
from llmhub_operator.status import (
    Condition,
    merge_conditions,
    pending_summary,
    phase_for,
    summarize,
    token_condition,
    token_status,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def test_transition_time_kept_while_status_unchanged_and_moved_on_change() -> None:
    first = merge_conditions(
        [], [Condition("Synced", "True", "Synced", "ok")], now=T0, generation=1
    )
    same = merge_conditions(
        first, [Condition("Synced", "True", "Synced", "ok again")], now=T1, generation=2
    )
    flipped = merge_conditions(
        same, [Condition("Synced", "False", "Throttled", "429")], now=T1, generation=2
    )
    assert first[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert (same[0]["message"], same[0]["observedGeneration"]) == ("ok again", 2)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T01:00:00Z"
    assert flipped[0]["reason"] == "Throttled"


def test_conditions_are_ordered_and_untouched_ones_survive() -> None:
    start = merge_conditions(
        [],
        [
            Condition("GatewayRolled", "True", "Rolled", "r"),
            Condition("TokenValid", "True", "Valid", "v"),
            Condition("Synced", "True", "Synced", "s"),
        ],
        now=T0,
        generation=None,
    )
    after = merge_conditions(
        start, [Condition("Synced", "False", "Auth", "a")], now=T1, generation=None
    )
    assert [c["type"] for c in after] == ["Synced", "TokenValid", "GatewayRolled"]
    assert after[2] == start[2]
    assert "observedGeneration" not in after[0]


def test_phase_rules() -> None:
    assert phase_for(synced=True, token=TokenStatus.VALID) == "Ready"
    assert phase_for(synced=True, token=TokenStatus.WARNING) == "Ready"
    assert phase_for(synced=False, token=TokenStatus.VALID) == "Degraded"
    assert phase_for(synced=False, token=None) == "Degraded"
    assert phase_for(synced=True, token=TokenStatus.EXPIRED) == "Expired"
    assert phase_for(synced=False, token=TokenStatus.EXPIRED) == "Expired"
    assert phase_for(synced=True, token=TokenStatus.VALID, rolled=False) == "Degraded"


def test_kstatus_summary_is_ready_in_progress_or_failed_never_silently_current() -> None:
    problem = Condition("GatewayRolled", "False", "PatchFailed", "HTTP 422")
    stuck = summarize(problem, retrying=False)
    busy = summarize(problem, retrying=True)
    fine = summarize(None, retrying=False, ready_message="ok")
    assert [(c.type, c.status, c.reason) for c in stuck.conditions] == [
        ("Ready", "False", "PatchFailed"),
        ("Stalled", "True", "PatchFailed"),
    ]
    assert stuck.drop == ("Reconciling",)
    assert [(c.type, c.status) for c in busy.conditions] == [
        ("Ready", "False"),
        ("Reconciling", "True"),
    ]
    assert busy.drop == ("Stalled",)
    assert fine.conditions == (Condition("Ready", "True", "Ready", "ok"),)
    assert set(fine.drop) == {"Reconciling", "Stalled"}
    pending = pending_summary()
    assert [(c.type, c.status) for c in pending.conditions] == [
        ("Ready", "Unknown"),
        ("Reconciling", "True"),
    ]
    # Abnormal-true conditions go once they no longer hold; the others keep their history.
    before = merge_conditions([], list(stuck.conditions), now=T0, generation=1)
    after = merge_conditions(before, list(fine.conditions), now=T1, generation=1, drop=fine.drop)
    assert [c["type"] for c in after] == ["Ready"]
    assert after[0]["lastTransitionTime"] == "2026-01-01T01:00:00Z"


def test_token_block_and_condition() -> None:
    soon = classify(T0 + timedelta(days=2, hours=1), now=T0, warn_before_days=3)
    assert token_status(soon) == {
        "status": "warning",
        "expiresAt": "2026-01-03T01:00:00Z",
        "daysRemaining": 2,
    }
    assert token_condition(soon) == Condition("TokenValid", "True", "ExpiresSoon", soon.message)
    gone = classify(T0 - timedelta(seconds=1), now=T0)
    assert token_condition(gone).status == "False"
    unknown = classify(None)
    assert token_status(unknown) == {"status": "unknown", "expiresAt": None, "daysRemaining": None}
    assert token_condition(unknown).status == "Unknown"
