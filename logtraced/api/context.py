"""How route handlers reach the daemon's shared state, typed, without importing the daemon at module load."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from logtraced.daemon import DaemonState

STATE_KEY: web.AppKey[DaemonState] = web.AppKey("state")


def get_state(request: web.Request) -> DaemonState:
    return request.app[STATE_KEY]
