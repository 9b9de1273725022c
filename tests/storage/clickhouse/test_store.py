"""The ClickHouse store through the storage seam: every public read confined, exact paging, replay, retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from logtraced.model import NS_PER_DAY, Event, EventColumns
from logtraced.storage.backend import SearchRequest
from logtraced.storage.clickhouse.client import ClickHouseError
from tests.storage.clickhouse.conftest import Backend, apply_wal, make_config, write_wal
from tests.storage.test_store import EVERYTHING, HOUR, MINE, NOW, READS, STRANGERS, event, window


@pytest.fixture
def filled(backend: Backend, tmp_path: Path) -> Backend:
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
    cfg = make_config(tmp_path)
    apply_wal(cfg, backend.writer(), write_wal(cfg, batches)).close()
    return backend


@pytest.mark.parametrize("read", sorted(READS))
def test_every_read_is_confined_to_its_tenant(filled: Backend, read: str) -> None:
    found = READS[read](filled.store.for_tenant(MINE))
    if read != "has_index":  # the tenant's own data shows, else confinement would prove nothing
        assert found
    assert not [item for item in found if "leak" in item or "secret" in item or "fatal" in item]
    for stranger in STRANGERS:
        theirs = READS[read](filled.store.for_tenant(stranger))
        assert not [item for item in theirs if "mine" in item or "eu" in item]


def test_search_and_total(filled: Backend) -> None:
    page = filled.store.for_tenant(MINE).search(SearchRequest(*window(), EVERYTHING, 100, count_total=True))
    assert [row.event.message for row in page.rows] == ["mine one", "mine two"]
    assert (page.total, page.total_exact) == (2, True)
    assert page.rows[0].event.attributes == {"region": "eu"}


def test_paging_is_exact_for_events_sharing_a_nanosecond(backend: Backend, tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    same = NOW - HOUR
    batches = [(MINE, [Event(same, f"m{n}") for n in range(7)]), (MINE, [Event(same, f"m{n}") for n in range(7, 12)])]
    apply_wal(cfg, backend.writer(), write_wal(cfg, batches)).close()
    view = backend.store.for_tenant(MINE)
    for pipeline_filter in (EVERYTHING,):
        seen: list[str] = []
        after = None
        while True:
            page = view.search(SearchRequest(*window(), pipeline_filter, 5, after=after))
            seen += [row.event.message for row in page.rows]
            if page.cursor is None:
                break
            after = page.cursor
        assert sorted(seen) == sorted(f"m{n}" for n in range(12))
        assert len(seen) == 12


def test_replay_after_a_crash_stores_nothing_twice(backend: Backend) -> None:
    """Committed, then the writer died before the WAL went: a restarted writer replays the records and skips them."""
    today, yesterday = NOW - HOUR, NOW - NS_PER_DAY

    def record(seq: int) -> list[Event]:
        return [Event(today, f"r{seq}", org=MINE.org, env=MINE.env, id=seq << 20),
                Event(yesterday, f"r{seq}", org=MINE.org, env=MINE.env, id=(seq << 20) + 1)]  # fmt: skip

    first = backend.writer()
    for seq in (1, 2):
        first.apply(seq, MINE, EventColumns.of_events(record(seq)))
    first.commit()
    restarted = backend.writer()
    for seq in (1, 2, 3):  # the WAL still holds 1 and 2
        restarted.apply(seq, MINE, EventColumns.of_events(record(seq)))
    restarted.commit()
    assert backend.count() == 6
    assert restarted.counters.documents == 2


def test_a_retried_insert_is_dropped_by_its_token(backend: Backend) -> None:
    """An INSERT whose acknowledgement was lost is sent again with the same token: ClickHouse keeps one copy."""
    writer = backend.writer()
    writer.apply(
        7, MINE, EventColumns.of_events([Event(NOW - HOUR, "retried", org=MINE.org, env=MINE.env, id=7 << 20)])
    )
    staged = dict(writer.staged)
    writer.commit()
    writer.staged = staged  # as if commit() had raised after ClickHouse stored the rows
    writer.commit()
    assert backend.count() == 1


def test_retention_drops_whole_days(backend: Backend, tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    seq = write_wal(cfg, [(MINE, [event(HOUR, "today"), event(3 * NS_PER_DAY, "old")])])
    apply_wal(cfg, backend.writer(), seq).close()
    writer = backend.writer()
    oldest_day = (NOW - NS_PER_DAY) // NS_PER_DAY
    assert writer.enforce_retention(oldest_day) == [f"day/{(NOW - 3 * NS_PER_DAY) // NS_PER_DAY}"]
    page = backend.store.for_tenant(MINE).search(SearchRequest(*window(), EVERYTHING, 10))
    assert [row.event.message for row in page.rows] == ["today"]


def test_events_older_than_retention_are_counted_not_stored(backend: Backend, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, retention_days=2)
    seq = write_wal(cfg, [(MINE, [event(HOUR, "kept"), event(5 * NS_PER_DAY, "expired")])])
    applier = apply_wal(cfg, backend.writer(), seq)
    applier.close()
    assert (applier.store.counters.documents, applier.store.counters.expired) == (1, 1)
    assert backend.count() == 1


def test_concurrent_statements_keep_their_own_parameters(filled: Backend) -> None:
    """The relay answers reads on many threads; each statement must see its own bound values."""
    from concurrent.futures import ThreadPoolExecutor

    def echo(n: int) -> int:
        rows = filled.client.query("SELECT {n:Int64} + 0 FROM numbers(1000) LIMIT 1", {"n": n})
        return int(rows[0][0])

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(echo, range(200))) == list(range(200))


def test_a_statement_after_a_timeout_gets_its_own_answer(backend: Backend) -> None:
    """chdb leaves a timed-out statement's partial answer behind; the next one must not read it as its own."""
    slow = "SELECT number FROM numbers(1000000000) WHERE sipHash64(number) % 3 = 0 ORDER BY number DESC LIMIT 5"
    with pytest.raises(ClickHouseError, match="TIMEOUT_EXCEEDED"):
        backend.client.query(slow, settings={"max_execution_time": 0.01})
    assert backend.client.query("SELECT {n:Int64} + 1", {"n": 41}) == [[42]]
