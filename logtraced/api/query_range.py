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
from logtraced.api.search import clamp_limit, install_pool, run_count, run_read, run_search, tenant_view
from logtraced.errors import InvalidInput, NotFound, QueryError
from logtraced.query.pipeline import parse_pipeline
from logtraced.query.timerange import parse_instant
from logtraced.storage.backend import CountRequest, CountResult, Row, SearchPage, SearchRequest, Stats, TenantView

BASE: Final = "/api/v4/organizations/{org}/logs/api"
SCOPE: Final = "read:logs"
MAX_LABEL_VALUES: Final = 10_000
PHYSICAL: Final = "physical_index:"
REHYDRATION: Final = "rehydration_index:"
# The event fields a stream is labelled with, in this order (those non-empty).
STREAM_FIELDS: Final = ("service", "level", "env", "host", "index")
REGION_HEADER: Final = "X-LogTrace-Region"
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
    region = _check_region(request, state.config.query.region)
    view = tenant_view(request, context.principal)
    index = await _index(request, view)
    pipeline = parse_pipeline(await request.read())
    headers = {REGION_HEADER: region}
    aggregate = pipeline.aggregate
    if aggregate is not None:
        step_ns = _step(request, start_ns, end_ns)
        counts = await run_count(
            request, view, CountRequest(start_ns, end_ns, pipeline, step_ns, aggregate.by, index=index)
        )
        data = _matrix(counts, step_ns, aggregate.function)
        return web.json_response({"status": "success", "data": data}, headers=headers)
    page = await run_search(
        request,
        view,
        SearchRequest(
            start_ns=start_ns,
            end_ns=end_ns,
            pipeline=pipeline,
            limit=limit,
            newest_first=newest_first,
            offset=offset,
            index=index,
        ),
    )
    return web.json_response({"status": "success", "data": _streams(page)}, headers=headers)


def _matrix(counts: CountResult, step_ns: int, function: str) -> dict[str, Any]:
    """Loki's matrix shape: one entry per label set, values `[seconds, "value"]` in time order."""
    step_seconds = step_ns / 1e9
    entries = []
    for item in counts.series:
        points = []
        for bucket in sorted(item.counts):
            count = item.counts[bucket]
            value = count / step_seconds if function == "rate" else count
            points.append([bucket / 1e9, _number_text(value)])
        entries.append({"metric": item.labels, "values": points})
    return {"resultType": "matrix", "result": entries or None, "stats": _stats(counts.stats)}


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _step(request: web.Request, start_ns: int, end_ns: int) -> int:
    """`step` as a duration (`30s`, `5m`, `1h`) or seconds; absent: Loki's default of range/250, at least 1 s."""
    raw = request.query.get("step", "").strip()
    if not raw:
        return max((end_ns - start_ns) // 250 // 10**9, 1) * 10**9
    match = _DURATION.fullmatch(raw)
    if match is None:
        raise InvalidInput(
            f"step must be a duration such as 30s, 5m, 1h or seconds, got {raw!r}", code="invalid_parameter"
        )
    step_ns = int(float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"])
    if step_ns <= 0:
        raise InvalidInput("step must be positive", code="invalid_parameter")
    if (end_ns - start_ns) // step_ns > MAX_STEPS:
        raise InvalidInput(
            f"start..end / step gives more than {MAX_STEPS} points; use a larger step", code="invalid_parameter"
        )
    return step_ns


def _streams(page: SearchPage) -> dict[str, Any]:
    """Rows grouped by label set, in first-seen order; each stream's values keep the query's order."""
    streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for row in page.rows:
        labels = _stream_labels(row)
        streams.setdefault(tuple(sorted(labels.items())), []).append([str(row.event.timestamp), row.event.message])
    return {
        "resultType": "streams",
        "result": [{"stream": dict(key), "values": values} for key, values in streams.items()] or None,
        "stats": _stats(page.stats),
    }


def _stats(stats: Stats) -> dict[str, Any]:
    """Figures of this query: lines are documents read from the store, bytes their message bytes."""
    seconds = stats.seconds
    return {
        "summary": {
            "bytesProcessedPerSecond": int(stats.bytes_examined / seconds) if seconds else 0,
            "linesProcessedPerSecond": int(stats.lines_examined / seconds) if seconds else 0,
            "totalBytesProcessed": stats.bytes_examined,
            "totalLinesProcessed": stats.lines_examined,
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
    names = await run_read(request, tenant_view(request, context.principal).label_names, start_ns, end_ns)
    return web.json_response({"status": "success", "data": names})


async def values(request: web.Request) -> web.Response:
    context = await _authenticate(request)
    start_ns, end_ns = _window(request)
    name = request.match_info["name"]
    if not name or len(name) > 256:
        raise InvalidInput("label names are 1 to 256 characters", code="invalid_label")
    view = tenant_view(request, context.principal)
    found = await run_read(request, view.label_values, name, start_ns, end_ns, MAX_LABEL_VALUES)
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
            raise InvalidInput(f"the query parameter {name} (Unix nanoseconds) is required", code="missing_parameter")
        try:
            found[name] = parse_instant(raw)
        except QueryError as exc:
            raise InvalidInput(f"{name}: {exc.message}", code="invalid_parameter") from exc
    if found["start"] >= found["end"]:
        raise InvalidInput("start must be before end", code="invalid_parameter")
    return found["start"], found["end"]


def _int_parameter(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}", code="invalid_parameter") from None
    if value < 0:
        raise InvalidInput(f"{name} must not be negative, got {value}", code="invalid_parameter")
    return value


def _direction(request: web.Request) -> bool:
    """True for backward (newest first, the default), False for forward."""
    raw = request.query.get("direction", "backward").lower()
    if raw not in ("backward", "forward"):
        raise InvalidInput(f"direction must be forward or backward, got {raw!r}", code="invalid_parameter")
    return raw == "backward"


def _check_region(request: web.Request, configured: str) -> str:
    """The region answered for: a configured `query.region` is enforced; without one the node answers any."""
    region = request.query.get("region", "")
    if configured and region and region != configured:
        raise InvalidInput(f"this node answers for region {configured!r}, not {region!r}", code="invalid_region")
    return configured or region or "any"


async def _index(request: web.Request, view: TenantView) -> str | None:
    """`index=physical_index:<name>` reads one routed index; an index no event was ever routed to is 404."""
    raw = request.query.get("index")
    if not raw:
        return None
    if raw.startswith(REHYDRATION):
        raise NotFound(
            f"rehydration index {raw[len(REHYDRATION) :]!r} does not exist: this node has no archive to rehydrate from",
            code="index_not_found",
        )
    if not raw.startswith(PHYSICAL) or len(raw) == len(PHYSICAL):
        raise InvalidInput("index must be physical_index:<name> or rehydration_index:<name>", code="invalid_parameter")
    name = raw[len(PHYSICAL) :]
    if not await run_read(request, view.has_index, name):
        raise NotFound(f"no physical index named {name!r} in this organisation", code="index_not_found")
    return name


def register(app: web.Application) -> None:
    install_pool(app)
    app.router.add_post(BASE + "/v2/query_range/json", query_range)
    app.router.add_get(BASE + "/v1/labels", labels)
    app.router.add_get(BASE + "/v1/label/{name}/values", values)
