"""Per-namespace identities are never those of the system namespaces, whatever RBAC allows."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client

from llmhub_operator.identity import SYSTEM_NAMESPACES, Identities, IdentityError


class _NoCalls(client.ApiClient):
    """An API client that fails the test if the operator asks the API server anything."""

    async def call_api(self, *args: object, **kwargs: object) -> object:
        raise AssertionError(f"an API request was made: {args[:2]}")


@pytest.mark.parametrize("namespace", sorted(SYSTEM_NAMESPACES))
async def test_a_system_namespace_account_is_refused_before_any_request(namespace: str) -> None:
    api = _NoCalls()
    try:
        with pytest.raises(IdentityError) as refused:
            await Identities(api).get(namespace, "clusterrole-aggregation-controller")
    finally:
        await api.close()
    assert refused.value.reason == "ServiceAccountNotGranted"
    assert not refused.value.transient
    assert f"never reads Key Vault as a ServiceAccount of {namespace}" in refused.value.message
