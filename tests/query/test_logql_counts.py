"""Counts folded into Loki's windows equal the reference evaluator exactly, for every shape the planner takes."""

from __future__ import annotations

import random

import pytest

from logtraced.model import Event
from logtraced.query.evaluate import build_matcher
from logtraced.query.logql import parse_logql
from logtraced.query.logql_ast import MetricExpr
from logtraced.query.logql_counts import Buckets, buckets_for, fold, plan_counts
from logtraced.query.logql_eval import evaluate_metric, events_source, step_points
from logtraced.query.pipeline import Filter

S = 1_000_000_000
BASE = 1_700_000_000 * S


def seeded_events() -> list[Event]:
    rng = random.Random(11)
    return [
        Event(
            BASE + rng.randrange(0, 3600 * S),
            rng.choice(["timeout on db", "ok", "slow timeout"]),
            level=rng.choice(["info", "error", ""]),
            service=rng.choice(["api", "web"]),
            host=rng.choice(["h1", "h2"]),
        )
        for _ in range(3000)
    ] + [Event(BASE + 600 * S, "exactly on a step", level="warn", service="api")]


Counted = list[tuple[dict[str, str], dict[int, int]]]


def backend_counts(events: list[Event], expr: MetricExpr, buckets: Buckets) -> Counted:
    """What a backend's count returns: per label set, events per bucket of the plan's filters (left-closed)."""
    plan = plan_counts(expr)
    assert plan is not None
    tests = [stage.node for stage in plan.pipeline.stages if isinstance(stage, Filter)]
    matchers = [build_matcher(node) for node in tests]
    found: dict[tuple[str, ...], dict[int, int]] = {}
    for event in events:
        if not buckets.start_ns <= event.timestamp < buckets.end_ns or not all(m(event, {}) for m in matchers):
            continue
        key = tuple(getattr(event, field) for field in plan.fields)
        bucket = buckets.start_ns + (event.timestamp - buckets.start_ns) // buckets.width * buckets.width
        counts = found.setdefault(key, {})
        counts[bucket] = counts.get(bucket, 0) + 1
    return [(dict(zip(plan.fields, key, strict=True)), counts) for key, counts in found.items()]


QUERIES = [
    ('sum by (level, detected_level) (count_over_time({service_name="api"} | drop __error__[1m]))', 60, BASE),
    (
        'sum by (level, detected_level) (count_over_time({service_name="api"} |= "timeout" | drop __error__[1m]))',
        60,
        BASE + 7,
    ),  # fmt: skip
    ('count_over_time({service_name=~"api|web"}[5m])', 60, BASE),
    ('sum(rate({service_name="web"}[2m]))', 45, BASE + 3 * S),
    ('sum without (host) (count_over_time({host="h1"} | __error__="" [90s] offset 1m))', 60, BASE),
    ('sum by (host) (count_over_time({service_name="api"}[1m]))', 7, BASE),
]


@pytest.mark.parametrize(("query", "step_seconds", "start"), QUERIES)
def test_counts_equal_the_reference(query: str, step_seconds: int, start: int) -> None:
    expr = parse_logql(query)
    assert not isinstance(expr, type(None))
    plan = plan_counts(expr)  # type: ignore[arg-type]
    assert plan is not None
    events = seeded_events()
    steps = step_points(start, start + 3600 * S, step_seconds * S)
    buckets = buckets_for(plan, steps)
    assert buckets is not None
    folded = fold(plan, steps, backend_counts(events, expr, buckets))  # type: ignore[arg-type]
    reference = evaluate_metric(expr, steps, events_source(events))  # type: ignore[arg-type]
    # Counts are exact; a rate is the same count divided once, where the reference sums per-stream quotients.
    assert [(s.labels, [t for t, _ in s.points]) for s in folded] == [
        (s.labels, [t for t, _ in s.points]) for s in reference
    ]
    values = [v for s in folded for _, v in s.points]
    expected = [v for s in reference for _, v in s.points]
    assert values == (pytest.approx(expected, rel=1e-12) if plan.rate else expected)
    assert sum(len(s.points) for s in folded) > 10


@pytest.mark.parametrize(
    "query",
    [
        'sum by (level) (count_over_time({service_name="api"} | json [1m]))',
        'avg(count_over_time({service_name="api"}[1m]))',
        'bytes_over_time({service_name="api"}[1m])',
        'sum_over_time({service_name="api"} | logfmt | unwrap n [1m])',
        'count_over_time({service_name="api"} | drop level [1m])',
    ],
)
def test_queries_that_need_their_lines_are_not_planned_as_counts(query: str) -> None:
    assert plan_counts(parse_logql(query)) is None  # type: ignore[arg-type]
