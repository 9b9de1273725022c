"""Tests for hourly rate limits: budgets, UTC hour windows, overflow, headers and persistence."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logtraced.auth.db import Database
from logtraced.auth.dbthread import DatabaseThread
from logtraced.auth.principal import Principal
from logtraced.auth.ratelimit import Decision, RateLimiter, Tier, headers, hour_start, rate_limited
from logtraced.errors import LogtracedError, StorageError

from . import FakeClock, at

TIERS = {
    "standard": Tier("standard", ingest_per_hour=3, query_per_hour=2),
    "enterprise": Tier("enterprise", ingest_per_hour=2, query_per_hour=1, overflow=True),
}
STANDARD = Principal("key_aaaaaaaaaaaa", "acme", "production", frozenset({"write:logs"}), "standard", "key")
OTHER = Principal("key_bbbbbbbbbbbb", "acme", "production", frozenset({"write:logs"}), "standard", "key")
ENTERPRISE = Principal("key_cccccccccccc", "globex", "production", frozenset({"write:logs"}), "enterprise", "token")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2024-03-15T10:20:00"))


@pytest.fixture
async def limiter(writer: DatabaseThread, clock: FakeClock) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(writer, TIERS, clock)
    await limiter.load()
    yield limiter
    await limiter.flush()


async def restarted(tmp_path: Path, clock: FakeClock) -> tuple[DatabaseThread, RateLimiter]:
    """A fresh writer thread and limiter over the same file, as after a daemon restart."""
    thread = DatabaseThread(lambda: Database.open(tmp_path), "test-writer")
    await thread.start()
    limiter = RateLimiter(thread, TIERS, clock)
    await limiter.load()
    return thread, limiter


def stored_used(db: Database, principal: Principal, kind: str) -> int | None:
    row = db.fetch_one("SELECT used FROM rate_counters WHERE key_id = ? AND kind = ?", (principal.key_id, kind))
    return None if row is None else int(row[0])


class TestBudget:
    """Requests are allowed until the tier's budget is used, then refused until the next hour."""

    def test_remaining_counts_down_then_refuses(self, limiter: RateLimiter, clock: FakeClock) -> None:
        reset = int(at("2024-03-15T11:00:00"))
        assert [limiter.check(STANDARD, "ingest").remaining for _ in range(3)] == [2, 1, 0]
        refused = limiter.check(STANDARD, "ingest")
        assert refused == Decision(False, False, 3, 0, reset, 40 * 60)

    async def test_refusal_consumes_nothing(self, limiter: RateLimiter, db: Database) -> None:
        outcomes = [limiter.check(STANDARD, "query").allowed for _ in range(10)]
        assert outcomes == [True, True] + [False] * 8
        await limiter.flush()
        assert stored_used(db, STANDARD, "query") == 2

    def test_kinds_and_keys_have_separate_budgets(self, limiter: RateLimiter) -> None:
        for _ in range(3):
            limiter.check(STANDARD, "ingest")
        assert limiter.check(STANDARD, "ingest").allowed is False
        assert limiter.check(STANDARD, "query").allowed is True
        assert limiter.check(OTHER, "ingest").allowed is True

    def test_unknown_tier_fails_closed(self, limiter: RateLimiter) -> None:
        gold = Principal("key_dddddddddddd", "acme", "production", frozenset(), "gold", "key")
        with pytest.raises(LogtracedError) as caught:
            limiter.check(gold, "ingest")
        assert (caught.value.status, caught.value.code) == (403, "unknown_tier")


class TestHourBoundary:
    """Windows reset at the top of each UTC hour, and Retry-After counts the seconds to it."""

    def test_midnight_resets(self, limiter: RateLimiter, clock: FakeClock) -> None:
        clock.now = at("2024-03-15T23:59:59")
        for _ in range(3):
            limiter.check(STANDARD, "ingest")
        refused = limiter.check(STANDARD, "ingest")
        assert (refused.allowed, refused.retry_after_seconds) == (False, 1)
        assert refused.reset_epoch == int(at("2024-03-16T00:00:00"))
        clock.now = at("2024-03-16T00:00:00")
        fresh = limiter.check(STANDARD, "ingest")
        assert (fresh.allowed, fresh.remaining) == (True, 2)
        assert fresh.reset_epoch == int(at("2024-03-16T01:00:00"))

    def test_retry_after_rounds_up(self, limiter: RateLimiter, clock: FakeClock) -> None:
        clock.now = at("2024-03-15T10:59:58") + 0.25
        for _ in range(2):
            limiter.check(STANDARD, "query")
        assert limiter.check(STANDARD, "query").retry_after_seconds == 2

    def test_hour_start(self) -> None:
        assert hour_start(at("2024-03-15T10:59:59.999")) == int(at("2024-03-15T10:00:00"))
        assert hour_start(at("2024-03-15T11:00:00")) == int(at("2024-03-15T11:00:00"))


