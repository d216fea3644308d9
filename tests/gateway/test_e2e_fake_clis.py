"""The real entry point (``python -m llmhub_gateway``) with the real adapters driving G2's fake
CLIs: Claude through claude-agent-sdk, Gemini through the PTY runner, limits via
``CappedProvider``."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from llmhub_gateway.providers import procs
from tests.gateway.conftest import GatewayProcess, wait_until
from tests.leaks import assert_no_leak

FAKES = Path(__file__).resolve().parents[1] / "fakes"
TOKEN = "sk-ant-oat01-" + "E2eFakeTokenNeverReal_" * 3
GEMINI_CREDS = {"access_token": "ya29.a0E2eFakeAccessToken", "refresh_token": "1//0gE2eFake"}


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    auth = tmp / "auth"
    auth.mkdir(exist_ok=True)
    (auth / "oauth_creds.json").write_text(json.dumps(GEMINI_CREDS))
    (auth / "expires_at").write_text("2099-06-01T00:00:00Z")
    return {
        "CLAUDE_CODE_OAUTH_TOKEN": TOKEN,
        "CLAUDE_CLI_PATH": str(FAKES / "fake_claude.py"),
        "CLAUDE_TOKEN_EXPIRES_AT": "2099-01-01T00:00:00Z",
        "GEMINI_AUTH_PATH": str(auth / "oauth_creds.json"),
        "GEMINI_CLI_PATH": str(FAKES / "fake_gemini.py"),
        "GEMINI_CLI_HOME": str(tmp / "gemini-home"),
        "SCRATCH_DIR": str(tmp / "scratch"),
        "LOG_LEVEL": "DEBUG",
        "FAKE_CLI_MODE": "ok",
        # The CLI's environment is allow-listed; the fake's knobs are let through by name.
        "CLAUDE_CLI_ENV_PASSTHROUGH": "FAKE_CLI_*",
        "GEMINI_CLI_ENV_PASSTHROUGH": "FAKE_CLI_*",  # the CLI's env is allow-listed
        **extra,
    }


@pytest.fixture(scope="module")
def real_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("e2e")
    gw = GatewayProcess(_env(tmp), module="llmhub_gateway", log_path=tmp / "gateway.log")
    gw.start()
    yield gw
    gw.stop()


def test_claude_session_through_the_agent_sdk(real_gateway: GatewayProcess) -> None:
    first = httpx.post(
        f"{real_gateway.url}/v1/chat", json={"provider": "claude", "prompt": "ping one"}, timeout=60
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["text"].startswith("[fake-claude model=claude-sonnet-4-5-20250929 token=")
    assert "ping one" in body["text"]
    second = httpx.post(
        f"{real_gateway.url}/v1/chat",
        json={"provider": "claude", "prompt": "ping two", "session_id": body["session_id"]},
        timeout=60,
    )
    assert second.status_code == 200, second.text
    assert "ping two" in second.json()["text"]


def test_gemini_streams_through_the_pty_with_openai_sdk(real_gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"{real_gateway.url}/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gemini-2.5-pro",
            messages=[{"role": "user", "content": "hello gemini"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("[fake-gemini model=gemini-2.5-pro")
    assert "hello gemini" in text


def test_health_with_real_providers(real_gateway: GatewayProcess) -> None:
    ready = httpx.get(f"{real_gateway.url}/health/ready").json()
    assert ready == {"status": "ready", "providers": ["claude", "gemini"], "reasons": []}
    tokens = httpx.get(f"{real_gateway.admin_url}/health/tokens").json()
    assert tokens["gemini"]["expires_at"] == "2099-06-01T00:00:00Z"
    assert tokens["claude"]["status"] == "valid"


def test_token_never_in_responses_or_logs(real_gateway: GatewayProcess) -> None:
    admin, callers = real_gateway.admin_url, real_gateway.url
    for url in (
        f"{admin}/health/tokens",
        f"{admin}/metrics",
        f"{callers}/v1/models",
        f"{callers}/openapi.json",
    ):
        assert_no_leak(httpx.get(url).text, claude_token=TOKEN)
    assert real_gateway.log_path is not None
    log = real_gateway.log_path.read_text()
    assert_no_leak(log, claude_token=TOKEN, gemini_access=GEMINI_CREDS["access_token"])


def test_limits_answer_429_and_504(tmp_path: Path) -> None:
    env = _env(
        tmp_path, FAKE_CLI_MODE="hang", CLAUDE_MAX_CONCURRENCY="1", CLAUDE_TIMEOUT_SECONDS="3"
    )
    gw = GatewayProcess(env, module="llmhub_gateway")
    gw.start()
    try:
        results: list[httpx.Response] = []
        first = threading.Thread(
            target=lambda: results.append(
                httpx.post(
                    f"{gw.url}/v1/chat", json={"provider": "claude", "prompt": "a"}, timeout=30
                )
            )
        )
        first.start()
        wait_until(
            lambda: (
                'provider_in_flight{provider="claude"} 1.0'
                in httpx.get(f"{gw.admin_url}/metrics").text
            ),
            what="first call holding the only slot",
        )
        busy = httpx.post(f"{gw.url}/v1/chat", json={"provider": "claude", "prompt": "b"})
        first.join(timeout=30)
        assert busy.status_code == 429
        assert busy.headers["retry-after"].isdigit()
        assert results[0].status_code == 504
        assert results[0].json()["error"]["type"] == "provider_timeout"
    finally:
        gw.stop()


def test_client_disconnect_kills_the_cli_process_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids.json"
    env = _env(tmp_path, FAKE_CLI_MODE="slow", FAKE_CLI_DELAY="30", FAKE_CLI_PIDFILE=str(pidfile))
    gw = GatewayProcess(env, module="llmhub_gateway")
    gw.start()
    try:
        body = b'{"provider":"claude","prompt":"long answer please","stream":true}'
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=60)
        sock.sendall(
            b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"event: delta" not in received:
            received += sock.recv(4096)
        data = json.loads(pidfile.read_text())
        pids = [data["pid"], *data["children"]]
        assert all(procs.running(pid) for pid in pids)
        sock.close()
        wait_until(
            lambda: not any(procs.running(pid) for pid in pids), timeout=15, what="CLI tree gone"
        )
        in_flight = 'llmhub_gateway_provider_in_flight{provider="claude"} 0.0'
        wait_until(
            lambda: in_flight in httpx.get(f"{gw.admin_url}/metrics").text, what="slot freed"
        )
    finally:
        gw.stop()


def test_a_gemini_crash_after_the_credentials_banner_is_a_crash_not_bad_credentials(
    tmp_path: Path,
) -> None:
    """The real CLI prints "Loaded cached credentials." on every run; an out-of-memory crash
    after it must not send operators rotating tokens, nor show the CLI's text to clients."""
    log_path = tmp_path / "gateway.log"
    gw = GatewayProcess(
        _env(tmp_path, FAKE_CLI_MODE="oom"), module="llmhub_gateway", log_path=log_path
    )
    gw.start()
    try:
        response = httpx.post(
            f"{gw.url}/v1/chat", json={"provider": "gemini", "prompt": "hi"}, timeout=60
        )
        metrics = httpx.get(f"{gw.admin_url}/metrics").text
    finally:
        gw.stop()
    assert response.status_code == 502
    assert response.json()["error"] == {
        "type": "provider_crashed",
        "message": "gemini: the CLI exited with status 134",
    }
    assert 'outcome="provider_crashed",provider="gemini"' in metrics
    assert 'outcome="provider_auth_error"' not in metrics
    assert "heap out of memory" in log_path.read_text()  # the detail stays in the log


