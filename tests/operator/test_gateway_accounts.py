"""Reading the gateway's account refusals: which LLMProviders, every replica, and the settings."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from llmhub_common.contract import GEMINI_PROJECT_KEY
from llmhub_operator.__main__ import main
from llmhub_operator.gateway_accounts import GatewayAccounts, merge
from tests.fakes.gateway_health import GatewayHealth, entry
from tests.gateway.conftest import GatewayProcess

FAKES = Path(__file__).resolve().parents[1] / "fakes"
GEMINI_CREDS = {"access_token": "ya29.a0AccountsFakeAccess", "refresh_token": "1//0gAccountsFake"}


def body(namespace: str = "hub", deployment: str | None = "gw", provider: str = "gemini") -> Any:
    spec: dict[str, Any] = {"provider": provider}
    if deployment is not None:
        spec["gateway"] = {"deploymentName": deployment}
    return {"metadata": {"namespace": namespace, "name": "p"}, "spec": spec}


def test_a_refusal_on_any_replica_wins_and_unrelated_errors_do_not_count() -> None:
    merged = merge(
        [
            {"gemini": entry(), "claude": entry("provider_auth_error", "expired")},
            {"gemini": entry("provider_project_required", "set the project"), "claude": entry()},
            {"gemini": entry()},
        ]
    )
    assert (merged["gemini"].status, merged["gemini"].reason) == ("False", "ProjectRequired")
    assert merged["gemini"].message == "set the project"
    assert (merged["claude"].status, merged["claude"].reason) == ("True", "NoRefusal")


def test_only_providers_naming_the_gateway_in_its_namespace_get_the_condition() -> None:
    accounts = GatewayAccounts(url="http://gw", deployment="gw", namespace="hub")
    assert accounts.condition_for(body()) is None  # nothing answered yet: nothing claimed
    accounts.reported = merge(
        [{"gemini": entry("provider_account_unsupported", "use Code Assist")}]
    )
    found = accounts.condition_for(body())
    assert found is not None
    assert (found.type, found.status, found.reason) == (
        "AccountUsable",
        "False",
        "AccountUnsupported",
    )
    assert accounts.condition_for(body(namespace="team-a")) is None  # another team's gateway
    assert accounts.condition_for(body(deployment="other")) is None
    assert accounts.condition_for(body(deployment=None)) is None
    missing = accounts.condition_for(body(provider="claude"))
    assert missing is not None
    assert (missing.status, missing.reason) == ("Unknown", "NotReported")


@pytest.fixture
def replicas() -> Iterator[list[GatewayHealth]]:
    """Two gateway replicas on one port, at 127.0.0.1 and 127.0.0.2 (as a headless Service's
    pods answer on one port at their own IPs)."""
    first = GatewayHealth("127.0.0.1")
    second = GatewayHealth("127.0.0.2", first.port)
    yield [first, second]
    first.stop()
    second.stop()


async def test_every_address_of_the_url_is_asked_by_ip(
    replicas: list[GatewayHealth], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = replicas
    first.tokens = {"gemini": entry()}
    second.tokens = {"gemini": entry("provider_project_required", "set the project")}
    loop = asyncio.get_running_loop()

    async def headless(host: str, port: int, **_: Any) -> list[Any]:
        """What DNS answers for a headless Service: one A record per ready pod."""
        assert (host, port) == ("gateway-pods.hub.svc", first.port)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", headless)
    accounts = GatewayAccounts(url=f"http://gateway-pods.hub.svc:{first.port}", deployment="gw")
    async with aiohttp.ClientSession() as session:
        assert await accounts.poll(session)
    assert accounts.reported is not None
    assert accounts.reported["gemini"].reason == "ProjectRequired"  # seen by the second only
    assert (first.paths, second.paths) == (["/health/tokens"], ["/health/tokens"])

    second.stop()  # one replica gone: the other's answer is the state
    async with aiohttp.ClientSession() as session:
        assert await accounts.poll(session)
    assert accounts.reported["gemini"].reason == "NoRefusal"

    first.hang = True  # none answers in time: the last known state stays
    accounts.timeout_seconds = 0.3
    async with aiohttp.ClientSession() as session:
        assert not await accounts.poll(session)
    assert accounts.reported["gemini"].reason == "NoRefusal"


def test_a_gateway_url_without_its_deployment_stops_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMHUB_GATEWAY_URL", "http://gw-pods.hub.svc:8080")
    monkeypatch.delenv("LLMHUB_GATEWAY_DEPLOYMENT", raising=False)
    with pytest.raises(SystemExit, match="LLMHUB_GATEWAY_DEPLOYMENT"):
        main([])
    monkeypatch.setenv("LLMHUB_GATEWAY_DEPLOYMENT", "gw")
    monkeypatch.setenv("LLMHUB_GATEWAY_TIMEOUT_SECONDS", "0")
    with pytest.raises(SystemExit, match="timeout_seconds"):
        main([])
    monkeypatch.setenv("LLMHUB_GATEWAY_TIMEOUT_SECONDS", "3")
    for url in ("gw-pods:8080", "http://gw-pods:port"):
        monkeypatch.setenv("LLMHUB_GATEWAY_URL", url)
        with pytest.raises(SystemExit, match="is not an http"):
            main([])


async def test_the_real_gateway_reports_a_refusal_the_operator_reads_until_a_call_succeeds(
    tmp_path: Path,
) -> None:
    """The real gateway process, the fake Gemini CLI as a Code Assist account with no project:
    its /health/tokens, read by IP as in a cluster, then the project arriving in the Secret."""
    auth = tmp_path / "auth"
    auth.mkdir()
    (auth / "oauth_creds.json").write_text(json.dumps(GEMINI_CREDS))
    (auth / "expires_at").write_text("2099-06-01T00:00:00Z")
    env = {
        "AUTH_MODES": "none",
        "GEMINI_AUTH_PATH": str(auth / "oauth_creds.json"),
        "GEMINI_CLI_PATH": str(FAKES / "fake_gemini.py"),
        "GEMINI_CLI_HOME": str(tmp_path / "gemini-home"),
        "SCRATCH_DIR": str(tmp_path / "scratch"),
        "FAKE_CLI_MODE": "project",
        "GEMINI_CLI_ENV_PASSTHROUGH": "FAKE_CLI_*",  # the CLI's env is an allow-list
    }
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT_ID", "CLAUDE_CODE_OAUTH_TOKEN"):
        env[name] = ""
    gateway = GatewayProcess(env, module="llmhub_gateway", log_path=tmp_path / "gateway.log")
    gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            chat = {"provider": "gemini", "prompt": "hello"}
            refused = await client.post("/v1/chat", json=chat)
            assert refused.status_code == 502
            assert refused.json()["error"]["type"] == "provider_project_required"
            accounts = GatewayAccounts(url=gateway.admin_url, deployment="gw", timeout_seconds=5)
            async with aiohttp.ClientSession() as session:
                assert await accounts.poll(session)
                assert accounts.reported is not None
                shown = accounts.reported["gemini"]
                assert (shown.status, shown.reason) == ("False", "ProjectRequired")
                assert shown.message == refused.json()["error"]["message"]
                assert "spec.gemini.projectId" in shown.message

                # The operator writes spec.gemini.projectId into the Secret; kubelet updates
                # the mounted file; the next call works and clears the refusal.
                (auth / GEMINI_PROJECT_KEY).write_text("code-assist-project")
                answered = await client.post("/v1/chat", json=chat)
                assert answered.status_code == 200, answered.text
                assert await accounts.poll(session)
                assert accounts.reported["gemini"].reason == "NoRefusal"
    finally:
        gateway.stop()
