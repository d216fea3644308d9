"""Fixtures for the operator on a real API server: the fake Azure and operator processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kube import RealKube
from tests.operator.conftest import fake_azure  # noqa: F401
from tests.operator.k8s.api_faults import lease_faults, proxied_kubeconfig, proxy  # noqa: F401
from tests.operator.k8s.operators import OperatorProcess

StartOperator = Callable[..., OperatorProcess]


@pytest.fixture
def start_operator(
    fake_azure: FakeAzure,  # noqa: F811
    control_plane: ControlPlane,
    k8s: RealKube,
    tmp_path: Path,
) -> Iterator[StartOperator]:
    """Start operator processes watching the test's namespace; all are stopped afterwards."""
    fake_azure.reset()
    started: list[OperatorProcess] = []

    def start(
        name: str = "op-0",
        *,
        kubeconfig: Path | None = None,
        leader_election: bool = False,
        log_level: str = "INFO",
        extra_env: dict[str, str] | None = None,
    ) -> OperatorProcess:
        env = {
            **fake_azure.env(),
            "KUBECONFIG": str(kubeconfig or control_plane.kubeconfig),
            "WATCH_NAMESPACES": k8s.namespace,
            "POD_NAMESPACE": k8s.namespace,
            "LOG_LEVEL": log_level,
            "LEADER_ELECTION": str(leader_election).lower(),
            "LEASE_NAME": "llm-mcp-hub-operator",
            "LEASE_DURATION_SECONDS": "4",
            "LEASE_RENEW_DEADLINE_SECONDS": "3",
            "LEASE_RETRY_PERIOD_SECONDS": "1",
            **(extra_env or {}),
        }
        process = OperatorProcess(env=env, log_path=tmp_path / f"{name}.log", name=name).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()
