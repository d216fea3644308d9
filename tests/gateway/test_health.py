"""Probes, token health and Prometheus metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import EchoProvider, echo_providers


def test_live_and_ready(gateway: ThreadedGateway) -> None:
    assert httpx.get(f"{gateway.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.url}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "providers": ["claude", "gemini"], "reasons": []}


def test_not_ready_without_any_provider() -> None:
    providers = [EchoProvider("claude", "claude-x", configured=False)]
    with ThreadedGateway(Settings(), providers) as gw:
        ready = httpx.get(f"{gw.url}/health/ready")
        tokens = httpx.get(f"{gw.admin_url}/health/tokens").json()
        models = httpx.get(f"{gw.url}/v1/models").json()
    assert ready.status_code == 503
    assert "no provider is configured" in ready.json()["reasons"][0]
    assert tokens == {}
    assert models == {"object": "list", "data": []}


def test_tokens_read_env_and_the_expires_at_file(tmp_path: Path) -> None:
    creds = tmp_path / "oauth_creds.json"
    creds.write_text("{}")
    soon = datetime.now(UTC) + timedelta(days=1, hours=12)
    (tmp_path / "expires_at").write_text(soon.strftime("%Y-%m-%dT%H:%M:%SZ") + "\n")
    settings = Settings(
        claude_token_expires_at="2020-01-01T00:00:00Z",
        gemini_auth_path=creds,
        token_warn_before_days=3,
    )
    with ThreadedGateway(settings, echo_providers()) as gw:
        tokens = httpx.get(f"{gw.admin_url}/health/tokens").json()
        metrics = httpx.get(f"{gw.admin_url}/metrics").text
    assert tokens["claude"]["status"] == "expired"
    assert tokens["claude"]["days_remaining"] == 0
    assert tokens["gemini"]["status"] == "warning"
    assert tokens["gemini"]["days_remaining"] == 1
    assert tokens["gemini"]["message"] == "Token expires soon, please refresh"
    assert 'llmhub_gateway_token_days_remaining{provider="gemini"} 1.0' in metrics
    assert 'llmhub_gateway_token_days_remaining{provider="claude"} 0.0' in metrics


def test_unknown_expiry() -> None:
    with ThreadedGateway(Settings(), echo_providers(gemini_configured=False)) as gw:
        tokens = httpx.get(f"{gw.admin_url}/health/tokens").json()
    assert tokens == {
        "claude": {
            "status": "unknown",
            "expires_at": None,
            "days_remaining": None,
            "message": "Token expiry is not known",
        }
    }


def test_metrics_count_requests_by_route_and_time_providers(gateway: ThreadedGateway) -> None:
    httpx.post(f"{gateway.url}/v1/chat", json={"provider": "claude", "prompt": "m"})
    httpx.post(f"{gateway.url}/v1/chat", json={"provider": "claude", "prompt": "!timeout"})
    unknown = str(uuid.uuid4())
    httpx.get(f"{gateway.url}/v1/sessions/{unknown}")
    httpx.post(  # an MCP request (refused: the test sends no MCP Accept header)
        f"{gateway.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
    )
    text = httpx.get(f"{gateway.admin_url}/metrics").text
    assert 'llmhub_gateway_requests_total{method="POST",route="/v1/chat",status="200"}' in text
    assert 'llmhub_gateway_requests_total{method="POST",route="/v1/chat",status="504"}' in text
    assert 'route="/v1/sessions/{session_id}",status="404"' in text
    assert unknown not in text
    assert 'route="/mcp"' in text
    assert 'route="unmatched"' not in text
    assert 'llmhub_gateway_provider_latency_seconds_count{outcome="ok",provider="claude"}' in text
    assert (
        'llmhub_gateway_provider_latency_seconds_count{outcome="timeout",provider="claude"}' in text
    )
    assert 'llmhub_gateway_provider_in_flight{provider="claude"} 0.0' in text


def test_unconfigured_provider_is_refused_without_a_session() -> None:
    with ThreadedGateway(Settings(), echo_providers(gemini_configured=False)) as gw:
        response = httpx.post(f"{gw.url}/v1/chat", json={"provider": "gemini", "prompt": "x"})
        models = httpx.get(f"{gw.url}/v1/models").json()
        completion = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "x"}]},
        )
        stored = dict(gw.app.state.chat.store._sessions)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "provider_not_configured"
    assert gw.providers["gemini"].requests == []
    assert stored == {}
    assert {m["owned_by"] for m in models["data"]} == {"claude"}
    assert completion.status_code == 404
