"""The aiohttp application on the daemon's loop: middlewares, route families and the listener."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from logtraced.api import (
    analysis,
    authn,
    elasticsearch,
    health,
    ingest,
    keys,
    loki,
    loki_push,
    metrics,
    otlp,
    probes,
    query,
    query_range,
    tail,
    tokens,
    ui,
    usage,
    whoami,
)
from logtraced.api.context import SERVICES_KEY, Services, get_state
from logtraced.api.errors import Handler, error_middleware
from logtraced.errors import RequestTimeout
from logtraced.log import get_logger

# Route families register themselves here: each takes the app and the shared state.
ROUTE_FAMILIES: list[Callable[[web.Application], None]] = [probes.register]
ROUTE_FAMILIES += [ingest.register, health.register, usage.register, keys.register, tokens.register]
ROUTE_FAMILIES += [query.register, query_range.register]
ROUTE_FAMILIES += [elasticsearch.register, loki_push.register, otlp.register, analysis.register]
ROUTE_FAMILIES += [whoami.register, ui.register]
ROUTE_FAMILIES += [loki.register, tail.register, metrics.register]


_access_log = get_logger("http")


def build_app(state: Services) -> web.Application:
    config = state.config
    # Outermost first: usage sees the final status, errors become the envelope, then the body deadline.
    app = web.Application(
        middlewares=[
            access_log_middleware,
            metrics.metrics_middleware,
            authn.usage_middleware,
            error_middleware,
            body_deadline_middleware,
        ],
        client_max_size=config.http.max_body_bytes,
    )
    app.on_response_prepare.append(authn.add_rate_limit_headers)
    app[SERVICES_KEY] = state
    for register in ROUTE_FAMILIES:
        register(app)
    return app


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With log.level = debug, one line per request: method, route, status, duration, the key's id; never the key."""
    if get_state(request).config.log.level != "debug":
        return await handler(request)
    started = time.perf_counter()
    status = 499
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        context = request.get(authn.AUTH_CONTEXT)
        resource = request.match_info.route.resource
        _access_log.debug(
            "http_request",
            method=request.method,
            route=resource.canonical if resource is not None else request.path,
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 3),
            key_id=context.principal.key_id if context is not None else None,
        )


@web.middleware
async def body_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request body must arrive within http.client_timeout_seconds of its headers, or the request gets 408.

    The deadline fails the body stream itself, so a handler waiting on a stalled or trickling
    sender wakes up at once and the loop never waits on it; reading is all it bounds.
    """
    if not request.body_exists:
        return await handler(request)
    timeout = get_state(request).config.http.client_timeout_seconds
    stalled: list[bool] = []

    def expire() -> None:
        if not request.content.is_eof():
            stalled.append(True)
            # TimeoutError, because aiohttp's post-response drain treats it as "stop reading, close".
            request.content.set_exception(TimeoutError())

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await handler(request)
    except TimeoutError:
        if stalled:
            raise RequestTimeout(f"the request body did not arrive within {timeout:g} s") from None
        raise
    finally:
        timer.cancel()


class HttpServer:
    """Binds the HTTP port; closing it lets in-flight requests finish for a moment."""

    name = "http"
    network = "tcp"

    def __init__(self, state: Services) -> None:
        self.state = state
        self.runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"{self.state.config.http.host}:{self.state.config.http.port}"

    async def start(self) -> int:
        config = self.state.config.http
        # keepalive_timeout also closes a connection that never completes its request headers.
        self.runner = web.AppRunner(
            build_app(self.state),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=2.0,
            keepalive_timeout=config.client_timeout_seconds,
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, config.host, config.port, backlog=1024, reuse_address=True)
        await site.start()
        port: int = self.runner.addresses[0][1]
        return port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
