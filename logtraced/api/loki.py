"""Loki's read API under /loki/api/v1/, so Grafana's built-in Loki data source works with no plugin.

Every route authenticates as any query route does (`Authorization: Bearer <key>`, or `Basic` with
the key as password, which is Grafana's "Basic auth"), with read scope and the query budget; an
`X-Scope-OrgID` header, when present, must name the key's organisation.  Every read goes through
the caller's `TenantView`.  Parameters are read as Loki reads them (`loki_params`), answers are
encoded as Loki encodes them (`loki_encode`), errors take Loki's shape (`api/errors.py`).
Metric queries that are counts by stream labels run in the backend's aggregation
(`logql_exec.run_metric`); others read their samples through paged searches.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from logtraced import __version__
from logtraced.analysis.reports import patterns_report
from logtraced.api import logql_exec, loki_encode, loki_params
from logtraced.api.authn import AuthContext, authenticate
from logtraced.api.context import get_state
from logtraced.api.search import install_pool, run_read, run_search, tenant_view
from logtraced.errors import InvalidInput
from logtraced.query.logql import parse_logql
from logtraced.query.logql_ast import MetricExpr
from logtraced.query.logql_eval import attribute_labels, is_scalar, step_points
from logtraced.query.logql_stages import FIELD_OF_LABEL, STREAM_LABELS
from logtraced.query.pipeline import Parse, ParserKind, Pipeline
from logtraced.query.verify import needs_stages
from logtraced.storage.backend import SearchRequest, Stats, TenantView

BASE: Final = "/loki/api/v1"
SCOPE: Final = "read:logs"
ORG_HEADER: Final = "X-Scope-OrgID"
FLAGS_HEADER: Final = "X-Loki-Response-Encoding-Flags"
DAY_NS: Final = 86_400 * loki_params.NS
MAX_LABEL_VALUES: Final = 10_000
STATS_SAMPLE: Final = 1000
DETECTED_LINES: Final = 1000
# Patterns answered at most, commonest first (Loki's route has no limit; Drilldown lists the top ones).
MAX_PATTERNS: Final = 1000
# Loki's level for lines whose level it could not tell.
UNKNOWN_LEVEL: Final = "unknown"
# Loki's API level this daemon answers like: Grafana decides which features to offer from it.
LOKI_API_VERSION: Final = "3.4.0"
# Each canonical field and the Loki label names it answers to in label discovery.
LABEL_NAMES_OF_FIELD: Final = {
    "service": ("service_name", "service"),
    "level": ("level", "detected_level"),
    "host": ("host",),
    "env": ("env",),
    "index": ("index",),
}
_MATCHER_NAME: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_encode = msgspec.json.Encoder().encode


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(data), content_type="application/json")


def _success(data: Any) -> web.Response:
    return _json({"status": "success", "data": data})


async def _params(request: web.Request) -> MultiDictProxy[str]:
    """Query parameters, plus form fields of a POST (Loki takes both)."""
    merged: MultiDict[str] = MultiDict(request.query)
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        merged.extend((name, value) for name, value in form.items() if isinstance(value, str))
    return MultiDictProxy(merged)


async def _authenticate(request: web.Request) -> AuthContext:
    """Read scope and the query budget; `X-Scope-OrgID` names an organisation, which must be the key's."""
    org = request.headers.get(ORG_HEADER, "").strip() or None
    return await authenticate(request, scope=SCOPE, kind="query", org=org)


def _query_text(params: Mapping[str, str]) -> str:
    text = params.get("query", "")
    if not text.strip():
        raise InvalidInput("query parameter is required: a LogQL query", code="missing_parameter")
    return text


def _deadline(request: web.Request) -> float:
    return time.monotonic() + get_state(request).config.query.timeout_seconds


def _categorize(request: web.Request) -> bool:
    flags = request.headers.get(FLAGS_HEADER, "")
    return loki_encode.CATEGORIZE in (flag.strip() for flag in flags.split(","))


