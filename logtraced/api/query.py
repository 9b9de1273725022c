"""POST /v1/logs/query: the LogTrace KQL search, newest first, with an opaque search-after cursor."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any, Final

import msgspec
from aiohttp import web

from logtraced.api.authn import authenticate
from logtraced.api.bodies import decode_json
from logtraced.api.search import clamp_limit, install_pool, run_search, tenant_view
from logtraced.errors import InvalidCursor
from logtraced.events import event_to_json
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.query.timerange import resolve_range
from logtraced.storage.backend import SearchRequest

ROUTE: Final = "/v1/logs/query"
SCOPE: Final = "read:logs"
DEFAULT_LOOKBACK_NS: Final = 24 * 3600 * 10**9
CURSOR_VERSION: Final = 1
_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1


class KqlRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The request body; `from`/`to` take `-15m`, `now`, ISO-8601 or epoch values."""

    filter: str = ""
    from_: str | int | float | None = msgspec.field(default=None, name="from")
    to: str | int | float | None = None
    limit: int | None = None
    cursor: str | None = None


class Cursor(msgspec.Struct, array_like=True):
    """Where the next page starts (the backend's opaque position), and the window and filter it belongs to.

    The window and the filter's digest travel with it, so a cursor cannot be replayed against
    another filter or widened to another window; the position is checked by the backend.
    """

    version: int
    start_ns: int
    end_ns: int
    filter_digest: str
    position: bytes

    def is_consistent(self) -> bool:
        """What every cursor this server issues satisfies; a client may edit one, so it is checked like input."""
        return self.version == CURSOR_VERSION and _I64_MIN <= self.start_ns < self.end_ns <= _I64_MAX + 1


async def query(request: web.Request) -> web.Response:
    context = await authenticate(request, scope=SCOPE, kind="query")
    body = _decode(await request.read())
    limit = clamp_limit(request, body.limit)
    node = parse_kql(body.filter)
    digest = hashlib.sha256(body.filter.encode()).hexdigest()[:16]
    if body.cursor:
        cursor = _read_cursor(body.cursor, digest)
        start_ns, end_ns, after = cursor.start_ns, cursor.end_ns, cursor.position
    else:
        window = resolve_range(body.from_, body.to, now_ns=time.time_ns(), default_lookback_ns=DEFAULT_LOOKBACK_NS)
        start_ns, end_ns, after = window.start_ns, window.end_ns + 1, None  # `to` is inclusive here
    page = await run_search(
        request,
        tenant_view(request, context.principal),
        SearchRequest(
            start_ns=start_ns,
            end_ns=end_ns,
            pipeline=Pipeline((Filter(node),)),
            limit=limit,
            after=after,
            count_total=True,
        ),
    )
    next_cursor = None
    if page.cursor is not None:
        next_cursor = _write_cursor(Cursor(CURSOR_VERSION, start_ns, end_ns, digest, page.cursor))
    payload: dict[str, Any] = {
        "logs": [event_to_json(row.event) for row in page.rows],
        "count": len(page.rows),
        "total": page.total,
        "total_relation": "eq" if page.total_exact else "gte",
        "took_ms": round(page.stats.seconds * 1000, 3),
        "next_cursor": next_cursor,
        "from": start_ns,
        "to": end_ns - 1,
    }
    return web.json_response(payload)


def _decode(body: bytes) -> KqlRequest:
    return decode_json(body, KqlRequest, hint="bad query request", empty=b"{}")


def _write_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(cursor)).decode().rstrip("=")


def _read_cursor(text: str, digest: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        cursor = msgspec.msgpack.decode(raw, type=Cursor)
    except (ValueError, msgspec.DecodeError) as exc:
        raise InvalidCursor("the cursor is not one this server issued") from exc
    if not cursor.is_consistent():
        raise InvalidCursor("the cursor is not one this server issued")
    if cursor.filter_digest != digest:
        raise InvalidCursor("the cursor belongs to another filter; send the same filter to page")
    return cursor


def register(app: web.Application) -> None:
    install_pool(app)
    app.router.add_post(ROUTE, query)
