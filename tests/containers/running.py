"""A detached container for a test: started with a name of its own, its published port read
back (127.0.0.1 only), removed at the end; its logs are shown when a wait fails."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.containers.engine import Engine


@dataclass
class Running:
    engine: Engine
    name: str

    def url(self, port: int) -> str:
        out = self.engine.docker("port", self.name, f"{port}/tcp").stdout.decode()
        host_port = out.splitlines()[0].rsplit(":", 1)[1]
        return f"http://127.0.0.1:{host_port}"

    def logs(self) -> str:
        done = self.engine.docker("logs", "--tail", "80", self.name, check=False)
        return (done.stdout + done.stderr).decode(errors="replace")

    def wait_http(
        self, url: str, check: Callable[[httpx.Response], bool], *, timeout: float = 90.0
    ) -> httpx.Response:
        """Poll ``url`` until ``check`` holds; fail with the last answer and the logs."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = httpx.get(url, timeout=5)
                if check(last):
                    return last
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.3)
        raise AssertionError(
            f"{url}: condition not met in {timeout}s; last {last!r}\n{self.logs()}"
        )


@contextmanager
def run(engine: Engine, image: str, *flags: str, args: tuple[str, ...] = ()) -> Iterator[Running]:
    name = f"llmhub-contract-{uuid.uuid4().hex[:8]}"
    engine.docker("run", "-d", f"--name={name}", *flags, image, *args)
    try:
        yield Running(engine, name)
    finally:
        engine.docker("rm", "-f", name, check=False)
