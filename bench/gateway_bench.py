"""Gateway overhead: the full app with a zero-latency provider vs a bare ASGI app, same run.

Both servers run under the same uvicorn config in their own processes; load comes from a third
process (aiohttp, loopback only) with a bounded request count and time. Two measurements:

- throughput: a closed loop (each client sends its next request when the last one returns) at
  saturation; there latency is only queueing (clients / throughput), so it is not used for the
  latency target;
- added latency: an open loop offering the target rate (1000 requests/s) spread over the same
  50 or 200 clients, each request timed from when it was *scheduled* (so a slow server cannot
  hide its stalls); added = gateway minus bare app at the same offered load.

Prints requests/s, p50/p99 latency, the ratios to the bare app, idle RSS, and the targets.

    uv run python -m bench.gateway_bench [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BODY = {"provider": "claude", "prompt": "ping"}
TARGET_RPS = 1000.0
TARGET_ADDED_P99_MS = 10.0


# --- servers (run in child processes) -------------------------------------------------------


class InstantProvider:
    """A Provider that answers at once: whatever is measured is the gateway itself."""

    name = "claude"
    default_model = "claude-bench"

    def configured(self) -> bool:
        return True

    def models(self) -> Sequence[str]:
        return (self.default_model,)

    async def stream(self, request: Any) -> AsyncIterator[str]:
        yield request.prompt

    async def aclose(self) -> None:
        return None


async def bare_app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    """The baseline: read the body, answer a JSON document of the same shape."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    payload = json.dumps(
        {"session_id": "x", "provider": "claude", "model": "m", "text": "ping", "duration_ms": 0}
    ).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def serve(kind: str, port: int) -> None:
    import uvicorn

    app: Any = bare_app
    if kind == "gateway":
        from llmhub_common.logging import configure
        from llmhub_gateway.core.config import Settings
        from llmhub_gateway.main import create_app

        configure("WARNING")
        app = create_app(Settings(), providers=[InstantProvider()])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- load (runs in a child process) ---------------------------------------------------------


async def load(url: str, concurrency: int, total: int, max_seconds: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.monotonic() + max_seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal issued, errors
            while issued < total and time.monotonic() < deadline:
                issued += 1
                started = time.perf_counter()
                async with session.post(url, json=BODY) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": _pct(latencies, 0.50) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
    }


async def load_open(url: str, concurrency: int, rate: float, seconds: float) -> dict[str, Any]:
    """Offer ``rate`` requests/s over ``concurrency`` clients for ``seconds``."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    interval = concurrency / rate  # each client's period
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + 0.2
        end = start + seconds

        async def client(index: int) -> None:
            nonlocal errors
            scheduled = start + index * interval / concurrency  # staggered, evenly spread
            while scheduled < end:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with session.post(url, json=BODY) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - scheduled)
                scheduled += interval

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": _pct(latencies, 0.50) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
    }


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# --- orchestration --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_bench", "--serve", kind, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}/v1/chat"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def _run_load(
    url: str, concurrency: int, total: int, max_seconds: float, rate: float = 0.0
) -> dict[str, Any]:
    """Closed loop (rate 0) or open loop at ``rate`` requests/s, in a separate process."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.gateway_bench", "--load", url, "--concurrency",
         str(concurrency), "--total", str(total), "--max-seconds", str(max_seconds),
         "--rate", str(rate)],
        cwd=ROOT, capture_output=True, check=True, timeout=max_seconds + 60,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(quick: bool) -> int:
    total, max_seconds = (250, 3.0) if quick else (5000, 20.0)
    servers = {kind: _start(kind) for kind in ("bare", "gateway")}
    try:
        rss = {kind: _rss_mb(proc.pid) for kind, (proc, _) in servers.items()}
        for _, url in servers.values():  # warm-up: imports, first-call paths
            _run_load(url, 10, 50 if quick else 500, 5.0)
        print(f"idle RSS: gateway {rss['gateway']:.1f} MiB, bare {rss['bare']:.1f} MiB "
              f"(x{rss['gateway'] / rss['bare']:.1f})")  # fmt: skip
        ok = True
        open_seconds = 1.5 if quick else 5.0
        for concurrency in (50, 200):
            sat = {kind: _run_load(url, concurrency, total, max_seconds)
                   for kind, (_, url) in servers.items()}  # fmt: skip
            at_rate = {kind: _run_load(url, concurrency, 0, open_seconds, rate=TARGET_RPS)
                       for kind, (_, url) in servers.items()}  # fmt: skip
            gw, bare = sat["gateway"], sat["bare"]
            ogw, obare = at_rate["gateway"], at_rate["bare"]
            added_p50 = ogw["p50_ms"] - obare["p50_ms"]
            added_p99 = ogw["p99_ms"] - obare["p99_ms"]
            print(
                f"c={concurrency:>3} saturation: gateway {gw['rps']:7.0f} rps "
                f"({gw['requests']} req, {gw['errors']} errors) | bare {bare['rps']:7.0f} rps | "
                f"ratio {gw['rps'] / bare['rps']:.2f}"
            )
            print(
                f"      at {TARGET_RPS:.0f} rps offered: gateway p50 {ogw['p50_ms']:6.2f} ms "
                f"p99 {ogw['p99_ms']:6.2f} ms ({ogw['rps']:.0f} rps served, {ogw['errors']} errors)"
                f" | bare p50 {obare['p50_ms']:6.2f} ms p99 {obare['p99_ms']:6.2f} ms"
            )
            meets = gw["rps"] >= TARGET_RPS and added_p99 <= TARGET_ADDED_P99_MS
            ok = ok and meets and gw["errors"] == 0 and ogw["errors"] == 0
            print(
                f"      added latency p50 {added_p50:+.2f} ms, p99 {added_p99:+.2f} ms; target "
                f">= {TARGET_RPS:.0f} rps and p99 added <= {TARGET_ADDED_P99_MS:.0f} ms: "
                f"{'MET' if meets else 'MISSED'}"
            )
        print("targets: all met" if ok else "targets: not all met (see above)")
        return 0
    finally:
        for proc, _ in servers.values():
            _stop(proc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small bounded run (smoke test)")
    parser.add_argument("--serve", choices=("bare", "gateway"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if args.load:
        if args.rate:
            result = asyncio.run(
                load_open(args.load, args.concurrency, args.rate, args.max_seconds)
            )
        else:
            result = asyncio.run(load(args.load, args.concurrency, args.total, args.max_seconds))
        print(json.dumps(result))
        return 0
    return run(args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
