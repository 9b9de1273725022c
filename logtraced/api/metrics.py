"""`GET /metrics`: the daemon's figures in the Prometheus text format, with prometheus-client.

Unauthenticated by default, as Loki and VictoriaLogs serve theirs (`metrics.require_key = true`
asks for a key with the `admin` scope).  Each application owns its registry (no global state):
request counters and latency histograms are recorded by `metrics_middleware`; ingest, masking,
backlog, WAL, writer and tail figures are read from the live services at scrape time by
`_Collector`, so they are never stale and cost nothing between scrapes.  The writer process's
figures (commit durations, the store's partitions and bytes) arrive with each `Committed`
message over the writer pipe, as the backlog figures do; no second metrics server runs.  The
client library's process collector adds `process_resident_memory_bytes` and its siblings, and its
garbage-collector one `python_gc_collections_total` (the event loop's process; see logtraced/heap.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from logtraced.api.authn import AUTH_CONTEXT, CLIENT_CLOSED_STATUS, authenticate
from logtraced.api.context import SERVICES_KEY, Services, get_state
from logtraced.api.errors import Handler
from logtraced.api.tail import TAIL_KEY
from logtraced.errors import QueryTimeout
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.tail import TailHub
from logtraced.storage.wal import list_segments
from logtraced.timings import Timings

PATH: Final = "/metrics"
UNMATCHED: Final = "unmatched"
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The registry of one application and the instruments its middleware records into."""

    def __init__(self, services: Services, hub: TailHub | None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "logtraced_http_requests", "HTTP requests answered, by route and status.", ["route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "logtraced_http_request_duration_seconds", "Time to answer an HTTP request, by route.", ["route"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.rate_limited = Counter(
            "logtraced_rate_limited", "Requests refused by the hourly budget, by tier and kind.", ["tier", "kind"],
            registry=self.registry,
        )  # fmt: skip
        self.overflow = Counter(
            "logtraced_overflow_events", "Events accepted past a limit as overflow, by tier.", ["tier"],
            registry=self.registry,
        )  # fmt: skip
        self.query_timeouts = Counter(
            "logtraced_query_timeouts", "Queries abandoned past query.timeout_seconds.", registry=self.registry
        )
        self.registry.register(_Collector(services, hub))
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        route = _route(request)
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        context = request.get(AUTH_CONTEXT)
        if context is not None and context.decision is not None:
            tier = context.principal.tier
            if not context.decision.allowed and context.kind is not None:
                self.rate_limited.labels(tier, context.kind).inc()
            if context.overflow_events:
                self.overflow.labels(tier).inc(context.overflow_events)
        if status == int(QueryTimeout.status):
            self.query_timeouts.inc()


METRICS_KEY: Final = web.AppKey("metrics", Metrics)


def _route(request: web.Request) -> str:
    """The route's pattern (`/loki/api/v1/label/{name}/values`), never the raw path: labels stay bounded."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else UNMATCHED


class _Collector(Collector):
    """Figures read from the services when Prometheus scrapes."""

    def __init__(self, services: Services, hub: TailHub | None) -> None:
        self.services = services
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        pipeline = self.services.pipeline
        events = CounterMetricFamily("logtraced_ingest_events", "Events accepted, by protocol.", labels=["protocol"])
        size = CounterMetricFamily("logtraced_ingest_bytes", "Bytes accepted, by protocol.", labels=["protocol"])
        rejected = CounterMetricFamily(
            "logtraced_ingest_rejected", "Inputs refused, by protocol and cause.", labels=["protocol", "cause"]
        )
        for name, protocol in sorted(pipeline.protocols.items()):
            events.add_metric([name], protocol.events)
            size.add_metric([name], protocol.bytes)
            for cause, count in sorted(protocol.causes.items()):
                rejected.add_metric([name, cause], count)
        yield from (events, size, rejected)
        masked = CounterMetricFamily(
            "logtraced_masked_values", "Personal data values masked at ingest, by rule.", labels=["rule"]
        )
        for name, count in sorted(pipeline.masking_counters().items()):
            masked.add_metric([name.removeprefix("masked_")], count)
        yield masked
        yield from _wal_metrics(pipeline)
        backlog = pipeline.backlog
        yield _gauge("logtraced_backlog_events", "Events durable in the WAL and not yet searchable.", backlog.events)
        yield _gauge("logtraced_backlog_bytes", "Bytes durable in the WAL and not yet searchable.", backlog.size)
        oldest = backlog.records[0] if backlog.records else None
        yield _gauge("logtraced_backlog_records", "WAL records not yet searchable.", len(backlog.records))
        yield _gauge("logtraced_backlog_seconds_behind", "Age of the oldest WAL record not yet searchable.",
                     backlog.seconds_behind(time.time()))  # fmt: skip
        yield _gauge("logtraced_wal_written_seq", "Last WAL record written.", pipeline.wal.written_seq)
        yield _gauge("logtraced_wal_durable_seq", "Last WAL record fsynced.", pipeline.durable_seq)
        yield _gauge("logtraced_wal_committed_seq", "Last WAL record searchable.", pipeline.committed_seq)
        yield _gauge("logtraced_wal_oldest_unindexed_seq", "First WAL record not yet searchable (0: none).",
                     oldest.seq if oldest else 0)  # fmt: skip
        counters = pipeline.counters
        yield _counter("logtraced_indexed_events", "Events the writer stored.", counters.events_indexed)
        yield _counter("logtraced_expired_events", "Events older than the retention period.", counters.events_expired)
        yield _counter("logtraced_udp_dropped", "UDP datagrams dropped under backpressure.", counters.udp_dropped)
        writer = self.services.writer
        yield _gauge("logtraced_writer_up", "1 while the writer process runs.", 1 if writer.alive else 0)
        yield _counter("logtraced_writer_restarts", "Writer process restarts.", writer.restarts)
        yield _gauge("logtraced_writer_last_commit_seconds", "Duration of the writer's last commit.",
                     writer.last_commit_ms / 1000)  # fmt: skip
        since = time.time() - writer.last_commit_at if writer.last_commit_at else 0.0
        yield _gauge("logtraced_writer_seconds_since_commit", "Seconds since the writer's last commit.", since)
        yield _histogram("logtraced_writer_commit_duration_seconds", "Time the writer took per commit.",
                         writer.commit_seconds)  # fmt: skip
        yield _gauge("logtraced_store_partitions", "Partitions of the store on disk (at the last commit).",
                     writer.partitions)  # fmt: skip
        yield _gauge("logtraced_store_disk_bytes", "Bytes of the store on disk (at the last commit).",
                     writer.disk_bytes)  # fmt: skip
        if self.hub is not None:
            yield _gauge("logtraced_tail_subscribers", "Live tail subscribers.", self.hub.subscribers)
            yield _counter("logtraced_tail_events", "Events handed to live tail.", self.hub.published)


def _wal_metrics(pipeline: IngestPipeline) -> Iterator[Metric]:
    """Bytes written, bytes the segments hold now (a handful of files, listed per scrape) and fsync times."""
    yield _counter("logtraced_wal_written_bytes", "Bytes appended to the WAL.", pipeline.wal.bytes_written)
    on_disk = 0
    for _, path in list_segments(pipeline.wal.directory):
        try:
            on_disk += path.stat().st_size
        except OSError:  # the writer deleted it meanwhile
            pass
    yield _gauge("logtraced_wal_disk_bytes", "Bytes of WAL segments on disk.", on_disk)
    yield _histogram("logtraced_wal_fsync_duration_seconds", "Time one WAL fsync took.", pipeline.fsync_seconds)


def _histogram(name: str, documentation: str, timings: Timings) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, documentation, buckets=timings.cumulative(), sum_value=timings.total)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request, whatever its outcome (outermost, so it sees the final status)."""
    started = time.perf_counter()
    status = CLIENT_CLOSED_STATUS  # errors are responses by now; only a vanished client gets here without one
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        metrics = request.app.get(METRICS_KEY)
        if metrics is not None:
            metrics.observe(request, status, time.perf_counter() - started)


async def scrape(request: web.Request) -> web.Response:
    if get_state(request).config.metrics.require_key:
        await authenticate(request, scope="admin", kind=None)
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def register(app: web.Application) -> None:
    app[METRICS_KEY] = Metrics(app[SERVICES_KEY], app.get(TAIL_KEY))
    app.router.add_get(PATH, scrape)
