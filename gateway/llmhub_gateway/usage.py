"""Accounting of every turn: one audit log line, today's usage counters, the token metric;
an audit line for each request the identity check refused (REST and /mcp), and one for each
read or delete (sessions, models, usage).

The audit line holds who, what and how it went -- never the prompt or the answer; with masking
on, ``masked`` counts the identifiers replaced per recognizer (never a value). Tokens are
what the provider adapter reported (``providers.base.Usage``); an adapter whose CLI reports
nothing counts 0 tokens, and the request still counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from llmhub_gateway.errors import GatewayError
from llmhub_gateway.limits.base import Limiter
from llmhub_gateway.metrics import Metrics

if TYPE_CHECKING:
    from llmhub_gateway.auth.principal import Principal
    from llmhub_gateway.chat import ChatResult, PreparedChat

audit = logging.getLogger("llmhub_gateway.audit")
log = logging.getLogger(__name__)


class Accounting:
    def __init__(self, limiter: Limiter, metrics: Metrics) -> None:
        self.limiter = limiter
        self.metrics = metrics

    def refused(
        self,
        caller: Principal,
        provider: str,
        model: str,
        session_id: str | None,
        exc: GatewayError,
    ) -> None:
        """A turn refused before it ran (limits, busy session...): audited, not counted."""
        _line(caller.name, provider, model, session_id, 0, 0, exc.error_type, 0)

    async def finished(
        self, chat: PreparedChat, result: ChatResult | None, status: str, duration_ms: int
    ) -> None:
        tokens_in = result.usage.tokens_in if result is not None else 0
        tokens_out = result.usage.tokens_out if result is not None else 0
        caller, provider = chat.caller, chat.provider.name
        _line(
            caller.name,
            provider,
            chat.request.model,
            chat.request.session_id if chat.persist else None,
            tokens_in,
            tokens_out,
            status,
            duration_ms,
            dict(chat.masked.counts) if chat.masked is not None else None,
        )
        if chat.replay is not None:
            return  # a stored answer replayed: the provider did not run
        for direction, count in (("in", tokens_in), ("out", tokens_out)):
            if count:
                self.metrics.tokens.labels(caller.label, provider, direction).inc(count)
        try:
            await self.limiter.record(caller.name, provider, tokens_in, tokens_out)
        except GatewayError:
            log.warning("could not record usage of a turn (limit store unreachable)")


@contextmanager
def audited(action: str, caller: str, path: str) -> Iterator[dict[str, str | None]]:
    """One audit line for a request that is not a turn (``read``, ``delete``), with how it
    ended: ``ok`` or the error type. ``path`` is the route's template, never user input; the
    route adds the session id to the yielded fields once it is a valid one."""
    fields: dict[str, str | None] = {"caller": caller, "path": path, "session_id": None}
    status = "ok"
    try:
        yield fields
    except GatewayError as exc:
        status = exc.error_type
        raise
    finally:
        audit.info(action, extra={**fields, "status": status})


def refused_caller(method: str, path: str, exc: GatewayError) -> None:
    """A request refused before it had a caller (401/403/503 from the identity check)."""
    audit.info(
        "refused",
        extra={"caller": None, "method": method, "path": path, "status": exc.error_type},
    )


def _line(
    caller: str,
    provider: str,
    model: str,
    session_id: str | None,
    tokens_in: int,
    tokens_out: int,
    status: str,
    duration_ms: int,
    masked: dict[str, int] | None = None,
) -> None:
    extra: dict[str, object] = {"masked": masked} if masked is not None else {}
    audit.info(
        "turn",
        extra={
            **extra,
            "caller": caller,
            "provider": provider,
            "model": model,
            "session_id": session_id,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "status": status,
            "duration_ms": duration_ms,
        },
    )