async def query_range(request: web.Request) -> web.Response:
    params = await _params(request)
    context = await _authenticate(request)
    parsed = parse_logql(_query_text(params))
    start, end = loki_params.window(params, time.time_ns())
    view = tenant_view(request, context.principal)
    if isinstance(parsed, Pipeline):
        return await _log_answer(request, params, view, parsed, start, end)
    step = loki_params.step_of(params, start, end)
    return await _metric_answer(request, view, parsed, step_points(start, end, step), instant=False)


async def query(request: web.Request) -> web.Response:
    """The instant query: a metric query at `time` (default now); a log query over the hour before it."""
    params = await _params(request)
    context = await _authenticate(request)
    parsed = parse_logql(_query_text(params))
    at = loki_params.parse_time(params["time"], "time") if params.get("time") else time.time_ns()
    view = tenant_view(request, context.principal)
    if isinstance(parsed, Pipeline):
        return await _log_answer(request, params, view, parsed, at - loki_params.DEFAULT_SINCE_NS, at + 1)
    return await _metric_answer(request, view, parsed, [at], instant=True)


async def _log_answer(
    request: web.Request, params: Mapping[str, str], view: TenantView, pipeline: Pipeline, start: int, end: int
) -> web.Response:
    limit = loki_params.limit_of(params, get_state(request).config.query.max_limit)
    newest_first = loki_params.backward(params)
    page = await run_search(request, view, SearchRequest(start, end, pipeline, limit, newest_first=newest_first))
    categorize = _categorize(request)
    data: dict[str, Any] = {
        "resultType": "streams",
        "result": loki_encode.streams(page.rows, staged=needs_stages(pipeline), categorize=categorize),
        "stats": loki_encode.stats(page.stats),
    }
    if categorize:
        data["encodingFlags"] = [loki_encode.CATEGORIZE]
    return _success(data)


async def _metric_answer(
    request: web.Request, view: TenantView, expr: MetricExpr, steps: list[int], *, instant: bool
) -> web.Response:
    answer = await run_read(request, logql_exec.run_metric, view, expr, steps, _deadline(request))
    figures = loki_encode.stats(answer.stats)
    if instant and is_scalar(expr):
        point = answer.series[0].points[0]
        result: Any = [loki_encode.seconds(point[0]), loki_encode.number_text(point[1])]
        return _success({"resultType": "scalar", "result": result, "stats": figures})
    if instant:
        return _success({"resultType": "vector", "result": loki_encode.vector(answer.series), "stats": figures})
    return _success({"resultType": "matrix", "result": loki_encode.matrix(answer.series), "stats": figures})


def _selector(text: str) -> Pipeline:
    """A stream selector (with optional line filters) as label discovery and series take it."""
    parsed = parse_logql(text)
    if not isinstance(parsed, Pipeline):
        raise InvalidInput(f'expected a stream selector such as {{service_name="api"}}, got {text!r}')
    return parsed


async def _streams(
    request: web.Request, view: TenantView, text: str, start: int, end: int, *, bucket_ns: int = 0
) -> list[logql_exec.StreamCount]:
    pipeline = _selector(text)
    return await run_read(request, logql_exec.stream_counts, view, pipeline, start, end, _deadline(request), bucket_ns)


async def labels(request: web.Request) -> web.Response:
    params = await _params(request)
    context = await _authenticate(request)
    start, end = loki_params.window(params, time.time_ns())
    view = tenant_view(request, context.principal)
    if params.get("query"):
        found = await _streams(request, view, params["query"], start, end)
        fields = {FIELD_OF_LABEL[name] for stream in found for name in stream.labels}
    else:
        fields = set(await run_read(request, view.label_names, start, end))
    names = sorted(name for field in fields for name in LABEL_NAMES_OF_FIELD.get(field, ()))
    return _success(names)


