"""The one place typed errors become HTTP responses (DESIGN.md, "HTTP").

422 names the offending field; 413 too many items or too large a body; 401 a missing or wrong API key;
429 the batcher's queue is full; 503 with Retry-After when the store (or an SGLang server) is down.
Anything unexpected is logged with its traceback and answered 500 with an opaque id, never the trace.
"""

from __future__ import annotations

import logging
import re
import uuid

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from mixlm.errors import MixLMError, QueueFull, StoreUnavailable

log = logging.getLogger(__name__)

STORE_RETRY_AFTER_S = 5
QUEUE_RETRY_AFTER_S = 1


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error response's body."""

    detail: str
    field: str | None = None


class RequestInvalid(MixLMError, ValueError):
    """A request body that does not match its schema (422)."""

    def __init__(self, detail: str, field: str | None = None):
        super().__init__(detail)
        self.field = field


class TooManyItems(MixLMError):
    """More item ids or documents than Settings.max_items (413)."""


class BodyTooLarge(MixLMError):
    """A request body over Settings.max_body_bytes (413)."""


class Unauthorized(MixLMError):
    """No or a wrong API key while keys are configured (401)."""


class EngineUnavailable(MixLMError):
    """The engine's backend (a remote SGLang server) cannot be reached (503)."""


class ClientGone(MixLMError):
    """The client disconnected before its result was ready; nobody reads the response."""


_FIELD_AT = re.compile(r"at `\$\.?([^`]*)`")
_FIELD_NAMED = re.compile(r"field `([^`]+)`")


def field_of(message: str) -> str | None:
    """The field a msgspec validation message names: '... - at `$.item_ids[3]`' -> 'item_ids[3]'."""
    named = _FIELD_NAMED.search(message)
    at = _FIELD_AT.search(message)
    parent = at.group(1) if at else ""
    if named:
        return f"{parent}.{named.group(1)}" if parent else named.group(1)
    return parent or None


def invalid_from_msgspec(exc: msgspec.MsgspecError) -> RequestInvalid:
    message = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return RequestInvalid(f"body is not valid JSON: {message}", "body")
    return RequestInvalid(message, field_of(message) or "body")


def _json(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)


def error_response(exc: Exception) -> Response:
    """Map one exception to its response; the single table of codes."""
    if isinstance(exc, msgspec.MsgspecError):
        exc = invalid_from_msgspec(exc)
    if isinstance(exc, RequestInvalid):
        return _json(422, ErrorBody(str(exc), exc.field))
    if isinstance(exc, (TooManyItems, BodyTooLarge)):
        return _json(413, ErrorBody(str(exc)))
    if isinstance(exc, Unauthorized):
        return _json(401, ErrorBody(str(exc)), {"WWW-Authenticate": 'Bearer realm="mixlm"'})
    if isinstance(exc, QueueFull):
        return _json(429, ErrorBody(str(exc)), {"Retry-After": str(QUEUE_RETRY_AFTER_S)})
    if isinstance(exc, (StoreUnavailable, EngineUnavailable)):
        return _json(503, ErrorBody(str(exc)), {"Retry-After": str(STORE_RETRY_AFTER_S)})
    if isinstance(exc, ClientGone):
        return _json(499, ErrorBody("client closed request"))
    error_id = uuid.uuid4().hex[:12]
    log.error("unhandled error %s", error_id, exc_info=exc)
    return _json(500, ErrorBody(f"internal error (id {error_id})"))


def install(app: FastAPI) -> None:
    """Register the handlers. FastAPI's own RequestValidationError is reshaped to the same 422 body."""

    async def typed(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    async def fastapi_invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header")]
        return _json(422, ErrorBody(first.get("msg", "invalid request"), ".".join(loc) or None))

    for cls in (MixLMError, msgspec.MsgspecError):
        app.add_exception_handler(cls, typed)
    app.add_exception_handler(RequestValidationError, fastapi_invalid)
    app.add_exception_handler(Exception, typed)


# Documented on each route's OpenAPI entry.
ERROR_RESPONSES = {
    401: "no or wrong API key (when MIXLM_API_KEYS is set)",
    413: "too many items or too large a body",
    422: "invalid body; `field` names the offending field",
    429: "queue full: retry after Retry-After seconds",
    503: "feature store or engine unavailable: retry after Retry-After seconds",
}
