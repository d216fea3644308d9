"""Credential checks per provider, content hash and expiry rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from llmhub_operator.credential import InvalidCredential, content_hash, expiry, validate
from tests.leaks import assert_no_leak

GEMINI = json.dumps({"access_token": "ya29.a0-access", "refresh_token": "1//refresh-value"})


def test_valid_values_pass() -> None:
    validate("claude", "sk-ant-oat01-abc")
    validate("gemini", GEMINI)


@pytest.mark.parametrize(
    ("provider", "value", "why"),
    [
        ("claude", "   ", "empty"),
        ("gemini", "not json {", "not valid JSON"),
        ("gemini", "[1, 2]", "JSON object"),
        ("gemini", json.dumps({"access_token": "ya29.x"}), "refresh_token"),
        ("gemini", json.dumps({"refresh_token": "1//x"}), "access_token"),
    ],
)
def test_unusable_values_are_rejected_without_quoting_them(
    provider: str, value: str, why: str
) -> None:
    with pytest.raises(InvalidCredential, match=why) as info:
        validate(provider, value)  # type: ignore[arg-type]
    if value.strip():
        assert_no_leak(str(info.value), credential=value)
    # The JSON parser's error quotes the document: it must not travel along in a traceback.
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_hash_is_prefixed_short_and_value_dependent() -> None:
    digest = content_hash("token-a")
    assert digest.startswith("sha256:")
    assert len(digest) == len("sha256:") + 12
    assert digest == content_hash("token-a") != content_hash("token-b")


def test_expiry_prefers_key_vault_expires_then_created_plus_max_age() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    expires = datetime(2026, 6, 1, tzinfo=UTC)
    assert expiry(expires=expires, created=created, max_age_days=10) == expires
    assert expiry(expires=None, created=created, max_age_days=10) == created + timedelta(days=10)
    assert expiry(expires=None, created=None, max_age_days=10) is None
