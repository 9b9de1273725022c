"""The storage seam in-process: WAL, writer and Tantivy store; replay without duplicates; every read confined."""

from __future__ import annotations

import inspect
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from logtraced.config import Config, load_config
from logtraced.model import NS_PER_DAY, Event, Tenant, event_id
from logtraced.query.ast import MatchAll
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import CountRequest, SearchRequest, TenantView
from logtraced.storage.tantivy import search
from logtraced.storage.tantivy.partitions import MAX_DAY, Partition, PartitionLayout, day_of
from logtraced.storage.tantivy.store import TantivyStore
from logtraced.storage.tantivy.writer import TantivyWriter
from logtraced.storage.wal import WalWriter
from logtraced.storage.writer import WalApplier

NOW = time.time_ns()
HOUR = 3600 * 10**9
MINE = Tenant("acme", "production")
STRANGERS = (Tenant("acme", "staging"), Tenant("globex", "production"))
EVERYTHING = Pipeline((Filter(MatchAll()),))


def config(data_dir: Path, **index: Any) -> Config:
    base = load_config(None, overrides={"data_dir": str(data_dir)})
    return msgspec.structs.replace(base, index=msgspec.structs.replace(base.index, **index))


def write(cfg: Config, batches: list[tuple[Tenant, list[Event]]]) -> WalApplier:
    """Append the batches to a real WAL and apply them with the real writer, as the writer process does."""
    wal = WalWriter(cfg.data_path / "wal", cfg.wal.segment_bytes)
    for tenant, events in batches:
        for event in events:
            event.org, event.env = tenant.org, tenant.env
        wal.append(tenant, events)
    wal.sync()
    applier = WalApplier(cfg, TantivyWriter(cfg))
    applier.apply_until(wal.written_seq, float("inf"))
    applier.commit()
    wal.close()
    return applier


def event(offset_ns: int, message: str, **fields: Any) -> Event:
    return Event(NOW - offset_ns, message, **fields)


@pytest.fixture
def store(tmp_path: Path) -> TantivyStore:
    cfg = config(tmp_path)
    mine = [
        event(HOUR, "mine one", level="error", service="api", attributes={"region": "eu"}, index="audit"),
        event(2 * HOUR, "mine two", level="info", service="api"),
    ]
    batches = [(MINE, mine)]
    for stranger in STRANGERS:
        service = f"svc-{stranger.org}-{stranger.env}"
        theirs = event(HOUR, "secret", level="fatal", service=service, host="leak", attributes={"region": "leak"})
        theirs.index = "leak"
        batches.append((stranger, [theirs]))
    write(cfg, batches).close()
    return TantivyStore(cfg.data_path)


def window() -> tuple[int, int]:
    return NOW - 3 * NS_PER_DAY, NOW + 1


# Every public read of TenantView, called so that another tenant's data would show if it leaked.
READS: dict[str, Callable[[TenantView], list[str]]] = {
    "search": lambda view: [row.event.message for row in view.search(SearchRequest(*window(), EVERYTHING, 100)).rows],
    "count": lambda view: [
        f"{series.labels}:{sum(series.counts.values())}"
        for series in view.count(CountRequest(*window(), EVERYTHING, HOUR, ("service", "level", "host"))).series
    ],
    "label_names": lambda view: view.label_names(*window()),
    "label_values": lambda view: [
        value
        for name in ("service", "level", "host", "index", "region")
        for value in view.label_values(name, *window(), 100)
    ],
    "has_index": lambda view: ["leak"] if view.has_index("leak") else [],
}


def test_every_public_read_is_listed() -> None:
    public = {name for name, _ in inspect.getmembers(TenantView, inspect.isfunction) if not name.startswith("_")}
    assert public == set(READS)


@pytest.mark.parametrize("read", sorted(READS))
def test_every_read_is_confined_to_its_tenant(store: TantivyStore, read: str) -> None:
    found = READS[read](store.for_tenant(MINE))
    assert not [item for item in found if "leak" in item or "secret" in item or "fatal" in item]
    for stranger in STRANGERS:
        theirs = READS[read](store.for_tenant(stranger))
        assert not [item for item in theirs if "mine" in item or "eu" in item]