async def label_values(request: web.Request) -> web.Response:
    params = await _params(request)
    context = await _authenticate(request)
    start, end = loki_params.window(params, time.time_ns())
    name = request.match_info["name"]
    view = tenant_view(request, context.principal)
    field = FIELD_OF_LABEL.get(name, name)
    if params.get("query") and name in FIELD_OF_LABEL:
        found = await _streams(request, view, params["query"], start, end)
        stream_name = dict((f, label) for f, label in STREAM_LABELS)[field]
        values = sorted({value for stream in found if (value := stream.labels.get(stream_name))})
    else:
        values = await run_read(request, view.label_values, field, start, end, MAX_LABEL_VALUES)
    return _success(values)


async def series(request: web.Request) -> web.Response:
    params = await _params(request)
    context = await _authenticate(request)
    start, end = loki_params.window(params, time.time_ns())
    selectors = params.getall("match[]", []) or params.getall("match", [])
    if not selectors:
        raise InvalidInput("at least one match[] selector is required", code="missing_parameter")
    view = tenant_view(request, context.principal)
    seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for selector in selectors:
        for stream in await _streams(request, view, selector, start, end):
            seen.setdefault(tuple(sorted(stream.labels.items())), stream.labels)
    return _success(list(seen.values()))


async def index_stats(request: web.Request) -> web.Response:
    """Streams, chunks (stream-days), entries (counted by the backend) and bytes (estimated from a sample)."""
    params = await _params(request)
    context = await _authenticate(request)
    start, end = loki_params.window(params, time.time_ns())
    view = tenant_view(request, context.principal)
    found = await _streams(request, view, _query_text(params), start, end, bucket_ns=DAY_NS)
    entries = sum(stream.entries for stream in found)
    size = 0
    if entries:
        sample = await run_search(request, view, SearchRequest(start, end, _selector(params["query"]), STATS_SAMPLE))
        lines = [row.event.message for row in sample.rows]
        size = round(sum(len(line.encode()) for line in lines) / len(lines) * entries) if lines else 0
    chunks = sum(len(stream.counts) for stream in found)
    return _json({"streams": len(found), "chunks": chunks, "entries": entries, "bytes": size})


def _volume_labels(params: Mapping[str, str], text: str) -> list[str]:
    """`targetLabels`, else the labels the selector's matchers name (Loki's default grouping)."""
    target = [name.strip() for name in params.get("targetLabels", "").split(",") if name.strip()]
    names = target or _MATCHER_NAME.findall(text[text.find("{") + 1 : text.find("}")])
    stream_names = {label for _, label in STREAM_LABELS}
    return [name for name in dict.fromkeys(names) if name in stream_names]


async def index_volume(request: web.Request) -> web.Response:
    return await _volume(request, ranged=False)


async def index_volume_range(request: web.Request) -> web.Response:
    return await _volume(request, ranged=True)


async def _volume(request: web.Request, *, ranged: bool) -> web.Response:
    """Entries per group of target labels, summed by the backend; `aggregateBy=labels` groups by each label alone."""
    params = await _params(request)
    context = await _authenticate(request)
    start, end = loki_params.window(params, time.time_ns())
    text = _query_text(params)
    limit = loki_params.limit_of(params, MAX_LABEL_VALUES)
    step = loki_params.step_of(params, start, end) if ranged else max(end - start, 1)
    view = tenant_view(request, context.principal)
    found = await _streams(request, view, text, start, end, bucket_ns=step)
    names = _volume_labels(params, text)
    groups = [[name] for name in names] if params.get("aggregateBy") == "labels" else [names]
    totals: dict[tuple[tuple[str, str], ...], int] = {}
    for group in groups:
        for stream in found:
            key = tuple((name, stream.labels[name]) for name in group if name in stream.labels)
            if key:
                totals[key] = totals.get(key, 0) + stream.entries
    chosen = sorted(totals, key=lambda key: (-totals[key], key))[:limit]
    if not ranged:
        result = [{"metric": dict(key), "value": [loki_encode.seconds(end), str(totals[key])]} for key in chosen]
        return _success({"resultType": "vector", "result": result, "stats": loki_encode.stats(Stats())})
    matrix = []
    for key in chosen:
        points: dict[int, int] = {}
        for stream in found:
            if all(stream.labels.get(name) == value for name, value in key):
                for bucket, count in stream.counts.items():
                    points[bucket] = points.get(bucket, 0) + count
        values = [[loki_encode.seconds(bucket), str(points[bucket])] for bucket in sorted(points)]
        matrix.append({"metric": dict(key), "values": values})
    return _success({"resultType": "matrix", "result": matrix, "stats": loki_encode.stats(Stats())})


