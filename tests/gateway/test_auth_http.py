"""Callers at the HTTP edge: unset AUTH_MODES, static keys, Entra through REST and the OpenAI
SDK, admin-only usage, and Host/Origin checks on every route."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from llmhub_gateway.auth.callers import build_auth
from llmhub_gateway.auth.static_keys import StaticKeysError
from llmhub_gateway.core.config import Settings
from llmhub_gateway.main import create_app
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_entra import CLIENT_ID, OTHER_TENANT, TENANT, FakeEntra, running
from tests.gateway.fake_provider import echo_providers

ALICE_KEY = "alice-key-0123456789abcdef"
OPS_KEY = "ops-key-fedcba9876543210"
CHAT = {"provider": "claude", "prompt": "hi"}
ADMIN_OID = "00000000-0000-0000-0000-00000000ad00"
ADMIN = f"entra:{TENANT}/{ADMIN_OID}"


def keys_file(path: Path) -> Path:
    def line(name: str, key: str) -> str:
        return f"{name} sha256:{hashlib.sha256(key.encode()).hexdigest()}"

    path.write_text(
        f"# callers of the hub\n{line('alice', ALICE_KEY)}\n\n{line('ops', OPS_KEY)}  # admin\n"
    )
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    yield from running()


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, entra: FakeEntra
) -> Iterator[ThreadedGateway]:
    settings = Settings(
        auth_modes="static,entra",
        auth_static_keys_file=keys_file(tmp_path_factory.mktemp("keys") / "keys"),
        auth_entra_authority=entra.authority,
        auth_entra_tenants=f"{TENANT},{OTHER_TENANT}",  # AUTH_ENTRA_DOMAINS unset: the default
        auth_entra_audiences=f"api://llm-mcp-hub,{CLIENT_ID}",
        # An e-mail entry grants nothing (not unique across tenants); the immutable key does.
        auth_admin_callers=f"ops,{ADMIN},alice@contoso.com",
        mcp_allowed_hosts="llm-mcp-hub-gateway",
    )
    with ThreadedGateway(settings, echo_providers()) as gw:
        yield gw


def test_unset_auth_modes_refuses_every_caller_and_names_the_setting() -> None:
    with ThreadedGateway(Settings(auth_modes=None), echo_providers()) as gw:
        for method, path in (("POST", "/v1/chat"), ("GET", "/v1/models"), ("POST", "/mcp")):
            answer = httpx.request(
                method,
                f"{gw.url}{path}",
                json=CHAT,
                headers={**bearer(ALICE_KEY), "Accept": "application/json, text/event-stream"},
            )
            assert answer.status_code == 401, path
            assert answer.headers["WWW-Authenticate"].startswith("Bearer ")
            if path != "/mcp":
                assert "AUTH_MODES" in answer.json()["error"]["message"]
        assert httpx.get(f"{gw.url}/health/live").status_code == 200  # probes stay open
        for path in ("/health/tokens", "/metrics"):  # on the admin port, for its readers
            assert httpx.get(f"{gw.admin_url}{path}").status_code == 200, path
        assert gw.providers["claude"].requests == []


def test_static_keys_name_the_caller_and_refuse_others(
    secured: ThreadedGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmhub_gateway.audit")
    ok = httpx.post(f"{secured.url}/v1/chat", json=CHAT, headers=bearer(ALICE_KEY))
    assert ok.status_code == 200
    session = ok.json()["session_id"]
    assert (
        httpx.get(f"{secured.url}/v1/sessions/{session}", headers=bearer(ALICE_KEY)).status_code
        == 200
    )
    for headers in ({}, bearer(ALICE_KEY + "x"), {"Authorization": f"Basic {ALICE_KEY}"}):
        refused = httpx.post(f"{secured.url}/v1/chat", json=CHAT, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "unauthorized"
        challenge = refused.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="llm-mcp-hub"')
        assert "resource_metadata=" in challenge
    assert httpx.get(f"{secured.url}/v1/sessions/{session}").status_code == 401
    refusals = [r for r in caplog.records if r.getMessage() == "refused"]
    assert [(getattr(r, "path", ""), getattr(r, "status", "")) for r in refusals][-1] == (
        f"/v1/sessions/{session}",
        "unauthorized",
    )
    assert all(ALICE_KEY not in r.getMessage() + repr(r.__dict__) for r in caplog.records)


def test_entra_callers_use_the_openai_sdk_and_their_token_goes_no_further(
    secured: ThreadedGateway, entra: FakeEntra, caplog: pytest.LogCaptureFixture
) -> None:
    token = entra.token()
    client = openai.OpenAI(base_url=f"{secured.url}/v1", api_key=token, max_retries=0)
    caplog.set_level(logging.INFO, logger="llmhub_gateway.audit")
    answer = client.chat.completions.create(
        model="claude-sonnet-4-5-20250929", messages=[{"role": "user", "content": "entra hi"}]
    )
    assert "entra hi" in (answer.choices[0].message.content or "")
    audit = [r for r in caplog.records if r.name == "llmhub_gateway.audit"]
    alice = f"entra:{TENANT}/{entra.claims()['oid']}"
    assert [getattr(r, "caller", None) for r in audit][-1] == alice
    assert token not in repr(secured.providers["claude"].requests)  # never sent onwards
    assert all(token not in r.getMessage() for r in caplog.records)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"{secured.url}/v1", api_key=entra.token(aud="api://other"), max_retries=0
        ).models.list()


def test_usage_is_for_admin_callers_only(secured: ThreadedGateway) -> None:
    assert (
        httpx.post(f"{secured.url}/v1/chat", json=CHAT, headers=bearer(ALICE_KEY)).status_code
        == 200
    )
    refused = httpx.get(f"{secured.url}/v1/usage", headers=bearer(ALICE_KEY))
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "forbidden"
    report = httpx.get(f"{secured.url}/v1/usage", headers=bearer(OPS_KEY))
    assert report.status_code == 200
    body = report.json()
    alice = [e for e in body["entries"] if e["caller"] == "alice"]
    assert alice
    assert alice[0]["provider"] == "claude"
    assert alice[0]["requests"] >= 1
    assert body["by_caller"]["alice"]["requests"] == alice[0]["requests"]
    assert httpx.get(f"{secured.url}/v1/usage?day=junk", headers=bearer(OPS_KEY)).status_code == 400


@pytest.mark.parametrize("path", ["/health/live", "/metrics", "/v1/models", "/mcp"])
def test_host_and_origin_are_checked_on_every_route(secured: ThreadedGateway, path: str) -> None:
    bad_host = httpx.get(f"{secured.url}{path}", headers={"Host": "evil.example"})
    assert bad_host.status_code == 421
    for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example"):
        bad_origin = httpx.get(
            f"{secured.url}{path}", headers={"Origin": origin, **bearer(OPS_KEY)}
        )
        assert bad_origin.status_code == 403, origin
    good_origin = httpx.get(
        f"{secured.url}/health/live", headers={"Origin": "http://localhost:3000"}
    )
    assert good_origin.status_code == 200
    for host in ("llm-mcp-hub-gateway:8000", "10.1.2.3:8000", "[fd00::1]:8000"):
        allowed = httpx.get(f"{secured.url}/health/live", headers={"Host": host})
        assert allowed.status_code == 200, host


def test_metrics_and_token_health_are_only_on_the_admin_port(secured: ThreadedGateway) -> None:
    """Per-caller counters and account state: not for whoever reaches the callers' Service,
    token or not, admin or not; the admin port serves them and nothing else."""
    for path in ("/metrics", "/health/tokens"):
        for headers in ({}, bearer(ALICE_KEY), bearer(OPS_KEY)):
            hidden = httpx.get(f"{secured.url}{path}", headers=headers)
            assert hidden.status_code == 404, (path, headers)
            assert hidden.json()["error"]["type"] == "not_found"
    assert httpx.post(f"{secured.url}/v1/chat", json=CHAT, headers=bearer(ALICE_KEY)).is_success
    scraped = httpx.get(f"{secured.admin_url}/metrics")
    assert scraped.status_code == 200
    assert 'llmhub_gateway_requests_total{method="POST",route="/v1/chat"' in scraped.text
    tokens = httpx.get(f"{secured.admin_url}/health/tokens")
    assert tokens.status_code == 200
    assert set(tokens.json()) <= {"claude", "gemini"}
    for path in ("/v1/models", "/v1/usage", "/health/live", "/openapi.json", "/docs", "/mcp"):
        assert httpx.get(f"{secured.admin_url}{path}").status_code == 404, path
    assert httpx.get(
        f"{secured.admin_url}/metrics", headers={"Host": "evil.example"}
    ).status_code == (421)


def test_a_malformed_keys_file_stops_the_start_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"alice sha256:{'ab' * 32}\nbob {OPS_KEY}\n")
    with pytest.raises(StaticKeysError, match="line 2") as caught:
        create_app(Settings(auth_modes="static", auth_static_keys_file=path), echo_providers())
    assert OPS_KEY not in str(caught.value)


def _session(gw: ThreadedGateway, token: str) -> str:
    answer = httpx.post(f"{gw.url}/v1/chat", json=CHAT, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["session_id"])


def test_the_same_email_in_another_tenant_is_another_caller(
    secured: ThreadedGateway, entra: FakeEntra
) -> None:
    """Tenant B issues alice@contoso.com (same oid even): not Alice of tenant A."""
    alice = entra.token()
    impostor = entra.token(iss=entra.v2_issuer(OTHER_TENANT), tid=OTHER_TENANT)
    assert entra.claims()["preferred_username"] == "Alice@Contoso.com"
    sid = _session(secured, alice)
    for method in ("GET", "DELETE"):
        answer = httpx.request(method, f"{secured.url}/v1/sessions/{sid}", headers=bearer(impostor))
        assert answer.status_code == 404, method  # her session does not exist for B
    taken = httpx.post(
        f"{secured.url}/v1/chat", json={**CHAT, "session_id": sid}, headers=bearer(impostor)
    )
    assert taken.status_code == 404
    assert httpx.get(f"{secured.url}/v1/sessions/{sid}", headers=bearer(alice)).status_code == 200
    # ...and the other way round: B's own session is not Alice's.
    theirs = _session(secured, impostor)
    assert httpx.get(f"{secured.url}/v1/sessions/{theirs}", headers=bearer(alice)).status_code == (
        404
    )


def test_a_user_token_without_email_is_not_the_client_app(
    secured: ThreadedGateway, entra: FakeEntra
) -> None:
    """Two users of one client app, neither token with an e-mail claim: two callers."""
    app = "0a0a0a0a-1111-2222-3333-444444444444"
    first = entra.token(preferred_username=None, azp=app)
    second = entra.token(
        preferred_username=None, azp=app, oid="00000000-0000-0000-0000-0000000000cc"
    )
    sid = _session(secured, first)
    assert httpx.get(f"{secured.url}/v1/sessions/{sid}", headers=bearer(second)).status_code == 404
    assert httpx.get(f"{secured.url}/v1/sessions/{sid}", headers=bearer(first)).status_code == 200


def test_an_admin_named_by_immutable_id_is_admin_and_an_email_entry_is_not(
    secured: ThreadedGateway, entra: FakeEntra
) -> None:
    admin = entra.token(oid=ADMIN_OID, preferred_username="ops@contoso.com")
    alice = entra.token()  # alice@contoso.com is on AUTH_ADMIN_CALLERS as an e-mail: ignored
    sid = _session(secured, alice)
    assert httpx.get(f"{secured.url}/v1/usage", headers=bearer(alice)).status_code == 403
    report = httpx.get(f"{secured.url}/v1/usage", headers=bearer(admin))
    assert report.status_code == 200
    assert f"entra:{TENANT}/{entra.claims()['oid']}" in report.json()["by_caller"]
    assert httpx.get(f"{secured.url}/v1/sessions/{sid}", headers=bearer(admin)).status_code == 200


async def test_email_entries_in_admin_and_named_callers_are_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        auth_modes="entra,static",
        auth_static_keys_file=keys_file(tmp_path / "keys"),
        auth_entra_tenants=TENANT,
        auth_entra_audiences=CLIENT_ID,
        auth_admin_callers=f"ops,{ADMIN},alice@contoso.com",
        auth_named_callers=f"bob@contoso.com,{ADMIN.upper()}",
    )
    caplog.set_level(logging.WARNING, logger="llmhub_gateway.auth.callers")
    await build_auth(settings, "Bearer").aclose()
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3
    assert "AUTH_ADMIN_CALLERS entry 'alice@contoso.com'" in warned[0]
    assert "AUTH_NAMED_CALLERS entry 'bob@contoso.com'" in warned[1]
    assert "entra:<tenant-id>/<object-id>" in warned[0]
    assert f"AUTH_NAMED_CALLERS entry '{ADMIN.upper()}'" in warned[2]
    assert "lower-case" in warned[2]
