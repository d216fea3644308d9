"""The real-node tier's tests get a timeout of their own: the first builds and imports the
images (cold: many minutes; warm: about a minute), the others wait on real rollouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.containers.tier import give_timeout

NODE_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    give_timeout(items, Path(__file__).parent, NODE_TIMEOUT_S)
