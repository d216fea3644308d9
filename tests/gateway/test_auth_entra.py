"""Entra ID tokens against a local JWKS: what is accepted, and every way a token is refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest

from llmhub_gateway.auth.entra import EntraVerifier
from llmhub_gateway.errors import Unauthenticated
from tests.gateway.fake_entra import (
    APP_ID_URI,
    CLIENT_ID,
    OTHER_TENANT,
    TENANT,
    FakeEntra,
    KeyPair,
    hs256_with_public_key,
    running,
    unsigned,
)


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    yield from running()


@pytest.fixture
async def verifier(entra: FakeEntra) -> AsyncIterator[EntraVerifier]:
    entra.keys = [entra.keys[0]]
    checker = EntraVerifier(
        authority=entra.authority,
        tenants=[TENANT],
        audiences=[APP_ID_URI, CLIENT_ID],
        domains={"contoso.com": TENANT},
        named=["alice@contoso.com"],
        leeway_s=30,
        refresh_interval_s=0,
    )
    yield checker
    await checker.aclose()


async def test_a_v2_token_names_the_user_with_its_scopes(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    principal = await verifier.verify(entra.token())
    assert principal is not None
    assert (principal.name, principal.mode, principal.label) == (
        "alice@contoso.com",
        "entra",
        "alice@contoso.com",
    )
    assert principal.scopes == ("chat",)


async def test_a_v1_token_with_the_app_id_uri_audience_is_accepted(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    token = entra.token(
        iss=f"https://sts.windows.net/{TENANT}/",
        aud=APP_ID_URI,
        preferred_username=None,
        upn="bob@contoso.com",
    )
    principal = await verifier.verify(token)
    assert principal is not None
    assert principal.name == "bob@contoso.com"
    assert principal.label == "other"  # not named in configuration: bounded metric label


async def test_an_app_token_is_named_by_its_client(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    principal = await verifier.verify(entra.token(preferred_username=None, azp="app-123"))
    assert principal is not None
    assert principal.name == "app:app-123"


async def test_leeway_accepts_a_token_just_expired(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    principal = await verifier.verify(entra.token(exp=int(time.time()) - 10))
    assert principal is not None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": -120}, "expired"),
        ({"nbf": 300}, "ImmatureSignatureError"),
        ({"aud": "api://someone-else"}, "another audience"),
        ({"iss": "v2:" + OTHER_TENANT, "tid": OTHER_TENANT}, "tenant that is not allowed"),
        ({"tid": OTHER_TENANT}, "does not match its issuer"),
        ({"preferred_username": "mallory@fabrikam.com"}, "e-mail domain"),
        ({"exp": None}, "MissingRequiredClaimError"),
    ],
)
async def test_bad_claims_are_refused(
    entra: FakeEntra, verifier: EntraVerifier, overrides: dict[str, object], reason: str
) -> None:
    now = int(time.time())
    fixed: dict[str, object] = {}
    for name, value in overrides.items():
        if name in ("exp", "nbf") and isinstance(value, int):
            value = now + value
        if isinstance(value, str) and value.startswith("v2:"):
            value = entra.v2_issuer(value[3:])
        fixed[name] = value
    with pytest.raises(Unauthenticated, match=reason):
        await verifier.verify(entra.token(**fixed))


async def test_a_foreign_issuer_is_not_taken_for_entra(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    """Not Entra-shaped at all: left to the other modes (which then refuse it)."""
    assert await verifier.verify(entra.token(iss=f"https://evil.example/{TENANT}/v2.0")) is None
    assert await verifier.verify("not-a-jwt") is None


async def test_a_bad_signature_is_refused(entra: FakeEntra, verifier: EntraVerifier) -> None:
    impostor = KeyPair(entra.keys[0].kid)  # same kid, other private key
    with pytest.raises(Unauthenticated, match="InvalidSignatureError"):
        await verifier.verify(entra.token(impostor))


async def test_alg_none_is_refused(entra: FakeEntra, verifier: EntraVerifier) -> None:
    with pytest.raises(Unauthenticated, match="RS256 only"):
        await verifier.verify(unsigned(entra.claims(), entra.keys[0].kid))


async def test_hs256_keyed_with_the_public_key_is_refused(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    with pytest.raises(Unauthenticated, match="RS256 only"):
        await verifier.verify(hs256_with_public_key(entra.claims(), entra.keys[0]))


async def test_unknown_kid_refetches_the_keys_after_a_rotation(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    assert await verifier.verify(entra.token()) is not None
    fetched = entra.fetches
    rotated = KeyPair("key-2")
    token = entra.token(rotated)
    with pytest.raises(Unauthenticated, match="unknown key"):
        await verifier.verify(token)  # not published yet: refetched, still unknown
    assert entra.fetches == fetched + 1
    entra.keys = [rotated]  # Entra rolls its keys
    principal = await verifier.verify(token)
    assert principal is not None
    assert principal.name == "alice@contoso.com"
    assert entra.fetches == fetched + 2
    assert await verifier.verify(token) is not None
    assert entra.fetches == fetched + 2  # cached: known kids cost no download


async def test_key_refetches_are_rate_limited(entra: FakeEntra) -> None:
    checker = EntraVerifier(
        authority=entra.authority, tenants=[TENANT], audiences=[CLIENT_ID], refresh_interval_s=60
    )
    try:
        assert await checker.verify(entra.token()) is not None
        fetched = entra.fetches
        for _ in range(3):
            with pytest.raises(Unauthenticated, match="unknown key"):
                await checker.verify(entra.token(KeyPair("garbage")))
        assert entra.fetches == fetched  # garbage kids cannot make it hammer Entra
    finally:
        await checker.aclose()
