"""The real entry point stops, with a non-zero exit, when one of its background tasks dies: the
kubelet then restarts it, instead of a live process that no longer syncs."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from llmhub_operator import handlers
from llmhub_operator.__main__ import access_policy, run
from llmhub_operator.settings import OperatorSettings
from tests.operator.kopf_harness import Kube


async def test_the_operator_exits_non_zero_when_a_background_task_dies(
    kube: Kube, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_watch(*_: Any) -> None:
        raise RuntimeError("a bug in the Secret watch")

    monkeypatch.setattr(handlers, "watch_secrets", broken_watch)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        health_port = sock.getsockname()[1]
    settings = OperatorSettings(watch_namespaces=kube.namespace, health_port=health_port)
    # In this task (not under wait_for: a SystemExit escaping a task escapes the event loop).
    with pytest.raises(SystemExit, match="'secrets' ended") as exited:
        async with asyncio.timeout(60):
            await run(settings, access_policy())
    assert exited.value.code != 0
