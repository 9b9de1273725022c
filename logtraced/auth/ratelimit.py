"""Per-key hourly request budgets for ingestion and queries, in fixed windows aligned to the UTC hour.

Policy:
- A window runs from the top of one UTC hour to the next; every key has one budget per kind
  (`ingest`, `query`) per window, sized by its tier.
- Each allowed request consumes one unit.  A refused request consumes nothing, so a client
  hammering a closed window does not push its own recovery further away, and the count stays
  equal to the work actually accepted.
- A tier with `overflow` (enterprise) never has ingestion refused: past the budget a request is
  allowed and marked `overflow` so the caller queues it.  Queries are always refused past budget.
- Counters live in memory (the hot path is a dict lookup) and are written to SQLite at most once
  a second and on `close`, so a restart within the same hour continues the count.  A crash loses
  at most the last second of counting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

import msgspec

from logtraced.auth.db import Clock, Database
from logtraced.auth.principal import Principal
from logtraced.errors import Forbidden, RateLimited

Kind: TypeAlias = Literal["ingest", "query"]

HOUR_SECONDS = 3600
FLUSH_INTERVAL_SECONDS = 1.0


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


class RateLimiter:
    """Counts requests per key and kind in the current hour and decides whether one more fits."""

    def __init__(self, db: Database, tiers: Mapping[str, Tier], clock: Clock = time.time) -> None:
        self._db = db
        self._tiers = dict(tiers)
        self._clock = clock
        self._counters: dict[tuple[str, Kind], _Counter] = {}
        self._dirty: set[tuple[str, Kind]] = set()
        self._last_flush = clock()

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
        if now - self._last_flush >= FLUSH_INTERVAL_SECONDS:
            self.flush()
        return decision

    def flush(self) -> None:
        """Persist changed counters and drop rows of past windows; cheap when nothing changed."""
        now = self._clock()
        self._last_flush = now
        if not self._dirty:
            return
        rows = [
            (key_id, kind, self._counters[key_id, kind].window_start, self._counters[key_id, kind].used)
            for key_id, kind in self._dirty
        ]
        with self._db.transaction() as cur:
            cur.executemany(
                "INSERT INTO rate_counters (key_id, kind, window_start, used) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key_id, kind) DO UPDATE"
                " SET window_start = excluded.window_start, used = excluded.used",
                rows,
            )
            cur.execute("DELETE FROM rate_counters WHERE window_start < ?", (hour_start(now),))
        self._dirty.clear()

    def close(self) -> None:
        """Write what is still in memory; the database stays open for its owner to close."""
        self.flush()

    def _tier(self, principal: Principal) -> Tier:
        """A key whose tier is missing from the configuration fails closed, naming the tier."""
        tier = self._tiers.get(principal.tier)
        if tier is None:
            raise Forbidden(f"this key's tier {principal.tier!r} is not configured", code="unknown_tier")
        return tier

    def _counter(self, key_id: str, kind: Kind, window: int) -> _Counter:
        """The counter for the current window, loaded from disk the first time a key is seen."""
        counter = self._counters.get((key_id, kind))
        if counter is None:
            row = self._db.fetch_one(
                "SELECT window_start, used FROM rate_counters WHERE key_id = ? AND kind = ?", (key_id, kind)
            )
            counter = self._counters[key_id, kind] = _Counter(*row) if row else _Counter(window, 0)
        if counter.window_start != window:
            counter.window_start, counter.used = window, 0
        return counter


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
