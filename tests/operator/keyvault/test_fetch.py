"""The real azure-identity + azure-keyvault-secrets clients against the fake: the happy paths."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity.aio import WorkloadIdentityCredential
from azure.keyvault.secrets.aio import SecretClient
from prometheus_client import REGISTRY

from llmhub_operator import keyvault
from llmhub_operator.errors import SourceNotFound
from llmhub_operator.keyvault import FetchedSecret, KeyVaultSource
from tests.fakes.fake_azure import FakeAzure


@pytest.fixture
async def source(azure_env: dict[str, str]) -> AsyncIterator[KeyVaultSource]:
    source = KeyVaultSource.from_env()
    yield source
    await source.aclose()


async def test_latest_version_with_expiry(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str
) -> None:
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    fake_azure.set_secret("latest-a", "first-value-123")
    newest = fake_azure.set_secret("latest-a", "second-value-456", expires=expires.timestamp())
    metric = "llmhub_operator_keyvault_request_duration_seconds_count"
    before = REGISTRY.get_sample_value(metric, {"outcome": "ok"}) or 0.0

    fetched = await source.fetch(vault_url, "latest-a")

    assert REGISTRY.get_sample_value(metric, {"outcome": "ok"}) == before + 1

    assert fetched.value == "second-value-456"
    assert fetched.version == newest
    assert fetched.expires == expires
    assert fetched.enabled is True
    assert abs(fetched.created - datetime.now(UTC)) < timedelta(minutes=1)


async def test_pinned_version_and_no_expiry(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str
) -> None:
    pinned = fake_azure.set_secret("pinned-a", "old-value-123")
    fake_azure.set_secret("pinned-a", "new-value-456")

    fetched = await source.fetch(vault_url, "pinned-a", pinned)

    assert (fetched.value, fetched.version, fetched.expires) == ("old-value-123", pinned, None)


async def test_missing_pinned_version_is_not_found(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str
) -> None:
    fake_azure.set_secret("pinned-b", "value-123456")

    with pytest.raises(SourceNotFound) as caught:
        await source.fetch(vault_url, "pinned-b", "0" * 32)

    assert caught.value.status == 404
    assert "0" * 32 in caught.value.message


async def test_value_stays_out_of_repr() -> None:
    fetched = FetchedSecret(
        value="super-secret-value",
        version="v1",
        created=datetime.now(UTC),
        updated=None,
        expires=None,
        enabled=True,
    )
    assert "super-secret-value" not in repr(fetched)
    assert "v1" in repr(fetched)


async def test_one_credential_and_client_per_vault_reused(
    azure_env: dict[str, str], fake_azure: FakeAzure, vault_url: str
) -> None:
    made: list[str] = []

    def factory(*, connection_verify: str | bool, timeout_s: float) -> WorkloadIdentityCredential:
        made.append(str(connection_verify))
        return WorkloadIdentityCredential(connection_verify=connection_verify)

    fake_azure.set_secret("reuse-a", "value-a-123456")
    fake_azure.set_secret("reuse-b", "value-b-123456")
    other_vault = vault_url.replace("127.0.0.1", "localhost")
    source = KeyVaultSource(
        credential_factory=factory,
        connection_verify=azure_env["LLMHUB_AZURE_CA_BUNDLE"],
        verify_challenge_resource=False,
    )
    try:
        for _ in range(3):
            await source.fetch(vault_url, "reuse-a")
            await source.fetch(vault_url + "/", "reuse-b")
        await source.fetch(other_vault, "reuse-a")
    finally:
        await source.aclose()

    assert made == [azure_env["LLMHUB_AZURE_CA_BUNDLE"]] * 2
    assert len(fake_azure.token_requests()) == 2
    # One GET per fetch, plus at most one unauthenticated challenge per client.
    gets = fake_azure.requests(method="GET")
    assert len([r for r in gets if r.status == 200]) == 7
    assert 1 <= len([r for r in gets if not r.authorized]) <= 2


async def test_rotation_through_the_real_sdk_set_secret(
    source: KeyVaultSource, azure_env: dict[str, str], fake_azure: FakeAzure, vault_url: str
) -> None:
    expires = datetime(2030, 6, 1, tzinfo=UTC)
    credential = WorkloadIdentityCredential(connection_verify=azure_env["LLMHUB_AZURE_CA_BUNDLE"])
    client = SecretClient(
        vault_url,
        credential,
        verify_challenge_resource=False,
        connection_verify=azure_env["LLMHUB_AZURE_CA_BUNDLE"],
    )
    async with credential, client:
        first = await client.set_secret("rotate-a", "value-one-123")
        second = await client.set_secret("rotate-a", "value-two-456", expires_on=expires)

    fetched = await source.fetch(vault_url, "rotate-a")

    assert first.properties.version != second.properties.version
    assert (fetched.value, fetched.version) == ("value-two-456", second.properties.version)
    assert fetched.expires == expires
    assert [v.value for v in fake_azure.versions("rotate-a")] == ["value-one-123", "value-two-456"]


async def test_from_env_reads_ca_and_challenge_switch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMHUB_AZURE_CA_BUNDLE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE", "false")
    monkeypatch.setenv("LLMHUB_AZURE_TIMEOUT_SECONDS", "2.5")
    configured = KeyVaultSource.from_env()
    monkeypatch.delenv("LLMHUB_AZURE_CA_BUNDLE")
    monkeypatch.delenv("LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE")
    monkeypatch.delenv("LLMHUB_AZURE_TIMEOUT_SECONDS")
    defaults = KeyVaultSource.from_env()

    assert (configured.connection_verify, configured.verify_challenge_resource) == (
        str(tmp_path / "ca.pem"),
        False,
    )
    assert configured.timeout_s == 2.5
    assert (defaults.connection_verify, defaults.verify_challenge_resource) == (True, True)
    assert defaults.timeout_s == 10.0


async def test_burst_of_first_reads_costs_one_challenge_and_one_token(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str
) -> None:
    names = [f"burst-{i}" for i in range(20)]
    for name in names:
        fake_azure.set_secret(name, f"value-{name}-123456")

    fetched = await asyncio.gather(*(source.fetch(vault_url, name) for name in names))

    assert [f.value for f in fetched] == [f"value-{name}-123456" for name in names]
    assert len(fake_azure.token_requests()) == 1
    gets = fake_azure.requests(method="GET")
    assert len([r for r in gets if r.authorized]) == 20
    # azure-keyvault caches challenges per host for the process, so an earlier test may have
    # already paid for it.
    assert len([r for r in gets if not r.authorized]) <= 1


async def test_concurrent_reads_are_capped_and_queueing_does_not_time_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst of first reads (an operator start with many LLMProviders) is sent 16 at a time;
    the timeout covers a read in flight, not its wait for a slot."""
    from llmhub_operator import keyvault

    source = KeyVaultSource(timeout_s=0.5)
    in_flight, peak = 0, 0

    async def slow_get(_vault: object, name: str, _version: str | None) -> object:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        raise SourceNotFound(f"{name} answered")  # any SourceError ends the read

    async def no_vault(_url: str, _identity: object) -> None:
        return None

    monkeypatch.setattr(source, "_first_or_plain_get", slow_get)
    monkeypatch.setattr(source, "_vault", no_vault)
    burst = 6 * keyvault.MAX_CONCURRENT_READS  # 6 rounds of 0.1 s: past the 0.5 s timeout
    results = await asyncio.gather(  # over many vaults, so the overall cap is what binds
        *(source.fetch(f"https://kv{i % 32}.vault.azure.net", f"s{i}") for i in range(burst)),
        return_exceptions=True,
    )
    assert peak == keyvault.MAX_CONCURRENT_READS
    assert all(isinstance(r, SourceNotFound) for r in results), {type(r) for r in results}


