"""Session fixtures of the container tier: the engine (started here, stopped by PID), the local
bases and both product images built once per session (layers cached under .cache/docker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.bases import Bases
from tests.containers.engine import Engine, EngineUnavailable
from tests.containers.images import Images
from tests.containers.tier import give_timeout, in_ci

# The first test builds the bases and images (cold: minutes; warm: seconds): beyond the suite's
# per-test timeout, so this tier's tests get their own.
BUILD_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    give_timeout(items, Path(__file__).parent, BUILD_TIMEOUT_S)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    engine = Engine()
    try:
        engine.start()
    except EngineUnavailable as exc:
        if in_ci():  # CI always runs this tier: no engine is a failure, not a skip
            pytest.fail(f"the container tier needs a Docker engine: {exc}")
        pytest.skip(str(exc))
    try:
        yield engine
    finally:
        engine.stop()  # only one this session started


@pytest.fixture(scope="session")
def images(engine: Engine) -> Images:
    built = Images(engine, Bases(engine).ensure())
    for component in ("operator", "gateway"):
        built.build(component)
    return built
