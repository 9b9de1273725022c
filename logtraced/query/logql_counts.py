"""Which LogQL metric queries are counts per step by stream labels, and how those counts become Loki's series.

The logs volume histogram Grafana draws (`sum by (level, detected_level) (count_over_time({...}
| drop __error__ [1m]))`) and plain `count_over_time`/`rate` by stream labels need no document:
a backend counts matching events per bucket from its fast fields (`TenantView.count`).  Loki's
window for step t is (t - offset - range, t - offset]; buckets of width gcd(step, range) starting
at `start - offset - range + 1` tile every window exactly, so each step's value is a sum of
whole buckets.  Engine-free: the api asks for the counts, this module plans and folds them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from logtraced.query.gosyntax import NS_PER_SECOND
from logtraced.query.logql_ast import MetricExpr, RangeAggregation, VectorAggregation
from logtraced.query.logql_eval import Series
from logtraced.query.logql_stages import (
    ERROR_DETAILS_LABEL,
    ERROR_LABEL,
    STREAM_LABELS,
    DropLabels,
    LabelFilter,
    LabelMatcher,
    MatchOp,
)
from logtraced.query.pipeline import Filter, Pipeline

COUNTED_FUNCTIONS: Final = frozenset({"count_over_time", "rate"})
# More buckets than this and reading samples is no slower than a histogram this wide.
MAX_BUCKETS: Final = 50_000
_ERROR_LABELS: Final = frozenset({ERROR_LABEL, ERROR_DETAILS_LABEL})
_FIELD_OF_STREAM_LABEL: Final = {label: field for field, label in STREAM_LABELS}


@dataclasses.dataclass(frozen=True)
class CountPlan:
    """A metric query answered by counts: the filters to count, the labels to count by, how to scale."""

    pipeline: Pipeline  # only the filters: the rest of the original pipeline changed nothing counted
    labels: tuple[str, ...]  # the stream labels of each output series, in this order
    rate: bool
    range_ns: int
    offset_ns: int

    @property
    def fields(self) -> tuple[str, ...]:
        """The event fields the backend groups by, one per output label."""
        return tuple(_FIELD_OF_STREAM_LABEL[label] for label in self.labels)


@dataclasses.dataclass(frozen=True)
class Buckets:
    """What to ask the backend for: counts per `width` from `start_ns` to `end_ns` (exclusive)."""

    start_ns: int
    end_ns: int
    width: int


def plan_counts(expr: MetricExpr) -> CountPlan | None:
    """A plan when the query is counts by stream labels (optionally summed by some of them), else None."""
    kept: tuple[str, ...] = tuple(label for _, label in STREAM_LABELS)
    if isinstance(expr, VectorAggregation):
        if expr.op != "sum" or not isinstance(expr.inner, RangeAggregation):
            return None
        grouping = expr.grouping
        if grouping is None:
            kept = ()
        elif grouping.without:
            kept = tuple(label for label in kept if label not in grouping.labels)
        else:
            kept = tuple(label for label in kept if label in grouping.labels)
        expr = expr.inner
    if not isinstance(expr, RangeAggregation):
        return None
    if expr.function not in COUNTED_FUNCTIONS or expr.unwrap is not None or expr.grouping is not None:
        return None
    filters = _filters_only(expr.pipeline)
    if filters is None:
        return None
    return CountPlan(filters, kept, expr.function == "rate", expr.range_ns, expr.offset_ns)


def _filters_only(pipeline: Pipeline) -> Pipeline | None:
    """The pipeline's filters when every other stage is a no-op on counts (`drop __error__`, `__error__=""`).

    Without a parser nothing can set `__error__`, so dropping or requiring it empty changes nothing.
    """
    kept: list[Filter] = []
    for stage in pipeline.stages:
        if isinstance(stage, Filter):
            kept.append(stage)
        elif isinstance(stage, DropLabels):
            if not set(stage.names) <= _ERROR_LABELS or any(m.name not in _ERROR_LABELS for m in stage.matchers):
                return None
        elif isinstance(stage, LabelFilter):
            if stage.expr != LabelMatcher(ERROR_LABEL, MatchOp.EQ, ""):
                return None
        else:
            return None
    return Pipeline(tuple(kept), logql=True)


def buckets_for(plan: CountPlan, steps: Sequence[int]) -> Buckets | None:
    """The buckets tiling every step's window, or None when there would be too many."""
    if not steps:
        return None
    width = math.gcd(steps[1] - steps[0], plan.range_ns) if len(steps) > 1 else plan.range_ns
    start = steps[0] - plan.offset_ns - plan.range_ns + 1
    end = steps[-1] - plan.offset_ns + 1
    if (end - start) // width > MAX_BUCKETS:
        return None
    return Buckets(start, end, width)


def fold(
    plan: CountPlan,
    steps: Sequence[int],
    counted: Iterable[tuple[Mapping[str, str], Mapping[int, int]]],
) -> list[Series]:
    """Each counted label set's buckets added to every step whose window holds them; empty steps are left out.

    A bucket starting at b lies in the window of step t when t - offset - range < b + 1 and b <= t - offset,
    so it is visited once per window containing it: the cost follows the non-empty buckets, not the steps.
    """
    seconds = plan.range_ns / NS_PER_SECOND
    first, count = steps[0], len(steps)
    step_ns = steps[1] - steps[0] if count > 1 else 1
    # Steps are counted from the first instant whose window holds a bucket (ceil), to the last (floor).
    low_from, high_from = plan.offset_ns - first, plan.offset_ns + plan.range_ns - 1 - first
    merged: dict[tuple[tuple[str, str], ...], dict[int, int]] = {}
    for fields, counts in counted:
        key = tuple((label, value) for label in plan.labels if (value := fields.get(_FIELD_OF_STREAM_LABEL[label], "")))
        totals = merged.setdefault(tuple(sorted(key)), {})
        for bucket, events in counts.items():  # often one window per bucket (range = step): kept lean
            low = max(0, -(-(bucket + low_from) // step_ns))
            high = min(count - 1, (bucket + high_from) // step_ns)
            if low == high:
                totals[low] = totals.get(low, 0) + events
                continue
            for index in range(low, high + 1):
                totals[index] = totals.get(index, 0) + events
    out: list[Series] = []
    for key in sorted(merged):
        totals = merged[key]
        points = [
            (steps[index], totals[index] / seconds if plan.rate else float(totals[index]))
            for index in sorted(totals)
            if totals[index]
        ]
        if points:
            out.append(Series(dict(key), points))
    return out