async def test_a_black_holed_vault_holds_only_its_own_share_of_read_slots(
    azure_env: dict[str, str], fake_azure: FakeAzure, tmp_path: Path
) -> None:
    """Twenty reads stuck at one vault leave the other vaults' reads free to run."""
    stuck = FakeAzure.start_local(tmp_path, ca=fake_azure.ca)  # same tenant and trust root
    stuck.token_issuer = fake_azure
    stuck.hang("stuck-token")
    fake_azure.set_secret("free-token", "sk-ant-oat01-free-read-0014")
    source = KeyVaultSource(
        connection_verify=str(fake_azure.ca_file), verify_challenge_resource=False, timeout_s=30
    )
    try:
        hung = [asyncio.create_task(source.fetch(stuck.base_url, "stuck-token")) for _ in range(20)]
        await asyncio.sleep(1.0)  # every stuck read has taken what it can
        free = await asyncio.wait_for(source.fetch(fake_azure.base_url, "free-token"), 10)
        assert free.value == "sk-ant-oat01-free-read-0014"
        assert not any(task.done() for task in hung)  # still stuck meanwhile
    finally:
        stuck.stop()  # releases the hung requests
        for task in hung:
            task.cancel()
        await asyncio.gather(*hung, return_exceptions=True)
        await source.aclose()


