"""/v1/keys: an admin key creates, lists and revokes the API keys of its own organisation and environment.

The confinement is deliberate: an admin key of `staging` cannot mint a `production` key,
so a leaked staging credential never widens into production.  Operators manage every key
of every organisation with `logtraced keys` on the host.  A new key's secret appears once,
in the 201 answer, and is stored only as a hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from aiohttp import web

from logtraced.api.authn import authenticate
from logtraced.api.bodies import decode_json
from logtraced.api.context import get_state
from logtraced.auth.keys import KeyRecord
from logtraced.auth.principal import check_environment
from logtraced.errors import Forbidden, InvalidInput, NotFound

ROUTE: Final = "/v1/keys"
ADMIN_SCOPE: Final = "admin"


class KeyRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/keys; organisation and environment default to the admin key's own."""

    scopes: list[str]
    environment: str | None = None
    org: str | None = None
    tier: str | None = None
    name: str = ""


async def create_key(request: web.Request) -> web.Response:
    context = await authenticate(request, scope=ADMIN_SCOPE, kind=None)
    principal = context.principal
    wanted = _decode_request(await request.read())
    if wanted.org is not None and wanted.org != principal.org:
        raise Forbidden(
            f"this key manages organisation {principal.org}, not {wanted.org}", code="forbidden_organization"
        )
    check_environment(principal, wanted.environment)
    tiers = get_state(request).config.auth
    tier = wanted.tier if wanted.tier is not None else tiers.default_tier
    if tier not in tiers.tiers:
        raise InvalidInput(f"tier {tier!r} is not one of {', '.join(sorted(tiers.tiers))}")
    keys = get_state(request).auth.keys
    record, secret = await keys.create(principal.org, principal.environment, wanted.scopes, tier, wanted.name)
    return web.json_response(
        {**key_json(record), "secret": secret},
        status=201,
        headers={"Location": f"{ROUTE}/{record.id}", "Cache-Control": "no-store"},
    )


async def list_keys(request: web.Request) -> web.Response:
    context = await authenticate(request, scope=ADMIN_SCOPE, kind=None)
    principal = context.principal
    records = await get_state(request).auth.keys.list(principal.org)
    return web.json_response(
        {"keys": [key_json(record) for record in records if record.environment == principal.environment]}
    )


async def revoke_key(request: web.Request) -> web.Response:
    """204 when an active key of the caller's organisation and environment was revoked, else 404."""
    context = await authenticate(request, scope=ADMIN_SCOPE, kind=None)
    principal = context.principal
    key_id = request.match_info["key_id"]
    keys = get_state(request).auth.keys
    owned = any(
        record.id == key_id and record.environment == principal.environment and record.active
        for record in await keys.list(principal.org)
    )
    if not owned or not await keys.revoke(key_id, principal.org):
        raise NotFound(f"no active key {key_id} in this organisation and environment")
    return web.Response(status=204)


def _decode_request(body: bytes) -> KeyRequest:
    return decode_json(body, KeyRequest, hint="bad key request")


def key_json(record: KeyRecord) -> dict[str, Any]:
    """A key as the API and `logtraced keys list --json` show it: everything but the secret."""
    return {
        "id": record.id,
        "display_prefix": record.display_prefix,
        "org": record.org,
        "environment": record.environment,
        "scopes": sorted(record.scopes),
        "tier": record.tier,
        "name": record.name,
        "created_at": utc_iso(record.created_at),
        "revoked_at": utc_iso(record.revoked_at) if record.revoked_at is not None else None,
        "active": record.active,
    }


def utc_iso(epoch: float) -> str:
    """Epoch seconds as the API writes moments: ISO-8601, UTC, whole seconds, `Z`."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def register(app: web.Application) -> None:
    app.router.add_post(ROUTE, create_key)
    app.router.add_get(ROUTE, list_keys)
    app.router.add_delete(ROUTE + "/{key_id}", revoke_key)
