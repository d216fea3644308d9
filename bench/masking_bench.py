"""Masking: what it adds to a turn, what one core masks per second, what mappings cost.

- added latency: the turn runner (``ChatService.prepare`` + ``complete``, in-memory store)
  with the gateway bench's provider, which answers at once with the text it got (so the
  answer is as long as the prompt and is unmasked too), for realistic prompts of 1 KB, 10 KB
  and 100 KB; rounds alternate between the same service with masking on and off and are
  pooled, so background load hits both alike; added = on minus off, at p50 and p99, in wall
  time and in the thread's CPU time (the target is judged on CPU time: on the suite's shared
  2-core box a wall-time p99 is the scheduler's, with masking off as much as on);
- throughput: the masking stage alone (mask the 10 KB prompt, unmask a 10 KB answer) on one
  thread, in requests per second of its CPU time (the target's "one core"; the wall-time rate
  is printed beside it and drops when other work shares the core);
- memory: 100 000 mappings (1000 sessions of 100) stored through ``RedisMaskStore`` in a
  redis-server of its own: bytes per mapping by MEMORY USAGE over every key, and by the
  server's used_memory; and the in-memory store's size by tracemalloc.

Prompts are the test corpus (CloudFormation, Terraform, kubectl, AWS CLI and Azure JSON,
logs) between prose, so a 10 KB prompt holds about 60 identifiers.

    uv run python -m bench.masking_bench [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import subprocess
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis

from bench.gateway_bench import InstantProvider
from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.masking.config import build_stage
from llmhub_gateway.masking.masker import Mapping, Masker, unmask
from llmhub_gateway.masking.recognizers import BUILTIN
from llmhub_gateway.masking.store import MemoryMaskStore, RedisMaskStore
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.memory import MemorySessionStore

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "gateway" / "masking" / "corpus"
PROSE = (
    "The rollout stalled after the health checks failed twice; the on-call engineer wants "
    "to know which dependency broke first and what to change before the next attempt. "
)
TARGET_ADDED_P99_MS = 2.0  # at 10 KB
TARGET_RPS = 1000.0  # of 10 KB, one core
TARGET_BYTES_PER_MAPPING = 200


def prompt(size: int) -> str:
    samples = [p.read_text() for p in sorted(CORPUS.iterdir()) if ".masked" not in p.name]
    text = ""
    while len(text) < size:
        for sample in samples:
            text += sample + "\n" + PROSE * 4
    return text[:size]


def _service(masking: bool) -> ChatService:
    metrics = Metrics()
    stage = build_stage(
        enabled=masking,
        names="all",
        extras={},
        providers={},
        store=MemoryMaskStore(3600),
        metrics=metrics,
    )
    settings = Settings(max_prompt_bytes=1024 * 1024)
    return ChatService(
        Registry([InstantProvider()], settings), MemorySessionStore(3600), metrics, masking=stage
    )


async def _turn(service: ChatService, text: str) -> tuple[float, float]:
    """Wall and CPU milliseconds of one turn."""
    started, cpu = time.perf_counter(), time.thread_time()
    prepared = await service.prepare(provider="claude", prompt=text)
    result = await service.complete(prepared)
    assert result.text == text  # unmasked exactly
    return (time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def added_latency(size: int, turns: int) -> dict[str, tuple[float, float]]:
    """p50/p99 of a turn with masking off and what masking on adds, in wall and CPU time."""
    text = prompt(size)
    services = {False: _service(False), True: _service(True)}
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for service in services.values():  # warm-up (caches, first allocations)
        for _ in range(3):
            await _turn(service, text)
    rounds = 10
    for _ in range(rounds):
        for masking in (False, True):
            for _ in range(max(1, turns // rounds)):
                times[masking].append(await _turn(services[masking], text))
    result = {}
    for clock, index in (("wall", 0), ("cpu", 1)):
        off = [t[index] for t in times[False]]
        on = [t[index] for t in times[True]]
        result[f"{clock} off"] = (_pct(off, 0.5), _pct(off, 0.99))
        result[f"{clock} added"] = (
            _pct(on, 0.5) - _pct(off, 0.5),
            _pct(on, 0.99) - _pct(off, 0.99),
        )
    return result


def throughput(seconds: float) -> tuple[float, float]:
    """Requests of 10 KB per second through mask + unmask on this one thread: per second of
    wall time, and per second of this thread's CPU time (what one core does when it is not
    shared: the suite's box runs other work beside the bench)."""
    masker = Masker(BUILTIN)
    text = prompt(10 * 1024)
    done = 0
    deadline = time.perf_counter() + seconds
    started, cpu = time.perf_counter(), time.thread_time()
    while time.perf_counter() < deadline:
        mapping = Mapping()
        masked = masker.mask(text, mapping, Counter())
        assert unmask(masked, mapping) == text
        done += 1
    return done / (time.perf_counter() - started), done / (time.thread_time() - cpu)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _mappings(count: int) -> list[tuple[str, dict[str, str]]]:
    """``count`` realistic mappings, 100 per session, of mixed kinds."""
    per_session = 100
    sessions = []
    for s in range(count // per_session):
        entries: dict[str, str] = {}
        for n in range(per_session):
            k = s * per_session + n
            match n % 4:
                case 0:
                    entries[f"[PRIVATE_IP_{n + 1}]"] = (
                        f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}"
                    )
                case 1:
                    entries[f"[AWS_EC2_{n + 1}]"] = f"i-{k:017x}"
                case 2:
                    entries[f"[K8S_SERVICE_{n + 1}]"] = f"svc-{k}.payments.svc.cluster.local"
                case _:
                    entries[f"[AWS_ARN_{n + 1}]"] = f"arn:aws:iam::{k:012d}:role/app-{k}"
        sessions.append((f"{s:08d}-0000-4000-8000-000000000000", entries))
    return sessions


