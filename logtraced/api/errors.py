"""The one mapping from failures to responses: the JSON envelope `{"error": {"code": ..., "message": ...}}` by default.

Domain errors carry their status class (`errors.Status`); this module turns each into a
`Failure` (status, code, message, headers) once, by class, so no handler branches on error
codes or builds error bodies.  Routes whose clients read another dialect's errors (the
Elasticsearch, Loki and OTLP shippers) register a renderer for their resources with
`render_errors_with`; the renderer only shapes the body of the same `Failure`.  Every other
route under /loki/ answers as Loki does, so Grafana's Loki data source can read its errors.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec
from aiohttp import web

from logtraced.errors import LogtracedError, Unauthenticated
from logtraced.ingest.rejection import BodyRejected
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


# Routes under this prefix answer errors as Loki does (unless a route registers its own renderer).
LOKI_PREFIX: Final = "/loki/"
# Prometheus' errorType for each status Loki answers with; others fall back to the error's code.
_LOKI_ERROR_TYPES: Final = {400: "bad_data", 404: "not_found", 422: "execution", 503: "unavailable", 504: "timeout"}


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed request is answered with, whatever dialect renders the body."""

    status: int
    code: str
    message: str
    details: object | None = None
    headers: dict[str, str] = field(default_factory=dict)


# Shapes one Failure into a dialect's error response (status and headers are the Failure's).
Renderer = Callable[[web.Request, Failure], web.Response]
ERROR_RENDERERS: Final = web.AppKey("error_renderers", dict[str, Renderer])
# Which requests that no route took (a path no route has) belong to a dialect, and its renderer.
PathFamily = tuple[Callable[[web.Request], bool], Renderer]
ERROR_FAMILIES: Final = web.AppKey("error_families", list[PathFamily])


def render_errors_with(app: web.Application, resource: web.AbstractResource, renderer: Renderer) -> None:
    """Answer every failure on `resource` (a route's resource) with `renderer` instead of the envelope.

    A wrong method on the resource's path (405) is answered with it too, so a client of that
    dialect can read every error it meets there.
    """
    app.setdefault(ERROR_RENDERERS, {})[resource.canonical] = renderer


def render_errors_under(app: web.Application, belongs: Callable[[web.Request], bool], renderer: Renderer) -> None:
    """Answer a request no route has (404) with `renderer` when `belongs(request)`: a dialect's unknown API."""
    app.setdefault(ERROR_FAMILIES, []).append((belongs, renderer))


def error_response(status: int, code: str, message: str, *, details: object | None = None) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.Response(status=status, body=_encode({"error": body}), content_type="application/json")


def domain_failure(error: LogtracedError) -> Failure:
    """A domain error's Failure, with the headers its class implies (Retry-After, WWW-Authenticate)."""
    # A refused dialect body carries its dialect's own status (Elasticsearch answers 406 for a media type).
    status = error.http_status if isinstance(error, BodyRejected) else int(error.status)
    failure = Failure(status, error.code, error.message, error.details)
    if error.retry_after is not None:
        failure.headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        # RFC 6750: a bare challenge without a credential, one naming the error with a bad one.
        challenge = 'Bearer realm="logtraced"'
        failure.headers["WWW-Authenticate"] = challenge + (', error="invalid_token"' if error.credential_sent else "")
    return failure


def http_failure(request: web.Request, exc: web.HTTPException) -> Failure:
    """aiohttp's own 4xx (no route, wrong method, body too large) as a Failure."""
    code = _HTTP_CODES.get(exc.status, "http_error")
    message = exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
    if exc.status == 405:
        message = f"method {request.method} is not allowed on {request.path}"
    allow = exc.headers.get("Allow")
    return Failure(exc.status, code, message, headers={"Allow": allow} if allow else {})


def envelope(request: web.Request, failure: Failure) -> web.Response:
    """The LogTrace envelope: the renderer of every route that registers no other."""
    return error_response(failure.status, failure.code, failure.message, details=failure.details)


def loki_json(request: web.Request, failure: Failure) -> web.Response:
    """Loki's error shape, with both spellings Grafana reads: `{"status":"error","errorType","error"}` (the
    Prometheus API) and `code`/`message` (pkg/tsdb/loki framing reads `message`)."""
    error_type = _LOKI_ERROR_TYPES.get(failure.status, "internal" if failure.status >= 500 else failure.code)
    body = {
        "status": "error",
        "errorType": error_type,
        "error": failure.message,
        "code": failure.status,
        "message": failure.message,
    }
    return web.Response(status=failure.status, body=_encode(body), content_type="application/json")


async def unmatched_renderer(request: web.Request) -> Renderer | None:
    """For a request no route took: the renderer of a resource whose path it has (a wrong method), else of the
    dialect its path belongs to (an unknown API)."""
    renderers = request.app.get(ERROR_RENDERERS, {})
    for resource in request.app.router.resources():
        renderer = renderers.get(resource.canonical)
        if renderer is not None and (await resource.resolve(request))[1]:
            return renderer
    return next((renderer for belongs, renderer in request.app.get(ERROR_FAMILIES, []) if belongs(request)), None)


def render(request: web.Request, failure: Failure, renderer: Renderer | None = None) -> web.Response:
    """The response for `failure` in the dialect of the route `request` matched (or of its path's API family)."""
    resource = request.match_info.route.resource
    renderers = request.app.get(ERROR_RENDERERS, {})
    if renderer is None and resource is not None:
        renderer = renderers.get(resource.canonical)
    if renderer is None:
        renderer = loki_json if request.path.startswith(LOKI_PREFIX) else envelope
    response = renderer(request, failure)
    response.headers.update(failure.headers)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the envelope, aiohttp's own 404/405/413 included; never leak a traceback."""
    try:
        return await handler(request)
    except LogtracedError as exc:
        response = render(request, domain_failure(exc))
        if request.body_exists and not request.content.is_eof():
            # The rest of the body was not (or could not be) read, so the next request on this
            # connection cannot be found: announce the close instead of leaving the client to a reset.
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        unmatched = exc.status in (404, 405) and request.match_info.route.resource is None
        return render(request, http_failure(request, exc), await unmatched_renderer(request) if unmatched else None)
    except Exception:
        request_id = "req_" + secrets.token_hex(8)
        _log.exception("http_handler_failed", method=request.method, path=request.path, request_id=request_id)
        message = f"internal error; the daemon logged the details under request id {request_id}"
        return render(request, Failure(500, "internal_error", message, headers={"X-Request-Id": request_id}))
