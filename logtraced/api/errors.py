"""The one JSON error envelope: `{"error": {"code": ..., "message": ...}}` on every route and status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from logtraced.errors import ApiError, QueryError
from logtraced.log import get_logger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_encode = msgspec.json.Encoder().encode
_log = get_logger("http")


def error_response(error: ApiError) -> web.Response:
    body: dict[str, object] = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return web.Response(
        status=error.status,
        body=_encode({"error": body}),
        content_type="application/json",
        headers=error.headers,
    )


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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the envelope, aiohttp's own 404/405/413 included; never leak a traceback."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except QueryError as exc:
        return error_response(ApiError(400, exc.code, exc.message))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
        if exc.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        return error_response(ApiError(exc.status, code, message, headers=_allow_header(exc)))
    except Exception:
        _log.exception("http_handler_failed", method=request.method, path=request.path)
        return error_response(ApiError(500, "internal_error", "internal error; the daemon logged the details"))


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}
