"""Live tail routes: `GET /v1/logs/tail?filter=<KQL>` (Server-Sent Events) and Loki's `/loki/api/v1/tail` WebSocket.

Both read from the `TailHub` the ingest pipeline feeds after each fsync (see ingest/tail.py for
why tail follows the ingest path): a subscriber is registered under the caller's tenant, so
only that tenant's events ever reach it.  An optional `from` (SSE), or Loki's `start` (an hour
ago when absent, as in Loki), first replays the recent past through the caller's `TenantView`;
the subscription starts before the replay, and live events the replay already showed (same
event id) are skipped, so nothing is missed or repeated at the seam.  A slow client is told what
it missed: an SSE `dropped` event with the count, or Loki's `dropped_entries`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

import msgspec
from aiohttp import WSMsgType, web

from logtraced.api import loki_params
from logtraced.api.authn import authenticate
from logtraced.api.context import SERVICES_KEY
from logtraced.api.loki import ORG_HEADER
from logtraced.api.search import run_search, tenant_view
from logtraced.auth.principal import Principal
from logtraced.errors import InvalidInput
from logtraced.events import event_to_json
from logtraced.ingest.tail import TailHub
from logtraced.model import Event
from logtraced.query.evaluate import build_matcher
from logtraced.query.kql import parse_kql
from logtraced.query.logql import parse_logql
from logtraced.query.logql_eval import build_log_pipeline
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.query.timerange import parse_time
from logtraced.storage.backend import SearchRequest

TAIL_KEY: Final = web.AppKey("tail_hub", TailHub)
SCOPE: Final = "read:logs"
KEEPALIVE_SECONDS: Final = 15.0
REPLAY_LIMIT: Final = 1000
MAX_REPLAY_NS: Final = 3600 * 1_000_000_000
_encode = msgspec.json.Encoder().encode


async def _replay(
    request: web.Request, pipeline: Pipeline, start_ns: int, limit: int, principal: Principal
) -> list[Event]:
    """The most recent `limit` matching events since `start_ns`, oldest first."""
    now = time.time_ns()
    start_ns = max(start_ns, now - MAX_REPLAY_NS)
    view = tenant_view(request, principal)
    page = await run_search(request, view, SearchRequest(start_ns, now + 1, pipeline, limit))
    return [row.event for row in reversed(page.rows)]


def _hub(request: web.Request) -> TailHub:
    return request.app[TAIL_KEY]


async def sse_tail(request: web.Request) -> web.StreamResponse:
    """One `data:` event per log (the JSON of /v1/logs/query rows), `event: dropped` when some were lost."""
    context = await authenticate(request, scope=SCOPE, kind="query")
    pipeline = Pipeline((Filter(parse_kql(request.query.get("filter", ""))),))
    matcher = build_matcher(pipeline.prefilter)
    since = request.query.get("from")
    start_ns = parse_time(since, now_ns=time.time_ns()) if since else None
    hub = _hub(request)
    subscriber = hub.subscribe(context.principal.tenant, lambda event: matcher(event, {}))
    try:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        shown: set[int] = set()
        if start_ns is not None:
            for event in await _replay(request, pipeline, start_ns, REPLAY_LIMIT, context.principal):
                shown.add(event.id)
                await response.write(b"data: " + _encode(event_to_json(event)) + b"\n\n")
        while True:
            try:
                events, _, dropped = await asyncio.wait_for(subscriber.take(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if dropped:
                await response.write(b"event: dropped\ndata: " + _encode({"dropped": dropped}) + b"\n\n")
            chunk = b"".join(
                b"data: " + _encode(event_to_json(event)) + b"\n\n" for event in events if event.id not in shown
            )
            if chunk:
                await response.write(chunk)
    finally:
        hub.unsubscribe(subscriber)


async def loki_tail(request: web.Request) -> web.StreamResponse:
    """Loki's tail WebSocket: text frames `{"streams": [...], "dropped_entries": [...]}`."""
    org = request.headers.get(ORG_HEADER, "").strip() or None
    context = await authenticate(request, scope=SCOPE, kind="query", org=org)
    parsed = parse_logql(request.query.get("query", "") or "")
    if not isinstance(parsed, Pipeline):
        raise InvalidInput('tail takes a log query such as {service_name="api"}, not a metric query')
    run = build_log_pipeline(parsed)
    limit = loki_params.limit_of(request.query, REPLAY_LIMIT)
    # As Loki's querier: `start` defaults to an hour ago, so Grafana (which sends only `query`) sees recent lines first.
    raw_start = request.query.get("start")
    start = loki_params.parse_time(raw_start, "start") if raw_start else time.time_ns() - loki_params.DEFAULT_SINCE_NS
    hub = _hub(request)
    subscriber = hub.subscribe(context.principal.tenant, lambda event: run(event) is not None)
    socket = web.WebSocketResponse(heartbeat=KEEPALIVE_SECONDS)
    try:
        await socket.prepare(request)
        replayed = await _replay(request, parsed, start, limit, context.principal)
        shown = {event.id for event in replayed}
        if replayed:
            await socket.send_str(_frame(run, replayed, []))
        closed = asyncio.ensure_future(_closed(socket))
        while not closed.done():
            taking = asyncio.ensure_future(subscriber.take())
            await asyncio.wait({taking, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not taking.done():
                taking.cancel()
                break
            events, dropped, _ = taking.result()
            fresh = [event for event in events if event.id not in shown]
            if fresh or dropped:
                await socket.send_str(_frame(run, fresh, dropped))
    finally:
        hub.unsubscribe(subscriber)
        await socket.close()
    return socket


async def _closed(socket: web.WebSocketResponse) -> None:
    """Returns when the client closes (tail clients send nothing else)."""
    async for message in socket:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return


def _frame(run: Callable[[Event], Any], events: list[Event], dropped: list[Event]) -> str:
    streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for event in events:
        line = run(event)
        if line is not None:
            streams.setdefault(tuple(sorted(line.labels.items())), []).append([str(event.timestamp), line.line])
    lost = []
    for event in dropped:
        line = run(event)
        labels = line.labels if line is not None else {}
        text = "{" + ", ".join(f"{name}={_encode(value).decode()}" for name, value in sorted(labels.items())) + "}"
        lost.append({"labels": text, "timestamp": str(event.timestamp)})
    frame: dict[str, Any] = {"streams": [{"stream": dict(key), "values": values} for key, values in streams.items()]}
    if lost:
        frame["dropped_entries"] = lost
    return _encode(frame).decode()


def register(app: web.Application) -> None:
    """One hub per application, fed by the pipeline's tap while the application runs."""
    config = app[SERVICES_KEY].config.tail
    hub = app[TAIL_KEY] = TailHub(max_subscribers=config.max_subscribers, queue_events=config.queue_events)

    async def attach(app: web.Application) -> None:
        app[SERVICES_KEY].pipeline.tap = hub

    async def detach(app: web.Application) -> None:
        app[SERVICES_KEY].pipeline.tap = None

    app.on_startup.append(attach)
    app.on_cleanup.append(detach)
    app.router.add_get("/v1/logs/tail", sse_tail)
    app.router.add_get("/loki/api/v1/tail", loki_tail)
