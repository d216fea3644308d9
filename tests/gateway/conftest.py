"""Real servers for the gateway tests: redis-server, uvicorn in a thread, gateway processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from llmhub_gateway.core.config import Settings
from llmhub_gateway.main import create_app
from llmhub_gateway.providers.base import Provider
from llmhub_gateway.server import gateway_server
from llmhub_gateway.sessions.base import SessionStore
from llmhub_gateway.sessions.memory import MemorySessionStore
from llmhub_gateway.sessions.redis import RedisSessionStore
from tests.gateway.fake_provider import echo_providers

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class RedisServer:
    """One redis-server subprocess on a fixed free port; stop/start keep the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--daemonize",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._pong, what="redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session", autouse=True)
def _no_caller_auth() -> Iterator[None]:
    """The gateway refuses every caller while AUTH_MODES is unset; the tests of other
    behaviours run it (and the gateway processes they start) with ``none``, as ``make run``
    does. The caller-identity tests set their modes explicitly."""
    before = os.environ.get("AUTH_MODES")
    os.environ["AUTH_MODES"] = "none"
    yield
    if before is None:
        os.environ.pop("AUTH_MODES", None)
    else:
        os.environ["AUTH_MODES"] = before


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[SessionStore]:
    """Each session store in turn (Redis under a fresh key prefix): they must behave alike."""
    backend: SessionStore
    if request.param == "redis":
        backend = RedisSessionStore(redis_server.url, 60, prefix=f"t{uuid.uuid4().hex}:")
    else:
        backend = MemorySessionStore(60)
    yield backend
    await backend.aclose()


class ThreadedGateway:
    """The app under the production server (real uvicorn) in a background thread of the test
    process; its admin app (/metrics, /health/tokens) at ``admin_url``."""

    def __init__(
        self, settings: Settings, providers: Sequence[Provider], port: int | None = None
    ) -> None:
        self.providers: dict[str, Any] = {p.name: getattr(p, "inner", p) for p in providers}
        self.app = create_app(settings, providers=providers)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_port = free_port()
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        # The production pairing: both in one event loop (they share the Redis clients).
        self.server = gateway_server(
            self.app,
            settings,
            host="127.0.0.1",
            port=self.port,
            admin_port=self.admin_port,
            log_config=uvicorn.config.LOGGING_CONFIG,
            log_level="warning",
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedGateway:
        self.thread.start()
        wait_until(lambda: _answers(f"{self.url}/health/live"), what="gateway thread")
        wait_until(lambda: _answers(f"{self.admin_url}/health/tokens"), what="admin thread")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def gateway() -> Iterator[ThreadedGateway]:
    """In-memory sessions, both providers configured, Service host names allowed on /mcp."""
    settings = Settings(
        mcp_allowed_hosts="llm-mcp-hub-gateway,llm-mcp-hub-gateway.llm-mcp-hub.svc",
        claude_token_expires_at="2099-01-01T00:00:00Z",
    )
    with ThreadedGateway(settings, echo_providers()) as gw:
        yield gw


class GatewayProcess:
    """A separate gateway process (a replica): ``python -m <module> --port N --admin-port M``;
    its stderr
    (the JSON log) goes to ``log_path`` when given."""

    def __init__(
        self, env: dict[str, str], module: str = "tests.gateway.serve", log_path: Path | None = None
    ) -> None:
        self._pick_ports()
        self.env = {**os.environ, **env}
        self.module = module
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> None:
        log = self.log_path.open("ab") if self.log_path else None
        try:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", self.module, "--port", str(self.port)),
                    *("--admin-port", str(self.admin_port)),
                ],
                cwd=ROOT,
                env=self.env,
                stderr=log,
            )
        finally:
            if log is not None:
                log.close()

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_port = free_port()
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"  # /metrics, /health/tokens

    def wait_ready(self) -> None:
        # A condition, not a latency bound: a cold start takes 15 s+ on a loaded 2-core box.
        # A free port can be taken by another process before the gateway binds it (it then
        # exits at start): such a start is retried on new ports, twice at most.
        for attempt in range(3):
            wait_until(
                lambda: (
                    _answers(f"{self.url}/health/live")
                    or (self.proc is not None and self.proc.poll() is not None)
                ),
                timeout=60,
                what="gateway process",
            )
            if _answers(f"{self.url}/health/live"):
                return
            if attempt < 2:
                self._pick_ports()
                self.launch()
        raise TimeoutError("the gateway process exited at start three times")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def gateway_process() -> Iterator[Callable[[dict[str, str]], GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(env: dict[str, str]) -> GatewayProcess:
        proc = GatewayProcess(env)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def replicas() -> Iterator[Callable[[dict[str, str], int], list[GatewayProcess]]]:
    """Several gateway processes on one configuration, started in parallel."""
    started: list[GatewayProcess] = []

    def start(env: dict[str, str], count: int) -> list[GatewayProcess]:
        procs = [GatewayProcess(env) for _ in range(count)]
        started.extend(procs)
        for proc in procs:
            proc.launch()
        for proc in procs:
            proc.wait_ready()
        return procs

    yield start
    for proc in started:
        proc.stop()
