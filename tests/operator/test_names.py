"""Names that cannot work are refused by the API server (CEL on metadata.name), up front."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client

from tests.operator.kopf_harness import FakeSource, Kube, condition, eventually

TOKEN = "sk-ant-oat01-longest-name-token-0017"
# llm-mcp-hub.io/<name>-secret-uid: the key's name part (after the "/") may have 63 characters.
LONGEST = "claude-" + "a" * 45
assert len(LONGEST) + len("-secret-uid") == 63


async def test_a_name_too_long_for_the_gateway_annotations_is_refused(kube: Kube) -> None:
    with pytest.raises(client.ApiException) as refused:
        await kube.create_provider(LONGEST + "b", gateway={})
    assert refused.value.status == 422
    assert "metadata.name must be at most 52 characters" in refused.value.body
    assert LONGEST + "b" not in await kube.provider_names()


async def test_the_longest_name_allowed_syncs_and_rolls(kube: Kube, source: FakeSource) -> None:
    source.set_secret(f"{LONGEST}-token", TOKEN)
    await kube.create_deployment("gateway")
    async with kube.operator(source):
        await kube.create_provider(LONGEST, refreshInterval="1h")
        body = await eventually(
            lambda: kube.provider(LONGEST),
            lambda b: condition(b, "GatewayRolled").get("status") == "True",
            timeout=20,
        )
        annotations = await kube.template_annotations("gateway")
        secret = await kube.secret(f"{LONGEST}-credentials")
    assert body["status"]["phase"] == "Ready"
    assert annotations[f"llm-mcp-hub.io/{LONGEST}-hash"] == body["status"]["contentHash"]
    assert annotations[f"llm-mcp-hub.io/{LONGEST}-secret-uid"] == secret.metadata.uid
    assert await kube.rollouts("gateway") == 1
