"""A client that goes away mid-stream must close the provider stream (which kills the CLI)."""

from __future__ import annotations

import socket
import time

import httpx

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import ThreadedGateway, wait_until
from tests.gateway.fake_provider import echo_providers


def _send(port: int, path: str, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _start_stream(port: int, path: str, body: bytes) -> socket.socket:
    sock = _send(port, path, body)
    received = b""
    while b"tick1 " not in received:
        received += sock.recv(4096)
    return sock


def test_disconnect_closes_provider_stream_on_both_apis() -> None:
    with ThreadedGateway(Settings(), echo_providers()) as gw:
        claude = gw.providers["claude"]
        cases = [
            ("/v1/chat", b'{"provider":"claude","prompt":"!slow","stream":true}'),
            (
                "/v1/chat/completions",
                b'{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"!slow"}]}',
            ),
        ]
        for path, body in cases:
            closed_before = claude.closed_streams
            sock = _start_stream(gw.port, path, body)
            assert claude.open_streams == 1
            started = time.monotonic()
            sock.close()
            wait_until(lambda: claude.open_streams == 0, timeout=10, what="provider stream closed")
            assert claude.closed_streams == closed_before + 1
            assert time.monotonic() - started < 10


def test_disconnect_cancels_non_streaming_calls_too() -> None:
    with ThreadedGateway(Settings(), echo_providers()) as gw:
        gemini = gw.providers["gemini"]
        cases = [
            ("/v1/chat", b'{"provider":"gemini","prompt":"!slow"}'),
            (
                "/v1/chat/completions",
                b'{"model":"gemini-x","messages":[{"role":"user","content":"!slow"}]}',
            ),
        ]
        for path, body in cases:
            sock = _send(gw.port, path, body)
            wait_until(lambda: gemini.open_streams == 1, timeout=10, what="provider call running")
            sock.close()
            wait_until(lambda: gemini.open_streams == 0, timeout=10, what="provider call cancelled")
        metrics = httpx.get(f"{gw.admin_url}/metrics").text
    assert 'route="/v1/chat",status="499"' in metrics
    assert 'route="/v1/chat/completions",status="499"' in metrics
