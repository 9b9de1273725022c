"""Usage accounting per key per UTC hour: requests (all, ingest, query), events, bytes, rejections, 429s, overflow.

Recording happens on every request, so it only adds to in-memory totals on the loop; `flush`
(every second and at shutdown, by the daemon) adds them to the database on the writer thread.
The database upsert adds rather than overwrites, so several processes may record into the same
file, and totals whose flush failed are merged back to be added by the next one.  Reports are always confined to one
organisation: the HTTP layer passes the caller's, never one taken from the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final, TypeAlias

import msgspec

from logtraced.auth.db import Clock, Database
from logtraced.auth.dbthread import DatabaseThread
from logtraced.auth.ratelimit import Kind, hour_start
from logtraced.errors import StorageError

_Bucket: TypeAlias = tuple[str, str, int]
# The added-up columns of usage_hourly, in UsageRow's order after (org, key_id, hour).
_COLUMNS: Final = (
    "requests",
    "events",
    "bytes",
    "rejections",
    "overflow_events",
    "ingest_requests",
    "query_requests",
    "throttled",
)


class UsageRow(msgspec.Struct, frozen=True):
    """One key's totals for one hour; `hour` is the epoch second at the top of that UTC hour.

    `requests` counts every authenticated call; `ingest_requests` and `query_requests` only those
    of the rate-limited kinds (each against its own hourly budget), so the rest (keys, usage,
    health, whoami) is their difference.  `throttled` counts the 429s (a spent budget, or load shed), which
    `rejections` includes.
    """

    org: str
    key_id: str
    hour: int
    requests: int
    events: int
    bytes: int
    rejections: int
    overflow_events: int
    ingest_requests: int = 0
    query_requests: int = 0
    throttled: int = 0


@dataclass(slots=True)
class _Totals:
    requests: int = 0
    events: int = 0
    bytes: int = 0
    rejections: int = 0
    overflow_events: int = 0
    ingest_requests: int = 0
    query_requests: int = 0
    throttled: int = 0

    def add(self, other: _Totals) -> None:
        self.requests += other.requests
        self.events += other.events
        self.bytes += other.bytes
        self.rejections += other.rejections
        self.overflow_events += other.overflow_events
        self.ingest_requests += other.ingest_requests
        self.query_requests += other.query_requests
        self.throttled += other.throttled


class UsageRecorder:
    """Accumulates usage in memory and adds it to the shared state database."""

    def __init__(self, reader: DatabaseThread, writer: DatabaseThread, clock: Clock = time.time) -> None:
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._pending: dict[_Bucket, _Totals] = {}

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
        kind: Kind | None = None,
        throttled: bool = False,
    ) -> None:
        """Count one request (by default) in the current hour; a rejected request still counts as a request.

        `kind` is the budget the request was checked against (None for routes without one), and
        `throttled` says it was answered 429.
        """
        totals = self._pending.setdefault((org, key_id, hour_start(self._clock())), _Totals())
        totals.add(
            _Totals(
                requests,
                events,
                bytes,
                int(rejected),
                overflow_events,
                ingest_requests=requests if kind == "ingest" else 0,
                query_requests=requests if kind == "query" else 0,
                throttled=int(throttled),
            )
        )

    async def flush(self) -> None:
        """Add pending totals to the database; returns once every flush queued before it is written too."""
        batch, self._pending = self._pending, {}
        try:
            await self._writer.run(lambda db: _add_totals(db, batch))
        except StorageError:
            self._merge_back(batch)
            raise

    async def report(self, org: str, key_id: str | None, since_hour: float, until_hour: float) -> list[UsageRow]:
        """Hourly rows of one organisation (optionally one key) for hours starting in [since_hour, until_hour).

        `since_hour` is rounded down to its hour, so passing "now" for `until_hour` includes the
        current, still open hour.  Pending totals are flushed first, so the report includes the
        requests that came before it.
        """
        await self.flush()
        since = hour_start(since_hour)
        return await self._reader.run(lambda db: _read_rows(db, org, key_id, since, until_hour))

    def _merge_back(self, batch: dict[_Bucket, _Totals]) -> None:
        """A failed flush wrote nothing (one transaction), so its totals rejoin those recorded since."""
        for bucket, totals in batch.items():
            self._pending.setdefault(bucket, _Totals()).add(totals)


def _add_totals(db: Database, batch: dict[_Bucket, _Totals]) -> None:
    """On the writer thread: add each bucket to its row; an empty batch only keeps the flush order."""
    if not batch:
        return
    rows = [(org, key_id, hour, *(getattr(t, name) for name in _COLUMNS)) for (org, key_id, hour), t in batch.items()]
    with db.transaction() as cur:
        cur.executemany(
            f"INSERT INTO usage_hourly (org, key_id, hour, {', '.join(_COLUMNS)})"
            f" VALUES (?, ?, ?{', ?' * len(_COLUMNS)})"
            " ON CONFLICT (org, hour, key_id) DO UPDATE SET "
            + ", ".join(f"{name} = {name} + excluded.{name}" for name in _COLUMNS),
            rows,
        )


def _read_rows(db: Database, org: str, key_id: str | None, since: int, until: float) -> list[UsageRow]:
    """On the reader thread: the stored rows of one organisation, ordered by hour then key."""
    where, params = ("AND key_id = ?", (key_id,)) if key_id is not None else ("", ())
    rows = db.fetch_all(
        f"SELECT org, key_id, hour, {', '.join(_COLUMNS)}"
        f" FROM usage_hourly WHERE org = ? AND hour >= ? AND hour < ? {where} ORDER BY hour, key_id",
        (org, since, until, *params),
    )
    return [UsageRow(*row) for row in rows]
