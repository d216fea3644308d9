"""The kubernetes mode against a real API server: real ServiceAccount tokens from the
TokenRequest API, reviewed by a gateway identity holding exactly the chart's RBAC."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmhub_gateway.auth.callers import CallerAuth
from llmhub_gateway.auth.kubernetes import ApiServer, KubernetesVerifier, ReviewUnavailable
from llmhub_gateway.errors import Forbidden, Unauthenticated
from tests.chart.conftest import one, render
from tests.k8s.kube import RealKube

AUDIENCE = "llm-mcp-hub-gateway"


async def _service_accounts(k8s: RealKube, *names: str) -> None:
    for name in names:
        await k8s.core.create_namespaced_service_account(
            k8s.namespace, {"metadata": {"name": name}}
        )


async def _grant_chart_rbac(k8s: RealKube, service_account: str) -> None:
    """The ClusterRole the chart renders for the gateway, bound to ``service_account``."""
    rules = one(render(), "ClusterRole", "-tokenreview")["rules"]
    await k8s.grant(service_account, rules, cluster=True)


async def _verifier(k8s: RealKube, tmp_path: Path, service_account: str) -> KubernetesVerifier:
    token = await k8s.service_account_token(service_account)
    kubeconfig = k8s.token_kubeconfig(tmp_path / f"{service_account}.kubeconfig", token)
    return KubernetesVerifier(
        ApiServer.from_kubeconfig(kubeconfig),
        audience=AUDIENCE,
        allowed=[f"{k8s.namespace}/caller", "other-ns/*"],
    )


async def test_token_review_names_allowed_service_accounts_and_refuses_the_rest(
    k8s: RealKube, tmp_path: Path
) -> None:
    await _service_accounts(k8s, "gateway", "caller", "stranger")
    await _grant_chart_rbac(k8s, "gateway")
    verifier = await _verifier(k8s, tmp_path, "gateway")
    auth = CallerAuth(frozenset({"kubernetes"}), [verifier], 'Bearer realm="t"')
    try:
        caller = await k8s.service_account_token("caller", audience=AUDIENCE)
        principal = await auth.authenticate(f"Bearer {caller}")
        assert (principal.name, principal.mode) == (f"{k8s.namespace}/caller", "kubernetes")
        assert principal.label == principal.name  # allow-listed names are bounded labels
        # A token minted for another audience (another service) is refused.
        elsewhere = await k8s.service_account_token("caller", audience="https://vault.azure.net")
        with pytest.raises(Unauthenticated, match="not accepted"):
            await auth.authenticate(f"Bearer {elsewhere}")
        # A real token of a ServiceAccount not on the allow-list is known but forbidden.
        stranger = await k8s.service_account_token("stranger", audience=AUDIENCE)
        with pytest.raises(Forbidden, match="not an allowed caller"):
            await auth.authenticate(f"Bearer {stranger}")
        # A forged token (the caller's with its signature bitten off) is refused.
        with pytest.raises(Unauthenticated):
            await auth.authenticate(f"Bearer {caller[:-8]}AAAAAAAA")
    finally:
        await verifier.aclose()


async def test_without_the_chart_rbac_the_review_is_refused_not_passed(
    k8s: RealKube, tmp_path: Path
) -> None:
    await _service_accounts(k8s, "bare", "caller")
    verifier = await _verifier(k8s, tmp_path, "bare")
    try:
        caller = await k8s.service_account_token("caller", audience=AUDIENCE)
        with pytest.raises(ReviewUnavailable, match="403"):
            await verifier.verify(caller)
    finally:
        await verifier.aclose()


async def test_mcp_refuses_with_the_codes_rest_gives(k8s: RealKube, tmp_path: Path) -> None:
    """Over /mcp too: an allowed ServiceAccount is served, one off the allow-list gets 403, and
    a gateway whose reviews the API server refuses answers 503 + Retry-After (not a 401)."""
    import httpx

    from llmhub_gateway.core.config import Settings
    from tests.gateway.conftest import ThreadedGateway
    from tests.gateway.fake_provider import echo_providers
    from tests.gateway.test_auth_mcp import ACCEPT, INIT

    await _service_accounts(k8s, "gateway", "bare", "caller", "stranger")
    await _grant_chart_rbac(k8s, "gateway")
    caller = await k8s.service_account_token("caller", audience=AUDIENCE)
    stranger = await k8s.service_account_token("stranger", audience=AUDIENCE)

    def post(gw: ThreadedGateway, token: str) -> httpx.Response:
        headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
        return httpx.post(f"{gw.url}/mcp", json=INIT, headers=headers, timeout=10)

    for identity, expected in (("gateway", (200, 403)), ("bare", (503, 503))):
        kubeconfig = k8s.token_kubeconfig(
            tmp_path / f"{identity}.kubeconfig", await k8s.service_account_token(identity)
        )
        settings = Settings(
            auth_modes="kubernetes",
            auth_kubernetes_kubeconfig=kubeconfig,
            auth_kubernetes_allowed=f"{k8s.namespace}/caller",
        )
        with ThreadedGateway(settings, echo_providers()) as gw:
            answers = [post(gw, caller), post(gw, stranger)]
        assert tuple(a.status_code for a in answers) == expected, identity
        for answer in answers:
            if answer.status_code == 403:
                assert answer.json()["error"]["data"]["type"] == "forbidden"
            if answer.status_code == 503:
                assert answer.headers["Retry-After"] == "5"
                assert answer.json()["error"]["data"]["type"] == "auth_unavailable"