def test_a_code_assist_account_needs_its_project_and_health_tokens_says_so(
    tmp_path: Path,
) -> None:
    """502 provider_project_required until the operator's GOOGLE_CLOUD_PROJECT key appears in
    the mounted Secret; then the CLI gets it and /health/tokens clears the error."""
    env = _env(tmp_path, FAKE_CLI_MODE="project")
    gw = GatewayProcess(env, module="llmhub_gateway", log_path=tmp_path / "gateway.log")
    gw.start()
    try:
        refused = httpx.post(
            f"{gw.url}/v1/chat", json={"provider": "gemini", "prompt": "hi"}, timeout=60
        )
        during = httpx.get(f"{gw.admin_url}/health/tokens").json()["gemini"]
        (Path(env["GEMINI_AUTH_PATH"]).parent / "GOOGLE_CLOUD_PROJECT").write_text("team-proj")
        served = httpx.post(
            f"{gw.url}/v1/chat", json={"provider": "gemini", "prompt": "hi"}, timeout=60
        )
        after = httpx.get(f"{gw.admin_url}/health/tokens").json()["gemini"]
    finally:
        gw.stop()
    assert refused.status_code == 502
    assert refused.json()["error"]["type"] == "provider_project_required"
    assert "spec.gemini.projectId" in refused.json()["error"]["message"]
    assert during["error"] == "provider_project_required"
    assert during["message"] == refused.json()["error"]["message"]
    assert during["status"] == "valid"  # the credential itself is fine
    assert served.status_code == 200, served.text
    assert "project=team-proj]" in served.json()["text"]
    assert "error" not in after
    assert after["message"] == "Token is valid"


async def test_no_library_logs_the_conversation_even_at_debug(real_gateway: GatewayProcess) -> None:
    """The MCP transport streams through sse_starlette, which logs every chunk it sends at
    DEBUG: the answer (and the prompt it echoes) would land in the log. Prompts carry what
    callers paste, answers what models say; the gateway runs at DEBUG here."""
    async with (
        httpx.AsyncClient(timeout=60) as client,
        streamable_http_client(f"{real_gateway.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("claude_chat", {"prompt": "confidential-words-7731"})
    assert "confidential-words-7731" in result.content[0].text
    assert real_gateway.log_path is not None
    assert "confidential-words-7731" not in real_gateway.log_path.read_text()
