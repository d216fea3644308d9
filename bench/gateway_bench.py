"""Gateway overhead: the full app with a zero-latency provider vs a bare ASGI app, same run.

Both servers run under the same uvicorn config in their own processes; load comes from other
processes on loopback. The load generators are cheap on purpose: on 2 cores an HTTP client
library (aiohttp) spent about a core of its own and starved the server it measured.

- throughput: a closed loop at saturation, driven by wrk (C; installed from Debian when missing
  and running as root, which the output says), else by the Python client below; there latency
  is only queueing (clients / throughput), so it is not used for the latency target;
- added latency: an open loop offering the target rate (1000 requests/s) over the same 50 or
  200 keep-alive connections (raw asyncio streams on uvloop), each request timed from when it
  was *scheduled*, so a stalled server cannot hide; rounds alternate between the two servers
  and are pooled, so background load hits both alike; added = gateway minus bare app.

Prints requests/s, p50/p99 latency, the ratios to the bare app, idle RSS, and the targets.

    uv run python -m bench.gateway_bench [--quick] [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
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
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
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
        app = create_app(Settings(auth_modes="none"), providers=[InstantProvider()])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- load (runs in a child process) ---------------------------------------------------------

REQUEST = (
    b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(json.dumps(BODY)), json.dumps(BODY).encode())
)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """One keep-alive request on an open connection; returns the status code."""
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            await reader.readexactly(int(line[15:]))
            return status
    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):  # chunked
        await reader.readexactly(size + 2)
    await reader.readexactly(2)
    return status


async def load(
    host: str, port: int, concurrency: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Closed loop (``rate`` 0) or open loop offering ``rate`` requests/s for ``seconds``.

    Raw asyncio streams with keep-alive: an HTTP client library costs several times the
    server's own per-request work and, on 2 cores, steals the CPU the server needs. In the open
    loop each request is timed from when it was *scheduled*, so a stalled server cannot hide.
    """
    latencies: list[float] = []
    errors = 0
    interval = concurrency / rate if rate else 0.0  # each client's period
    start = time.perf_counter() + 0.2
    end = start + seconds

    async def client(index: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        scheduled = start + index * interval / concurrency  # staggered, evenly spread
        try:
            while scheduled < end:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not rate:
                    scheduled = time.perf_counter()
                if await _exchange(reader, writer) != 200:
                    errors += 1
                done = time.perf_counter()
                latencies.append(done - scheduled)
                scheduled = scheduled + interval if rate else done
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - began - 0.2
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _pct(latencies, 0.50) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
        "seconds": elapsed,
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
    }


def _pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several rounds: percentiles over all their latencies together."""
    latencies = sorted(x for r in rounds for x in r["latencies_ms"])
    seconds = sum(r["seconds"] for r in rounds)
    return {
        "requests": len(latencies),
        "errors": sum(r["errors"] for r in rounds),
        "rps": len(latencies) / seconds if seconds > 0 else 0.0,
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
    }


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# --- orchestration --------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '@BODY@'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "errors": %d, "rps": %f, "p50_ms": %f, '
    .. '"p99_ms": %f}\\n', summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end
""".replace("@BODY@", json.dumps(BODY))

# --pin: servers on CPU 1, load on CPU 0, so they never fight over one core. Off by default:
# on a machine shared with other work a pinned server cannot move off a busy core.
SERVER_CPUS: set[int] = set()
LOAD_CPUS: set[int] = set()


def _pin(pid: int, cpus: set[int]) -> None:
    if cpus:
        os.sched_setaffinity(pid, cpus)


