"""The one mapping from failures to the JSON envelope `{"error": {"code": ..., "message": ...}}`, on every route.

Domain errors carry their status class (`errors.Status`); this module turns each into its
response once, by class, so no handler branches on error codes or builds error bodies.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from logtraced.errors import LogtracedError, Unauthenticated
from logtraced.log import get_logger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_encode = msgspec.json.Encoder().encode
_log = get_logger("http")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# Routes under this prefix answer errors as Loki does, so Grafana's Loki data source can read them.
LOKI_PREFIX = "/loki/"
# Prometheus' errorType for each status Loki answers with; others fall back to the error's code.
_LOKI_ERROR_TYPES = {400: "bad_data", 404: "not_found", 422: "execution", 503: "unavailable", 504: "timeout"}


def error_response(
    status: int, code: str, message: str, *, details: object | None = None, loki: bool = False
) -> web.Response:
    """The envelope of one API family: LogTrace's `{"error": {...}}`, or Loki's for the /loki/ routes.

    Loki's shape carries both spellings Grafana reads: `{"status":"error","errorType","error"}` (the
    Prometheus API) and `code`/`message` (pkg/tsdb/loki framing reads `message`).
    """
    if loki:
        error_type = _LOKI_ERROR_TYPES.get(status, "internal" if status >= 500 else code)
        loki_body = {"status": "error", "errorType": error_type, "error": message, "code": status, "message": message}
        return web.Response(status=status, body=_encode(loki_body), content_type="application/json")
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.Response(status=status, body=_encode({"error": body}), content_type="application/json")


def domain_error_response(error: LogtracedError, *, loki: bool = False) -> web.Response:
    """A domain error's envelope, with the headers its class implies (Retry-After, WWW-Authenticate)."""
    response = error_response(int(error.status), error.code, error.message, details=error.details, loki=loki)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        # RFC 6750: a bare challenge without a credential, one naming the error with a bad one.
        challenge = 'Bearer realm="logtraced"'
        response.headers["WWW-Authenticate"] = challenge + (', error="invalid_token"' if error.credential_sent else "")
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the envelope, aiohttp's own 404/405/413 included; never leak a traceback."""
    loki = request.path.startswith(LOKI_PREFIX)
    try:
        return await handler(request)
    except LogtracedError as exc:
        response = domain_error_response(exc, loki=loki)
        if request.body_exists and not request.content.is_eof():
            # The rest of the body was not (or could not be) read, so the next request on this
            # connection cannot be found: announce the close instead of leaving the client to a reset.
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
        if exc.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        response = error_response(exc.status, code, message, loki=loki)
        allow = exc.headers.get("Allow")
        if allow:
            response.headers["Allow"] = allow
        return response
    except Exception:
        request_id = "req_" + secrets.token_hex(8)
        _log.exception("http_handler_failed", method=request.method, path=request.path, request_id=request_id)
        response = error_response(
            500,
            "internal_error",
            f"internal error; the daemon logged the details under request id {request_id}",
            loki=loki,
        )
        response.headers["X-Request-Id"] = request_id
        return response