async def redis_memory(count: int) -> tuple[float, float]:
    """Bytes per mapping in Redis: by MEMORY USAGE of every key, and by used_memory."""
    port = _free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = aioredis.Redis(port=port, decode_responses=True)
    try:
        for _ in range(100):
            try:
                await client.ping()
                break
            except (OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.05)
        store = RedisMaskStore(client, 3600)
        before = int((await client.info("memory"))["used_memory"])
        sessions = _mappings(count)
        for sid, entries in sessions:
            await store.add(sid, entries)
        after = int((await client.info("memory"))["used_memory"])
        usage = 0
        async for key in client.scan_iter(count=1000):
            usage += int(await client.memory_usage(key, samples=0) or 0)
        return usage / count, (after - before) / count
    finally:
        await client.aclose()
        server.terminate()
        server.wait(timeout=10)


async def process_memory(count: int) -> float:
    """Bytes per mapping in the in-memory store (tracemalloc), its strings included: the
    mappings are built while traced and only the store keeps them."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = MemoryMaskStore(3600)
    for sid, entries in _mappings(count):
        await store.add(sid, entries)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(store) == count // 100
    return used / count


def run(quick: bool) -> int:
    sizes = (
        (1024, 300 if not quick else 30),
        (10 * 1024, 300 if not quick else 30),
        (100 * 1024, 60 if not quick else 6),
    )
    print("added latency of mask + unmask per turn (turn runner, provider answers at once):")
    added_10k = 0.0
    for size, turns in sizes:
        got = asyncio.run(added_latency(size, turns))
        if size == 10 * 1024:
            added_10k = got["cpu added"][1]
        print(
            f"  {size // 1024:>3} KB: masking off p50 {got['wall off'][0]:.2f} ms "
            f"p99 {got['wall off'][1]:.2f} ms; added p50 {got['wall added'][0]:.2f} ms "
            f"p99 {got['wall added'][1]:.2f} ms; in CPU time added p50 "
            f"{got['cpu added'][0]:.2f} ms p99 {got['cpu added'][1]:.2f} ms ({turns} turns each)"
        )
    wall_rps, rps = throughput(0.5 if quick else 3.0)
    print(
        f"masking stage alone, one core: {rps:.0f} requests/s of 10 KB per CPU second "
        f"(mask + unmask; {wall_rps:.0f} per wall second on this box now)"
    )
    count = 10_000 if quick else 100_000
    per_key, per_server = asyncio.run(redis_memory(count))
    in_process = asyncio.run(process_memory(count))
    print(
        f"{count} mappings: Redis {per_key:.0f} bytes each by MEMORY USAGE, "
        f"{per_server:.0f} by used_memory; in process {in_process:.0f} bytes each"
    )
    met = (
        added_10k <= TARGET_ADDED_P99_MS,
        rps >= TARGET_RPS,
        per_key <= TARGET_BYTES_PER_MAPPING,
    )
    print(
        f"targets: added p99 (CPU) at 10 KB <= {TARGET_ADDED_P99_MS} ms "
        f"({'met' if met[0] else 'MISSED'}), >= {TARGET_RPS:.0f} requests/s "
        f"({'met' if met[1] else 'MISSED'}), <= {TARGET_BYTES_PER_MAPPING} bytes per mapping "
        f"in Redis ({'met' if met[2] else 'MISSED'})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.masking_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small bounded runs (smoke test)")
    args = parser.parse_args(argv)
    return run(args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
