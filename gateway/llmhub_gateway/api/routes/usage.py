"""GET /v1/usage: today's (or a given UTC day's) requests and tokens per caller and provider,
for the callers named in AUTH_ADMIN_CALLERS only."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import ChatDep, PrincipalDep, SettingsDep
from llmhub_gateway.core.config import split
from llmhub_gateway.errors import BadRequest, Forbidden
from llmhub_gateway.limits.base import utc_day
from llmhub_gateway.usage import audited

router = APIRouter(prefix="/v1", tags=["usage"])
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class UsageEntry(BaseModel):
    caller: str
    provider: str
    requests: int
    tokens_in: int
    tokens_out: int


class Totals(BaseModel):
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


class UsageReport(BaseModel):
    day: str
    entries: list[UsageEntry]
    by_caller: dict[str, Totals]
    by_provider: dict[str, Totals]


def _add(totals: dict[str, Totals], key: str, entry: UsageEntry) -> None:
    total = totals.setdefault(key, Totals())
    total.requests += entry.requests
    total.tokens_in += entry.tokens_in
    total.tokens_out += entry.tokens_out


@router.get("/usage", response_model=UsageReport, responses=errors.responses(400, 401, 403, 503))
async def usage(
    chat: ChatDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    day: Annotated[str | None, Query(description="UTC day, YYYY-MM-DD; default today")] = None,
) -> UsageReport:
    with audited("read", principal.name, "/v1/usage"):
        if principal.name not in split(settings.auth_admin_callers):
            raise Forbidden("usage is for the callers named in AUTH_ADMIN_CALLERS")
        if day is not None and not DAY.match(day):
            raise BadRequest("day must be YYYY-MM-DD")
        day = day or utc_day()
        rows = await chat.limiter.usage(day)
    entries = [
        UsageEntry(
            caller=row.caller,
            provider=row.provider,
            requests=row.requests,
            tokens_in=row.tokens_in,
            tokens_out=row.tokens_out,
        )
        for row in rows
    ]
    by_caller: dict[str, Totals] = {}
    by_provider: dict[str, Totals] = {}
    for entry in entries:
        _add(by_caller, entry.caller, entry)
        _add(by_provider, entry.provider, entry)
    return UsageReport(day=day, entries=entries, by_caller=by_caller, by_provider=by_provider)
