"""POST /v1/masking/dry-run: what the masking stage would replace in a text, for the callers
named in AUTH_ADMIN_CALLERS only. Nothing is stored or counted; the answer holds placeholders
and offsets into the caller's own text, never a value the caller did not send."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import ChatDep, PrincipalDep
from llmhub_gateway.errors import Forbidden
from llmhub_gateway.text_rules import check_text
from llmhub_gateway.usage import audited

router = APIRouter(prefix="/v1/masking", tags=["masking"])
PATH = "/v1/masking/dry-run"


class DryRunRequest(BaseModel):
    text: str
    provider: Annotated[
        str | None, Field(description="apply this provider's override (MASKING_PROVIDERS)")
    ] = None


class Finding(BaseModel):
    recognizer: str
    placeholder: str
    start: int
    end: int


class DryRunReport(BaseModel):
    masked: str
    findings: list[Finding]
    counts: dict[str, int]
    enabled: bool  # whether turns of ``provider`` (any, when not given) are masked now


@router.post("/dry-run", response_model=DryRunReport, responses=errors.responses(400, 401, 403))
async def dry_run(body: DryRunRequest, chat: ChatDep, principal: PrincipalDep) -> DryRunReport:
    with audited("dry_run", principal.name, PATH):
        if principal.name not in chat.admins:
            raise Forbidden("the masking dry run is for the callers named in AUTH_ADMIN_CALLERS")
        check_text(body.text, max_bytes=chat.max_prompt_bytes)
        masked, found = chat.masking.dry_run(body.text, body.provider)
    counts: dict[str, int] = {}
    for item in found:
        counts[item.recognizer] = counts.get(item.recognizer, 0) + 1
    stage = chat.masking
    enabled = (stage.default if body.provider is None else stage.masker(body.provider)) is not None
    return DryRunReport(
        masked=masked,
        findings=[
            Finding(recognizer=f.recognizer, placeholder=f.placeholder, start=f.start, end=f.end)
            for f in found
        ],
        counts=counts,
        enabled=enabled,
    )
