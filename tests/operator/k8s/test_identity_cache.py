"""The per-namespace identities (identity.py) against the real TokenRequest API: one token
while it is fresh, a new one before it runs out, a changed client id at once, and a bounded
cache."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from llmhub_operator import identity
from llmhub_operator.identity import CLIENT_ID_ANNOTATION, Identities, IdentityError
from tests.k8s.kube import RealKube

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_CLIENT = "22222222-2222-2222-2222-222222222222"


async def _account(k8s: RealKube, name: str, client_id: str | None) -> None:
    annotations = {"azure.workload.identity/tenant-id": TENANT}
    if client_id is not None:
        annotations[CLIENT_ID_ANNOTATION] = client_id
    body: dict[str, Any] = {"metadata": {"name": name, "annotations": annotations}}
    await k8s.core.create_namespaced_service_account(k8s.namespace, body)


async def _review(k8s: RealKube, token: str) -> client.V1TokenReviewStatus:
    review = await client.AuthenticationV1Api(k8s.api).create_token_review(
        {"spec": {"token": token, "audiences": [identity.AUDIENCE]}}
    )
    return review.status


async def test_a_fresh_token_is_reused_and_renewed_before_it_runs_out(
    k8s: RealKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _account(k8s, "team-reader", "11111111-1111-1111-1111-111111111111")
    identities = Identities(k8s.api)
    first = await identities.get(k8s.namespace, "team-reader")
    token = first._assertion()
    status = await _review(k8s, token)
    assert status.authenticated
    assert status.user.username == f"system:serviceaccount:{k8s.namespace}:team-reader"
    again = await identities.get(k8s.namespace, "team-reader")
    assert again is first
    assert again._assertion() == token, "a token with minutes left is not requested again"
    # Within REFRESH_BEFORE_S of its end (here: always), the next get asks for a new one.
    monkeypatch.setattr(identity, "REFRESH_BEFORE_S", identity.TOKEN_SECONDS + 60)
    renewed = await identities.get(k8s.namespace, "team-reader")
    assert renewed._assertion() != token
    assert (await _review(k8s, renewed._assertion())).authenticated


async def test_a_changed_client_id_is_used_at_once(k8s: RealKube) -> None:
    await _account(k8s, "team-reader", "11111111-1111-1111-1111-111111111111")
    identities = Identities(k8s.api)
    before = await identities.get(k8s.namespace, "team-reader")
    await k8s.core.patch_namespaced_service_account(
        "team-reader",
        k8s.namespace,
        {"metadata": {"annotations": {CLIENT_ID_ANNOTATION: OTHER_CLIENT}}},
    )
    after = await identities.get(k8s.namespace, "team-reader")
    assert after.client_id == OTHER_CLIENT
    assert after.key != before.key  # vault clients are per identity key: a new one is built
    await k8s.core.patch_namespaced_service_account(
        "team-reader",
        k8s.namespace,
        [{"op": "remove", "path": "/metadata/annotations/azure.workload.identity~1client-id"}],
    )
    with pytest.raises(IdentityError) as refused:
        await identities.get(k8s.namespace, "team-reader")
    assert refused.value.reason == "IdentityNotConfigured"


async def test_the_cache_is_bounded_least_recently_used_first(
    k8s: RealKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identity, "MAX_IDENTITIES", 2)
    for name in ("sa-a", "sa-b", "sa-c"):
        await _account(k8s, name, "33333333-3333-3333-3333-333333333333")
    identities = Identities(k8s.api)
    a = await identities.get(k8s.namespace, "sa-a")
    await identities.get(k8s.namespace, "sa-b")
    assert await identities.get(k8s.namespace, "sa-a") is a  # used again: most recent now
    await identities.get(k8s.namespace, "sa-c")  # evicts sa-b, the least recently used
    cached = {key[1] for key in identities._cache}
    assert cached == {"sa-a", "sa-c"}
    assert await identities.get(k8s.namespace, "sa-a") is a
    b = await identities.get(k8s.namespace, "sa-b")  # resolved again, with a token of its own
    assert (await _review(k8s, b._assertion())).authenticated
    assert len(identities._cache) == 2
