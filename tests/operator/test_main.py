"""Settings from env and flags, and the real console entry point serving /healthz and metrics."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import httpx
import pytest

from llmhub_operator.__main__ import parse_args
from llmhub_operator.settings import OperatorSettings
from tests.fakes.fake_azure import FakeAzure
from tests.operator.kopf_harness import Kube, eventually


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_NAMESPACES", "hub, team-a,,")
    monkeypatch.setenv("PEERING_NAME", "llm-mcp-hub")
    settings = parse_args([], OperatorSettings())
    assert settings.namespaces == ["hub", "team-a"]
    assert (settings.metrics_port, settings.health_port) == (9090, 8080)
    assert (settings.peering_name, settings.log_level) == ("llm-mcp-hub", "INFO")


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_NAMESPACES", "hub")
    monkeypatch.setenv("METRICS_PORT", "9999")
    args = ["-n", "a", "--namespace", "b", "--metrics-port", "1", "--health-port", "2"]
    settings = parse_args([*args, "--peering", "p", "--log-level", "DEBUG"], OperatorSettings())
    assert settings.namespaces == ["a", "b"]
    assert (settings.metrics_port, settings.health_port, settings.peering_name) == (1, 2, "p")
    assert settings.log_level == "DEBUG"
    assert parse_args(["--all-namespaces"], OperatorSettings()).namespaces == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_console_entry_serves_liveness_and_metrics(
    kube: Kube, fake_azure: FakeAzure, azure_env: dict[str, str]
) -> None:
    metrics_port, health_port = free_port(), free_port()
    args = ["--all-namespaces", "--metrics-port", str(metrics_port)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmhub_operator",
        *args,
        "--health-port",
        str(health_port),
        env=dict(os.environ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(timeout=2) as http:

            async def get(url: str) -> httpx.Response | None:
                try:
                    return await http.get(url)
                except httpx.TransportError:
                    return None

            health = await eventually(
                lambda: get(f"http://127.0.0.1:{health_port}/healthz"),
                lambda r: r is not None and r.status_code == 200,
                timeout=20,
            )
            metrics = await get(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert health is not None
    assert "now" in health.json()  # the @kopf.on.probe handler's id
    assert metrics is not None
    assert "llmhub_operator_syncs_total" in metrics.text
    assert proc.returncode is not None
    assert b'"level"' in stderr  # JSON log lines from llmhub_common.logging