async def detected_labels(request: web.Request) -> web.Response:
    params = await _params(request)
    context = await _authenticate(request)
    start, end = loki_params.window(params, time.time_ns())
    view = tenant_view(request, context.principal)
    found = await _streams(request, view, params.get("query") or '{service_name=~".+"}', start, end)
    values: dict[str, set[str]] = {}
    for stream in found:
        for name, value in stream.labels.items():
            values.setdefault(name, set()).add(value)
    detected = [{"label": name, "cardinality": len(values[name])} for name in sorted(values)]
    return _json({"detectedLabels": detected})


@dataclasses.dataclass
class _Field:
    values: set[str] = dataclasses.field(default_factory=set)
    types: set[str] = dataclasses.field(default_factory=set)
    parsers: set[str] = dataclasses.field(default_factory=set)
    path: list[str] = dataclasses.field(default_factory=list)


async def _detect(request: web.Request) -> tuple[dict[str, _Field], int]:
    """Fields of up to `line_limit` recent lines: structured metadata, keys of JSON lines (parser json), and
    `key=value` pairs of other lines (parser logfmt), as Loki's querier tries each line with both parsers."""
    params = await _params(request)
    context = await _authenticate(request)
    start, end = loki_params.window(params, time.time_ns())
    limit = loki_params.limit_of(params, MAX_LABEL_VALUES) if params.get("limit") else DETECTED_LINES
    line_limit = params.get("line_limit")
    lines = loki_params.limit_of({"limit": line_limit}, MAX_LABEL_VALUES) if line_limit else DETECTED_LINES
    view = tenant_view(request, context.principal)
    pipeline = _selector(_query_text(params))
    page = await run_search(request, view, SearchRequest(start, end, pipeline, lines))
    fields: dict[str, _Field] = {}
    for row in page.rows:
        for name, value in attribute_labels(row.event).items():
            _note(fields, name, value, None, [])
        parsed = _json_fields(row.event.message)
        for name, value, path in parsed:
            _note(fields, name, value, "json", path)
        if not parsed:
            for name, value in _logfmt_fields(row.event.message):
                _note(fields, name, value, "logfmt", [])
    return fields, limit


def _note(fields: dict[str, _Field], name: str, value: str, parser: str | None, path: list[str]) -> None:
    field = fields.setdefault(name, _Field())
    field.values.add(value)
    field.types.add(_field_type(value))
    if parser is not None:
        field.parsers.add(parser)
    if path:
        field.path = path


def _logfmt_fields(line: str) -> list[tuple[str, str]]:
    """`key=value` pairs of a line as `| logfmt` names them; bare words are not fields (Loki drops empty values)."""
    found = []
    for key, value in _LOGFMT.extract(line).items():
        name = _LABEL_UNSAFE.sub("_", key)
        if value and name:
            found.append((f"_{name}" if name[0].isdigit() else name, value))
    return found


def _json_fields(line: str) -> list[tuple[str, str, list[str]]]:
    if not line.startswith("{"):
        return []
    try:
        decoded = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return []
    found: list[tuple[str, str, list[str]]] = []
    pending: list[tuple[Any, list[str]]] = [(decoded, [])]
    while pending:
        value, path = pending.pop()
        if isinstance(value, dict):
            pending.extend((item, [*path, str(key)]) for key, item in value.items())
        elif path and value is not None:
            text = value if isinstance(value, str) else _encode(value).decode()
            found.append(("_".join(path), text, path))
    return found


