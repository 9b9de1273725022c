"""The ingest pipeline: stamps tenancy, groups events by partition, appends them to the WAL and tracks backpressure.

Every receiver hands its events to `IngestPipeline.submit`; nothing else writes the WAL.
The pipeline knows how many events and bytes are written but not yet searchable, and that
figure, bounded by `ingest.queue_max_events` / `queue_max_bytes`, is the one backpressure
signal: TCP stops reading, UDP counts drops, HTTP answers 429/503.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from logtraced.config import Config, RoutingRule
from logtraced.errors import StorageError
from logtraced.events import encode_documents
from logtraced.log import get_logger
from logtraced.model import Event, Tenant
from logtraced.storage import schema
from logtraced.storage.partitions import NS_PER_DAY, Partition, day_of
from logtraced.storage.wal import WalWriter

# Paused receivers resume once the backlog falls below this share of the limits.
RESUME_FRACTION = 0.8


@dataclass
class IngestCounters:
    """Monotonic counters reported by /v1/health and the daemon's logs."""

    events_accepted: int = 0
    bytes_accepted: int = 0
    records_written: int = 0
    events_indexed: int = 0
    events_expired: int = 0
    events_rejected_by_index: int = 0
    parse_failures: int = 0
    truncated: int = 0
    udp_dropped: int = 0
    tcp_connections: int = 0
    tcp_connections_total: int = 0


@dataclass
class _Unindexed:
    seq: int
    events: int
    size: int


@dataclass
class _Waiter:
    seq: int
    future: asyncio.Future[None]


@dataclass
class Backlog:
    """Written-but-not-yet-searchable work, in events and bytes, ordered by WAL sequence."""

    max_events: int
    max_bytes: int
    events: int = 0
    size: int = 0
    records: deque[_Unindexed] = field(default_factory=deque)

    def add(self, seq: int, events: int, size: int) -> None:
        self.records.append(_Unindexed(seq, events, size))
        self.events += events
        self.size += size

    def committed(self, seq: int) -> None:
        while self.records and self.records[0].seq <= seq:
            done = self.records.popleft()
            self.events -= done.events
            self.size -= done.size

    @property
    def full(self) -> bool:
        return self.events >= self.max_events or self.size >= self.max_bytes

    @property
    def drained(self) -> bool:
        return self.events < self.max_events * RESUME_FRACTION and self.size < self.max_bytes * RESUME_FRACTION


