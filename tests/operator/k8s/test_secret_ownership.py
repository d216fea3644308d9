"""The Secret the operator writes, proven on a real API server: ownership and exact contents."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes_asyncio import client

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube, decode
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

CLAUDE = "sk-ant-oat01-" + "k8s-ownership-token-0001"
GEMINI = json.dumps(
    {"access_token": "ya29.k8s-access-0002", "refresh_token": "1//k8s-refresh-0003"}
)


def _phase(body: dict) -> str | None:
    return (body.get("status") or {}).get("phase")


def _condition(body: dict, type_: str) -> dict:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return cond
    return {}


async def test_first_sync_writes_exactly_the_contract(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", CLAUDE)
    await k8s.create_deployment("gateway")
    await k8s.create_provider("claude", fake_azure.base_url)
    start_operator()
    body = await k8s.wait_phase("claude", "Ready")
    assert not body["metadata"].get("finalizers"), "no finalizer: deletion never waits for us"
    secret = await k8s.secret("claude-credentials")
    assert set(secret.data) == {"CLAUDE_CODE_OAUTH_TOKEN", "expires_at"}
    assert decode(secret, "CLAUDE_CODE_OAUTH_TOKEN") == CLAUDE
    [ref] = secret.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == (
        "LLMProvider",
        "claude",
        body["metadata"]["uid"],
        True,
    )
    annotations = await k8s.template_annotations("gateway")
    assert annotations["llm-mcp-hub.io/claude-hash"] == body["status"]["contentHash"]
    assert annotations["llm-mcp-hub.io/claude-secret-uid"] == secret.metadata.uid


async def test_a_foreign_secret_is_never_touched(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", CLAUDE)
    foreign = await k8s.core.create_namespaced_secret(
        k8s.namespace,
        {"metadata": {"name": "team-secret", "labels": {"team": "a"}}, "data": {"k": "dmFsdWU="}},
    )
    await k8s.create_provider("claude", fake_azure.base_url, target={"secretName": "team-secret"})
    start_operator()
    body = await k8s.wait_phase("claude", "Degraded")
    synced = _condition(body, "Synced")
    assert synced["reason"] == "SecretConflict"
    assert "team-secret" in synced["message"]
    after = await k8s.secret("team-secret")
    assert after.metadata.resource_version == foreign.metadata.resource_version
    assert after.data == {"k": "dmFsdWU="}
    assert not after.metadata.owner_references
    # Deleting the LLMProvider never takes the foreign Secret with it (no ownerReference).
    await k8s.delete_provider("claude")
    await eventually(lambda: k8s.provider_or_none("claude"), lambda b: b is None, timeout=15)
    assert (await k8s.secret("team-secret")).metadata.uid == foreign.metadata.uid


async def test_provider_change_leaves_only_the_new_keys_and_a_right_secret_is_not_rewritten(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("llm-token", CLAUDE)
    fake_azure.set_secret("llm-gemini", GEMINI)
    await k8s.create_provider(
        "llm",
        fake_azure.base_url,
        gateway={},
        refreshInterval="1s",
        source={"azureKeyVault": {"vaultUrl": fake_azure.base_url, "secretName": "llm-token"}},
    )
    start_operator()
    await k8s.wait_phase("llm", "Ready")
    assert set((await k8s.secret("llm-credentials")).data) == {
        "CLAUDE_CODE_OAUTH_TOKEN",
        "expires_at",
    }
    await k8s.patch_spec(
        "llm",
        {
            "provider": "gemini",
            "source": {
                "azureKeyVault": {"vaultUrl": fake_azure.base_url, "secretName": "llm-gemini"}
            },
        },
    )
    secret = await eventually(
        lambda: k8s.secret("llm-credentials"),
        lambda s: set(s.data) == {"oauth_creds.json", "expires_at"},
        timeout=20,
    )
    assert json.loads(decode(secret, "oauth_creds.json")) == json.loads(GEMINI)

    # Several 1 s refreshes later the Secret is exactly as it was: nothing rewritten.
    async def reads() -> int:
        return len(fake_azure.requests("llm-gemini", method="GET"))

    before = await reads()
    await eventually(reads, lambda n: n >= before + 3, timeout=15)
    again = await k8s.secret("llm-credentials")
    assert again.metadata.resource_version == secret.metadata.resource_version


async def test_a_key_added_by_hand_is_removed_and_the_value_restored(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("claude-token", CLAUDE)
    await k8s.create_provider("claude", fake_azure.base_url, gateway={}, refreshInterval="1h")
    start_operator()
    await k8s.wait_phase("claude", "Ready")
    tampered = base64.b64encode(b"sk-ant-oat01-tampered-by-hand").decode()
    await k8s.core.patch_namespaced_secret(
        "claude-credentials",
        k8s.namespace,
        {"data": {"CLAUDE_CODE_OAUTH_TOKEN": tampered, "extra": "eA=="}},
    )
    # refreshInterval is an hour: only the watch on managed Secrets can restore it this fast.
    secret = await eventually(
        lambda: k8s.secret("claude-credentials"),
        lambda s: set(s.data) == {"CLAUDE_CODE_OAUTH_TOKEN", "expires_at"},
        timeout=15,
    )
    assert decode(secret, "CLAUDE_CODE_OAUTH_TOKEN") == CLAUDE


async def test_the_gemini_project_is_a_secret_key_that_changes_without_a_roll(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    fake_azure.set_secret("gemini-token", GEMINI)
    await k8s.create_deployment("gateway")
    await k8s.create_provider(
        "gemini", fake_azure.base_url, provider="gemini", gemini={"projectId": "team-proj-1"}
    )
    start_operator()
    await k8s.wait_phase("gemini", "Ready")
    secret = await k8s.secret("gemini-credentials")
    assert set(secret.data) == {"oauth_creds.json", "expires_at", "GOOGLE_CLOUD_PROJECT"}
    assert decode(secret, "GOOGLE_CLOUD_PROJECT") == "team-proj-1"
    rolled = await k8s.template_annotations("gateway")

    await k8s.patch_spec("gemini", {"gemini": {"projectId": "team-proj-2"}})
    changed = await eventually(
        lambda: k8s.secret("gemini-credentials"),
        lambda s: decode(s, "GOOGLE_CLOUD_PROJECT") == "team-proj-2",
        timeout=15,
    )
    assert decode(changed, "oauth_creds.json") == GEMINI
    # The gateway reads the key from its mounted Secret on every call: no roll for it.
    assert await k8s.template_annotations("gateway") == rolled

    await k8s.patch_spec("gemini", {"gemini": {"projectId": ""}})
    await eventually(
        lambda: k8s.secret("gemini-credentials"),
        lambda s: set(s.data) == {"oauth_creds.json", "expires_at"},
        timeout=15,
    )


async def test_the_api_server_refuses_a_project_on_a_claude_provider(
    k8s: RealKube, fake_azure: FakeAzure
) -> None:
    with pytest.raises(client.ApiException) as refused:
        await k8s.create_provider("claude", fake_azure.base_url, gemini={"projectId": "team-proj"})
    assert refused.value.status == 422
    assert "spec.gemini.projectId applies to provider gemini only" in refused.value.body
    with pytest.raises(client.ApiException) as bad:
        await k8s.create_provider(
            "g", fake_azure.base_url, provider="gemini", gemini={"projectId": "Not A Project"}
        )
    assert bad.value.status == 422


async def test_with_delete_rights_beyond_the_charts_a_renamed_target_deletes_only_our_old_secret(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    """As admin: the chart grants no delete on Secrets, so there the old Secret stays until the
    LLMProvider goes (tests/chart_k8s/test_install_rbac.py proves that with the chart's RBAC).
    An operator run with delete rights removes its own old Secret, never a foreign one."""
    fake_azure.set_secret("claude-token", CLAUDE)
    await k8s.create_provider("claude", fake_azure.base_url, gateway={}, refreshInterval="1h")
    start_operator()
    await k8s.wait_phase("claude", "Ready")
    assert await k8s.secret_or_none("claude-credentials") is not None
    await k8s.patch_spec("claude", {"target": {"secretName": "claude-renamed"}})
    renamed = await eventually(
        lambda: k8s.secret_or_none("claude-renamed"), lambda s: s is not None, timeout=15
    )
    assert decode(renamed, "CLAUDE_CODE_OAUTH_TOKEN") == CLAUDE
    await eventually(
        lambda: k8s.secret_or_none("claude-credentials"), lambda s: s is None, timeout=15
    )
    [event] = await eventually(lambda: k8s.events("SecretRenamed"), lambda e: len(e) == 1)
    assert "claude-credentials" in event.message
    assert "claude-renamed" in event.message

    # A foreign Secret under the old name (made by a person since) is never deleted.
    foreign = await k8s.core.create_namespaced_secret(
        k8s.namespace, {"metadata": {"name": "claude-credentials"}, "data": {"k": "dg=="}}
    )
    await k8s.patch_spec("claude", {"target": {"secretName": "claude-third"}})
    await eventually(
        lambda: k8s.secret_or_none("claude-third"), lambda s: s is not None, timeout=15
    )
    await eventually(lambda: k8s.secret_or_none("claude-renamed"), lambda s: s is None, timeout=15)
    await k8s.patch_spec("claude", {"target": {"secretName": "claude-credentials"}})
    body = await eventually(
        lambda: k8s.provider("claude"),
        lambda b: _condition(b, "Synced").get("reason") == "SecretConflict",
        timeout=15,
    )
    assert body["status"]["phase"] == "Degraded"
    kept = await k8s.secret("claude-credentials")
    assert kept.metadata.uid == foreign.metadata.uid
    assert kept.data == {"k": "dg=="}
    # Degraded keeps the last good Secret (claude-third): a failed sync never deletes.
    assert await k8s.secret_or_none("claude-third") is not None
