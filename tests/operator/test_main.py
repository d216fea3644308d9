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
    settings = parse_args([], OperatorSettings())
    assert settings.namespaces == ["hub", "team-a"]
    assert (settings.metrics_port, settings.health_port) == (9090, 8080)
    assert (settings.leader_election, settings.log_level) == (False, "INFO")
    assert settings.lease() is None  # one replica leads alone


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_NAMESPACES", "hub")
    monkeypatch.setenv("METRICS_PORT", "9999")
    args = ["-n", "a", "--namespace", "b", "--metrics-port", "1", "--health-port", "2"]
    settings = parse_args([*args, "--log-level", "DEBUG"], OperatorSettings())
    assert settings.namespaces == ["a", "b"]
    assert (settings.metrics_port, settings.health_port) == (1, 2)
    assert settings.log_level == "DEBUG"
    assert parse_args(["--all-namespaces"], OperatorSettings()).namespaces == []


def test_leader_election_settings_name_the_lease_and_a_unique_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in {
        "LEADER_ELECTION": "true",
        "POD_NAMESPACE": "hub",
        "POD_NAME": "op-7d9f",
        "LEASE_NAME": "hub-operator",
        "LEASE_DURATION_SECONDS": "20",
    }.items():
        monkeypatch.setenv(key, value)
    first, second = OperatorSettings().lease(), OperatorSettings().lease()
    assert first is not None
    assert second is not None
    assert (first.namespace, first.name, first.lease_duration) == ("hub", "hub-operator", 20)
    assert first.identity.startswith("op-7d9f_")
    assert first.identity != second.identity  # a restarted process is a new candidate


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"POD_NAMESPACE": ""}, "POD_NAMESPACE"),
        ({"LEASE_DURATION_SECONDS": "5", "LEASE_RENEW_DEADLINE_SECONDS": "5"}, "LEASE_DURATION"),
        (
            {"LEASE_RENEW_DEADLINE_SECONDS": "2", "LEASE_RETRY_PERIOD_SECONDS": "2"},
            "RENEW_DEADLINE",
        ),
        ({"LEASE_RETRY_PERIOD_SECONDS": "0"}, "lease_retry_period_seconds"),
    ],
)
def test_bad_leader_election_settings_are_refused_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], complaint: str
) -> None:
    monkeypatch.setenv("LEADER_ELECTION", "true")
    monkeypatch.setenv("POD_NAMESPACE", "hub")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=complaint):
        OperatorSettings()


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
