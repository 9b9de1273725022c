"""Unauthenticated probes for load balancers and systemd: /livez (process up) and /readyz (accepting work)."""

from __future__ import annotations

from aiohttp import web

from logtraced.api.context import get_state


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = get_state(request)
    reasons = []
    if not state.ready:
        reasons.append("starting or stopping")
    if not state.writer.alive:
        reasons.append("indexer process is not running")
    if reasons:
        return web.json_response({"status": "not_ready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})


def register(app: web.Application) -> None:
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
