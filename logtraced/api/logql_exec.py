"""Runs parsed LogQL against one tenant's view of the store: log pages, and metric queries by counts or samples.

Everything here is synchronous and runs on the query pool.  A metric query that is counts by
stream labels (`logql_counts.plan_counts`: the logs volume histogram, `count_over_time`, `rate`)
is answered by the backend's aggregation without reading documents; any other metric query reads
the matching events page by page through the same confined `search` and evaluates them with the
reference semantics (`logql_eval`), up to `MAX_SAMPLE_EVENTS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

from logtraced.errors import InvalidInput
from logtraced.model import Event
from logtraced.query.logql_ast import MetricExpr, RangeAggregation
from logtraced.query.logql_counts import buckets_for, fold, plan_counts
from logtraced.query.logql_eval import Sample, Series, evaluate_metric, is_scalar, samples_of
from logtraced.query.logql_stages import STREAM_LABELS
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import CountRequest, SearchRequest, Stats, TenantView

PAGE: Final = 5000
# A metric query that must read its samples stops with a 400 past this many events.
MAX_SAMPLE_EVENTS: Final = 2_000_000


@dataclasses.dataclass
class MetricAnswer:
    series: list[Series]
    stats: Stats
    counted: bool  # answered by the backend's aggregation, no document read


def run_metric(view: TenantView, expr: MetricExpr, steps: Sequence[int], deadline: float) -> MetricAnswer:
    """The series of `expr` at `steps` (ns), from counts when the query allows, else from read samples."""
    stats = Stats()
    if is_scalar(expr):
        return MetricAnswer(evaluate_metric(expr, steps, lambda aggregation: []), stats, True)
    plan = plan_counts(expr)
    buckets = buckets_for(plan, steps) if plan is not None else None
    if plan is not None and buckets is not None:
        request = CountRequest(
            buckets.start_ns, buckets.end_ns, plan.pipeline, buckets.width, plan.fields, deadline=deadline
        )
        result = view.count(request)
        counted = ((series.labels, series.counts) for series in result.series)
        return MetricAnswer(fold(plan, steps, counted), result.stats, True)

    def source(aggregation: RangeAggregation) -> list[Sample]:
        low = steps[0] - aggregation.offset_ns - aggregation.range_ns + 1
        high = steps[-1] - aggregation.offset_ns + 1
        return samples_of(aggregation, read_events(view, aggregation.pipeline, low, high, deadline, stats))

    return MetricAnswer(evaluate_metric(expr, steps, source), stats, False)


def read_events(
    view: TenantView, pipeline: Pipeline, start_ns: int, end_ns: int, deadline: float, stats: Stats
) -> list[Event]:
    """Every event the pipeline's filters match in [start, end), oldest first, read page by page."""
    filters = Pipeline(tuple(stage for stage in _leading_filters(pipeline)), logql=True)
    events: list[Event] = []
    after: bytes | None = None
    while True:
        page = view.search(
            SearchRequest(start_ns, end_ns, filters, PAGE, newest_first=False, after=after, deadline=deadline)
        )
        events.extend(row.event for row in page.rows)
        stats.lines_examined += page.stats.lines_examined
        stats.bytes_examined += page.stats.bytes_examined
        stats.seconds += page.stats.seconds
        if len(events) > MAX_SAMPLE_EVENTS:
            raise InvalidInput(
                f"the query would read more than {MAX_SAMPLE_EVENTS} lines; narrow the selector or the time range",
                code="too_many_lines",
            )
        if page.cursor is None:
            return events
        after = page.cursor


def _leading_filters(pipeline: Pipeline) -> list[Filter]:
    found: list[Filter] = []
    for stage in pipeline.stages:
        if not isinstance(stage, Filter):
            break
        found.append(stage)
    return found


@dataclasses.dataclass
class StreamCount:
    """One stream (its LogQL labels) and how many of its events a selector matched."""

    labels: dict[str, str]
    counts: dict[int, int]  # bucket start (ns) -> events

    @property
    def entries(self) -> int:
        return sum(self.counts.values())


def stream_counts(
    view: TenantView, pipeline: Pipeline, start_ns: int, end_ns: int, deadline: float, bucket_ns: int = 0
) -> list[StreamCount]:
    """The streams a selector matches in [start, end), counted by the backend; labels as LogQL names them."""
    width = bucket_ns or max(end_ns - start_ns, 1)
    fields = tuple(field for field, _ in STREAM_LABELS)
    filters = Pipeline(tuple(_leading_filters(pipeline)), logql=True)
    result = view.count(CountRequest(start_ns, max(end_ns, start_ns + 1), filters, width, fields, deadline=deadline))
    found = []
    for series in result.series:
        labels = {label: value for field, label in STREAM_LABELS if (value := series.labels.get(field, ""))}
        found.append(StreamCount(labels, series.counts))
    return found