class IngestPipeline:
    """Owned by the event loop; `submit` is synchronous so a receiver never yields mid-batch."""

    def __init__(self, config: Config, wal: WalWriter, notify_durable: Callable[[int], None]) -> None:
        self.config = config
        self.wal = wal
        self.notify_durable = notify_durable
        self.counters = IngestCounters()
        self.backlog = Backlog(config.ingest.queue_max_events, config.ingest.queue_max_bytes)
        self.durable_seq = wal.written_seq
        self.committed_seq = 0
        self._routing: Sequence[RoutingRule] = config.routing
        self._stemming = config.index.stemming
        self._waiters: deque[_Waiter] = deque()
        self._dirty = asyncio.Event()
        self._resume_callbacks: list[Callable[[], None]] = []
        self._syncer: asyncio.Task[None] | None = None
        self._recent: deque[tuple[float, int]] = deque(maxlen=64)

    def start(self) -> None:
        self._syncer = asyncio.get_running_loop().create_task(self._sync_forever())
        self.notify_durable(self.durable_seq)

    def submit(self, events: list[Event], tenant: Tenant, raw_bytes: int) -> int:
        """Append the events to the WAL (written, not yet durable); return the last record's sequence."""
        if not events:
            return self.wal.written_seq
        groups: dict[int, list[Event]] = {}
        routing = self._routing
        for event in events:
            event.org = tenant.org
            event.env = tenant.env
            _route(event, routing)
            day = event.timestamp // NS_PER_DAY
            group = groups.get(day)
            if group is None:
                groups[day] = [event]
            else:
                group.append(event)
        first = self.wal.next_seq
        records = []
        for offset, (day, group) in enumerate(groups.items()):
            key = Partition(tenant.org, day_of(day * NS_PER_DAY)).key
            documents = encode_documents(group, first + offset)
            if self._stemming:
                documents = _with_stemmed_message(group, documents)
            records.append((key, documents))
        seq = self.wal.append_all(records)
        for offset, (_, documents) in enumerate(records):
            self.backlog.add(first + offset, len(documents), sum(map(len, documents)))
        self.counters.events_accepted += len(events)
        self.counters.bytes_accepted += raw_bytes
        self.counters.records_written += len(groups)
        if self.config.wal.fsync == "never":
            self._mark_durable(seq)
        else:
            self._dirty.set()
        return seq

    async def durable(self, seq: int) -> None:
        """Wait until record `seq` is fsynced: the moment an HTTP batch may be acknowledged."""
        if seq <= self.durable_seq:
            return
        if self.wal.failure:
            raise StorageError(self.wal.failure)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(seq, future))
        await future

    async def _sync_forever(self) -> None:
        loop = asyncio.get_running_loop()
        window = self.config.wal.group_commit_ms / 1000 if self.config.wal.fsync == "group" else 0.0
        while True:
            await self._dirty.wait()
            started = loop.time()
            self._dirty.clear()
            seq = self.wal.written_seq
            try:
                await loop.run_in_executor(None, self.wal.sync)
            except StorageError as exc:
                self._fail_waiters(exc)
                return
            self._mark_durable(seq)
            remaining = window - (loop.time() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)

    def _mark_durable(self, seq: int) -> None:
        self.durable_seq = max(self.durable_seq, seq)
        while self._waiters and self._waiters[0].seq <= self.durable_seq:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
        self.notify_durable(self.durable_seq)

    def _fail_waiters(self, error: StorageError) -> None:
        """Nothing written since the last good fsync may be acknowledged; tell every waiting request."""
        get_logger("pipeline").error("wal_fsync_failed", error=str(error))
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)

    async def flush(self) -> int:
        """Fsync everything written so far (shutdown); returns the last durable sequence."""
        seq = self.wal.written_seq
        if self.wal.failure:
            return self.durable_seq
        if self.config.wal.fsync != "never":
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.wal.sync)
            except StorageError as exc:
                self._fail_waiters(exc)
                return self.durable_seq
        self._mark_durable(seq)
        return seq

    async def stop(self) -> None:
        if self._syncer is not None:
            self._syncer.cancel()
            try:
                await self._syncer
            except asyncio.CancelledError:
                pass
        await self.flush()

    def on_committed(self, seq: int, documents: int, expired: int, rejected: int) -> None:
        """The indexer made everything through `seq` searchable: shrink the backlog, wake paused receivers."""
        self.committed_seq = max(self.committed_seq, seq)
        self.backlog.committed(seq)
        self.counters.events_indexed = documents
        self.counters.events_expired = expired
        self.counters.events_rejected_by_index = rejected
        self._recent.append((time.monotonic(), self.counters.events_accepted))
        if self.backlog.drained and self._resume_callbacks:
            callbacks, self._resume_callbacks = self._resume_callbacks, []
            for callback in callbacks:
                callback()

    @property
    def full(self) -> bool:
        return self.backlog.full

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call back once the backlog is below the resume mark (a paused TCP transport resumes)."""
        self._resume_callbacks.append(callback)

    def ingestion_rate(self) -> float:
        """Events accepted per second over the last minute or so, for /v1/health."""
        now = time.monotonic()
        samples = [s for s in self._recent if now - s[0] <= 60]
        if not samples:
            return 0.0
        first_time, first_count = samples[0]
        elapsed = now - first_time
        return (self.counters.events_accepted - first_count) / elapsed if elapsed > 0 else 0.0


_encode_text = msgspec.json.Encoder().encode
_STEMMED_MEMBER = b',"' + schema.MESSAGE_STEMMED.encode() + b'":'


def _with_stemmed_message(events: list[Event], documents: list[bytes]) -> list[bytes]:
    """Add the copy of the message that the stemmed field analyses (only when index.stemming is on).

    A document is a JSON object, so the member goes in before its closing brace; partitions made
    without the stemmed field ignore it.
    """
    return [
        document[:-1] + _STEMMED_MEMBER + _encode_text(event.message) + b"}"
        for event, document in zip(events, documents, strict=True)
    ]


def _route(event: Event, rules: Sequence[RoutingRule]) -> None:
    """An explicit string `index` field on the event wins; otherwise the first matching rule names the index."""
    attributes = event.attributes
    explicit = attributes.get("index")
    if isinstance(explicit, str) and explicit:
        event.index = attributes.pop("index")
        return
    for rule in rules:
        if rule.equals in _attribute_texts(attributes, rule.field):
            event.index = rule.index
            return


def _attribute_texts(attributes: dict[str, Any], path: str) -> list[str]:
    """The values at a dotted path, read as nested objects and as literal dotted keys (as queries read them)."""
    found: list[str] = []
    pending: list[tuple[Any, str]] = [(attributes, path)]
    while pending:
        node, rest = pending.pop()
        if not isinstance(node, dict):
            continue
        if rest in node and node[rest] is not None:
            found.append(str(node[rest]))
        head, dot, tail = rest.partition(".")
        while dot:
            if head in node:
                pending.append((node[head], tail))
            more, dot, tail = tail.partition(".")
            head = f"{head}.{more}" if dot or more else head
    return found
