"""Counts read from the per-partition cache equal counts aggregated afresh, and a commit into a past day is seen."""

from __future__ import annotations

import os
import random
from array import array
from pathlib import Path

import pytest

from logtraced.model import NS_PER_DAY, Event, Tenant
from logtraced.query.ast import Compare, MatchAll, Node, Op
from logtraced.query.gosyntax import NS_PER_SECOND
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import CountRequest, Series
from logtraced.storage.tantivy import search
from logtraced.storage.tantivy.countcache import CountCache, CountKey, frozen
from logtraced.storage.tantivy.partitions import UNKNOWN_MARK, CommitMark, Partition, PartitionLayout
from logtraced.storage.tantivy.reader import IndexReader
from logtraced.storage.tantivy.store import TantivyStore
from tests.storage.test_store import MINE, NOW, config, write

HOUR = 3600 * NS_PER_SECOND
TODAY = NOW // NS_PER_DAY * NS_PER_DAY
FIRST = TODAY - 5 * NS_PER_DAY  # events on the five days before today
STAGING = Tenant(MINE.org, "staging")  # same organisation, so the same partitions
WHOLE_DAYS = (FIRST + NS_PER_DAY, TODAY - 2 * NS_PER_DAY)  # the first and last whole days of a window: three
Answer = dict[tuple[str, ...], int]


def day_events(seed: int, count: int) -> list[Event]:
    """Whole-second timestamps, which the aggregation's f64 buckets place exactly (aggregate.py `_boundary`)."""
    rng = random.Random(seed)
    return [
        Event(
            FIRST + rng.randrange(5 * 86_400) * NS_PER_SECOND,
            f"n={position}",
            level=rng.choice(("info", "info", "warn", "error")),
            service=rng.choice(("api", "web")),
            index="audit" if position % 7 == 0 else "",
        )
        for position in range(count)
    ]


def store_of(path: Path) -> tuple[Path, dict[Tenant, list[Event]]]:
    events = {MINE: day_events(1, 600), STAGING: day_events(2, 300)}
    write(config(path), list(events.items())).close()
    return path, events


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Tenant, list[Event]]]:
    return store_of(tmp_path_factory.mktemp("counts"))


def request(
    start: int, end: int, step: int = HOUR, by: tuple[str, ...] = ("level",), test: Node | None = None
) -> CountRequest:
    return CountRequest(start, end, Pipeline((Filter(test or MatchAll()),)), step, by=by)


def answer(reader: IndexReader, tenant: Tenant, asked: CountRequest) -> Answer:
    result = search.count(reader, tenant, asked)
    assert result.stats.lines_examined == 0  # aggregated, not read
    return {
        (*(series.labels[name] for name in asked.by), str(at)): n
        for series in result.series
        for at, n in series.counts.items()
    }


def reference(events: list[Event], asked: CountRequest) -> Answer:
    """Counted one event at a time, as backend.add_count buckets."""
    counts: Answer = {}
    for event in events:
        if not asked.start_ns <= event.timestamp < asked.end_ns:
            continue
        if isinstance(asked.pipeline.prefilter, Compare) and event.level != asked.pipeline.prefilter.value:
            continue
        if asked.index is not None and event.index != asked.index:
            continue
        at = asked.start_ns + (event.timestamp - asked.start_ns) // asked.step_ns * asked.step_ns
        key = (*(str(getattr(event, name)) for name in asked.by), str(at))
        counts[key] = counts.get(key, 0) + 1
    return counts


def reader_of(data_path: Path) -> IndexReader:
    return IndexReader(PartitionLayout(data_path))


def test_a_count_over_whole_days_is_the_same_warm_and_cold(stored: tuple[Path, dict[Tenant, list[Event]]]) -> None:
    """Windows that hold the same days whole share their entries; only the partial days at their edges differ."""
    data_path, events = stored
    reader = reader_of(data_path)
    wide = request(WHOLE_DAYS[0] - 3 * HOUR, WHOLE_DAYS[1] + NS_PER_DAY + 5 * HOUR)
    cold = answer(reader, MINE, wide)
    assert cold == reference(events[MINE], wide)
    assert len(reader.counts) == 5  # the three whole days, and the two partial ones
    assert answer(reader, MINE, wide) == cold
    assert len(reader.counts) == 5
    narrower = request(WHOLE_DAYS[0] - HOUR, WHOLE_DAYS[1] + NS_PER_DAY + 2 * HOUR)
    assert answer(reader, MINE, narrower) == reference(events[MINE], narrower)
    assert len(reader.counts) == 7  # the whole days came from the cache
    assert answer(reader_of(data_path), MINE, narrower) == answer(reader, MINE, narrower)


