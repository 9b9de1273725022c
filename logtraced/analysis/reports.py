"""Patterns and insights of a tenant's events: a bounded read through its view, then the engine-free mining.

These are the calls every front end shares: the LogTrace routes (api/analysis.py), the CLI's
`logtraced patterns`, and a Loki-shaped `/loki/api/v1/patterns` (whose `samples` are a pattern's
`series`).  They run synchronously, so a server calls them on its query pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

from logtraced.analysis.patterns import (
    NS_PER_SECOND,
    Insights,
    NewPattern,
    Pattern,
    RisingPattern,
    compare_patterns,
    mine_patterns,
    ordered,
)
from logtraced.analysis.sampling import newest_events, spread_events
from logtraced.analysis.verification import baseline_occurrences
from logtraced.query.pipeline import Pipeline
from logtraced.storage.backend import NO_DEADLINE, TenantView

# A pattern's series has about this many buckets when the caller names no step.
SERIES_BUCKETS: Final = 60
# What pattern mining reads of an event: decoding nothing else makes a read several times cheaper.
MINED_FIELDS: Final = frozenset({"timestamp", "message", "level"})
# A baseline is read as this many equal slices, so a sampled day stands for the whole day.
BASELINE_SLICES: Final = 24
# Patterns kept from each period for the comparison: enough that a pattern outside the top of
# either period is still matched, rather than reported as new.
COMPARED_PATTERNS: Final = 10_000
# Rising means at least this many times the baseline's hourly rate.
RISING_RATIO: Final = 2.0


class PatternsReport(msgspec.Struct):
    """The answer of POST /v1/logs/patterns, before timestamps are formatted."""

    patterns: list[Pattern]
    events_considered: int
    sampled: bool


class InsightsReport(msgspec.Struct):
    """The answer of POST /v1/logs/insights.

    `sampled`: the window or the baseline had more events than were read, so rates (and the rising
    patterns' `baseline_count`, the baseline's estimated count) are estimates from the events read;
    `baseline_share` is the share of the baseline period those events cover.  `new` is exact either way.
    """

    new: list[NewPattern]
    rising: list[RisingPattern]
    sampled: bool
    window_events: int
    baseline_events: int
    baseline_share: float


def default_step_ns(start_ns: int, end_ns: int) -> int:
    """About SERIES_BUCKETS buckets over the window, in whole seconds."""
    seconds = -(-(end_ns - start_ns) // (SERIES_BUCKETS * NS_PER_SECOND))
    return max(seconds, 1) * NS_PER_SECOND


def patterns_report(
    view: TenantView,
    pipeline: Pipeline,
    start_ns: int,
    end_ns: int,
    *,
    limit: int,
    max_events: int,
    step_ns: int | None = None,
    deadline: float = NO_DEADLINE,
) -> PatternsReport:
    """The `limit` commonest patterns among the newest `max_events` matching events of [start_ns, end_ns)."""
    sample = newest_events(view, pipeline, start_ns, end_ns, max_events, deadline=deadline, fields=MINED_FIELDS)
    step = step_ns or default_step_ns(start_ns, end_ns)
    patterns = mine_patterns(sample.events, step_ns=step, limit=limit)
    return PatternsReport(patterns, len(sample.events), sample.sampled)


def insights_report(
    view: TenantView,
    pipeline: Pipeline,
    now_ns: int,
    window_ns: int,
    baseline_ns: int,
    *,
    limit: int,
    max_events: int,
    baseline_events: int,
    deadline: float = NO_DEADLINE,
) -> InsightsReport:
    """Patterns new in [now - window, now) against the baseline period just before it, and those rising.

    The window reads its newest `max_events` events; the baseline a sample of `baseline_events`
    spread over it (`spread_events`).  Rates divide by the span the events read stand for, so a
    sampled period still compares per hour with the other.  A pattern the sample lacks is checked
    against the whole baseline before it is called new (analysis/verification.py): the sample
    decides how much is read, never what is reported new.
    """
    window_start = now_ns - window_ns
    baseline_start = window_start - baseline_ns
    window = newest_events(view, pipeline, window_start, now_ns, max_events, deadline=deadline, fields=MINED_FIELDS)
    baseline = spread_events(
        view,
        pipeline,
        baseline_start,
        window_start,
        baseline_events,
        BASELINE_SLICES,
        deadline=deadline,
        fields=MINED_FIELDS,
    )
    window_seconds = window.covered_ns / NS_PER_SECOND
    insights = compare_patterns(
        mine_patterns(window.events, step_ns=window_ns, limit=COMPARED_PATTERNS),
        mine_patterns(baseline.events, step_ns=baseline_ns, limit=COMPARED_PATTERNS),
        window_seconds,
        baseline.covered_ns / NS_PER_SECOND,
        min_ratio=RISING_RATIO,
        baseline_scale=baseline_ns / baseline.covered_ns,
    )
    if baseline.sampled:
        period = _Period(view, pipeline, baseline_start, window_start, deadline)
        insights = _verified(insights, period, window_seconds, limit)
    return InsightsReport(
        new=insights.new[:limit],
        rising=insights.rising[:limit],
        sampled=window.sampled or baseline.sampled,
        window_events=len(window.events),
        baseline_events=len(baseline.events),
        baseline_share=round(baseline.covered_ns / baseline_ns, 6),
    )


@dataclass(frozen=True)
class _Period:
    """The baseline as the exact checks search it."""

    view: TenantView
    pipeline: Pipeline
    start_ns: int
    end_ns: int
    deadline: float


def _verified(insights: Insights, baseline: _Period, window_seconds: float, limit: int) -> Insights:
    """The sample's new patterns checked against the whole baseline, in report order, until `limit` are confirmed.

    One found there is not new; counted exactly, it is rising when its rate rose enough.  Checks
    stop once `limit` patterns are confirmed new: the rest would not be reported.
    """
    baseline_seconds = (baseline.end_ns - baseline.start_ns) / NS_PER_SECOND
    new: list[NewPattern] = []
    rising = list(insights.rising)
    for candidate in insights.new:
        if len(new) == limit:
            break
        found = baseline_occurrences(
            baseline.view,
            baseline.pipeline,
            baseline.start_ns,
            baseline.end_ns,
            candidate.pattern,
            deadline=baseline.deadline,
        )
        if found.count == 0:
            new.append(candidate)
            continue
        ratio = (candidate.count / window_seconds) / (found.count / baseline_seconds)
        if found.exact and ratio >= RISING_RATIO:
            rising.append(
                RisingPattern(
                    candidate.pattern, candidate.count, candidate.level, candidate.sample, found.count, round(ratio, 3)
                )
            )
    return ordered(new, rising)
