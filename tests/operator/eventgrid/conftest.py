"""The stand-in Event Grid namespace, fed by the session's stand-in Key Vault."""

from collections.abc import Iterator

import pytest

from tests.fakes.fake_azure import FakeAzure
from tests.fakes.fake_eventgrid import FakeEventGrid


@pytest.fixture
def eventgrid(fake_azure: FakeAzure, azure_env: dict[str, str]) -> Iterator[FakeEventGrid]:
    """A fresh namespace per test; every secret write publishes SecretNewVersionCreated."""
    grid = FakeEventGrid.start_local(fake_azure).feed_from()
    try:
        yield grid
    finally:
        grid.stop()
