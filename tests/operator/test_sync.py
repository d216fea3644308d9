"""End to end: kopf on a real API server; Key Vault → Secret → gateway rollout → status."""

from __future__ import annotations

from llmhub_common.contract import (
    CLAUDE_TOKEN_KEY,
    CONTENT_HASH_ANNOTATION,
    EXPIRES_AT_KEY,
    MANAGED_BY_LABEL,
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

TOKEN = "sk-ant-oat01-first-token-value-000000000000"


async def test_first_sync_writes_secret_rolls_gateway_and_reports_ready(
    kube: Kube, source: FakeSource
) -> None:
    version = source.set_secret("claude-token", TOKEN)
    await kube.create_deployment("gateway")
    async with kube.operator(source):
        await kube.create_provider("claude")
        body = await eventually(
            lambda: kube.provider("claude"), lambda b: b.get("status", {}).get("phase") == "Ready"
        )
        secret = await kube.secret("claude-credentials")
        annotations = await kube.template_annotations("gateway")

    assert decode(secret, CLAUDE_TOKEN_KEY) == TOKEN
    assert decode(secret, EXPIRES_AT_KEY).endswith("Z")
    assert secret.metadata.labels[MANAGED_BY_LABEL] == "llm-mcp-hub-operator"
    assert secret.metadata.annotations[SOURCE_VERSION_ANNOTATION] == version
    assert secret.metadata.annotations[CONTENT_HASH_ANNOTATION] == content_hash(TOKEN)
    owner = secret.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("LLMProvider", "claude", body["metadata"]["uid"])
    assert annotations["llm-mcp-hub.io/claude-hash"] == content_hash(TOKEN)
    status = body["status"]
    assert status["sourceVersion"] == version
    assert status["contentHash"] == content_hash(TOKEN)
    assert status["targetSecret"] == "claude-credentials"
    assert status["token"]["status"] == "valid"
    assert status["token"]["daysRemaining"] in (364, 365)
    assert status["observedGeneration"] == 1
    assert condition(body, "Synced")["status"] == "True"
    assert condition(body, "GatewayRolled")["reason"] in ("Rolled", "UpToDate")
    # Watch events only: kopf keeps no bookkeeping on the object and adds no finalizer.
    assert not body["metadata"].get("annotations")
    assert not body["metadata"].get("finalizers")
