"""The leaf of the package: the canonical Event and the Tenant every event and read belongs to.

It imports nothing of logtraced, so every layer (ingest, storage, query, api) can share these
types without an import cycle (the same reason structlog keeps its exceptions in a leaf).
"""

from __future__ import annotations

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


NS_PER_DAY: Final = 86_400 * 1_000_000_000


def retention_start_ns(now_ns: int, retention_days: int) -> int:
    """The first nanosecond still kept: retention deletes whole UTC days, today counting as one."""
    return (now_ns // NS_PER_DAY - retention_days + 1) * NS_PER_DAY