def ensure_wrk() -> str | None:
    """wrk's path; installs the Debian package when missing and running as root (says so)."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    print("installing wrk (apt-get install -y wrk) for the throughput runs", flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, check=False, timeout=300
    )
    return shutil.which("wrk")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_bench", "--serve", kind, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    _pin(proc.pid, SERVER_CPUS)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def _run_load(port: int, concurrency: int, seconds: float, rate: float = 0.0) -> dict[str, Any]:
    """The Python load client in its own process: closed loop (rate 0) or open loop."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.gateway_bench", "--load", str(port), "--concurrency",
         str(concurrency), "--seconds", str(seconds), "--rate", str(rate)],
        cwd=ROOT, capture_output=True, check=True, timeout=seconds + 60,
        preexec_fn=(lambda: _pin(0, LOAD_CPUS)) if LOAD_CPUS else None,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _run_wrk(wrk: str, port: int, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed-loop saturation with wrk (C, one thread): the client costs little CPU. Its
    default 2 s timeout counted answers delayed by other work on the machine as errors."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        out = subprocess.run(
            [wrk, "-t1", f"-c{concurrency}", "--timeout", "10s", f"-d{max(1, round(seconds))}s",
             "-s", script.name, f"http://127.0.0.1:{port}/v1/chat"],
            capture_output=True, check=True, timeout=seconds + 60, text=True,
            preexec_fn=(lambda: _pin(0, LOAD_CPUS)) if LOAD_CPUS else None,
        )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _saturate(
    wrk: str | None, pid: int, port: int, concurrency: int, seconds: float
) -> dict[str, Any]:
    """Closed loop at saturation, plus the server's CPU time per request: unlike requests/s,
    that figure barely moves when other work shares the machine."""
    import psutil

    server = psutil.Process(pid)
    before = server.cpu_times()
    if wrk:
        result = _run_wrk(wrk, port, concurrency, seconds)
    else:
        result = _run_load(port, concurrency, seconds)
    after = server.cpu_times()
    cpu = after.user + after.system - before.user - before.system
    result["cpu_us"] = cpu / result["requests"] * 1e6 if result["requests"] else float("nan")
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


def run(quick: bool, pin: bool = False) -> int:
    sat_seconds, open_seconds, open_rounds = (1.0, 1.5, 1) if quick else (5.0, 2.0, 4)
    if pin and (os.cpu_count() or 1) >= 2:
        SERVER_CPUS.update({1})
        LOAD_CPUS.update({0})
    wrk = ensure_wrk()
    client = "wrk -t1" if wrk else "the Python client (wrk not found)"
    pinning = (
        f"servers on CPU {sorted(SERVER_CPUS)}, load on CPU {sorted(LOAD_CPUS)}"
        if SERVER_CPUS
        else "no CPU pinning"
    )
    print(f"saturation load: {client}; open loop: Python asyncio client; {pinning}")
    servers = {kind: _start(kind) for kind in ("bare", "gateway")}
    try:
        rss = {kind: _rss_mb(proc.pid) for kind, (proc, _) in servers.items()}
        for _, port in servers.values():  # warm-up: imports, first-call paths
            _run_load(port, 10, 0.5 if quick else 2.0)
        print(f"idle RSS: gateway {rss['gateway']:.1f} MiB, bare {rss['bare']:.1f} MiB "
              f"(x{rss['gateway'] / rss['bare']:.1f})")  # fmt: skip
        ok = True
        for concurrency in (50, 200):
            sat = {
                kind: _saturate(wrk, proc.pid, port, concurrency, sat_seconds)
                for kind, (proc, port) in servers.items()
            }
            rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in servers}
            for _ in range(open_rounds):  # alternate, so noise from other work hits both alike
                for kind, (_, port) in servers.items():
                    rounds[kind].append(_run_load(port, concurrency, open_seconds, TARGET_RPS))
            at_rate = {kind: _pooled(results) for kind, results in rounds.items()}
            gw, bare = sat["gateway"], sat["bare"]
            ogw, obare = at_rate["gateway"], at_rate["bare"]
            added_p50 = ogw["p50_ms"] - obare["p50_ms"]
            added_p99 = ogw["p99_ms"] - obare["p99_ms"]
            print(
                f"c={concurrency:>3} saturation: gateway {gw['rps']:7.0f} rps "
                f"({gw['requests']} req, {gw['errors']} errors) | bare {bare['rps']:7.0f} rps | "
                f"ratio {gw['rps'] / bare['rps']:.2f}; server CPU per request: gateway "
                f"{gw['cpu_us']:.0f} us, bare {bare['cpu_us']:.0f} us"
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
    parser.add_argument(
        "--pin", action="store_true", help="servers on CPU 1, load on CPU 0 (quiet machines)"
    )
    parser.add_argument("--serve", choices=("bare", "gateway"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if args.load:
        import uvloop

        coro = load("127.0.0.1", int(args.load), args.concurrency, args.rate, args.seconds)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            print(json.dumps(runner.run(coro)))
        return 0
    return run(args.quick, args.pin)


if __name__ == "__main__":
    raise SystemExit(main())
