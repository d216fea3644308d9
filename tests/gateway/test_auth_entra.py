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

ALICE_OID = "00000000-0000-0000-0000-0000000000aa"  # the fake's default user
ALICE = f"entra:{TENANT}/{ALICE_OID}"
APP = "0a0a0a0a-1111-2222-3333-444444444444"


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
        named=[ALICE],
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
    assert (principal.name, principal.mode, principal.label) == (ALICE, "entra", ALICE)
    assert principal.display == "alice@contoso.com"  # a label for logs, never the key
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
    assert principal.name == f"entra:{TENANT}/{ALICE_OID}"
    assert principal.display == "bob@contoso.com"
    assert principal.label == ALICE  # named by its key in configuration


async def test_a_caller_not_named_in_configuration_has_the_bounded_metric_label(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    principal = await verifier.verify(entra.token(oid="00000000-0000-0000-0000-0000000000bb"))
    assert principal is not None
    assert principal.label == "other"


async def test_the_same_email_in_two_tenants_is_two_callers(entra: FakeEntra) -> None:
    """Tenant B can issue alice@contoso.com too: the e-mail must not make her Alice of A."""
    checker = EntraVerifier(
        authority=entra.authority, tenants=[TENANT, OTHER_TENANT], audiences=[CLIENT_ID]
    )
    try:
        a = await checker.verify(entra.token())
        b = await checker.verify(
            entra.token(iss=entra.v2_issuer(OTHER_TENANT), tid=OTHER_TENANT)  # same oid too
        )
        assert a is not None
        assert b is not None
        assert a.display == b.display == "alice@contoso.com"
        assert (a.name, b.name) == (ALICE, f"entra:{OTHER_TENANT}/{ALICE_OID}")
    finally:
        await checker.aclose()


async def test_a_user_token_without_email_claims_is_the_user_not_the_app(
    entra: FakeEntra, verifier: EntraVerifier
) -> None:
    principal = await verifier.verify(entra.token(preferred_username=None, azp=APP))
    assert principal is not None
    assert principal.name == ALICE
    assert principal.display is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # The optional claim Entra documents for telling them apart...
        ({"idtyp": "app", "azp": APP.upper()}, f"app:{TENANT}/{APP}"),
        # ...and without it: no scp, oid == sub (v2 names the client azp, v1 appid).
        ({"scp": None, "sub": ALICE_OID, "azp": APP}, f"app:{TENANT}/{APP}"),
        ({"scp": None, "sub": ALICE_OID, "appid": APP, "iss": "v1"}, f"app:{TENANT}/{APP}"),
        # idtyp=user wins over the heuristic.
        ({"idtyp": "user", "scp": None, "sub": ALICE_OID, "azp": APP}, ALICE),
    ],
    ids=["idtyp-app", "oid-equals-sub", "v1-appid", "idtyp-user"],
)
async def test_app_only_tokens_are_named_by_tenant_and_client(
    entra: FakeEntra, verifier: EntraVerifier, overrides: dict[str, object], expected: str
) -> None:
    if overrides.get("iss") == "v1":
        overrides = {**overrides, "iss": f"https://sts.windows.net/{TENANT}/"}
    principal = await verifier.verify(entra.token(preferred_username=None, **overrides))
    assert principal is not None
    assert principal.name == expected


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
        ({"oid": None}, "no object id"),
        ({"idtyp": "app", "azp": None}, "names no client"),
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
    assert principal.name == ALICE
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
