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

from logtraced.api.context import get_state
from logtraced.errors import InvalidInput

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
    try:
        return msgspec.json.decode(body, type=TokenRequest)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f'send {{"refresh_token": "<api key>"}}: {exc}') from exc
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", code="malformed_json") from exc
    except RecursionError:
        raise InvalidInput("the body nests JSON too deeply", code="malformed_json") from None


def register(app: web.Application) -> None:
    app.router.add_post(ROUTE, mint_token)
