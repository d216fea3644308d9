"""Rotation and rollout rules: roll once per real change, never for restarts or new versions."""

from __future__ import annotations

import json

from llmhub_common.contract import (
    CLAUDE_TOKEN_KEY,
    CONTENT_HASH_ANNOTATION,
    GEMINI_CREDS_KEY,
    SOURCE_VERSION_ANNOTATION,
)
from llmhub_operator.credential import content_hash
from tests.operator.kopf_harness import (
    FakeSource,
    Kube,
    condition,
    decode,
    eventually,
)

OLD = "sk-ant-oat01-old-token-value-1111111111"
NEW = "sk-ant-oat01-new-token-value-2222222222"
HASH_KEY = "llm-mcp-hub.io/claude-hash"


def ready_with(digest: str):  # type: ignore[no-untyped-def]
    return lambda b: (
        b.get("status", {}).get("contentHash") == digest and b["status"].get("phase") == "Ready"
    )


async def test_rotation_updates_secret_and_rolls_gateway_exactly_once(
    kube: Kube, source: FakeSource
) -> None:
    source.set_secret("claude-token", OLD)
    await kube.create_deployment("gateway")
    async with kube.operator(source):
        await kube.create_provider("claude")
        first = await eventually(lambda: kube.provider("claude"), ready_with(content_hash(OLD)))
        new_version = source.set_secret("claude-token", NEW)
        body = await eventually(lambda: kube.provider("claude"), ready_with(content_hash(NEW)))
        await kube.wait_fetches(source, 3)
        secret = await kube.secret("claude-credentials")
        annotations = await kube.template_annotations("gateway")

    assert decode(secret, CLAUDE_TOKEN_KEY) == NEW
    assert secret.metadata.annotations[SOURCE_VERSION_ANNOTATION] == new_version
    assert annotations[HASH_KEY] == content_hash(NEW)
    assert await kube.rollouts("gateway") == 2  # the first sync, then the rotation: no more
    assert body["status"]["lastRotationTime"] >= first["status"]["lastRotationTime"]
    # One Event per change, none per refresh (the API server lists Events by name, not time).
    reasons = [e["reason"] for e in await kube.events()]
    assert (reasons.count("SecretCreated"), reasons.count("Rotated")) == (1, 1)


async def test_same_value_under_new_version_updates_annotations_without_rolling(
    kube: Kube, source: FakeSource
) -> None:
    source.set_secret("claude-token", OLD)
    await kube.create_deployment("gateway")
    async with kube.operator(source):
        await kube.create_provider("claude")
        await eventually(lambda: kube.provider("claude"), ready_with(content_hash(OLD)))
        again = source.set_secret("claude-token", OLD)
        await eventually(
            lambda: kube.secret("claude-credentials"),
            lambda s: s.metadata.annotations[SOURCE_VERSION_ANNOTATION] == again,
        )
        body = await eventually(
            lambda: kube.provider("claude"), lambda b: b["status"]["sourceVersion"] == again
        )
        await kube.wait_fetches(source, 2)

    assert await kube.rollouts("gateway") == 1  # the first sync only
    assert body["status"]["contentHash"] == content_hash(OLD)
    assert not await kube.event_reasons("Rotated")


async def test_operator_restart_rolls_nothing(kube: Kube, source: FakeSource) -> None:
    source.set_secret("claude-token", OLD)
    await kube.create_deployment("gateway")
    async with kube.operator(source):
        await kube.create_provider("claude")
        await eventually(lambda: kube.provider("claude"), ready_with(content_hash(OLD)))
    before = await kube.secret_raw("claude-credentials")
    async with kube.operator(source):
        await kube.wait_fetches(source, 3)
    assert await kube.rollouts("gateway") == 1
    assert await kube.secret_raw("claude-credentials") == before


async def test_two_providers_share_a_deployment_and_each_rotation_rolls_it_once(
    kube: Kube, source: FakeSource
) -> None:
    creds = json.dumps({"access_token": "ya29.first-access", "refresh_token": "1//first-refresh"})
    source.set_secret("claude-token", OLD)
    source.set_secret("gemini-token", creds)
    await kube.create_deployment("gateway")
    async with kube.operator(source):
        await kube.create_provider("claude")
        await kube.create_provider("gemini", provider="gemini")
        await eventually(lambda: kube.provider("claude"), ready_with(content_hash(OLD)))
        await eventually(lambda: kube.provider("gemini"), ready_with(content_hash(creds)))
        settled = await kube.rollouts("gateway")
        source.set_secret("claude-token", NEW)
        await eventually(lambda: kube.provider("claude"), ready_with(content_hash(NEW)))
        await kube.wait_fetches(source, 4)
        annotations = await kube.template_annotations("gateway")
        gemini_secret = await kube.secret("gemini-credentials")

    assert settled in (1, 2)  # two first syncs together may share one rollout (one ReplicaSet)
    assert await kube.rollouts("gateway") == settled + 1
    assert annotations[HASH_KEY] == content_hash(NEW)
    assert annotations["llm-mcp-hub.io/gemini-hash"] == content_hash(creds)
    assert json.loads(decode(gemini_secret, GEMINI_CREDS_KEY)) == json.loads(creds)


async def test_pinned_version_is_served_even_when_newer_exists(
    kube: Kube, source: FakeSource
) -> None:
    pinned = source.set_secret("claude-token", OLD)
    source.set_secret("claude-token", NEW)
    async with kube.operator(source):
        await kube.create_provider(
            "claude",
            source={
                "azureKeyVault": {
                    "vaultUrl": "https://llm-mcp-hub-kv.vault.azure.net",
                    "secretName": "claude-token",
                    "version": pinned,
                }
            },
            gateway={},
        )
        body = await eventually(lambda: kube.provider("claude"), ready_with(content_hash(OLD)))
        await kube.wait_fetches(source, 2)
        secret = await kube.secret("claude-credentials")

    assert decode(secret, CLAUDE_TOKEN_KEY) == OLD
    assert body["status"]["sourceVersion"] == pinned
    assert {version for _, version, _ in source.calls} == {pinned}
    assert condition(body, "GatewayRolled")["reason"] == "NotConfigured"
    assert secret.metadata.annotations[CONTENT_HASH_ANNOTATION] == content_hash(OLD)
