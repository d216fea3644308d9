"""kopf wiring for LLMGateways: watch events feed the GatewayQueue; the queue applies.

Like the LLMProvider handlers, nothing here makes kopf add a finalizer (only event handlers),
so deleting an LLMGateway never waits for the operator: the garbage collector deletes its
objects through their ownerReferences.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from llmhub_common.contract import API_GROUP, API_VERSION
from llmhub_common.contract import PLURAL as PROVIDERS_PLURAL
from llmhub_operator.gateways.controller import GatewayQueue
from llmhub_operator.gateways.model import PLURAL, GatewaySettings
from llmhub_operator.kube import DEFAULT_REQUEST_TIMEOUT_S, make_api_client
from llmhub_operator.leader import Leadership
from llmhub_operator.supervisor import Supervisor

log = logging.getLogger(__name__)


@kopf.on.startup()
async def start_gateways(memo: kopf.Memo, **_: Any) -> None:
    """After the operator's own startup (registered later): its leadership and supervisor."""
    try:
        settings = GatewaySettings()
    except ValueError as exc:
        raise kopf.PermanentError(f"invalid LLMHUB_LLMGATEWAYS_* setting: {exc}") from None
    timeout = float(getattr(memo, "request_timeout", None) or DEFAULT_REQUEST_TIMEOUT_S)
    memo.gateway_api = await make_api_client(request_timeout=timeout)
    leadership: Leadership | None = getattr(memo, "leadership", None)
    if leadership is None:  # the operator's own startup has not run yet
        raise kopf.TemporaryError("waiting for the operator's startup", delay=0.2)
    queue = memo.gateways = GatewayQueue(memo.gateway_api, settings, leadership)
    leadership.on_lost(queue.cancel_inflight)
    supervisor: Supervisor = memo.supervisor
    supervisor.spawn(queue.run(), name="gateways")


@kopf.on.cleanup()
async def stop_gateways(memo: kopf.Memo, **_: Any) -> None:
    api = getattr(memo, "gateway_api", None)
    if api is not None:
        await api.close()


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def gateway_observed(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    meta = body.get("metadata") or {}
    if event.get("type") == "DELETED" or meta.get("deletionTimestamp"):
        memo.gateways.forget(meta.get("namespace") or "", meta.get("name") or "")
        return
    memo.gateways.observe(dict(body))


@kopf.on.event(API_GROUP, API_VERSION, PROVIDERS_PLURAL)
async def provider_for_gateways(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A served LLMProvider's new status (content hash, token health) rolls and re-reports
    only the gateways of its namespace that serve it."""
    memo.gateways.provider_changed(dict(body), deleted=event.get("type") == "DELETED")
