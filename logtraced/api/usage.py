"""GET /v1/usage: requests (ingest, query, all), events, bytes, rejections, 429s, overflow per key per UTC hour.

The organisation always comes from the key, never from the request, so no parameter can
show another organisation's usage.  An admin key sees every key of its organisation; any
other key sees only its own rows (asking for another key's id is 403).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from logtraced.api.authn import authenticate
from logtraced.api.context import get_state
from logtraced.api.keys import utc_iso
from logtraced.auth.ratelimit import HOUR_SECONDS
from logtraced.auth.usage import UsageRow
from logtraced.errors import Forbidden, InvalidInput

ROUTE: Final = "/v1/usage"
ADMIN_SCOPE: Final = "admin"
DEFAULT_SPAN_SECONDS: Final = 24 * HOUR_SECONDS
# The longest range one request may cover: a year of hourly rows per key.
MAX_SPAN_SECONDS: Final = 366 * 24 * HOUR_SECONDS
_RELATIVE: Final = re.compile(r"-(\d+)([smhd])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": HOUR_SECONDS, "d": 24 * HOUR_SECONDS}
_COUNTERS: Final = (
    "requests",
    "ingest_requests",
    "query_requests",
    "events",
    "bytes",
    "rejections",
    "throttled",
    "overflow_events",
)


async def usage(request: web.Request) -> web.Response:
    """Hourly rows for hours starting in [from, to); both default to the last 24 hours up to now."""
    context = await authenticate(request, scope=None, kind=None)
    principal = context.principal
    auth = get_state(request).auth
    query = request.query
    now = auth.clock()
    until = parse_moment(query["to"], now, "to") if "to" in query else now
    since = parse_moment(query["from"], now, "from") if "from" in query else until - DEFAULT_SPAN_SECONDS
    if since > until:
        raise InvalidInput("from must not be later than to", code="invalid_parameter")
    if until - since > MAX_SPAN_SECONDS:
        raise InvalidInput(f"from..to may span at most {MAX_SPAN_SECONDS // 86_400} days", code="invalid_parameter")
    key_id = request.query.get("key_id") or None
    if ADMIN_SCOPE not in principal.scopes:
        if key_id not in (None, principal.key_id):
            raise Forbidden("only an admin key may read the usage of other keys", code="insufficient_scope")
        key_id = principal.key_id
    rows = await auth.usage.report(principal.org, key_id, since, until)
    return web.json_response(
        {
            "org": principal.org,
            "from": utc_iso(since),
            "to": utc_iso(until),
            "usage": [_row(row) for row in rows],
            "totals": {name: sum(getattr(row, name) for row in rows) for name in _COUNTERS},
        }
    )


def parse_moment(text: str, now: float, name: str) -> float:
    """Epoch seconds from `now`, epoch seconds, ISO-8601 (no offset = UTC) or relative `-24h` / `-30m` / `-7d`."""
    text = text.strip()
    if text == "now":
        return now
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        return now - int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
    epoch = _epoch_or_iso(text)
    if epoch is None or not math.isfinite(epoch):
        raise InvalidInput(
            f"{name}={text!r} is not a time: use epoch seconds, ISO-8601, now, or -<n>(s|m|h|d)",
            code="invalid_parameter",
        )
    return epoch


def _epoch_or_iso(text: str) -> float | None:
    """Epoch seconds written as a number, else an ISO-8601 moment; None when it is neither."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _row(row: UsageRow) -> dict[str, Any]:
    return {
        "key_id": row.key_id,
        "hour": utc_iso(row.hour),
        "hour_epoch": row.hour,
        **{name: getattr(row, name) for name in _COUNTERS},
    }


def register(app: web.Application) -> None:
    app.router.add_get(ROUTE, usage)