async def test_reads_reuse_one_tls_connection_with_a_ca_bundle(
    azure_env: dict[str, str], fake_azure: FakeAzure, source: KeyVaultSource
) -> None:
    """A CA bundle path must not cost a TLS handshake (and a 256 KiB buffer) per read."""
    fake_azure.set_secret("reused", "sk-ant-oat01-connection-reuse-0015")
    await source.fetch(fake_azure.base_url, "reused")  # challenge and token first
    before = fake_azure.connections
    for _ in range(10):
        await source.fetch(fake_azure.base_url, "reused")
    assert fake_azure.connections - before <= 1


class _TeamIdentity:
    """An identity (keyvault.Identity) that authenticates like the operator itself: only its
    key differs, which is what vault clients are cached by."""

    def __init__(self, source: KeyVaultSource, team: str) -> None:
        self._source = source
        self.key = ("ns", team, "client")

    def credential(self, *, connection_verify: str | bool, timeout_s: float) -> Any:
        return self._source._credential_factory(
            connection_verify=connection_verify, timeout_s=timeout_s
        )


async def test_vault_clients_are_bounded_and_the_least_recently_used_is_closed(
    source: KeyVaultSource,
    fake_azure: FakeAzure,
    vault_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keyvault, "MAX_VAULT_CLIENTS", 2)
    fake_azure.set_secret("bounded", "bounded-value-123")
    a, b, c = (_TeamIdentity(source, team) for team in ("a", "b", "c"))
    for identity in (a, b, a):  # a is used again: b is now the least recently used
        assert (await source.fetch(vault_url, "bounded", identity=identity)).value.startswith(
            "bounded"
        )
    kept = dict(source._vaults)
    assert len(fake_azure.token_requests()) == 2  # one token per client: reused while cached
    await source.fetch(vault_url, "bounded", identity=c)
    assert [key[-2] for key in source._vaults] == ["a", "c"]
    evicted = kept[(vault_url.lower(), *b.key)]
    assert evicted.client not in [v.client for v in source._vaults.values()]
    with pytest.raises(Exception, match=r"(?i)closed|session"):  # closed, not just dropped
        await evicted.client.get_secret("bounded")
    await source.fetch(vault_url, "bounded", identity=b)  # b again: a new client and token
    assert len(fake_azure.token_requests()) == 4
    assert [key[-2] for key in source._vaults] == ["c", "b"]


async def test_the_stand_in_vault_refuses_a_token_issued_for_another_resource(
    azure_env: dict[str, str], fake_azure: FakeAzure, vault_url: str
) -> None:
    """As the real Key Vault does (AKV10022): an Entra token for Event Grid is no vault token,
    so a bug that sent the wrong one would fail here as it would in Azure."""
    fake_azure.set_secret("audience-a", "value-audience-123")
    ca = azure_env["LLMHUB_AZURE_CA_BUNDLE"]
    async with WorkloadIdentityCredential(connection_verify=ca) as credential:
        wrong = await credential.get_token("https://eventgrid.azure.net/.default")
        right = await credential.get_token("https://vault.azure.net/.default")
    url = f"{vault_url.rstrip('/')}/secrets/audience-a?api-version=7.5"
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca)) as http:
        refused = await http.get(url, headers={"Authorization": f"Bearer {wrong.token}"})
        served = await http.get(url, headers={"Authorization": f"Bearer {right.token}"})
    assert refused.status_code == 401
    assert "AKV10022" in refused.json()["error"]["message"]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer authorization=")
    assert served.status_code == 200
    assert served.json()["value"] == "value-audience-123"
