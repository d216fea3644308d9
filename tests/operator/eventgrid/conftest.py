"""The stand-in Event Grid namespace, fed by the session's stand-in Key Vault."""

from collections.abc import Iterator

import pytest

from tests.fakes.fake_azure import FakeAzure
from tests.fakes.fake_eventgrid import FakeEventGrid


@pytest.fixture
def eventgrid(fake_azure: FakeAzure, azure_env: dict[str, str]) -> Iterator[FakeEventGrid]:
    """A fresh namespace per test; every secret write publishes SecretNewVersionCreated."""
    grid = FakeEventGrid.start_local(fake_azure)
    fake_azure.on_new_version = lambda name, version: grid.publish_keyvault(
        fake_azure.vault_name, name, version
    )
    try:
        yield grid
    finally:
        fake_azure.on_new_version = None
        grid.stop()