WHOLE = request(WHOLE_DAYS[0], WHOLE_DAYS[1] + NS_PER_DAY)
ERRORS = request(WHOLE_DAYS[0], WHOLE_DAYS[1] + NS_PER_DAY, test=Compare(Op.EQ, "level", "error"))
AUDIT = CountRequest(WHOLE.start_ns, WHOLE.end_ns, WHOLE.pipeline, HOUR, ("level",), index="audit")


@pytest.mark.parametrize(
    ("first", "then"),
    [
        pytest.param((MINE, WHOLE), (MINE, request(*WHOLE_DAYS, step=2 * HOUR)), id="step"),
        pytest.param((MINE, WHOLE), (MINE, request(WHOLE.start_ns - HOUR // 2, WHOLE.end_ns)), id="alignment"),
        pytest.param((MINE, WHOLE), (MINE, request(WHOLE.start_ns, WHOLE.end_ns, by=())), id="by"),
        pytest.param((MINE, WHOLE), (MINE, request(WHOLE.start_ns, WHOLE.end_ns, by=("service",))), id="by-label"),
        pytest.param((MINE, WHOLE), (MINE, ERRORS), id="filter"),
        pytest.param((MINE, WHOLE), (MINE, AUDIT), id="routed-index"),
        pytest.param((MINE, WHOLE), (STAGING, WHOLE), id="env"),
    ],
)
def test_different_questions_never_share_an_entry(
    stored: tuple[Path, dict[Tenant, list[Event]]],
    first: tuple[Tenant, CountRequest],
    then: tuple[Tenant, CountRequest],
) -> None:
    data_path, events = stored
    reader = reader_of(data_path)
    answer(reader, *first)
    held = len(reader.counts)
    tenant, asked = then
    assert answer(reader, tenant, asked) == reference(events[tenant], asked)
    assert len(reader.counts) > held


def test_a_day_with_nothing_to_count_is_cached_too(stored: tuple[Path, dict[Tenant, list[Event]]]) -> None:
    """Counted with no label, a partition without a match still makes its empty series: both answers keep it."""
    data_path, _ = stored
    reader = reader_of(data_path)
    nothing = request(*WHOLE_DAYS, by=(), test=Compare(Op.EQ, "level", "fatal"))
    cold = search.count(reader, MINE, nothing).series
    assert search.count(reader, MINE, nothing).series == cold
    assert len(reader.counts) == 2


def late_event(data_path: Path, day: int) -> Event:
    """Commit one event into a past day."""
    late = Event(day + 12 * HOUR, "late", level="error", service="api")
    write(config(data_path), [(MINE, [late])]).close()
    return late


def test_a_late_event_into_a_past_day_is_counted(tmp_path: Path) -> None:
    """The commit changes the day's mark, so its entry misses; without the mark in the key this fails."""
    data_path, events = store_of(tmp_path)
    store = TantivyStore(data_path)
    view = store.for_tenant(MINE)
    before = view.count(WHOLE)
    events[MINE].append(late_event(data_path, WHOLE_DAYS[0] + NS_PER_DAY))
    after = view.count(WHOLE)  # no refresh yet: the writer's notice may come later than the commit
    assert after.series != before.series
    assert {(labels, at): n for labels, at, n in flat(after.series)} == {
        (key[0], int(key[1])): n for key, n in reference(events[MINE], WHOLE).items()
    }
    store.refresh()
    assert view.count(WHOLE).series == after.series


def test_a_late_event_committed_within_the_same_tick_of_the_clock_is_counted(tmp_path: Path) -> None:
    """A commit whose meta.json keeps the mtime of the one before (a coarse file-system clock, set back
    here) still changes the day's mark: the cached counts of the earlier commit are not served."""
    data_path, events = store_of(tmp_path)
    view = TantivyStore(data_path).for_tenant(MINE)
    view.count(WHOLE)
    day = WHOLE_DAYS[0] // NS_PER_DAY + 1
    meta = PartitionLayout(data_path).path(Partition(MINE.org, day)) / "meta.json"
    before = meta.stat().st_mtime_ns
    events[MINE].append(late_event(data_path, day * NS_PER_DAY))
    os.utime(meta, ns=(before, before))
    answered = {(labels, at): n for labels, at, n in flat(view.count(WHOLE).series)}
    assert answered == {(key[0], int(key[1])): n for key, n in reference(events[MINE], WHOLE).items()}


def flat(series: list[Series]) -> list[tuple[str, int, int]]:
    return [(entry.labels["level"], at, n) for entry in series for at, n in entry.counts.items()]


def test_a_commit_just_before_the_mark_is_read_is_never_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark is read before the searcher is opened, and the index is reloaded in between.

    A commit is made to land exactly where it would do harm if the order were reversed: inside the
    count, between opening a searcher (which would then hold the older snapshot) and reading the
    mark (which would then be the newer one).  Read in that order, the count would cache the older
    counts under the newer mark and every later count would serve them; read the other way, the
    commit simply lands before the count.
    """
    data_path, events = store_of(tmp_path)
    reader = reader_of(data_path)
    answer(reader, MINE, WHOLE)  # every partition opened, its counts cached
    target = Partition(MINE.org, WHOLE_DAYS[0] // NS_PER_DAY + 1)
    read_mark = reader.commit_mark
    committed: list[Event] = []

    def commit_then_read(partition: Partition) -> CommitMark:
        if partition == target and not committed:
            committed.append(late_event(data_path, partition.day * NS_PER_DAY))
        return read_mark(partition)

    monkeypatch.setattr(reader, "commit_mark", commit_then_read)
    answer(reader, MINE, WHOLE)
    assert committed
    events[MINE].extend(committed)
    reader.on_commit()  # the writer's notice arrives
    assert answer(reader, MINE, WHOLE) == reference(events[MINE], WHOLE)


def key(day: int, opstamp: int, step: int = HOUR) -> CountKey:
    mark = CommitMark(opstamp, 1) if opstamp >= 0 else UNKNOWN_MARK
    return CountKey(Partition("acme", day), mark, "production", (0, 1), step, (0, 0), (), MatchAll(), None)


def counted(cells: int) -> dict[tuple[str, ...], Series]:
    """One label set counted over `cells - 1` steps: `cells` cells with its labels."""
    return {(): Series({}, {step * HOUR: 1 for step in range(cells - 1)})}


def test_the_cache_is_bounded_in_cells_least_recently_used_first() -> None:
    cache = CountCache(max_cells=10)
    cache.keep(key(1, 5), frozen(counted(4)))
    cache.keep(key(2, 5), frozen(counted(4)))
    assert cache.get(key(1, 5)) is not None  # now the most recently used
    cache.keep(key(3, 5), frozen(counted(4)))
    assert [cache.get(key(day, 5)) is not None for day in (1, 2, 3)] == [True, False, True]
    cache.keep(key(4, 5), frozen(counted(11)))  # larger than the whole bound: not kept, nothing evicted
    assert len(cache) == 2


def test_a_newer_commit_replaces_the_partitions_entries_and_retention_forgets_them() -> None:
    cache = CountCache()
    cache.keep(key(1, 5), frozen(counted(3)))
    cache.keep(key(1, 5, step=2 * HOUR), frozen(counted(3)))
    cache.keep(key(2, 5), frozen(counted(3)))
    cache.keep(key(1, 6), frozen(counted(3)))
    assert [cache.get(k) is not None for k in (key(1, 5), key(1, 5, 2 * HOUR), key(1, 6))] == [False, False, True]
    cache.keep(key(3, -1), frozen(counted(3)))  # an unreadable mark files nothing
    assert len(cache) == 2
    cache.drop({Partition("acme", 1)})
    assert [cache.get(k) is not None for k in (key(1, 6), key(2, 5))] == [False, True]
    assert frozen(counted(3)).series[0][1] == array("q", [0, HOUR])
