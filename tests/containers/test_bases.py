"""The local bases are keyed on what the Dockerfiles need: the Node version and the Python line
their release bases pin (no engine needed to check the keys)."""

from __future__ import annotations

import re

import pytest

from tests.containers import bases
from tests.containers.bases import Bases
from tests.containers.engine import Engine
from tests.ship.dockerfiles import REPO


def test_base_tags_follow_the_versions_the_dockerfiles_pin() -> None:
    local = Bases(Engine())
    node = re.search(
        r"ARG NODE_IMAGE=node:(\d+\.\d+\.\d+)-", (REPO / "Dockerfile.gateway").read_text()
    )
    assert node
    assert local.node.startswith(f"llmhub-local/node:{node.group(1)}-bookworm-")
    assert local.python.startswith("llmhub-local/python:3.11-bookworm-")


def test_a_changed_recipe_is_a_new_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = Bases(Engine())
    monkeypatch.setattr(bases, "NPM_VERSION", "11.0.0")
    monkeypatch.setattr(bases, "PYTHON_LAYER", bases.PYTHON_LAYER + "RUN true\n")
    after = Bases(Engine())
    assert after.node != before.node
    assert after.python != before.python
    assert after.debian == before.debian