class TestOverflow:
    """An overflow tier has ingestion past budget accepted as overflow; its queries are still refused."""

    def test_enterprise_ingest_overflows(self, limiter: RateLimiter) -> None:
        first, second, third = (limiter.check(ENTERPRISE, "ingest") for _ in range(3))
        assert (first.overflow, second.overflow) == (False, False)
        assert (third.allowed, third.overflow, third.remaining, third.retry_after_seconds) == (True, True, 0, 0)

    def test_enterprise_queries_are_refused(self, limiter: RateLimiter) -> None:
        limiter.check(ENTERPRISE, "query")
        refused = limiter.check(ENTERPRISE, "query")
        assert (refused.allowed, refused.overflow) == (False, False)


class TestHeaders:
    """Every decision renders X-RateLimit-*; only a refusal adds Retry-After and becomes a 429."""

    def test_allowed(self, limiter: RateLimiter) -> None:
        assert headers(limiter.check(STANDARD, "ingest")) == {
            "X-RateLimit-Limit": "3",
            "X-RateLimit-Remaining": "2",
            "X-RateLimit-Reset": str(int(at("2024-03-15T11:00:00"))),
        }

    def test_refused(self, limiter: RateLimiter) -> None:
        for _ in range(2):
            limiter.check(STANDARD, "query")
        decision = limiter.check(STANDARD, "query")
        assert headers(decision)["Retry-After"] == "2400"
        error = rate_limited(decision, "query")
        assert (error.status, error.code, error.retry_after) == (429, "rate_limited", 2400)


class TestPersistence:
    """Counters reach SQLite only through flush, and a restart in the hour continues them."""

    async def test_check_never_writes_flush_does(self, limiter: RateLimiter, db: Database) -> None:
        limiter.check(STANDARD, "ingest")
        assert stored_used(db, STANDARD, "ingest") is None
        limiter.check(STANDARD, "ingest")
        await limiter.flush()
        assert stored_used(db, STANDARD, "ingest") == 2

    async def test_a_failed_flush_is_written_by_the_next(self, tmp_path: Path, clock: FakeClock, db: Database) -> None:
        thread = DatabaseThread(lambda: Database.open(tmp_path, busy_timeout_ms=50), "test-writer")
        await thread.start()
        limiter = RateLimiter(thread, TIERS, clock)
        limiter.check(STANDARD, "ingest")
        cli = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
        cli.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="locked"):
            await limiter.flush()
        cli.execute("ROLLBACK")
        cli.close()
        await limiter.flush()
        assert stored_used(db, STANDARD, "ingest") == 1
        await thread.close()

    async def test_restart_within_the_hour_continues(self, tmp_path: Path, clock: FakeClock) -> None:
        thread, limiter = await restarted(tmp_path, clock)
        for _ in range(2):
            limiter.check(STANDARD, "ingest")
        await limiter.flush()
        await thread.close()
        clock.advance(600)
        thread, limiter = await restarted(tmp_path, clock)
        assert limiter.check(STANDARD, "ingest").remaining == 0
        assert limiter.check(STANDARD, "ingest").allowed is False
        await thread.close()

    async def test_restart_in_a_later_hour_starts_afresh(self, tmp_path: Path, clock: FakeClock, db: Database) -> None:
        thread, limiter = await restarted(tmp_path, clock)
        for _ in range(3):
            limiter.check(STANDARD, "ingest")
        await limiter.flush()
        await thread.close()
        clock.now = at("2024-03-15T11:00:00")
        thread, limiter = await restarted(tmp_path, clock)
        assert limiter.check(STANDARD, "ingest").remaining == 2
        await limiter.flush()
        await thread.close()
        assert stored_used(db, STANDARD, "ingest") == 1
