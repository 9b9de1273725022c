"""Patterns and insights of a tenant's events: a bounded read through its view, then the engine-free mining.

These are the calls every front end shares: the LogTrace routes (api/analysis.py), the CLI's
`logtraced patterns`, and a Loki-shaped `/loki/api/v1/patterns` (whose `samples` are a pattern's
`series`).  They run synchronously, so a server calls them on its query pool.
"""

from __future__ import annotations

from typing import Final

import msgspec

from logtraced.analysis.patterns import NS_PER_SECOND, Insights, Pattern, compare_patterns, mine_patterns
from logtraced.analysis.sampling import newest_events, spread_events
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
    deadline: float = NO_DEADLINE,
) -> Insights:
    """Patterns new in [now - window, now) against the baseline period just before it, and those rising.

    Each period reads at most `max_events` events; rates divide by the span the events read
    stand for, so a sampled period still compares per hour with the other.
    """
    window_start = now_ns - window_ns
    window = newest_events(view, pipeline, window_start, now_ns, max_events, deadline=deadline, fields=MINED_FIELDS)
    baseline = spread_events(
        view,
        pipeline,
        window_start - baseline_ns,
        window_start,
        max_events,
        BASELINE_SLICES,
        deadline=deadline,
        fields=MINED_FIELDS,
    )
    insights = compare_patterns(
        mine_patterns(window.events, step_ns=window_ns, limit=COMPARED_PATTERNS),
        mine_patterns(baseline.events, step_ns=baseline_ns, limit=COMPARED_PATTERNS),
        window.covered_ns / NS_PER_SECOND,
        baseline.covered_ns / NS_PER_SECOND,
        min_ratio=RISING_RATIO,
    )
    return Insights(new=insights.new[:limit], rising=insights.rising[:limit])
