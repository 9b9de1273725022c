"""POST /v1/logs/patterns and /v1/logs/insights: the message templates of a search, and what changed in them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import msgspec
from aiohttp import web

from logtraced.analysis.patterns import Pattern
from logtraced.analysis.reports import insights_report, patterns_report
from logtraced.api.authn import authenticate
from logtraced.api.bodies import decode_json
from logtraced.api.context import get_state
from logtraced.api.search import install_pool, run_read, tenant_view
from logtraced.errors import InvalidInput
from logtraced.query.gosyntax import parse_duration
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.query.timerange import resolve_range

PATTERNS_ROUTE: Final = "/v1/logs/patterns"
INSIGHTS_ROUTE: Final = "/v1/logs/insights"
SCOPE: Final = "read:logs"
DEFAULT_LOOKBACK_NS: Final = 3600 * 10**9
DEFAULT_LIMIT: Final = 50
T = TypeVar("T")
MAX_LIMIT: Final = 1000


class PatternsRequest(msgspec.Struct, forbid_unknown_fields=True):
    """`from`/`to` as in /v1/logs/query; `step` (a duration such as 1m) sets the series' buckets."""

    filter: str = ""
    from_: str | int | float | None = msgspec.field(default=None, name="from")
    to: str | int | float | None = None
    limit: int = DEFAULT_LIMIT
    step: str | None = None


class InsightsRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The window ends now; the baseline is the period of its own length just before the window."""

    filter: str = ""
    window: str = "1h"
    baseline: str = "24h"
    limit: int = DEFAULT_LIMIT


async def patterns(request: web.Request) -> web.Response:
    context = await authenticate(request, scope=SCOPE, kind="query")
    body = _decode(await request.read(), PatternsRequest)
    limit = _limit(body.limit)
    pipeline = Pipeline((Filter(parse_kql(body.filter)),))
    window = resolve_range(body.from_, body.to, now_ns=time.time_ns(), default_lookback_ns=DEFAULT_LOOKBACK_NS)
    step_ns = _duration("step", body.step) if body.step is not None else None
    state = get_state(request)
    report = await run_read(
        request,
        lambda: patterns_report(
            tenant_view(request, context.principal),
            pipeline,
            window.start_ns,
            window.end_ns + 1,  # `to` is inclusive, as in /v1/logs/query
            limit=limit,
            max_events=state.config.patterns.max_events,
            step_ns=step_ns,
            deadline=time.monotonic() + state.config.query.timeout_seconds,
        ),
    )
    payload = {
        "patterns": [pattern_json(pattern) for pattern in report.patterns],
        "events_considered": report.events_considered,
        "sampled": report.sampled,
    }
    return web.json_response(payload)


async def insights(request: web.Request) -> web.Response:
    context = await authenticate(request, scope=SCOPE, kind="query")
    body = _decode(await request.read(), InsightsRequest)
    limit = _limit(body.limit)
    pipeline = Pipeline((Filter(parse_kql(body.filter)),))
    window_ns, baseline_ns = _duration("window", body.window), _duration("baseline", body.baseline)
    state = get_state(request)
    result = await run_read(
        request,
        lambda: insights_report(
            tenant_view(request, context.principal),
            pipeline,
            time.time_ns(),
            window_ns,
            baseline_ns,
            limit=limit,
            max_events=state.config.patterns.max_events,
            baseline_events=state.config.patterns.baseline_events,
            deadline=time.monotonic() + state.config.query.timeout_seconds,
        ),
    )
    return web.json_response(msgspec.to_builtins(result))


def pattern_json(pattern: Pattern) -> dict[str, Any]:
    """A pattern as the API shows it: first and last seen as RFC 3339 UTC, series as [unix s, count]."""
    return {
        "pattern": pattern.pattern,
        "count": pattern.count,
        "level": pattern.level,
        "first_seen": _rfc3339(pattern.first_seen),
        "last_seen": _rfc3339(pattern.last_seen),
        "sample": pattern.sample,
        "series": [list(point) for point in pattern.series],
    }


def _rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 10**9)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def _duration(name: str, text: str) -> int:
    value = parse_duration(text.strip())
    if value is None or value <= 0:
        raise InvalidInput(
            f"{name} must be a positive duration such as 15m, 1h or 24h, got {text!r}", code="invalid_duration"
        )
    return value


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", code="invalid_limit")
    return limit


def _decode(body: bytes, kind: type[T]) -> T:
    return decode_json(body, kind, empty=b"{}")


def register(app: web.Application) -> None:
    install_pool(app)
    app.router.add_post(PATTERNS_ROUTE, patterns)
    app.router.add_post(INSIGHTS_ROUTE, insights)
