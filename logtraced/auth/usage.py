"""Usage accounting per key per UTC hour: requests, events, bytes, rejections and queued overflow.

Recording happens on every request, so it only adds to in-memory totals; they are added to the
database at most once a second and on `close`.  The database upsert adds rather than overwrites,
so several processes may record into the same file.  Reports are always confined to one
organisation: the HTTP layer passes the caller's, never one taken from the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from logtraced.auth.db import Clock, Database
from logtraced.auth.ratelimit import FLUSH_INTERVAL_SECONDS, hour_start


class UsageRow(msgspec.Struct, frozen=True):
    """One key's totals for one hour; `hour` is the epoch second at the top of that UTC hour."""

    org: str
    key_id: str
    hour: int
    requests: int
    events: int
    bytes: int
    rejections: int
    overflow_events: int


@dataclass(slots=True)
class _Totals:
    requests: int = 0
    events: int = 0
    bytes: int = 0
    rejections: int = 0
    overflow_events: int = 0


class UsageRecorder:
    """Accumulates usage in memory and adds it to the shared state database."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock
        self._pending: dict[tuple[str, str, int], _Totals] = {}
        self._last_flush = clock()

    def record(
        self,
        key_id: str,
        org: str,
        *,
        requests: int = 1,
        events: int = 0,
        bytes: int = 0,
        rejected: bool = False,
        overflow_events: int = 0,
    ) -> None:
        """Count one request (by default) in the current hour; a rejected request still counts as a request."""
        now = self._clock()
        totals = self._pending.setdefault((org, key_id, hour_start(now)), _Totals())
        totals.requests += requests
        totals.events += events
        totals.bytes += bytes
        totals.rejections += int(rejected)
        totals.overflow_events += overflow_events
        if now - self._last_flush >= FLUSH_INTERVAL_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Add pending totals to the database and forget them."""
        self._last_flush = self._clock()
        if not self._pending:
            return
        rows = [
            (org, key_id, hour, t.requests, t.events, t.bytes, t.rejections, t.overflow_events)
            for (org, key_id, hour), t in self._pending.items()
        ]
        with self._db.transaction() as cur:
            cur.executemany(
                "INSERT INTO usage_hourly"
                " (org, key_id, hour, requests, events, bytes, rejections, overflow_events)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (org, hour, key_id) DO UPDATE SET"
                " requests = requests + excluded.requests, events = events + excluded.events,"
                " bytes = bytes + excluded.bytes, rejections = rejections + excluded.rejections,"
                " overflow_events = overflow_events + excluded.overflow_events",
                rows,
            )
        self._pending.clear()

    def report(self, org: str, key_id: str | None, since_hour: float, until_hour: float) -> list[UsageRow]:
        """Hourly rows of one organisation (optionally one key) for hours starting in [since_hour, until_hour).

        `since_hour` is rounded down to its hour, so passing "now" for `until_hour` includes the
        current, still open hour.
        """
        self.flush()
        where, params = ("AND key_id = ?", (key_id,)) if key_id is not None else ("", ())
        rows = self._db.fetch_all(
            "SELECT org, key_id, hour, requests, events, bytes, rejections, overflow_events"
            f" FROM usage_hourly WHERE org = ? AND hour >= ? AND hour < ? {where} ORDER BY hour, key_id",
            (org, hour_start(since_hour), until_hour, *params),
        )
        return [UsageRow(*row) for row in rows]

    def close(self) -> None:
        """Write what is still in memory; the database stays open for its owner to close."""
        self.flush()
