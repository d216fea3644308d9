"""The pod-contract test: the real control plane (tests/k8s), real helm, the Azure fake, Redis."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import RedisServer
from tests.operator.conftest import fake_azure  # noqa: F401


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = RedisServer()
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture
def pod_root(tmp_path: Path) -> Path:
    """Where the pods' absolute paths (mounts, HOME, ...) are materialized."""
    root = tmp_path / "pods"
    root.mkdir()
    return root
