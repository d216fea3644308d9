"""Failures of Entra and Key Vault, as the real SDK sees them, sorted into the SourceError tree."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from llmhub_operator.errors import (
    SourceAuthError,
    SourceDisabled,
    SourceError,
    SourceNotFound,
    SourceThrottled,
    SourceUnavailable,
)
from llmhub_operator.keyvault import KeyVaultSource
from tests.fakes.fake_azure import DEFAULT_SUBJECT, FakeAzure

METRIC = "llmhub_operator_keyvault_request_duration_seconds_count"


@pytest.fixture
async def source(azure_env: dict[str, str]) -> AsyncIterator[KeyVaultSource]:
    source = KeyVaultSource.from_env()
    yield source
    await source.aclose()


def _observed(outcome: str) -> float:
    return REGISTRY.get_sample_value(METRIC, {"outcome": outcome}) or 0.0


def _assert_helpful_auth_message(error: SourceAuthError) -> None:
    assert DEFAULT_SUBJECT in error.message
    assert "api://AzureADTokenExchange" in error.message
    assert "Key Vault Secrets User" in error.message
    assert error.permanent is True
    assert error.reason == "auth"


@pytest.mark.parametrize("status", [401, 403])
async def test_denied_read_is_auth_error_with_what_to_check(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str, status: int
) -> None:
    fake_azure.set_secret(f"denied-{status}", "value-123456")
    fake_azure.fail(f"denied-{status}", status, times=5)

    with pytest.raises(SourceAuthError) as caught:
        await source.fetch(vault_url, f"denied-{status}")

    _assert_helpful_auth_message(caught.value)
    assert caught.value.status == status


async def test_refused_token_exchange_is_auth_error(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str
) -> None:
    fake_azure.set_secret("no-token", "value-123456")
    fake_azure.fail_token(401, times=5)

    with pytest.raises(SourceAuthError) as caught:
        await source.fetch(vault_url, "no-token")

    _assert_helpful_auth_message(caught.value)
    assert not [r for r in fake_azure.requests("no-token") if r.authorized]


async def test_missing_secret_is_not_found_and_retryable(
    source: KeyVaultSource, vault_url: str
) -> None:
    before = _observed("not_found")

    with pytest.raises(SourceNotFound) as caught:
        await source.fetch(vault_url, "never-created")

    assert (caught.value.reason, caught.value.permanent) == ("not_found", False)
    assert "never-created" in caught.value.message
    assert _observed("not_found") == before + 1


async def test_disabled_secret_is_reported_as_disabled(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str
) -> None:
    fake_azure.set_secret("switched-off", "value-123456", enabled=False)

    with pytest.raises(SourceDisabled) as caught:
        await source.fetch(vault_url, "switched-off")

    assert caught.value.reason == "disabled"


async def test_throttling_surfaces_retry_after_without_hammering(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str
) -> None:
    fake_azure.set_secret("busy", "value-123456")
    fake_azure.fail("busy", 429, times=50, retry_after=7)
    before = _observed("throttled")

    started = time.monotonic()
    with pytest.raises(SourceThrottled) as caught:
        await source.fetch(vault_url, "busy")

    assert caught.value.retry_after == 7
    assert caught.value.permanent is False
    assert time.monotonic() - started < 5  # the SDK did not sleep through Retry-After
    assert len([r for r in fake_azure.requests("busy") if r.status == 429]) == 1
    assert _observed("throttled") == before + 1


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_unavailable_and_not_retried_inside_the_sdk(
    source: KeyVaultSource, fake_azure: FakeAzure, vault_url: str, status: int
) -> None:
    fake_azure.set_secret(f"broken-{status}", "value-123456")
    fake_azure.fail(f"broken-{status}", status, times=50)

    with pytest.raises(SourceUnavailable) as caught:
        await source.fetch(vault_url, f"broken-{status}")

    assert (caught.value.status, caught.value.reason) == (status, "unavailable")
    assert len([r for r in fake_azure.requests(f"broken-{status}") if r.authorized]) == 1


async def test_hung_vault_times_out_within_the_bound(
    azure_env: dict[str, str], fake_azure: FakeAzure, vault_url: str
) -> None:
    fake_azure.set_secret("stuck", "value-123456")
    fake_azure.hang("stuck")
    source = KeyVaultSource(
        connection_verify=azure_env["LLMHUB_AZURE_CA_BUNDLE"],
        verify_challenge_resource=False,
        timeout_s=1.0,
    )
    started = time.monotonic()
    try:
        with pytest.raises(SourceUnavailable) as caught:
            await source.fetch(vault_url, "stuck")
    finally:
        await source.aclose()

    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 2.5


async def test_unreachable_vault_is_unavailable(azure_env: dict[str, str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    source = KeyVaultSource.from_env()
    try:
        with pytest.raises(SourceUnavailable) as caught:
            await source.fetch(f"https://127.0.0.1:{closed_port}", "anything")
    finally:
        await source.aclose()

    assert caught.value.reason in {"unavailable", "timeout"}


async def test_untrusted_certificate_is_unavailable(
    azure_env: dict[str, str], fake_azure: FakeAzure, vault_url: str
) -> None:
    fake_azure.set_secret("tls", "value-123456")
    source = KeyVaultSource(connection_verify=True, verify_challenge_resource=False)
    try:
        with pytest.raises(SourceUnavailable):
            await source.fetch(vault_url, "tls")
    finally:
        await source.aclose()

    assert not fake_azure.requests("tls")


async def test_challenge_for_another_resource_is_a_permanent_error(
    azure_env: dict[str, str], fake_azure: FakeAzure, vault_url: str
) -> None:
    fake_azure.set_secret("wrong-domain", "value-123456")
    source = KeyVaultSource(
        connection_verify=azure_env["LLMHUB_AZURE_CA_BUNDLE"], verify_challenge_resource=True
    )
    try:
        with pytest.raises(SourceError) as caught:
            await source.fetch(vault_url, "wrong-domain")
    finally:
        await source.aclose()

    assert (caught.value.reason, caught.value.permanent) == ("challenge", True)


async def test_no_secret_or_token_in_errors_or_logs(
    source: KeyVaultSource,
    fake_azure: FakeAzure,
    vault_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = "sk-ant-oat01-do-not-leak-this-value"
    fake_azure.set_secret("leak", value)
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    assert (await source.fetch(vault_url, "leak")).value == value
    for status in (401, 403, 429, 500):
        fake_azure.fail("leak", status, times=5, retry_after=1)
        with pytest.raises(SourceError) as caught:
            await source.fetch(vault_url, "leak")
        errors.append(caught.value)
        fake_azure.reset()
    tokens = fake_azure.issued_tokens()
    texts = [caplog.text]
    for error in errors:
        chain: BaseException | None = error
        while chain is not None:
            texts += [str(chain), repr(chain)]
            chain = chain.__cause__ or chain.__context__

    assert tokens  # the 401 retries re-authenticated, so there is something to look for
    for text in texts:
        assert value not in text
        for token in tokens:
            assert token not in text
