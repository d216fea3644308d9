"""Fixtures for the operator tests; the kopf harness (a real API server) is in kopf_harness.py."""

# --- Fake Azure (Entra + Key Vault over HTTPS); owned by the Key Vault tests. ---
from collections.abc import Iterator

import pytest

from tests.fakes.fake_azure import FakeAzure
from tests.operator.kopf_harness import kube, source  # noqa: F401


@pytest.fixture(scope="session")
def fake_azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAzure]:
    """One fake Entra + Key Vault on 127.0.0.1 for the session, trusted through its own CA."""
    fake = FakeAzure.start_local(tmp_path_factory.mktemp("fake-azure"))
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def azure_env(fake_azure: FakeAzure, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Workload Identity env pointing at the fake; failures and the request log start empty."""
    fake_azure.reset()
    env = fake_azure.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def vault_url(fake_azure: FakeAzure) -> str:
    """The fake's Key Vault URL (Entra and Key Vault share one origin)."""
    return fake_azure.base_url