_LOGFMT: Final = Parse(ParserKind.LOGFMT, "message")
_LABEL_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_]")
_DURATION: Final = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
_BYTES: Final = re.compile(r"\d+(?:\.\d+)?\s?(?:[KMGTPE]i?)?B", re.IGNORECASE)


def _field_type(value: str) -> str:
    """Loki's detected field types: int, float, boolean, duration, bytes, else string."""
    if re.fullmatch(r"[+-]?\d+", value):
        return "int"
    try:
        float(value)
        return "float"
    except ValueError:
        pass
    if value.lower() in ("true", "false"):
        return "boolean"
    if _DURATION.fullmatch(value):
        return "duration"
    return "bytes" if _BYTES.fullmatch(value) else "string"


async def detected_fields(request: web.Request) -> web.Response:
    fields, limit = await _detect(request)
    answer = [
        {
            "label": name,
            "type": next(iter(field.types)) if len(field.types) == 1 else "string",
            "cardinality": len(field.values),
            "parsers": sorted(field.parsers) or None,
            "jsonPath": field.path or None,
        }
        for name, field in sorted(fields.items())
    ][:limit]
    return _json({"fields": answer, "limit": limit})


async def detected_field_values(request: web.Request) -> web.Response:
    fields, limit = await _detect(request)
    found = fields.get(request.match_info["name"])
    return _json({"values": sorted(found.values)[:limit] if found else [], "limit": limit})


async def patterns(request: web.Request) -> web.Response:
    """Logs Drilldown's Patterns tab: message templates of the newest `patterns.max_events` matching lines.

    Answered as Loki's querier writes it (`marshal.WriteQueryPatternsResponseJSON`): each pattern
    with its level and `samples` of `[unix seconds, count]` per `step`, both JSON numbers.
    """
    params = await _params(request)
    context = await _authenticate(request)
    start, end = loki_params.window(params, time.time_ns())
    pipeline = _selector(_query_text(params))
    step = max(loki_params.step_of(params, start, end), loki_params.NS)  # samples are whole seconds
    view = tenant_view(request, context.principal)
    max_events = get_state(request).config.patterns.max_events
    report = await run_read(
        request,
        lambda: patterns_report(
            view,
            pipeline,
            start,
            end,
            limit=MAX_PATTERNS,
            max_events=max_events,
            step_ns=step,
            deadline=_deadline(request),
        ),
    )
    data = [
        {
            "pattern": pattern.pattern,
            "level": pattern.level or UNKNOWN_LEVEL,
            "samples": [[seconds, count] for seconds, count in pattern.series],
        }
        for pattern in report.patterns
    ]
    return _success(data)


async def buildinfo(request: web.Request) -> web.Response:
    """The Loki API level answered (Grafana picks features by it); the revision names this daemon."""
    return _json(
        {
            "version": LOKI_API_VERSION,
            "revision": f"logtraced-{__version__}",
            "branch": "logtraced",
            "buildUser": "logtraced",
            "buildDate": "",
            "goVersion": "",
        }
    )


def register(app: web.Application) -> None:
    install_pool(app)
    read_routes = {
        "/query_range": query_range,
        "/query": query,
        "/labels": labels,
        "/label/{name}/values": label_values,
        "/series": series,
        "/index/stats": index_stats,
        "/index/volume": index_volume,
        "/index/volume_range": index_volume_range,
    }
    for path, handler in read_routes.items():
        app.router.add_get(BASE + path, handler)
        app.router.add_post(BASE + path, handler)
    app.router.add_get(BASE + "/detected_labels", detected_labels)
    app.router.add_get(BASE + "/detected_fields", detected_fields)
    app.router.add_get(BASE + "/detected_field/{name}/values", detected_field_values)
    app.router.add_get(BASE + "/patterns", patterns)
    app.router.add_get(BASE + "/status/buildinfo", buildinfo)
