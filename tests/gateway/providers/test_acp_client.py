"""AcpConnection against small real child processes: framing, routing, death."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from llmhub_gateway.providers import procs
from llmhub_gateway.providers.acp_client import AcpClosed, AcpConnection, AcpError, AcpStalled
from tests.gateway.providers.conftest import our_zombies

# Answers requests out of order, sends an update for session "s" before each answer, refuses
# "boom", asks us for permission once, and exits on "die" without answering.
AGENT = r"""
import json, sys
pending = []
def send(m): sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
send({"jsonrpc": "2.0", "id": 99, "method": "session/request_permission", "params": {}})
sys.stdout.write("not json: a banner\n"); sys.stdout.flush()
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    if m.get("method") is None:  # our answer to its request
        send({"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": "log",
              "update": {"reply": m}}})
        continue
    if m["method"] == "die":
        sys.exit(3)
    if m["method"] == "boom":
        send({"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32000, "message": "nope"}})
        continue
    pending.append(m)
    if len(pending) == 2:
        for p in reversed(pending):
            send({"jsonrpc": "2.0", "method": "session/update",
                  "params": {"sessionId": "s", "update": {"n": p["params"]["n"]}}})
            send({"jsonrpc": "2.0", "id": p["id"], "result": {"n": p["params"]["n"]}})
        pending = []
"""


async def start(tmp_path: Path) -> AcpConnection:
    return await AcpConnection.start(
        [sys.executable, "-c", AGENT], env=dict(os.environ), cwd=tmp_path
    )


async def test_requests_resolve_by_id_and_updates_go_to_their_session(tmp_path: Path) -> None:
    conn = await start(tmp_path)
    try:
        updates = conn.subscribe("s")
        replies = conn.subscribe("log")
        one, two = await asyncio.gather(conn.request("x", {"n": 1}), conn.request("x", {"n": 2}))
        assert (one, two) == ({"n": 1}, {"n": 2})  # answered in reverse order, matched by id
        assert [updates.get_nowait(), updates.get_nowait()] == [{"n": 2}, {"n": 1}]
        with pytest.raises(AcpError) as caught:
            await conn.request("boom", {})
        assert (caught.value.code, caught.value.message) == (-32000, "nope")
        reply = (await asyncio.wait_for(replies.get(), 5))["reply"]  # type: ignore[index]
        assert reply["id"] == 99
        assert reply["error"]["code"] == -32601  # the agent's request was refused
        assert "not json: a banner" in conn.noise.text()
    finally:
        await conn.close()


async def test_death_fails_every_pending_call_and_ends_every_session(tmp_path: Path) -> None:
    conn = await start(tmp_path)
    updates = conn.subscribe("s")
    waiting = asyncio.ensure_future(conn.request("x", {"n": 1}))  # never answered alone
    await asyncio.sleep(0.1)
    with pytest.raises(AcpClosed) as caught:
        await conn.request("die", {})
    assert caught.value.status == 3
    with pytest.raises(AcpClosed):
        await waiting
    assert await asyncio.wait_for(updates.get(), 5) is None
    with pytest.raises(AcpClosed):
        await conn.request("x", {"n": 2})  # and nothing new is sent
    assert await conn.close() == 3
    assert our_zombies() == []


async def test_an_agent_that_stops_reading_is_killed_and_every_call_fails_within_the_bound(
    tmp_path: Path,
) -> None:
    """No write waits longer than its bound: a 1 MiB request to an agent that reads nothing
    fails with AcpStalled, and so does every other call, the notification included."""
    conn = await AcpConnection.start(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env=dict(os.environ),
        cwd=tmp_path,
        write_timeout_s=0.5,
    )
    try:
        updates = conn.subscribe("s")
        big = asyncio.ensure_future(conn.request("session/prompt", {"text": "x" * 2**20}))
        with pytest.raises(AcpStalled):
            await asyncio.wait_for(conn.notify("session/cancel", {"sessionId": "s"}), 5)
        with pytest.raises(AcpStalled):
            await asyncio.wait_for(big, 5)
        assert await asyncio.wait_for(updates.get(), 5) is None
        with pytest.raises(AcpStalled):
            await conn.request("x", {})
        await asyncio.wait_for(conn.close(), 10)
        assert not procs.running(conn.pid)
    finally:
        await conn.close()
    assert our_zombies() == []
