"""The leaf of the package: the canonical Event and the Tenant every event and read belongs to.

It imports nothing of logtraced, so every layer (ingest, storage, query, api) can share these
types without an import cycle (the same reason structlog keeps its exceptions in a leaf).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress
from typing import Any, Final

import msgspec

# Bits of an event id taken by its position inside one WAL record; the record's sequence number
# fills the bits above, so ids are unique, increase with arrival and are the same on every replay.
ID_POSITION_BITS: Final = 20
MAX_EVENTS_PER_RECORD: Final = 1 << ID_POSITION_BITS


class Tenant(msgspec.Struct, frozen=True, gc=False):
    """Whose events these are: from a listener's config, or from the API key of an HTTP request."""

    org: str
    env: str


class Event(msgspec.Struct, array_like=True, gc=False):
    """One log event in canonical form, as the WAL stores it.

    array_like: the WAL holds events as msgpack arrays, not maps repeating every field name;
    gc=False: events never form reference cycles.  The public JSON shape is built by the APIs.
    """

    timestamp: int  # nanoseconds since the Unix epoch, UTC
    message: str
    level: str = ""  # trace/debug/info/warn/error/fatal, or an unknown spelling lowercased
    service: str = ""
    host: str = ""
    env: str = ""  # tenancy and routing: set by the ingest pipeline, never by a protocol's parser
    org: str = ""
    index: str = ""
    tags: list[str] = []
    attributes: dict[str, Any] = {}
    id: int = 0  # unique per event, assigned when the WAL record is stored (see `event_id`)


def event_id(record_seq: int, position: int) -> int:
    """The id of the `position`-th event of WAL record `record_seq`: unique, ordered by arrival, replay-stable."""
    return (record_seq << ID_POSITION_BITS) | position


def record_ids(record_seq: int, count: int) -> range:
    """The ids of a record's `count` events, in position order (`event_id` of each), without building them."""
    first = event_id(record_seq, 0)
    return range(first, first + count)


# One Event as a tuple of its fields' types: how the writer decodes a WAL array (every field is
# always written: Event does not omit defaults) without building an Event per array.
EVENT_ROW: Final[Any] = tuple.__class_getitem__(tuple(field.type for field in msgspec.structs.fields(Event)))


class EventColumns(msgspec.Struct, frozen=True, gc=False):
    """A batch of events as one sequence per `Event` field, in `Event`'s field order.

    The writer process is the ingest bottleneck, and it handles whole WAL records: as columns,
    every per-event step (ids, the retention check, the split by day, building documents) is
    one C-level call over a column (`range`, `min`, `map`, `itertools.compress`) instead of a
    Python loop over events.  A column-oriented backend could insert them as they are.
    """

    timestamp: Sequence[int]
    message: Sequence[str]
    level: Sequence[str]
    service: Sequence[str]
    host: Sequence[str]
    env: Sequence[str]
    org: Sequence[str]
    index: Sequence[str]
    tags: Sequence[list[str]]
    attributes: Sequence[dict[str, Any]]
    id: Sequence[int]

    @classmethod
    def of_rows(cls, rows: Sequence[tuple[Any, ...]]) -> EventColumns:
        """Columns of rows in `EVENT_ROW` shape (transposed in C by `zip`)."""
        if not rows:
            return cls((), (), (), (), (), (), (), (), (), (), ())
        return cls(*zip(*rows, strict=True))

    @classmethod
    def of_events(cls, events: Sequence[Event]) -> EventColumns:
        return cls.of_rows([msgspec.structs.astuple(event) for event in events])

    def __len__(self) -> int:
        return len(self.timestamp)

    def with_ids(self, ids: Sequence[int]) -> EventColumns:
        return msgspec.structs.replace(self, id=ids)

    def events(self) -> list[Event]:
        """Back to one Event per row, for a backend that writes events one by one."""
        return [Event(*row) for row in zip(*msgspec.structs.astuple(self), strict=True)]

    def select(self, keep: Sequence[bool]) -> EventColumns:
        """The events whose `keep` is true, in order (the rare paths: partly expired, several days)."""
        return EventColumns(*(tuple(compress(column, keep)) for column in msgspec.structs.astuple(self)))


NS_PER_DAY: Final = 86_400 * 1_000_000_000


def retention_start_ns(now_ns: int, retention_days: int) -> int:
    """The first nanosecond still kept: retention deletes whole UTC days, today counting as one."""
    return (now_ns // NS_PER_DAY - retention_days + 1) * NS_PER_DAY
