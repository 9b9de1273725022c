"""Tests for hourly usage accounting: totals, hour buckets, org confinement and persistence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from logtraced.auth.db import Database
from logtraced.auth.usage import UsageRecorder, UsageRow

from . import FakeClock, at

TEN = int(at("2024-03-15T10:00:00"))
ELEVEN = int(at("2024-03-15T11:00:00"))
DAY = (at("2024-03-15T00:00:00"), at("2024-03-16T00:00:00"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2024-03-15T10:15:00"))


@pytest.fixture
def usage(db: Database, clock: FakeClock) -> Iterator[UsageRecorder]:
    recorder = UsageRecorder(db, clock)
    yield recorder
    recorder.close()


def stored_rows(db: Database) -> int:
    (count,) = db.fetch_one("SELECT count(*) FROM usage_hourly") or (0,)
    return int(count)


class TestTotals:
    """Records add up per key and hour, counting rejections and overflow separately."""

    def test_one_hour(self, usage: UsageRecorder) -> None:
        usage.record("key_a", "acme", events=10, bytes=1000)
        usage.record("key_a", "acme", events=5, bytes=400, overflow_events=5)
        usage.record("key_a", "acme", rejected=True)
        assert usage.report("acme", None, *DAY) == [UsageRow("acme", "key_a", TEN, 3, 15, 1400, 1, 5)]

    def test_hours_are_separate_buckets(self, usage: UsageRecorder, clock: FakeClock) -> None:
        clock.now = at("2024-03-15T10:59:59")
        usage.record("key_a", "acme", events=1)
        clock.now = at("2024-03-15T11:00:00")
        usage.record("key_a", "acme", events=2)
        rows = usage.report("acme", "key_a", *DAY)
        assert [(row.hour, row.events) for row in rows] == [(TEN, 1), (ELEVEN, 2)]


class TestReport:
    """Reports show one organisation only, optionally one key, over a range of hours."""

    def test_confined_to_the_org(self, usage: UsageRecorder) -> None:
        usage.record("key_a", "acme")
        usage.record("key_b", "acme")
        usage.record("key_g", "globex")
        assert {row.key_id for row in usage.report("acme", None, *DAY)} == {"key_a", "key_b"}
        assert usage.report("acme", "key_g", *DAY) == []
        assert [row.key_id for row in usage.report("acme", "key_b", *DAY)] == ["key_b"]

    def test_range_starts_at_the_hour_and_ends_before_until(self, usage: UsageRecorder, clock: FakeClock) -> None:
        usage.record("key_a", "acme")
        clock.now = at("2024-03-15T11:30:00")
        usage.record("key_a", "acme")
        assert [row.hour for row in usage.report("acme", None, at("2024-03-15T10:45:00"), ELEVEN)] == [TEN]
        assert [row.hour for row in usage.report("acme", None, ELEVEN, clock.now)] == [ELEVEN]


class TestPersistence:
    """Totals reach SQLite at most once a second and on close, adding to what is there."""

    def test_flushes_at_most_once_a_second(self, usage: UsageRecorder, db: Database, clock: FakeClock) -> None:
        usage.record("key_a", "acme")
        assert stored_rows(db) == 0
        clock.advance(1)
        usage.record("key_a", "acme")
        assert stored_rows(db) == 1

    def test_two_recorders_add_up_across_reopen(self, tmp_path: Path, clock: FakeClock) -> None:
        with Database.open(tmp_path) as daemon, Database.open(tmp_path) as other:
            first, second = UsageRecorder(daemon, clock), UsageRecorder(other, clock)
            first.record("key_a", "acme", events=3)
            second.record("key_a", "acme", events=4)
            first.close()
            second.close()
        with Database.open(tmp_path) as reopened:
            rows = UsageRecorder(reopened, clock).report("acme", "key_a", *DAY)
        assert [(row.requests, row.events) for row in rows] == [(2, 7)]