def test_search_reads_the_tenants_events(store: TantivyStore) -> None:
    page = store.for_tenant(MINE).search(SearchRequest(*window(), EVERYTHING, 100))
    assert [row.event.message for row in page.rows] == ["mine one", "mine two"]
    assert page.total == 2


def test_counts_come_from_the_fast_fields(store: TantivyStore) -> None:
    result = store.for_tenant(MINE).count(CountRequest(*window(), EVERYTHING, NS_PER_DAY, ("level",)))
    assert result.stats.lines_examined == 0  # aggregated, not read
    totals = {series.labels["level"]: sum(series.counts.values()) for series in result.series}
    assert totals == {"error": 1, "info": 1}


def test_counts_that_need_verification_read_documents_and_agree(store: TantivyStore) -> None:
    pipeline = Pipeline((Filter(parse_kql("*one*")),))
    result = store.for_tenant(MINE).count(CountRequest(*window(), pipeline, NS_PER_DAY, ("level",)))
    assert result.stats.lines_examined >= 1
    assert {series.labels["level"]: sum(series.counts.values()) for series in result.series} == {"error": 1}


def test_paging_is_exact_for_events_sharing_a_nanosecond(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    same = NOW - HOUR
    batches = [(MINE, [Event(same, f"m{n}") for n in range(7)]), (MINE, [Event(same, f"m{n}") for n in range(7, 12)])]
    write(cfg, batches).close()
    view = TantivyStore(cfg.data_path).for_tenant(MINE)
    seen: list[str] = []
    after = None
    while True:
        page = view.search(SearchRequest(*window(), EVERYTHING, 5, after=after))
        seen += [row.event.message for row in page.rows]
        if page.cursor is None:
            break
        after = page.cursor
    assert sorted(seen) == sorted(f"m{n}" for n in range(12))
    assert len(seen) == 12


def test_replay_after_a_crash_stores_nothing_twice(tmp_path: Path) -> None:
    """The writer died after committing: the WAL is applied again from the start, as after kill -9."""
    cfg = config(tmp_path)
    write(cfg, [(MINE, [event(HOUR, "once"), event(NS_PER_DAY, "yesterday too")])]).close()
    applier = WalApplier(cfg, TantivyWriter(cfg))
    applier.apply_until(1, float("inf"))
    applier.commit()
    applier.close()
    page = TantivyStore(cfg.data_path).for_tenant(MINE).search(SearchRequest(*window(), EVERYTHING, 10))
    assert sorted(row.event.message for row in page.rows) == ["once", "yesterday too"]
    assert len({row.event.id for row in page.rows}) == 2


def test_events_older_than_retention_are_counted_not_stored(tmp_path: Path) -> None:
    cfg = config(tmp_path, retention_days=2)
    applier = write(cfg, [(MINE, [event(HOUR, "kept"), event(5 * NS_PER_DAY, "expired")])])
    assert (applier.store.counters.documents, applier.store.counters.expired) == (1, 1)
    applier.close()


def stored_ids(cfg: Config) -> dict[str, int]:
    """Message -> id of every event of MINE in the store."""
    page = TantivyStore(cfg.data_path).for_tenant(MINE).search(SearchRequest(*window(), EVERYTHING, 100))
    return {row.event.message: row.event.id for row in page.rows}


def test_ids_are_positions_in_the_record_across_days(tmp_path: Path) -> None:
    """A record spanning two UTC days (exactly a day apart) is split by day; ids stay the places in the record."""
    cfg = config(tmp_path)
    write(cfg, [(MINE, [event(0, "a"), event(NS_PER_DAY, "b"), event(0, "c")])]).close()
    assert stored_ids(cfg) == {"a": event_id(1, 0), "b": event_id(1, 1), "c": event_id(1, 2)}
    assert len(PartitionLayout(cfg.data_path).existing(MINE.org)) == 2


def test_partly_expired_record_keeps_the_positions_of_the_rest(tmp_path: Path) -> None:
    cfg = config(tmp_path, retention_days=2)
    old, fresh = event(5 * NS_PER_DAY, "expired"), [event(0, "kept"), event(NS_PER_DAY, "yesterday")]
    applier = write(cfg, [(MINE, [old, *fresh]), (MINE, [event(HOUR, "whole record kept")])])
    assert (applier.store.counters.documents, applier.store.counters.expired) == (3, 1)
    applier.close()
    assert stored_ids(cfg) == {"kept": event_id(1, 1), "yesterday": event_id(1, 2), "whole record kept": event_id(2, 0)}


def test_replay_restores_only_the_partition_that_lacks_the_record(tmp_path: Path) -> None:
    """Exactly once per partition: a day that lost a record gets it back, the day that has it is skipped."""
    cfg = config(tmp_path)
    write(cfg, [(MINE, [event(0, "today"), event(NS_PER_DAY, "yesterday")])]).close()
    layout = PartitionLayout(cfg.data_path)
    shutil.rmtree(layout.path(Partition(MINE.org, day_of(NOW - NS_PER_DAY))))
    applier = WalApplier(cfg, TantivyWriter(cfg))
    applier.apply_until(1, float("inf"))
    applier.commit()
    assert applier.store.counters.documents == 1
    applier.close()
    assert stored_ids(cfg) == {"today": event_id(1, 0), "yesterday": event_id(1, 1)}
    page = TantivyStore(cfg.data_path).for_tenant(MINE).search(SearchRequest(*window(), EVERYTHING, 10))
    assert len(page.rows) == 2


def test_stemmed_copy_is_indexed_by_the_writer(tmp_path: Path) -> None:
    cfg = config(tmp_path, stemming=True)
    write(cfg, [(MINE, [event(HOUR, "Ошибка подключения"), event(HOUR, "connection errors")])]).close()
    view = TantivyStore(cfg.data_path).for_tenant(MINE)
    for word, expected in (("ошибки", "Ошибка подключения"), ("error", "connection errors")):
        page = view.search(SearchRequest(*window(), Pipeline((Filter(parse_kql(word)),)), 10))
        assert [row.event.message for row in page.rows] == [expected]


def test_windows_at_a_days_edges_take_exactly_the_events_inside(tmp_path: Path) -> None:
    """A window holding a whole day needs no range on the timestamps; one a nanosecond short still has it."""
    cfg = config(tmp_path)
    day_start = (NOW // NS_PER_DAY - 1) * NS_PER_DAY
    day_end = day_start + NS_PER_DAY
    stamps = {"first": day_start, "second": day_start + 1, "last": day_end - 1, "next day": day_end}
    write(cfg, [(MINE, [Event(stamp, name) for name, stamp in stamps.items()])]).close()
    view = TantivyStore(cfg.data_path).for_tenant(MINE)

    assert _messages_in(view, day_start, day_end) == ["first", "last", "second"]
    assert _messages_in(view, day_start - 5, day_end + 5) == ["first", "last", "next day", "second"]
    assert _messages_in(view, day_start + 1, day_end) == ["last", "second"]
    assert _messages_in(view, day_start, day_end - 1) == ["first", "second"]
    assert _messages_in(view, day_start + 1, day_end - 1) == ["second"]
    counts = view.count(CountRequest(day_start, day_end, EVERYTHING, NS_PER_DAY, ()))
    assert [sum(series.counts.values()) for series in counts.series] == [3]


def test_a_window_holding_the_first_or_last_day_leaves_out_what_was_clamped_into_it(tmp_path: Path) -> None:
    """Events before 1970 are kept in 1970-01-01's partition, events after 2261-12-31 in that day's."""
    cfg = config(tmp_path, retention_days=200_000)
    last_day = MAX_DAY * NS_PER_DAY
    stamps = {"before 1970": -5, "epoch": 0, "last day": last_day, "after the last day": last_day + NS_PER_DAY + 5}
    write(cfg, [(MINE, [Event(stamp, name) for name, stamp in stamps.items()])]).close()
    view = TantivyStore(cfg.data_path).for_tenant(MINE)

    assert _messages_in(view, 0, NS_PER_DAY) == ["epoch"]
    assert _messages_in(view, last_day, last_day + NS_PER_DAY) == ["last day"]
    assert _messages_in(view, -10, NS_PER_DAY) == ["before 1970", "epoch"]


def test_scans_counts_and_labels_see_what_was_clamped_into_the_first_and_last_day(tmp_path: Path) -> None:
    """A verified scan, a count and label discovery read the partition as the plain search does."""
    cfg = config(tmp_path, retention_days=200_000)
    last_day = MAX_DAY * NS_PER_DAY
    stamps = {"before 1970": -5, "epoch": 0, "last day": last_day, "after the last day": last_day + NS_PER_DAY + 5}
    write(cfg, [(MINE, [Event(stamp, name, service=name) for name, stamp in stamps.items()])]).close()
    view = TantivyStore(cfg.data_path).for_tenant(MINE)
    for start, end, expected, letter in [
        (-10, NS_PER_DAY, ["before 1970", "epoch"], "e"),
        (last_day, last_day + 2 * NS_PER_DAY, ["after the last day", "last day"], "a"),
    ]:
        scanned = Pipeline((Filter(parse_kql(f"*{letter}*")),))  # a wildcard: candidates verified in time order
        assert sorted(row.event.message for row in view.search(SearchRequest(start, end, scanned, 10)).rows) == expected
        counts = view.count(CountRequest(start, end, EVERYTHING, NS_PER_DAY, ()))
        assert sum(sum(series.counts.values()) for series in counts.series) == len(expected)
        assert sorted(view.label_values("service", start, end, 10)) == expected


@pytest.mark.parametrize(
    "kql", ["", "service:api", "env:production", "service:api and env:production", "level:error", "event", "7"]
)
@pytest.mark.parametrize("with_staging", [True, False], ids=["two environments", "one environment"])
def test_exact_totals_over_whole_days_agree_with_the_events(tmp_path: Path, kql: str, with_staging: bool) -> None:
    """A window of whole days is counted from the term dictionary where it can be: the totals must not change.

    With two environments the other one's events share the partitions, so the tenant's own term is
    on some events only.
    """
    cfg = config(tmp_path)
    first_day = NOW // NS_PER_DAY - 3
    staging = Tenant(MINE.org, "staging")
    mine, theirs = [], []
    for position in range(120):
        stamp = (first_day + position % 3) * NS_PER_DAY + position * 10**9
        fields = {"service": ["api", "web"][position % 2], "level": ["info", "error", "warn"][position % 3]}
        (mine if position % 4 or not with_staging else theirs).append(Event(stamp, f"event {position}", **fields))
    write(cfg, [(MINE, mine), (staging, theirs)] if with_staging else [(MINE, mine)]).close()
    view = TantivyStore(cfg.data_path).for_tenant(MINE)
    pipeline = Pipeline((Filter(parse_kql(kql)),))
    matches = pipeline.matcher()
    for start_day, days in [(first_day, 3), (first_day, 1), (first_day + 1, 2)]:
        for start, end in [
            (start_day * NS_PER_DAY, (start_day + days) * NS_PER_DAY),  # whole days
            (start_day * NS_PER_DAY + 30 * 10**9, (start_day + days) * NS_PER_DAY),  # the first day cut
        ]:
            page = view.search(SearchRequest(start, end, pipeline, 5, count_total=True))
            expected = sum(1 for event in mine if start <= event.timestamp < end and matches(event) is not None)
            assert (page.total, page.total_exact) == (expected, True), (start, end)


def test_a_whole_day_of_one_label_is_counted_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The term dictionary gives the count of a label or a message word over whole days: no pass over the hits."""
    cfg = config(tmp_path)
    day = NOW // NS_PER_DAY - 2
    events = [Event(day * NS_PER_DAY + n * 10**9, f"e{n}", service=["api", "web"][n % 3 == 0]) for n in range(30)]
    write(cfg, [(MINE, events)]).close()
    view = TantivyStore(cfg.data_path).for_tenant(MINE)

    def no_pass(*_: object) -> int:
        raise AssertionError("counted by a pass over the hits")

    monkeypatch.setattr(search, "hit_count", no_pass)
    for kql, expected in [("", 30), ("service:api", 20), ("service:web and env:production", 10), ("e3", 1)]:
        page = view.search(
            SearchRequest(
                day * NS_PER_DAY, (day + 1) * NS_PER_DAY, Pipeline((Filter(parse_kql(kql)),)), 5, count_total=True
            )
        )
        assert (page.total, page.total_exact) == (expected, True)


def _messages_in(view: TenantView, start: int, end: int) -> list[str]:
    """The messages a window returns, sorted; its exact total must agree with them."""
    page = view.search(SearchRequest(start, end, EVERYTHING, 100, count_total=True))
    assert page.total == len(page.rows)
    return sorted(row.event.message for row in page.rows)
