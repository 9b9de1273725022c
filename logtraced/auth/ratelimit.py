"""Per-key hourly request budgets for ingestion and queries, in fixed windows aligned to the UTC hour.

Policy:
- A window runs from the top of one UTC hour to the next; every key has one budget per kind
  (`ingest`, `query`) per window, sized by its tier.
- Each allowed request consumes one unit.  A refused request consumes nothing, so a client
  hammering a closed window does not push its own recovery further away, and the count stays
  equal to the work actually accepted.
- A tier with `overflow` (enterprise) never has ingestion refused: past the budget a request is
  allowed and marked `overflow` so the caller queues it.  Queries are always refused past budget.
- Counters live in memory (the hot path is a dict lookup, never SQLite) and are written to SQLite
  by `flush`, which the daemon calls every second and at shutdown, on the database writer thread.
  `load` reads them back at start, so a restart within the same hour continues the count.  A
  crash loses at most the last second of counting; a flush that fails (the CLI held the lock past
  the busy timeout) is retried by the next one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

import msgspec

from logtraced.auth.db import Clock, Database
from logtraced.auth.dbthread import DatabaseThread
from logtraced.auth.principal import Principal
from logtraced.errors import Forbidden, RateLimited, StorageError

Kind: TypeAlias = Literal["ingest", "query"]

HOUR_SECONDS = 3600


def hour_start(epoch: float) -> int:
    """The top of the UTC hour containing `epoch`; POSIX time has no leap seconds, so plain division is exact."""
    return int(epoch // HOUR_SECONDS) * HOUR_SECONDS


class Tier(msgspec.Struct, frozen=True):
    """A named set of hourly budgets, as configured under auth.tiers."""

    name: str
    ingest_per_hour: int
    query_per_hour: int
    overflow: bool = False

    def limit(self, kind: Kind) -> int:
        """The budget for one kind of request."""
        return self.ingest_per_hour if kind == "ingest" else self.query_per_hour


class Decision(msgspec.Struct, frozen=True):
    """The outcome of one check; `overflow` means allowed past budget, to be queued."""

    allowed: bool
    overflow: bool
    limit: int
    remaining: int
    reset_epoch: int
    retry_after_seconds: int


@dataclass(slots=True)
class _Counter:
    window_start: int
    used: int

    def row(self) -> tuple[int, int]:
        return self.window_start, self.used


class RateLimiter:
    """Counts requests per key and kind in the current hour and decides whether one more fits."""

    def __init__(self, database: DatabaseThread, tiers: Mapping[str, Tier], clock: Clock = time.time) -> None:
        self._database = database
        self._tiers = dict(tiers)
        self._clock = clock
        self._counters: dict[tuple[str, Kind], _Counter] = {}
        self._dirty: set[tuple[str, Kind]] = set()

    async def load(self) -> None:
        """Read the counters of the current hour before serving; only the daemon writes them, so once is enough."""
        window = hour_start(self._clock())
        rows = await self._database.run(
            lambda db: db.fetch_all("SELECT key_id, kind, used FROM rate_counters WHERE window_start = ?", (window,))
        )
        for key_id, kind, used in rows:
            self._counters.setdefault((key_id, kind), _Counter(window, int(used)))

    def replace_tiers(self, tiers: Mapping[str, Tier]) -> None:
        """New budgets from a reloaded config; counts in the current window are kept."""
        self._tiers = dict(tiers)

    def check(self, principal: Principal, kind: Kind) -> Decision:
        """Decide on one request and, when allowed, count it."""
        tier = self._tier(principal)
        now = self._clock()
        window = hour_start(now)
        reset = window + HOUR_SECONDS
        counter = self._counter(principal.key_id, kind, window)
        limit = tier.limit(kind)
        within = counter.used < limit
        if within or (kind == "ingest" and tier.overflow):
            counter.used += 1
            self._dirty.add((principal.key_id, kind))
            decision = Decision(True, not within, limit, max(limit - counter.used, 0), reset, 0)
        else:
            decision = Decision(False, False, limit, 0, reset, max(math.ceil(reset - now), 1))
        return decision

    async def flush(self) -> None:
        """Write changed counters and drop rows of past windows; nothing changed costs nothing."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        rows = [(key_id, kind, *self._counters[key_id, kind].row()) for key_id, kind in dirty]
        current = hour_start(self._clock())
        try:
            await self._database.run(lambda db: _write_counters(db, rows, current))
        except StorageError:
            # The counters in memory are still right; mark them again so the next flush writes them.
            self._dirty |= dirty
            raise

    def _tier(self, principal: Principal) -> Tier:
        """A key whose tier is missing from the configuration fails closed, naming the tier."""
        tier = self._tiers.get(principal.tier)
        if tier is None:
            raise Forbidden(f"this key's tier {principal.tier!r} is not configured", code="unknown_tier")
        return tier

    def _counter(self, key_id: str, kind: Kind, window: int) -> _Counter:
        """The counter for the current window; a key not seen since `load` starts at zero."""
        counter = self._counters.get((key_id, kind))
        if counter is None:
            counter = self._counters[key_id, kind] = _Counter(window, 0)
        if counter.window_start != window:
            counter.window_start, counter.used = window, 0
        return counter


def _write_counters(db: Database, rows: list[tuple[str, Kind, int, int]], current_window: int) -> None:
    """On the writer thread: upsert the counters (the latest value wins) and forget past windows."""
    with db.transaction() as cur:
        cur.executemany(
            "INSERT INTO rate_counters (key_id, kind, window_start, used) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key_id, kind) DO UPDATE"
            " SET window_start = excluded.window_start, used = excluded.used",
            rows,
        )
        cur.execute("DELETE FROM rate_counters WHERE window_start < ?", (current_window,))


def headers(decision: Decision) -> dict[str, str]:
    """The X-RateLimit-* headers for any response, plus Retry-After when the request was refused."""
    values = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_epoch),
    }
    if not decision.allowed:
        values["Retry-After"] = str(decision.retry_after_seconds)
    return values


def rate_limited(decision: Decision, kind: Kind) -> RateLimited:
    """The 429 to raise for a refused decision, carrying its headers."""
    return RateLimited(
        f"hourly {kind} limit of {decision.limit} requests reached; retry in {decision.retry_after_seconds} s",
        retry_after=decision.retry_after_seconds,
    )
