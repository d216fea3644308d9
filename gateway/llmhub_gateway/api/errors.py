"""The one error shape, ``{"error": {"type", "message"}}``, and the handlers that produce it.

Provider errors carry their own status (502/504/429); the store being down is 503; unknown
sessions and models are 404; a session already answering another request is 409. Anything
unexpected is a 500 with a fixed message: no stack trace or exception text ever reaches a
client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmhub_common.logging import redact
from llmhub_gateway.api.disconnect import ClientGone
from llmhub_gateway.chat import SessionBusy, SessionConflict, SessionNotFound
from llmhub_gateway.providers.base import ProviderBusy, ProviderError
from llmhub_gateway.registry import UnknownProvider
from llmhub_gateway.sessions.base import StoreUnavailable

log = logging.getLogger(__name__)
STORE_RETRY_AFTER_S = 5


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_payload(error_type: str, message: str) -> dict[str, Any]:
    return {"error": {"type": error_type, "message": redact(message)}}


def error_response(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_payload(error_type, message), status_code=status, headers=headers)


def describe(exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
    """Status, type, client-safe message and headers for any exception (also used by SSE)."""
    if isinstance(exc, ProviderBusy):
        headers = {"Retry-After": str(exc.retry_after)}
        return exc.status_code, exc.error_type, str(exc) or "provider busy", headers
    if isinstance(exc, ProviderError):
        return exc.status_code, exc.error_type, str(exc) or "provider failed", {}
    if isinstance(exc, StoreUnavailable):
        headers = {"Retry-After": str(STORE_RETRY_AFTER_S)}
        return 503, "session_store_unavailable", str(exc), headers
    if isinstance(exc, SessionNotFound):
        return 404, "session_not_found", str(exc), {}
    if isinstance(exc, UnknownProvider):
        return 404, "model_not_found", str(exc), {}
    if isinstance(exc, SessionBusy):
        return 409, "session_busy", str(exc), {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, SessionConflict):
        return 400, "session_provider_mismatch", str(exc), {}
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
    return error_response(status, error_type, message, headers)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_type = _HTTP_TYPES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error_type, str(exc.detail), dict(exc.headers or {}))


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
        for err in exc.errors()
    )
    return error_response(422, "invalid_request", problems or "invalid request")


def install(app: FastAPI) -> None:
    for exc_type in (
        ProviderError,
        StoreUnavailable,
        SessionNotFound,
        SessionConflict,
        SessionBusy,
        UnknownProvider,
        ClientGone,
        Exception,
    ):
        app.add_exception_handler(exc_type, _known)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error codes a route really produces."""
    text = {
        400: "Bad input (e.g. session of another provider)",
        404: "Unknown session or model",
        409: "Session busy: another turn on it is running; retry after Retry-After seconds",
        422: "Request body failed validation",
        429: "Provider at capacity; retry after Retry-After seconds",
        502: "Provider failed",
        503: "Session store unavailable; retry after Retry-After seconds",
        504: "Provider timed out",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}
