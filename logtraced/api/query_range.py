"""The logs query API: POST .../query_range/json with a JSON pipeline, and labels / label values discovery.

Routes live under `/api/v4/organizations/{org}/logs/api/...`, authenticated with
`X-LAST9-API-TOKEN: Bearer <token>` (an access token or an API key with read:logs; plain
`Authorization: Bearer` also works).  Responses keep the document's shapes exactly:
`{"status": "success", "data": ...}`, errors `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from logtraced.api.authn import AUTHORIZATION, LAST9_TOKEN, AuthContext, authenticate
from logtraced.api.context import get_state
from logtraced.api.search import clamp_limit, install_pool, run_blocking, run_counts, run_query
from logtraced.errors import ApiError, QueryError
from logtraced.model import Tenant
from logtraced.query.execute import QueryRequest, QueryResult, Row, Series
from logtraced.query.pipeline import parse_pipeline
from logtraced.query.timerange import parse_instant
from logtraced.storage import schema
from logtraced.storage.reader import IndexReader, label_names, label_values, newest_events

BASE: Final = "/api/v4/organizations/{org}/logs/api"
SCOPE: Final = "read:logs"
MAX_LABEL_VALUES: Final = 10_000
END_OF_TIME_NS: Final = 2**63 - 1
PHYSICAL: Final = "physical_index:"
REHYDRATION: Final = "rehydration_index:"
STREAM_FIELDS: Final = schema.LABEL_FIELDS
MAX_STEPS: Final = 11_000
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_DURATION_UNITS: Final = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


async def query_range(request: web.Request) -> web.Response:
    context = await _authenticate(request)
    state = get_state(request)
    start_ns, end_ns = _window(request)
    limit = clamp_limit(request, _int_parameter(request, "limit"))
    newest_first = _direction(request)
    offset = _int_parameter(request, "offset") or 0
    _check_region(request, state.config.query.region)
    index = await _index(request, context, start_ns, end_ns)
    pipeline = parse_pipeline(await request.read())
    principal = context.principal
    query = QueryRequest(
        tenant=Tenant(principal.org, principal.environment),
        start_ns=start_ns,
        end_ns=end_ns,
        pipeline=pipeline,
        limit=limit,
        newest_first=newest_first,
        offset=offset,
        index=index,
    )
    aggregate = pipeline.aggregate
    if aggregate is not None:
        step_ns = _step(request, start_ns, end_ns)
        series, result = await run_counts(request, query, step_ns, aggregate.by)
        return web.json_response({"status": "success", "data": _matrix(series, result, step_ns, aggregate.function)})
    result = await run_query(request, query)
    return web.json_response({"status": "success", "data": _streams(result)})


def _matrix(series: list[Series], result: QueryResult, step_ns: int, function: str) -> dict[str, Any]:
    """Loki's matrix shape: one entry per label set, values `[seconds, "value"]` in time order."""
    step_seconds = step_ns / 1e9
    entries = []
    for item in series:
        points = []
        for bucket in sorted(item.counts):
            count = item.counts[bucket]
            value = count / step_seconds if function == "rate" else count
            points.append([bucket / 1e9, _number_text(value)])
        entries.append({"metric": item.labels, "values": points})
    return {"resultType": "matrix", "result": entries or None, "stats": _stats(result)}


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _step(request: web.Request, start_ns: int, end_ns: int) -> int:
    """`step` as a duration (`30s`, `5m`, `1h`) or seconds; absent: Loki's default of range/250, at least 1 s."""
    raw = request.query.get("step", "").strip()
    if not raw:
        return max((end_ns - start_ns) // 250 // 10**9, 1) * 10**9
    match = _DURATION.fullmatch(raw)
    if match is None:
        raise ApiError(400, "invalid_parameter", f"step must be a duration such as 30s, 5m, 1h or seconds, got {raw!r}")
    step_ns = int(float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"])
    if step_ns <= 0:
        raise ApiError(400, "invalid_parameter", "step must be positive")
    if (end_ns - start_ns) // step_ns > MAX_STEPS:
        raise ApiError(
            400, "invalid_parameter", f"start..end / step gives more than {MAX_STEPS} points; use a larger step"
        )
    return step_ns


def _streams(result: QueryResult) -> dict[str, Any]:
    """Rows grouped by label set, in first-seen order; each stream's values keep the query's order."""
    streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for row in result.rows:
        labels = _stream_labels(row)
        streams.setdefault(tuple(sorted(labels.items())), []).append([str(row.event.timestamp), row.event.message])
    return {
        "resultType": "streams",
        "result": [{"stream": dict(key), "values": values} for key, values in streams.items()] or None,
        "stats": _stats(result),
    }


def _stats(result: QueryResult) -> dict[str, Any]:
    """Figures of this query: lines are documents read from the index, bytes their message bytes."""
    seconds = result.seconds
    return {
        "summary": {
            "bytesProcessedPerSecond": int(result.bytes_examined / seconds) if seconds else 0,
            "linesProcessedPerSecond": int(result.lines_examined / seconds) if seconds else 0,
            "totalBytesProcessed": result.bytes_examined,
            "totalLinesProcessed": result.lines_examined,
            "execTime": round(seconds, 6),
        }
    }


def _stream_labels(row: Row) -> dict[str, str]:
    """The event's own labels, then the parsed ones (already renamed where they collide: Parse.extract)."""
    event = row.event
    labels = {name: getattr(event, name) for name in STREAM_FIELDS if getattr(event, name)}
    labels.update(row.labels)
    return labels


async def labels(request: web.Request) -> web.Response:
    context = await _authenticate(request)
    start_ns, end_ns = _window(request)
    tenant = Tenant(context.principal.org, context.principal.environment)
    names = await run_blocking(request, label_names, get_state(request).reader, tenant, start_ns, end_ns - 1)
    return web.json_response({"status": "success", "data": names})


async def values(request: web.Request) -> web.Response:
    context = await _authenticate(request)
    start_ns, end_ns = _window(request)
    name = request.match_info["name"]
    if not name or len(name) > 256:
        raise ApiError(400, "invalid_label", "label names are 1 to 256 characters")
    tenant = Tenant(context.principal.org, context.principal.environment)
    reader = get_state(request).reader
    found = await run_blocking(request, label_values, reader, tenant, start_ns, end_ns - 1, name, MAX_LABEL_VALUES)
    return web.json_response({"status": "success", "data": found})


async def _authenticate(request: web.Request) -> AuthContext:
    """The document's header, X-LAST9-API-TOKEN; plain Authorization is accepted when it is absent."""
    header = LAST9_TOKEN if LAST9_TOKEN in request.headers or AUTHORIZATION not in request.headers else AUTHORIZATION
    return await authenticate(request, scope=SCOPE, kind="query", org=request.match_info["org"], header=header)


def _window(request: web.Request) -> tuple[int, int]:
    """`start` and `end` (required): Unix ns, or seconds, or RFC 3339; end is exclusive as in Loki."""
    found = {}
    for name in ("start", "end"):
        raw = request.query.get(name)
        if raw is None or not raw.strip():
            raise ApiError(400, "missing_parameter", f"the query parameter {name} (Unix nanoseconds) is required")
        try:
            found[name] = parse_instant(raw)
        except QueryError as exc:
            raise ApiError(400, "invalid_parameter", f"{name}: {exc.message}") from exc
    if found["start"] >= found["end"]:
        raise ApiError(400, "invalid_parameter", "start must be before end")
    return found["start"], found["end"]


def _int_parameter(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ApiError(400, "invalid_parameter", f"{name} must not be negative, got {value}")
    return value


def _direction(request: web.Request) -> bool:
    """True for backward (newest first, the default), False for forward."""
    raw = request.query.get("direction", "backward").lower()
    if raw not in ("backward", "forward"):
        raise ApiError(400, "invalid_parameter", f"direction must be forward or backward, got {raw!r}")
    return raw == "backward"


def _check_region(request: web.Request, configured: str) -> None:
    region = request.query.get("region")
    if region and region != configured:
        raise ApiError(400, "invalid_region", f"this node answers for region {configured!r}, not {region!r}")


async def _index(request: web.Request, context: AuthContext, start_ns: int, end_ns: int) -> str | None:
    """`index=physical_index:<name>` reads one routed index; an index no event was ever routed to is 404."""
    raw = request.query.get("index")
    if not raw:
        return None
    if raw.startswith(REHYDRATION):
        raise ApiError(
            404,
            "index_not_found",
            f"rehydration index {raw[len(REHYDRATION) :]!r} does not exist: this node has no archive to rehydrate from",
        )
    if not raw.startswith(PHYSICAL) or len(raw) == len(PHYSICAL):
        raise ApiError(400, "invalid_parameter", "index must be physical_index:<name> or rehydration_index:<name>")
    name = raw[len(PHYSICAL) :]
    tenant = Tenant(context.principal.org, context.principal.environment)
    known = await run_blocking(request, _index_known, get_state(request).reader, tenant, name, start_ns, end_ns)
    if not known:
        raise ApiError(404, "index_not_found", f"no physical index named {name!r} in this organisation")
    return name


def _index_known(reader: IndexReader, tenant: Tenant, name: str, start_ns: int, end_ns: int) -> bool:
    """Whether any event of the tenant was routed to `name`, found with one term lookup per day.

    The query's own days are asked first (the query opens them anyway); only when they hold none
    are the other days asked, so a known index that is empty in the window answers an empty result.
    """
    for low, high in ((start_ns, end_ns - 1), (0, END_OF_TIME_NS)):
        if newest_events(reader, tenant, low, high, field=schema.INDEX, term=name, limit=1):
            return True
    return False


def register(app: web.Application) -> None:
    install_pool(app)
    app.router.add_post(BASE + "/v2/query_range/json", query_range)
    app.router.add_get(BASE + "/v1/labels", labels)
    app.router.add_get(BASE + "/v1/label/{name}/values", values)
