"""What kstatus (Flux, Argo CD's health, ``kubectl wait``) reads from an LLMProvider.

Written from kstatus' documented generic rules (cli-utils ``pkg/kstatus``): a deletion
timestamp is Terminating; an ``observedGeneration`` that differs from ``metadata.generation``
is InProgress; a ``Reconciling`` condition that is True is InProgress; a ``Stalled`` one that is
True is Failed; anything else is Current.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from typing import Any


def kstatus(body: Mapping[str, Any]) -> str:
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    observed = status.get("observedGeneration")
    if observed is not None and observed != meta.get("generation"):
        return "InProgress"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Reconciling" and cond.get("status") == "True":
            return "InProgress"
        if cond.get("type") == "Stalled" and cond.get("status") == "True":
            return "Failed"
    return "Current"


def ready(body: Mapping[str, Any]) -> str | None:
    """The Ready condition's status, as ``kubectl wait --for=condition=Ready`` reads it."""
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("observedGeneration", 0) < (body.get("metadata") or {}).get(
                "generation", 0
            ):
                return None  # kubectl wait ignores a condition of an older generation
            return str(cond.get("status"))
    return None


async def kubectl_wait_ready(
    kubeconfig: str, namespace: str, name: str, timeout: int
) -> int | None:
    """The exit code of the real ``kubectl wait --for=condition=Ready``; None on a machine
    without kubectl (the callers assert ``ready()`` in any case)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        kubectl,
        f"--kubeconfig={kubeconfig}",
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"--timeout={timeout}s",
        f"llmproviders.llm-mcp-hub.io/{name}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await proc.wait()
