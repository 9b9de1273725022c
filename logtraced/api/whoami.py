"""GET /v1/whoami: which organisation, environment, scopes and tier the presented credential carries.

A client that holds only a secret (the web console after sign-in, a script checking its
configuration) cannot otherwise learn whose events it reads: the key's tenant is decided
by the server, never by the request.  The configured tiers' hourly budgets come along, so
a usage chart can draw each key's budget without a second, admin-only route.  Any valid key
or token may ask; it is not rate-limited, and the answer names the key by its display prefix,
never by its secret.
"""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web

from logtraced.api.authn import authenticate
from logtraced.api.context import get_state

ROUTE: Final = "/v1/whoami"


async def whoami(request: web.Request) -> web.Response:
    principal = (await authenticate(request, scope=None, kind=None)).principal
    state = get_state(request)
    records = await state.auth.keys.list(principal.org)
    prefix = next((record.display_prefix for record in records if record.id == principal.key_id), "")
    return web.json_response(
        {
            "org": principal.org,
            "environment": principal.environment,
            "scopes": sorted(principal.scopes),
            "tier": principal.tier,
            "key_id": principal.key_id,
            "key_prefix": prefix,
            "via": principal.via,
            "tiers": {name: msgspec.to_builtins(tier) for name, tier in state.config.auth.tiers.items()},
        },
        headers={"Cache-Control": "no-store"},
    )


def register(app: web.Application) -> None:
    app.router.add_get(ROUTE, whoami)
