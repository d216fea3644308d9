"""Faults, through the real Azure SDKs and the fake Key Vault: Degraded, never blanked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from llmhub_operator.errors import SourceThrottled
from tests.fakes.fake_azure import FakeAzure
from tests.operator.kopf_harness import (
    FakeSource,
    Kube,
    condition,
    eventually,
)

TOKEN = "sk-ant-oat01-fault-tests-token-3333333333"


def phase_is(phase: str, reason: str | None = None) -> Any:
    def check(body: dict[str, Any]) -> bool:
        if body.get("status", {}).get("phase") != phase:
            return False
        return reason is None or condition(body, "Synced").get("reason") == reason

    return check


def kv_source(vault_url: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"azureKeyVault": {"vaultUrl": vault_url, "secretName": name, **extra}}


@pytest.mark.parametrize(
    ("status", "reason", "says"),
    [
        (403, "Auth", "Key Vault Secrets User"),
        (401, "Auth", "federated credential"),
        (404, "NotFound", "has no"),
        (503, "Unavailable", "HTTP 503"),
    ],
)
async def test_key_vault_failure_degrades_keeps_secret_and_recovers(
    kube: Kube,
    fake_azure: FakeAzure,
    azure_env: dict[str, str],
    vault_url: str,
    status: int,
    reason: str,
    says: str,
) -> None:
    name = f"fault-{status}"
    fake_azure.set_secret(name, TOKEN)
    async with kube.operator(None):
        await kube.create_provider("claude", source=kv_source(vault_url, name), gateway={})
        await eventually(lambda: kube.provider("claude"), phase_is("Ready"), timeout=20)
        good = await kube.secret_raw("claude-credentials")
        fake_azure.fail(name, status, times=4)
        body = await eventually(lambda: kube.provider("claude"), phase_is("Degraded", reason))
        during = await kube.secret_raw("claude-credentials")
        recovered = await eventually(lambda: kube.provider("claude"), phase_is("Ready"), timeout=20)
        final = await kube.secret_raw("claude-credentials")

    synced = condition(body, "Synced")
    assert synced["status"] == "False"
    assert says in synced["message"]
    assert during == good  # byte for byte: a failed fetch never blanks or rewrites the Secret
    assert final == good
    assert condition(recovered, "Synced")["status"] == "True"
    assert len(await kube.event_reasons("SyncFailed")) == 1  # once per state change, not per retry


async def test_throttling_reports_retry_after(
    kube: Kube, fake_azure: FakeAzure, azure_env: dict[str, str], vault_url: str
) -> None:
    fake_azure.set_secret("throttled", TOKEN)
    fake_azure.fail("throttled", 429, times=1, retry_after=2)
    async with kube.operator(None):
        await kube.create_provider("claude", source=kv_source(vault_url, "throttled"), gateway={})
        body = await eventually(lambda: kube.provider("claude"), phase_is("Degraded", "Throttled"))
        await eventually(lambda: kube.provider("claude"), phase_is("Ready"), timeout=20)
    assert "retry after 2s" in condition(body, "Synced")["message"]


async def test_retry_after_holds_back_every_handler(kube: Kube, source: FakeSource) -> None:
    source.set_secret("claude-token", TOKEN)
    source.fail("claude-token", SourceThrottled("throttled", retry_after=3.0))
    async with kube.operator(source):
        await kube.create_provider("claude", gateway={})
        await eventually(lambda: kube.provider("claude"), phase_is("Ready"), timeout=15)
    first, second = source.calls[0][2], source.calls[1][2]
    assert second - first >= 2.9  # neither the create retry nor the 1s refresh daemon came early


async def test_invalid_gemini_value_degrades_and_writes_nothing(
    kube: Kube, fake_azure: FakeAzure, azure_env: dict[str, str], vault_url: str
) -> None:
    good = json.dumps({"access_token": "ya29.good-access-x", "refresh_token": "1//good-refresh-x"})
    fake_azure.set_secret("gemini-creds", good)
    async with kube.operator(None):
        await kube.create_provider(
            "gemini", provider="gemini", source=kv_source(vault_url, "gemini-creds"), gateway={}
        )
        await eventually(lambda: kube.provider("gemini"), phase_is("Ready"), timeout=20)
        before = await kube.secret_raw("gemini-credentials")
        fake_azure.set_secret("gemini-creds", json.dumps({"access_token": "ya29.only-access"}))
        body = await eventually(
            lambda: kube.provider("gemini"), phase_is("Degraded", "InvalidCredential")
        )
        after = await kube.secret_raw("gemini-credentials")

    assert after == before
    assert "refresh_token" in condition(body, "Synced")["message"]
    assert (
        body["status"]["contentHash"]
        == before["metadata"]["annotations"]["llm-mcp-hub.io/content-hash"]
    )


async def test_invalid_gemini_value_on_first_sync_creates_no_secret(
    kube: Kube, source: FakeSource
) -> None:
    source.set_secret("gemini-token", "not json at all, definitely")
    async with kube.operator(source):
        await kube.create_provider("gemini", provider="gemini", gateway={})
        body = await eventually(
            lambda: kube.provider("gemini"), phase_is("Degraded", "InvalidCredential")
        )
        await kube.wait_fetches(source, 2)
        secrets = await kube.secrets()
    assert "gemini-credentials" not in secrets
    assert "not valid JSON" in condition(body, "Synced")["message"]


async def test_the_schema_refuses_an_interval_under_a_second_and_others_keep_running(
    kube: Kube, source: FakeSource
) -> None:
    """What the schema can check it refuses at the API (CEL); InvalidSpec (test_model) covers
    what only the operator can, e.g. an older CRD left installed."""
    source.set_secret("good-token", TOKEN)
    async with kube.operator(source):
        with pytest.raises(client.ApiException) as refused:
            await kube.create_provider("bad", refreshInterval="0.5s", gateway={})
        await kube.create_provider("good", gateway={})
        await eventually(lambda: kube.provider("good"), phase_is("Ready"))
    assert refused.value.status == 422
    assert "refreshInterval must be at least 1s" in refused.value.body


async def test_missing_gateway_syncs_secret_then_rolls_once_it_appears(
    kube: Kube, source: FakeSource
) -> None:
    source.set_secret("claude-token", TOKEN)
    async with kube.operator(source):
        await kube.create_provider("claude")
        body = await eventually(
            lambda: kube.provider("claude"),
            lambda b: condition(b, "GatewayRolled").get("reason") == "DeploymentNotFound",
        )
        await kube.secret("claude-credentials")
        await kube.create_deployment("gateway")
        rolled = await eventually(
            lambda: kube.provider("claude"),
            lambda b: condition(b, "GatewayRolled").get("status") == "True",
        )
        await kube.wait_fetches(source, 2)
    assert body["status"]["phase"] == "Degraded"  # not Ready while the gateway lacks it
    assert condition(body, "GatewayRolled")["status"] == "False"
    assert condition(body, "Ready")["status"] == "False"
    assert condition(rolled, "GatewayRolled")["reason"] in ("Rolled", "UpToDate")
    assert rolled["status"]["phase"] == "Ready"
    assert await kube.rollouts("gateway") == 1


async def test_deleted_provider_takes_its_secret_through_garbage_collection(
    kube: Kube, source: FakeSource
) -> None:
    source.set_secret("claude-token", TOKEN)
    async with kube.operator(source):
        await kube.create_provider("claude", gateway={})
        body = await eventually(lambda: kube.provider("claude"), phase_is("Ready"))
        assert not body["metadata"].get("finalizers")  # deletion never waits for the operator
        secret = await kube.secret("claude-credentials")
        await kube.delete_provider("claude")
        await eventually(kube.provider_names, lambda names: "claude" not in names)
        await eventually(kube.secrets, lambda names: "claude-credentials" not in names, timeout=30)
    (owner,) = secret.metadata.owner_references
    assert (owner.kind, owner.uid, owner.controller) == (
        "LLMProvider",
        body["metadata"]["uid"],
        True,
    )
