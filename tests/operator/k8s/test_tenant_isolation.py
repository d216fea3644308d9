"""No confused deputy: vault allow-lists, and each team's Key Vault read as its own identity."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube, decode
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

TEAM_A = "sk-ant-oat01-" + "team-a-token-0012"
TEAM_B = "sk-ant-oat01-" + "team-b-token-0013"


@pytest.fixture
def other_vault(tmp_path: Path, fake_azure: FakeAzure) -> Iterator[FakeAzure]:
    """A second vault host in the same tenant (it accepts the first fake's Entra tokens)."""
    vault = FakeAzure.start_local(tmp_path, ca=fake_azure.ca)  # one trust root, as in Azure
    vault.token_issuer = fake_azure
    try:
        yield vault
    finally:
        vault.stop()


def _condition(body: dict, type_: str) -> dict:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


async def _degraded(k8s: RealKube, name: str, reason: str, namespace: str | None = None) -> dict:
    async def read() -> dict:
        return await k8s.provider(name, namespace)

    body = await eventually(
        read, lambda b: _condition(b, "Synced").get("reason") == reason, timeout=30
    )
    assert body["status"]["phase"] == "Degraded"
    return _condition(body, "Synced")


async def test_a_vault_outside_the_allow_list_receives_no_request_at_all(
    k8s: RealKube, fake_azure: FakeAzure, other_vault: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("ok-token", TEAM_A)
    other_vault.set_secret("rogue-token", TEAM_B)
    await k8s.create_provider("ok", fake_azure.base_url, gateway={})
    await k8s.create_provider("rogue", other_vault.base_url, gateway={})
    start_operator()  # LLMHUB_ALLOWED_VAULTS: the first fake's host:port only
    synced = await _degraded(k8s, "rogue", "VaultNotAllowed")
    assert other_vault.base_url.removeprefix("https://") in synced["message"]
    await k8s.wait_phase("ok")
    assert other_vault.requests() == []  # no token, no challenge, no GET
    assert await k8s.secret_or_none("rogue-credentials") is None


async def test_each_namespace_reads_its_own_vault_secret_as_its_own_service_account(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    team_a, team_b = k8s.namespace, f"{k8s.namespace}-b"
    await k8s.create_namespace(team_b)
    try:
        for ns, client_id in ((team_a, "team-a-client"), (team_b, "team-b-client")):
            meta = {
                "name": "kv-reader",
                "annotations": {"azure.workload.identity/client-id": client_id},
            }
            await k8s.core.create_namespaced_service_account(ns, {"metadata": meta})
        await k8s.core.create_namespaced_service_account(team_b, {"metadata": {"name": "plain"}})
        # Entra trusts exactly the API server's signed tokens of each team's ServiceAccount.
        keyset = await client.OpenidApi(k8s.api).get_service_account_issuer_open_id_keyset(
            _preload_content=False
        )
        fake_azure.jwks = json.loads(await keyset.read())
        fake_azure.federate(
            "team-a-client", f"system:serviceaccount:{team_a}:kv-reader", readers_of=("a-token",)
        )
        fake_azure.federate(
            "team-b-client", f"system:serviceaccount:{team_b}:kv-reader", readers_of=("b-token",)
        )
        fake_azure.set_secret("a-token", TEAM_A)
        fake_azure.set_secret("b-token", TEAM_B)

        def source(secret: str, account: str = "kv-reader") -> dict:
            return {
                "azureKeyVault": {
                    "vaultUrl": fake_azure.base_url,
                    "secretName": secret,
                    "serviceAccountName": account,
                }
            }

        await k8s.create_provider("a", fake_azure.base_url, gateway={}, source=source("a-token"))
        for name, spec in {
            "b": source("b-token"),
            "sneaky": source("a-token"),  # team B names team A's secret: its identity may not
            "ghost": source("b-token", "missing"),
            "plain": source("b-token", "plain"),
        }.items():
            await k8s.create_provider(
                name, fake_azure.base_url, namespace=team_b, gateway={}, source=spec
            )
        start_operator(extra_env={"WATCH_NAMESPACES": f"{team_a},{team_b}"})

        await k8s.wait_phase("a")
        assert decode(await k8s.secret("a-credentials"), "CLAUDE_CODE_OAUTH_TOKEN") == TEAM_A
        await eventually(
            lambda: k8s.provider("b", team_b),
            lambda body: body.get("status", {}).get("phase") == "Ready",
            timeout=30,
        )
        secret_b = await k8s.core.read_namespaced_secret("b-credentials", team_b)
        assert decode(secret_b, "CLAUDE_CODE_OAUTH_TOKEN") == TEAM_B
        sneaky = await _degraded(k8s, "sneaky", "Auth", team_b)
        assert "a-token" in sneaky["message"]
        ghost = await _degraded(k8s, "ghost", "ServiceAccountNotFound", team_b)
        assert "ServiceAccount missing" in ghost["message"]
        plain = await _degraded(k8s, "plain", "IdentityNotConfigured", team_b)
        assert "azure.workload.identity/client-id" in plain["message"]

        # Every token was a real TokenRequest token of the team's own ServiceAccount.
        exchanged = {
            (r.client_id, r.subject) for r in fake_azure.token_requests() if r.status == 200
        }
        assert exchanged == {
            ("team-a-client", f"system:serviceaccount:{team_a}:kv-reader"),
            ("team-b-client", f"system:serviceaccount:{team_b}:kv-reader"),
        }
        readers = {r.client_id for r in fake_azure.requests("a-token") if r.status == 200}
        assert readers == {"team-a-client"}
    finally:
        await k8s.core.delete_namespace(team_b)


async def test_outside_its_namespace_the_operator_requires_the_namespace_identity(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", TEAM_A)
    await k8s.create_provider("claude", fake_azure.base_url, gateway={})
    start_operator(
        extra_env={
            "LLMHUB_REQUIRE_NAMESPACE_IDENTITY": "true",
            "POD_NAMESPACE": "llm-mcp-hub-system",  # the operator lives elsewhere
        }
    )
    synced = await _degraded(k8s, "claude", "NamespaceIdentityRequired")
    assert "serviceAccountName" in synced["message"]
    await asyncio.sleep(1)
    assert fake_azure.requests() == []  # not even a token request
