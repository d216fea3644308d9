"""Every failure the gateway can report, as domain exceptions that carry their own category.

Nothing here knows HTTP or MCP: each error has a stable ``error_type`` (the contract's
``{error: {type}}``), a ``status_code`` that the HTTP edge uses as is, and an optional
``retry_after`` (seconds). ``api/errors.py`` maps them to JSON responses and SSE events,
``mcp_server.py`` to tool errors; the turn runner and the stores only ever raise them.
Provider failures (``providers/base.py``) are subclasses too, so one ``describe`` covers all.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every expected failure; ``str(exc)`` is safe to show to clients."""

    status_code = 500
    error_type = "internal_error"
    retry_after: int | None = None
    challenge: str | None = None  # the HTTP edge sends it as WWW-Authenticate


class BadRequest(GatewayError):
    """Input the client must fix (400)."""

    status_code = 400
    error_type = "bad_request"


class InvalidSessionId(BadRequest):
    error_type = "invalid_session_id"


class InvalidText(BadRequest):
    """Text with NUL or other control characters a CLI must never get (400)."""

    error_type = "invalid_text"


class InvalidModel(BadRequest):
    """A model id that could not be one (spaces, NUL, a leading dash...) (400)."""

    error_type = "invalid_model"


class PromptTooLarge(BadRequest):
    """More prompt text than MAX_PROMPT_BYTES (400)."""

    error_type = "prompt_too_large"


class BodyTooLarge(GatewayError):
    """A request body over MAX_BODY_BYTES, refused before it is read in full (413)."""

    status_code = 413
    error_type = "payload_too_large"


class IdempotencyKeyReused(GatewayError):
    """The Idempotency-Key was already used for a different request on this session (422)."""

    status_code = 422
    error_type = "idempotency_key_reused"


class SessionNotFound(GatewayError):
    """The client named a session this gateway does not know, or it is gone (404)."""

    status_code = 404
    error_type = "session_not_found"


class SessionConflict(GatewayError):
    """The session belongs to another provider (400)."""

    status_code = 400
    error_type = "session_provider_mismatch"


class SessionBusy(GatewayError):
    """Another turn on this session is running, here or on another replica (409)."""

    status_code = 409
    error_type = "session_busy"
    retry_after = 2


class LeaseLost(GatewayError):
    """This turn lost its session lease (store failover, partition, flush): it was cancelled
    and its answer not stored, because another turn may now own the session (409)."""

    status_code = 409
    error_type = "session_lease_lost"
    retry_after = 2


class ShuttingDown(GatewayError):
    """This replica is draining; another replica takes the request (503)."""

    status_code = 503
    error_type = "shutting_down"
    retry_after = 1


class StoreUnavailable(GatewayError):
    """The session store cannot be reached right now; callers retry later (503)."""

    status_code = 503
    error_type = "session_store_unavailable"
    retry_after = 5


class UnknownProvider(GatewayError):
    """No provider of that name, or no provider serves that model id (404)."""

    status_code = 404
    error_type = "model_not_found"


class Unauthenticated(GatewayError):
    """No caller identity, or a token no enabled mode accepts (401)."""

    status_code = 401
    error_type = "unauthorized"

    def __init__(self, message: str, challenge: str = 'Bearer realm="llm-mcp-hub"') -> None:
        super().__init__(message)
        self.challenge = challenge


class Forbidden(GatewayError):
    """A known caller that may not do this (403)."""

    status_code = 403
    error_type = "forbidden"


class RateLimited(GatewayError):
    """A caller or subscription limit is reached; ``retry_after`` is when it frees up (429)."""

    status_code = 429
    error_type = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
