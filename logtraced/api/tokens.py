"""POST /api/v4/oauth/access_tokens: exchange an API key (the "refresh token") for a short-lived access token.

This is the Last9-style flow the query_range routes expect: a client keeps its API key
and sends only the token, which expires after `auth.token_ttl_seconds` (24 h by default),
in `X-LAST9-API-TOKEN: Bearer <token>`.  The key must hold read:logs; revoking the key
revokes its tokens too.
"""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web

from logtraced.api.bodies import decode_json
from logtraced.api.context import get_state

ROUTE: Final = "/api/v4/oauth/access_tokens"


class TokenRequest(msgspec.Struct):
    """The request body; other members are ignored, as an OAuth-style client may send more."""

    refresh_token: str


async def mint_token(request: web.Request) -> web.Response:
    """200 with the token; 401 for an unknown or revoked key, 403 for a key without read:logs."""
    wanted = _decode(await request.read())
    token, expires_at = await get_state(request).auth.tokens.mint(wanted.refresh_token.strip())
    return web.json_response(
        {"access_token": token, "expires_at": expires_at, "token_type": "Bearer"},
        headers={"Cache-Control": "no-store"},
    )


def _decode(body: bytes) -> TokenRequest:
    return decode_json(body, TokenRequest, hint='send {"refresh_token": "<api key>"}')


def register(app: web.Application) -> None:
    app.router.add_post(ROUTE, mint_token)
