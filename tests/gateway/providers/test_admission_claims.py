"""admission.Claims: the one admission primitive (per-pod cap, Claude pool, Gemini pool)."""

from __future__ import annotations

import pytest

from llmhub_gateway.providers.admission import Claims
from llmhub_gateway.providers.base import ProviderBusy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _busy() -> ProviderBusy:
    return ProviderBusy("full", retry_after=2)


def test_claims_count_against_the_room_until_released_or_expired() -> None:
    clock = Clock()
    claims = Claims(30.0, clock=clock)
    first, second, third = object(), object(), object()
    claims.admit(first, 2, _busy)
    claims.admit(second, 2, _busy)
    with pytest.raises(ProviderBusy):
        claims.admit(third, 2, _busy)
    assert len(claims) == 2  # a refusal takes nothing
    assert claims.release(first) is True  # its stream started (or it was abandoned)
    assert claims.release(first) is False  # only once
    claims.admit(third, 2, _busy)
    clock.now += 30.0  # nobody used them: both expire by themselves
    assert len(claims) == 0
    assert claims.release(second) is False


def test_a_claim_belongs_to_its_own_request_object() -> None:
    claims = Claims(30.0)
    mine = {"prompt": "hi"}
    claims.admit(mine, 1, _busy)
    assert claims.release({"prompt": "hi"}) is False  # equal is not the same request
    assert claims.release(mine) is True
    with pytest.raises(ValueError, match="hold_s"):
        Claims(0)
