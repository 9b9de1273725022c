"""The ClickHouse backend's write side: WAL records staged per UTC day, inserted at commit, replay-safe.

Exactly-once, the way the Tantivy writer does it: each day-partition knows the newest WAL record it
holds (the high bits of its largest event id, read back at start), and a replayed record at or
below it is skipped.  One commit sends one INSERT per day, so each lands as one part, all or
nothing; its `insert_deduplication_token` is derived from the day and the WAL sequence range, so
an INSERT retried after a lost acknowledgement is dropped by ClickHouse instead of stored twice.

`commit` returns only once ClickHouse acknowledged every INSERT: the writer process deletes WAL
segments after `commit` returns, so nothing is deleted that ClickHouse does not hold.  A failed
INSERT keeps its rows staged (and its token), and raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from logtraced.log import WarningLimiter, get_logger
from logtraced.model import ID_POSITION_BITS, NS_PER_DAY, Event, EventColumns, Tenant
from logtraced.query.evaluate import words
from logtraced.storage.backend import Footprint, StoreWriter, WriterCounters
from logtraced.storage.clickhouse.client import Client, Settings
from logtraced.storage.clickhouse.schema import NS_PER_DAY_SQL, Target

_Row: Final = msgspec.defstruct(
    "_Row",
    [
        ("timestamp", int),
        ("id", int),
        ("org", str),
        ("env", str),
        ("level", str),
        ("service", str),
        ("host", str),
        ("index", str),
        ("tags", list[str]),
        ("message", str),
        ("attributes", dict[str, Any]),
        ("words", list[str]),
    ],
    gc=False,
)
_encode: Final = msgspec.json.Encoder().encode
# Attributes travel as a JSON object and are stored as its text, byte for byte (no double encoding).
INSERT_SETTINGS: Final[Settings] = {
    "input_format_json_read_objects_as_strings": 1,
    "distributed_foreground_insert": 1,  # a Distributed table acknowledges only once the shards hold the rows
}


def encode_rows(events: Sequence[Event]) -> bytes:
    """JSONEachRow lines of a batch; `words` is the message split as the reference semantics split it."""
    row = _Row
    return b"".join(
        _encode(
            row(
                e.timestamp, e.id, e.org, e.env, e.level, e.service, e.host, e.index, e.tags, e.message,
                e.attributes, list(dict.fromkeys(words(e.message))),
            )
        )
        + b"\n"
        for e in events
    )  # fmt: skip


@dataclass
class _Staged:
    """Rows of one day waiting for the next commit, and the WAL records they came from."""

    first_seq: int
    last_seq: int = 0
    rows: list[bytes] = field(default_factory=list)


class ClickHouseWriter(StoreWriter):
    """Owns the inserts; one instance per writer process (or per `logtraced migrate`)."""

    # Every commit is an INSERT that makes a part per day, which ClickHouse wants about once a second at most.
    commits_on_pause = False

    def __init__(self, client: Client, target: Target, on_close: Callable[[], None] | None = None) -> None:
        self.client = client
        self.target = target
        self.counters = WriterCounters()
        self.warnings = WarningLimiter(get_logger("writer"))
        self.committed = self._committed_seqs()
        self.staged: dict[int, _Staged] = {}
        self._on_close = on_close

    def _committed_seqs(self) -> dict[int, int]:
        """The newest WAL record each day holds: the high bits of its largest event id."""
        rows = self.client.query(
            f"SELECT intDiv(`timestamp`, {NS_PER_DAY_SQL}) AS day, max(`id`) FROM {self.target.events} GROUP BY day"
        )
        return {int(day): int(newest) >> ID_POSITION_BITS for day, newest in rows}

    def apply(self, seq: int, tenant: Tenant, columns: EventColumns) -> None:
        days: dict[int, list[Event]] = {}
        for event in columns.events():
            days.setdefault(event.timestamp // NS_PER_DAY, []).append(event)
        for day, group in days.items():
            if seq <= self.committed.get(day, -1):
                continue  # ClickHouse holds it already: a replay after a crash
            staged = self.staged.get(day)
            if staged is None:
                staged = self.staged[day] = _Staged(seq)
            staged.rows.append(encode_rows(group))
            staged.last_seq = seq
            self.counters.documents += len(group)

    def commit(self) -> None:
        for day in sorted(self.staged):
            staged = self.staged[day]
            token = f"logtraced:{day}:{staged.first_seq}-{staged.last_seq}"
            self.client.insert(
                self.target.events,
                b"".join(staged.rows),
                {**INSERT_SETTINGS, "insert_deduplication_token": token},
            )
            self.committed[day] = staged.last_seq
            del self.staged[day]

    def footprint(self) -> Footprint:
        """The events table's active day-partitions and their bytes, as ClickHouse counts them in system.parts."""
        rows = self.client.query(
            "SELECT uniqExact(partition), sum(bytes_on_disk) FROM system.parts "
            "WHERE database = {db:String} AND table = {table:String} AND active",
            self._parts_table(),
        )
        partitions, size = rows[0] if rows else (0, 0)
        return Footprint(int(partitions), int(size))

    def enforce_retention(self, oldest_day: int) -> list[str]:
        """Drop whole day-partitions before `oldest_day`, as the Tantivy backend deletes whole days, and the label
        rollup's same days: discovery never names a value whose events are gone."""
        rows = self.client.query(
            "SELECT DISTINCT partition FROM system.parts WHERE database = {db:String} AND table = {table:String} "
            "AND active",
            self._parts_table(),
        )
        deleted: list[str] = []
        for (partition,) in rows:
            day = int(partition)  # ClickHouse's own partition ids of intDiv(timestamp, day): integers
            if day >= oldest_day:
                continue
            for table in (self.target.local_events, self.target.local_rollup):  # the rollup's days are the events'
                self.client.command(f"ALTER TABLE {table}{self.target.on_cluster} DROP PARTITION {day}")
            self.committed.pop(day, None)
            deleted.append(f"day/{day}")
        return deleted

    def _parts_table(self) -> dict[str, str | int | float]:
        """The query parameters naming the local events table in system.parts."""
        return {"db": self.target.database, "table": self.target.local_events.split(".")[-1].strip("`")}

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
