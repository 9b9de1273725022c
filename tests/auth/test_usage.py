"""Tests for hourly usage accounting: totals, hour buckets, org confinement and persistence."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logtraced.auth.db import MIGRATIONS, Database
from logtraced.auth.dbthread import DatabaseThread
from logtraced.auth.usage import UsageRecorder, UsageRow
from logtraced.errors import StorageError

from . import FakeClock, at

TEN = int(at("2024-03-15T10:00:00"))
ELEVEN = int(at("2024-03-15T11:00:00"))
DAY = (at("2024-03-15T00:00:00"), at("2024-03-16T00:00:00"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2024-03-15T10:15:00"))


@pytest.fixture
async def usage(reader: DatabaseThread, writer: DatabaseThread, clock: FakeClock) -> AsyncIterator[UsageRecorder]:
    recorder = UsageRecorder(reader, writer, clock)
    yield recorder
    await recorder.flush()


def stored_rows(db: Database) -> int:
    (count,) = db.fetch_one("SELECT count(*) FROM usage_hourly") or (0,)
    return int(count)


class TestTotals:
    """Records add up per key and hour, counting rejections and overflow separately."""

    async def test_one_hour(self, usage: UsageRecorder) -> None:
        usage.record("key_a", "acme", events=10, bytes=1000)
        usage.record("key_a", "acme", events=5, bytes=400, overflow_events=5)
        usage.record("key_a", "acme", rejected=True)
        assert await usage.report("acme", None, *DAY) == [UsageRow("acme", "key_a", TEN, 3, 15, 1400, 1, 5)]

    async def test_ingest_query_and_throttled_are_counted_apart(self, usage: UsageRecorder) -> None:
        usage.record("key_a", "acme", kind="ingest", events=2)
        usage.record("key_a", "acme", kind="ingest", rejected=True, throttled=True)
        usage.record("key_a", "acme", kind="query")
        usage.record("key_a", "acme")  # whoami, keys, usage: no budget
        (row,) = await usage.report("acme", None, *DAY)
        assert (row.requests, row.ingest_requests, row.query_requests, row.rejections, row.throttled) == (4, 2, 1, 1, 1)

    async def test_hours_are_separate_buckets(self, usage: UsageRecorder, clock: FakeClock) -> None:
        clock.now = at("2024-03-15T10:59:59")
        usage.record("key_a", "acme", events=1)
        clock.now = at("2024-03-15T11:00:00")
        usage.record("key_a", "acme", events=2)
        rows = await usage.report("acme", "key_a", *DAY)
        assert [(row.hour, row.events) for row in rows] == [(TEN, 1), (ELEVEN, 2)]


class TestReport:
    """Reports show one organisation only, optionally one key, over a range of hours."""

    async def test_confined_to_the_org(self, usage: UsageRecorder) -> None:
        usage.record("key_a", "acme")
        usage.record("key_b", "acme")
        usage.record("key_g", "globex")
        assert {row.key_id for row in await usage.report("acme", None, *DAY)} == {"key_a", "key_b"}
        assert await usage.report("acme", "key_g", *DAY) == []
        assert [row.key_id for row in await usage.report("acme", "key_b", *DAY)] == ["key_b"]

    async def test_range_starts_at_the_hour_and_ends_before_until(self, usage: UsageRecorder, clock: FakeClock) -> None:
        usage.record("key_a", "acme")
        clock.now = at("2024-03-15T11:30:00")
        usage.record("key_a", "acme")
        assert [row.hour for row in await usage.report("acme", None, at("2024-03-15T10:45:00"), ELEVEN)] == [TEN]
        assert [row.hour for row in await usage.report("acme", None, ELEVEN, clock.now)] == [ELEVEN]


class TestMigration:
    """A state file written before requests were split keeps its rows, which read as unsplit."""

    async def test_rows_of_the_first_schema_survive(self, tmp_path: Path, clock: FakeClock) -> None:
        old = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
        for statement in MIGRATIONS[0]:
            old.execute(statement)
        old.execute("INSERT INTO usage_hourly VALUES ('acme', 'key_a', ?, 5, 50, 500, 1, 2)", (TEN,))
        old.execute("PRAGMA user_version = 1")
        old.close()
        writer = DatabaseThread(lambda: Database.open(tmp_path), "test-writer")
        await writer.start()
        reader = DatabaseThread(lambda: Database.open(tmp_path, query_only=True), "test-reader")
        await reader.start()
        usage = UsageRecorder(reader, writer, clock)
        usage.record("key_a", "acme", kind="query", events=1)
        rows = await usage.report("acme", None, *DAY)
        await reader.close()
        await writer.close()
        assert rows == [UsageRow("acme", "key_a", TEN, 6, 51, 500, 1, 2, ingest_requests=0, query_requests=1)]


class TestPersistence:
    """Totals reach SQLite only through flush, adding to what is there; a failed flush is not lost."""

    async def test_record_never_writes_flush_does(self, usage: UsageRecorder, db: Database) -> None:
        usage.record("key_a", "acme")
        assert stored_rows(db) == 0
        await usage.flush()
        assert stored_rows(db) == 1

    async def test_a_failed_flush_is_added_by_the_next(
        self, tmp_path: Path, reader: DatabaseThread, clock: FakeClock
    ) -> None:
        writer = DatabaseThread(lambda: Database.open(tmp_path, busy_timeout_ms=50), "test-writer")
        await writer.start()
        usage = UsageRecorder(reader, writer, clock)
        usage.record("key_a", "acme", events=3)
        cli = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
        cli.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="locked"):
            await usage.flush()
        usage.record("key_a", "acme", events=4)
        cli.execute("ROLLBACK")
        cli.close()
        rows = await usage.report("acme", "key_a", *DAY)
        assert [(row.requests, row.events) for row in rows] == [(2, 7)]
        await writer.close()

    async def test_two_recorders_add_up(
        self, tmp_path: Path, reader: DatabaseThread, writer: DatabaseThread, clock: FakeClock
    ) -> None:
        other = DatabaseThread(lambda: Database.open(tmp_path), "test-other-writer")
        await other.start()
        first, second = UsageRecorder(reader, writer, clock), UsageRecorder(reader, other, clock)
        first.record("key_a", "acme", events=3)
        second.record("key_a", "acme", events=4)
        await first.flush()
        await second.flush()
        await other.close()
        rows = await first.report("acme", "key_a", *DAY)
        assert [(row.requests, row.events) for row in rows] == [(2, 7)]
