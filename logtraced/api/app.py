"""The aiohttp application on the daemon's loop: middlewares, route families and the listener."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from logtraced.api import probes
from logtraced.api.context import STATE_KEY
from logtraced.api.errors import error_middleware

if TYPE_CHECKING:
    from logtraced.daemon import DaemonState

# Route families register themselves here: each takes the app and the shared state.
ROUTE_FAMILIES: list[Callable[[web.Application], None]] = [probes.register]


def build_app(state: DaemonState) -> web.Application:
    config = state.config
    app = web.Application(middlewares=[error_middleware], client_max_size=config.http.max_body_bytes)
    app[STATE_KEY] = state
    for register in ROUTE_FAMILIES:
        register(app)
    return app


class HttpServer:
    """Binds the HTTP port; closing it lets in-flight requests finish for a moment."""

    def __init__(self, state: DaemonState) -> None:
        self.state = state
        self.runner: web.AppRunner | None = None

    async def start(self) -> int:
        config = self.state.config.http
        self.runner = web.AppRunner(
            build_app(self.state), access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, config.host, config.port, backlog=1024, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        port: int = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
