"""The HTTP edge of ``llmhub_gateway.errors``: the one error shape, ``{"error": {"type",
"message"}}``, and the handlers that produce it.

On the OpenAI-compatible routes the shape is OpenAI's, ``{"error": {"message", "type", "param",
"code"}}`` (``code`` is the same stable type; ``param`` names the field at fault, else null),
and a body that fails validation is 400 as OpenAI answers (``openai.BadRequestError``), not
the 422 REST keeps. Domain errors carry their own status, type and Retry-After; this module
only formats them.
Anything unexpected is a 500 with a fixed message: no stack trace or exception text ever
reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmhub_common.logging import redact
from llmhub_gateway.api.disconnect import ClientGone
from llmhub_gateway.errors import GatewayError
from llmhub_gateway.text_rules import INVALID_UNICODE

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class OpenAIErrorDetail(ErrorDetail):
    param: str | None
    code: str


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail


# Routes answering in OpenAI's error shape (the path itself and anything under it).
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
# The request field a domain error is about, for OpenAI's ``param``.
_PARAMS = {
    "invalid_model": "model",
    "model_not_found": "model",
    "invalid_text": "messages",
    "prompt_too_large": "messages",
}


def is_openai(path: str) -> bool:
    return any(path == p or path.startswith(f"{p}/") for p in OPENAI_PATHS)


def error_payload(
    error_type: str, message: str, *, openai: bool = False, param: str | None = None
) -> dict[str, Any]:
    detail: dict[str, Any] = {"type": error_type, "message": redact(message)}
    if openai:
        detail |= {"param": param or _PARAMS.get(error_type), "code": error_type}
    return {"error": detail}


def openai_error(exc: BaseException) -> dict[str, Any]:
    """The OpenAI-shaped body of any exception (for a stream whose headers are sent)."""
    _, error_type, message, _ = describe(exc)
    return error_payload(error_type, message, openai=True, param=getattr(exc, "param", None))


def error_response(
    request: Request,
    status: int,
    error_type: str,
    message: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    payload = error_payload(error_type, message, openai=is_openai(request.url.path), param=param)
    return JSONResponse(payload, status_code=status, headers=headers)


def describe(exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
    """Status, type, client-safe message and headers for any exception (also used by SSE
    and MCP)."""
    if isinstance(exc, GatewayError):
        headers = {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        if exc.challenge is not None:
            headers["WWW-Authenticate"] = exc.challenge
        return exc.status_code, exc.error_type, str(exc) or exc.error_type, headers
    if isinstance(exc, ClientGone):  # nginx's 499; only the metrics ever see it
        return 499, "client_closed_request", str(exc), {}
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return 500, "internal_error", "internal error", {}


_HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _known(request: Request, exc: Exception) -> JSONResponse:
    status, error_type, message, headers = describe(exc)
    if status > 500:  # a 500 was already logged with its traceback by describe()
        log.warning(
            "%s %s -> %d %s: %s", request.method, request.url.path, status, error_type, message
        )
    return error_response(request, status, error_type, message, headers, _param(exc))


def _param(exc: Exception) -> str | None:
    param = getattr(exc, "param", None)
    return param if isinstance(param, str) else None


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_type = _HTTP_TYPES.get(exc.status_code, "http_error")
    return error_response(
        request, exc.status_code, error_type, str(exc.detail), dict(exc.headers or {})
    )


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    found = exc.errors()
    # The first field at fault; a body that is not JSON has a position there, not a field.
    param = _field(found[0]["loc"]) if found and found[0]["type"] != "json_invalid" else None
    if any(err.get("type") == "string_unicode" for err in found):
        # Same answer as the turn runner's own check (chat.check_text), whichever sees it.
        return error_response(request, 400, "bad_request", INVALID_UNICODE, param=param)
    problems = "; ".join(
        f"{_field(err.get('loc', ())) or 'body'}: {err.get('msg', 'invalid')}" for err in found
    )
    status = 400 if is_openai(request.url.path) else 422
    return error_response(
        request, status, "invalid_request", problems or "invalid request", param=param
    )


def _field(loc: Sequence[Any]) -> str | None:
    """``("body", "messages", 0, "content")`` as OpenAI names it: ``messages[0].content``."""
    name = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or None


def install(app: FastAPI) -> None:
    for exc_type in (GatewayError, ClientGone, Exception):
        app.add_exception_handler(exc_type, _known)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)


def responses(*codes: int, openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error codes a route really produces (in
    OpenAI's error shape with ``openai``, where a body failing validation is a 400)."""
    text = {
        401: "No caller identity, or a token no enabled mode accepts (AUTH_MODES)",
        403: "The caller may not do this",
        400: "Bad input (session_id not a UUID, invalid Unicode, control characters, a prompt "
        "over MAX_PROMPT_BYTES, a malformed model id, session of another provider)",
        413: "Request body over MAX_BODY_BYTES (refused before it is read in full)",
        404: "Unknown session or model",
        409: "Session busy (another turn on it is running) or this turn lost the session's "
        "lease; retry after Retry-After seconds",
        429: "Provider at capacity, or a caller or subscription limit reached; retry after "
        "Retry-After seconds",
        502: "Provider failed",
        422: "Request body failed validation, or an Idempotency-Key reused for another request",
        503: "Session store unavailable, or this replica is shutting down; retry after "
        "Retry-After seconds",
        504: "Provider timed out",
    }
    if not openai:
        return {code: {"model": ErrorBody, "description": text[code]} for code in codes}
    text[400] += "; a body failing validation; a content part other than text"
    found: dict[int | str, dict[str, Any]] = {
        code: {"model": OpenAIErrorBody, "description": text[code]} for code in codes
    }
    # Declared so FastAPI does not add its own 422 entry: these routes never answer 422
    # ("4XX" would do as well, but it changed the contract test's generated cases).
    found["default"] = {"model": OpenAIErrorBody, "description": "Any other error (never 422)"}
    return found
