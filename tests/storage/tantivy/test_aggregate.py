"""Counts from the fast fields past tantivy's bucket limit, and labels with one value, agree with the events."""

from __future__ import annotations

from pathlib import Path

import pytest

from logtraced.model import NS_PER_DAY, Event
from logtraced.query.ast import Compare, MatchAll, Node, Op
from logtraced.query.gosyntax import NS_PER_SECOND
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import CountRequest
from logtraced.storage.tantivy.store import TantivyStore
from tests.storage.test_store import MINE, NOW, config, write

MICROSECOND = 1000
EVENTS = 70_000  # one bucket each at a 1 µs step: more than the 65 000 tantivy accepts in one aggregation
START = (NOW - NS_PER_DAY) // NS_PER_DAY * NS_PER_DAY + NS_PER_DAY // 2  # mid-day: one partition


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[TantivyStore, list[Event]]:
    """Mid-step timestamps: histogram keys are f64, whose spacing here (256 ns) would blur a step boundary."""
    events = [
        Event(
            START + position * MICROSECOND + MICROSECOND // 2,
            f"n={position}",
            level="info",
            service=f"svc{position % 3}",
        )
        for position in range(EVENTS)
    ]
    cfg = config(tmp_path_factory.mktemp("buckets"))
    write(cfg, [(MINE, events)]).close()
    return TantivyStore(cfg.data_path), events


def reference(events: list[Event], by: tuple[str, ...], step: int, test: Node) -> dict[tuple[str, ...], int]:
    """Events per (label values, step), counted one by one."""
    counts: dict[tuple[str, ...], int] = {}
    for event in events:
        if isinstance(test, Compare) and getattr(event, test.field or "") != test.value:
            continue
        key = (*(str(getattr(event, name)) for name in by), str((event.timestamp - START) // step))
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize(
    ("node", "by", "end"),
    [
        (MatchAll(), ("service", "env", "index"), START + 2 * EVENTS * MICROSECOND),  # a first slice that overflows
        (MatchAll(), (), START + EVENTS * MICROSECOND),
        (Compare(Op.EQ, "service", "svc1"), ("service", "level"), START + EVENTS * MICROSECOND),
    ],
)
def test_counts_past_the_bucket_limit_are_exact(
    stored: tuple[TantivyStore, list[Event]], node: Node, by: tuple[str, ...], end: int
) -> None:
    store, events = stored
    request = CountRequest(START, end, Pipeline((Filter(node),)), MICROSECOND, by=by)
    result = store.for_tenant(MINE).count(request)
    assert result.stats.lines_examined == 0  # aggregated, not read
    counted = {
        (*(series.labels[name] for name in by), str((bucket - START) // MICROSECOND)): value
        for series in result.series
        for bucket, value in series.counts.items()
    }
    assert counted == reference(events, by, MICROSECOND, node)


@pytest.mark.parametrize("shift", [0, 1, 255, 256, 257])
def test_whole_second_events_on_step_boundaries_are_counted_exactly(tmp_path: Path, shift: int) -> None:
    """Events at whole seconds, many exactly on a step: f64 bucketing must agree with integer arithmetic.

    LogQL's windows start 1 ns after a step (`shift` 1), the JSON pipeline's on the step (`shift` 0).
    """
    base = START // NS_PER_SECOND * NS_PER_SECOND
    events = [Event(base + second * NS_PER_SECOND, f"s={second}") for second in range(0, 600, 7)]
    cfg = config(tmp_path)
    write(cfg, [(MINE, events)]).close()
    step = 60 * NS_PER_SECOND
    start = base + shift
    request = CountRequest(start, base + 600 * NS_PER_SECOND + shift, Pipeline((Filter(MatchAll()),)), step)
    result = TantivyStore(cfg.data_path).for_tenant(MINE).count(request)
    want: dict[int, int] = {}
    for event in events:
        if event.timestamp >= start:
            bucket = start + (event.timestamp - start) // step * step
            want[bucket] = want.get(bucket, 0) + 1
    [series] = result.series
    assert series.counts == want
