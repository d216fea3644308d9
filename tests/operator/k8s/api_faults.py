"""API-server faults for the leader tests: a black-holing TCP proxy in front of the real API
server, and a fake endpoint that answers one Lease call the way a broken load balancer would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.k8s.controlplane import ControlPlane
from tests.tcp_proxy import FaultyProxy

HTML = b"<html><head><title>503 Service Temporarily Unavailable</title></head></html>"


@pytest.fixture
def proxy(control_plane: ControlPlane) -> Iterator[FaultyProxy]:
    with FaultyProxy(control_plane.apiserver_port) as faulty:
        yield faulty


@pytest.fixture
def proxied_kubeconfig(control_plane: ControlPlane, proxy: FaultyProxy, tmp_path: Path) -> Path:
    """The admin kubeconfig, but through the proxy (the serving cert names 127.0.0.1)."""
    config = json.loads(control_plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path = tmp_path / "proxied.kubeconfig"
    path.write_text(json.dumps(config))
    return path


class LeaseFaults:
    """Sends the next Lease calls of one ApiClient to a plain-HTTP endpoint that fails them:
    ``disconnect`` closes the connection unanswered (aiohttp's ServerDisconnectedError),
    ``html503`` is a load balancer's 503 page, ``html200`` a 200 with an HTML body."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.pending: list[str] = []
        self.served: list[str] = []

    def attach(self, api: client.ApiClient) -> None:
        real = api.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if self.pending and "/leases" in url:
                url = f"{self.url}/{self.pending.pop(0)}"
            return real(method, url, *args, **kwargs)

        api.request = request  # type: ignore[method-assign]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        fault = head.split(b" ", 2)[1].decode().strip("/").split("?")[0]
        self.served.append(fault)
        if fault != "disconnect":
            status = b"503 Service Unavailable" if fault == "html503" else b"200 OK"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(HTML)).encode() + b"\r\n\r\n" + HTML
            )
            await writer.drain()
        writer.close()


@pytest.fixture
async def lease_faults() -> AsyncIterator[LeaseFaults]:
    faults = LeaseFaults(0)
    server = await asyncio.start_server(faults.serve, "127.0.0.1", 0)
    faults.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield faults
    finally:
        server.close()
        await server.wait_closed()
