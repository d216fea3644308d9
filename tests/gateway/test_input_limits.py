"""Input limits on all three APIs: bodies over MAX_BODY_BYTES get 413 without being read in
full, and prompt text is refused (NUL and other control characters, lone surrogates, over
MAX_PROMPT_BYTES, bad model ids) before any provider runs -- REST, OpenAI and MCP alike."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import echo_providers
from tests.gateway.test_mcp import call

BODY_LIMIT = 64 * 1024
PROMPT_LIMIT = 4000
HUGE = 50 * 1024 * 1024
PATHS = ("/v1/chat", "/v1/chat/completions", "/mcp")
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    settings = Settings(max_body_bytes=BODY_LIMIT, max_prompt_bytes=PROMPT_LIMIT)
    with ThreadedGateway(settings, echo_providers()) as gw:
        yield gw


def _is_413(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head[:80]
    payload: dict[str, Any] = json.loads(body)
    return payload


def _bytes_read() -> int:
    """Bytes this process has read through system calls so far (sockets included)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


def _send_huge(port: int, path: str, *, declared: bool) -> tuple[bytes, int]:
    """POST a 50 MB body in 64 KiB pieces, watching for an answer before each piece; the
    answer and how many body bytes went out before it came (or the server hung up)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    framing = f"Content-Length: {HUGE}" if declared else "Transfer-Encoding: chunked"
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\n{framing}\r\n\r\n".encode()
    )
    piece = b" " * 65536
    frame = piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece)
    sent, answer = 0, b""
    try:
        while sent < HUGE:
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(frame)
            sent += len(piece)
    except OSError:  # the server closed the connection on the rest of the body
        pass
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except OSError:
        pass
    sock.close()
    return answer, sent


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_body_is_refused_with_413_without_being_read(
    small: ThreadedGateway, path: str, declared: bool
) -> None:
    before = _bytes_read()
    answer, sent = _send_huge(small.port, path, declared=declared)
    read = _bytes_read() - before
    payload = _is_413(answer)
    assert payload["error"]["type"] == "payload_too_large"
    assert "MAX_BODY_BYTES" in payload["error"]["message"]
    # Refused as soon as the limit passed: the server (a thread of this process) read about
    # the limit and one socket read more, and a small part of the 50 MB ever went out (what
    # did is socket buffers on both ends).
    assert read < BODY_LIMIT + 256 * 1024
    assert sent < HUGE // 8
    assert small.providers["claude"].requests == []


def test_a_body_within_the_limit_is_served_unchanged(small: ThreadedGateway) -> None:
    prompt = "word " * 700  # 3.5 kB: under both limits, in a chunked body
    body = json.dumps({"provider": "claude", "prompt": prompt}).encode()
    answer = httpx.post(
        f"{small.url}/v1/chat",
        content=iter([body[:100], body[100:]]),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert small.providers["claude"].requests[-1].prompt == prompt


HOSTILE = {
    "nul": ("a\x00b", "invalid_text"),
    "escape": ("\x1b[2Jclear", "invalid_text"),
    "c1 csi": ("a\x9b31m", "invalid_text"),
    "delete": ("a\x7f", "invalid_text"),
    "too large": ("x" * (PROMPT_LIMIT + 1), "prompt_too_large"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_bad_prompts_are_refused_on_every_api_before_a_provider_runs(
    small: ThreadedGateway, case: str
) -> None:
    prompt, error_type = HOSTILE[case]
    before = len(small.providers["claude"].requests)
    rest = httpx.post(f"{small.url}/v1/chat", json={"provider": "claude", "prompt": prompt})
    assert rest.status_code == 400
    assert rest.json()["error"]["type"] == error_type
    client = openai.OpenAI(base_url=f"{small.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="claude-sonnet-4-5-20250929",
            messages=[{"role": "user", "content": "fine"}, {"role": "user", "content": prompt}],
        )
    assert refused.value.body["type"] == error_type  # type: ignore[index]
    # MCP: a tool error the model can act on (the spec's way for bad tool input).
    result = await call(small, "claude_chat", {"prompt": prompt})
    assert result.is_error is True
    assert error_type in result.content[0].text
    assert len(small.providers["claude"].requests) == before


def test_the_prompt_limit_counts_system_and_history_too(small: ThreadedGateway) -> None:
    half = "y" * (PROMPT_LIMIT // 2 + 1)
    rest = httpx.post(
        f"{small.url}/v1/chat", json={"provider": "claude", "prompt": half, "system": half}
    )
    assert rest.json()["error"]["type"] == "prompt_too_large"
    completion = httpx.post(
        f"{small.url}/v1/chat/completions",
        json={
            "model": "claude-sonnet-4-5-20250929",
            "messages": [{"role": "user", "content": half}, {"role": "user", "content": half}],
        },
    )
    assert completion.status_code == 400
    assert completion.json()["error"]["type"] == "prompt_too_large"


def test_lone_surrogates_are_refused_on_rest_and_openai(small: ThreadedGateway) -> None:
    for path, body in (
        ("/v1/chat", '{"provider": "claude", "prompt": "a\\ud800b"}'),
        (
            "/v1/chat/completions",
            '{"model": "claude-x", "messages": [{"role": "user", "content": "\\udc00"}]}',
        ),
    ):
        answer = httpx.post(
            f"{small.url}{path}", content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400, path
        assert "lone surrogate" in answer.json()["error"]["message"]


def test_tab_newline_and_carriage_return_reach_the_model(small: ThreadedGateway) -> None:
    prompt = "line one\r\nline\ttwo\n- three\n/cost"
    answer = httpx.post(f"{small.url}/v1/chat", json={"provider": "claude", "prompt": prompt})
    assert answer.status_code == 200
    assert small.providers["claude"].requests[-1].prompt == prompt


@pytest.mark.parametrize("model", ["claude\x00x", "claude sonnet", "-m", "--help", "a" * 201])
async def test_bad_model_ids_are_refused_with_a_clear_error(
    small: ThreadedGateway, model: str
) -> None:
    before = len(small.providers["claude"].requests)
    rest = httpx.post(
        f"{small.url}/v1/chat", json={"provider": "claude", "prompt": "hi", "model": model}
    )
    assert rest.status_code in (400, 422), rest.text
    completion = httpx.post(
        f"{small.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert completion.status_code in (400, 422), completion.text
    if len(model) <= 200:
        for answer in (rest, completion):
            assert answer.json()["error"]["type"] == "invalid_model"
            assert "model id" in answer.json()["error"]["message"]
    result = await call(small, "claude_chat", {"prompt": "hi", "model": model})
    assert result.is_error is True
    assert "model" in result.content[0].text
    assert len(small.providers["claude"].requests) == before


def test_openapi_documents_the_413_and_the_text_rules(small: ThreadedGateway) -> None:
    doc = httpx.get(f"{small.url}/openapi.json").json()
    for path in ("/v1/chat", "/v1/chat/completions"):
        assert "413" in doc["paths"][path]["post"]["responses"], path
    prompt = doc["components"]["schemas"]["ChatCreate"]["properties"]["prompt"]
    assert prompt["pattern"].startswith("^[^\\u0000-")
