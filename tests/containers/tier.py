"""What the slow tiers (tests/containers, tests/node) share: CI never skips them, and their
tests get a timeout of their own (image builds and real rollouts outlast the suite's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def give_timeout(items: list[pytest.Item], folder: Path, seconds: int) -> None:
    """Every collected test below ``folder`` gets ``seconds`` as its timeout."""
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.timeout(seconds))
