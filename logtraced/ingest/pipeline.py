"""The one ingest path: stamps tenancy and routing, appends canonical events to the WAL, tracks backpressure.

Every receiver, stream or HTTP, hands its events to `IngestPipeline.submit` (and waits on
`durable` before acknowledging); nothing else writes the WAL.  Counters are kept per protocol.
The pipeline knows how many events and bytes are written but not yet searchable, and that
figure, bounded by `ingest.queue_max_events` / `queue_max_bytes`, is the one backpressure
signal: TCP stops reading, UDP counts drops, HTTP answers 429/503.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from logtraced.config import Config, RoutingRule
from logtraced.errors import RateLimited, StorageError
from logtraced.ingest.codec import Decoded
from logtraced.ingest.masking import MaskCounts
from logtraced.ingest.masking_policy import MaskingPolicy
from logtraced.log import WarningLimiter, get_logger
from logtraced.model import Event, Tenant
from logtraced.storage.wal import WalWriter
from logtraced.timings import Timings

# /v1/health's ingestion rate: accepted counts sampled at most this often, over this window.
RATE_SAMPLE_SECONDS = 0.25
RATE_WINDOW_SECONDS = 10.0
# Paused receivers resume once the backlog falls below this share of the limits.
RESUME_FRACTION = 0.8
# New batches are refused when the data directory's file system has less free space than this,
# keeping room for the writer to store what was already acknowledged.
STORAGE_RESERVE_BYTES = 64 * 1024 * 1024
BACKPRESSURE_RETRY_SECONDS = 1
# A failing disk is not fixed in a second: tell well-behaved senders to wait longer.
STORAGE_RETRY_SECONDS = 30
# An fsync normally takes milliseconds; one that never returns must not hold a sender forever.
DURABLE_TIMEOUT_SECONDS = 30.0


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
    no_message: int = 0
    truncated: int = 0
    udp_dropped: int = 0
    tcp_connections: int = 0
    tcp_connections_total: int = 0


@dataclass
class ProtocolCounters:
    """What one protocol's receivers took in and refused, by cause (health and metrics report them)."""

    events: int = 0
    bytes: int = 0
    rejected: int = 0  # input refused, not stored
    causes: dict[str, int] = field(default_factory=dict)  # the refusals by cause
    truncated: int = 0  # records cut at the size bound, stored tagged _truncated
    parse_failures: int = 0  # records stored as raw text, tagged as the protocol's parse failure
    flagged: dict[str, int] = field(default_factory=dict)  # other faults of stored events, by cause
    connections: int = 0  # open now (stream listeners)


@dataclass
class _Unindexed:
    seq: int
    events: int
    size: int
    written_at: float  # wall clock, so the age of the oldest one is how far behind the indexer is


@dataclass
class _Published:
    """A batch kept until it is durable, for the tail subscribers of its tenant."""

    last_seq: int
    first_seq: int
    tenant: Tenant
    events: list[Event]


class Tap(Protocol):
    """Who sees durable batches (live tail): `publish` must confine by the tenant it is given."""

    def wants(self, tenant: Tenant) -> bool: ...

    def publish(self, first_seq: int, tenant: Tenant, events: list[Event]) -> None: ...


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
        self.records.append(_Unindexed(seq, events, size, time.time()))
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

    def seconds_behind(self, now: float) -> float:
        """How long the oldest record not yet searchable has waited (0 when the indexer has caught up)."""
        return max(now - self.records[0].written_at, 0.0) if self.records else 0.0

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
        self.protocols: dict[str, ProtocolCounters] = {}
        self._routing: Sequence[RoutingRule] = config.routing
        self._masking = MaskingPolicy(config.masking)
        self.masked = MaskCounts()
        self.fsync_seconds = Timings()
        self._waiters: deque[_Waiter] = deque()
        self._dirty = asyncio.Event()
        self._resume_callbacks: list[Callable[[], None]] = []
        self._syncer: asyncio.Task[None] | None = None
        self._recent: deque[tuple[float, int]] = deque(maxlen=64)
        self._warnings = WarningLimiter(get_logger("ingest"))
        self.tap: Tap | None = None
        self._unpublished: deque[_Published] = deque()

    def start(self) -> None:
        self._syncer = asyncio.get_running_loop().create_task(self._sync_forever())
        self.notify_durable(self.durable_seq)

    def protocol(self, name: str) -> ProtocolCounters:
        """The counters of one protocol, created on first use."""
        counters = self.protocols.get(name)
        if counters is None:
            counters = self.protocols[name] = ProtocolCounters()
        return counters

    def count_input(self, protocol: str, decoded: Decoded, warnings: WarningLimiter, *, peer: str) -> None:
        """Count what a decoder found wrong with some input, and warn once per cause per minute, naming the sender."""
        if decoded.truncated:
            self.counters.truncated += decoded.truncated
            self.protocol(protocol).truncated += decoded.truncated
            warnings.warn(f"{protocol}_line_truncated", frames=decoded.truncated, peer=peer)
        if decoded.parse_failures:
            self.counters.parse_failures += decoded.parse_failures
            self.protocol(protocol).parse_failures += decoded.parse_failures
            warnings.warn(f"{protocol}_{decoded.parse_failure_cause}", stored_as="raw message", peer=peer)
        if decoded.no_message:
            self.counters.no_message += decoded.no_message
            warnings.warn(f"{protocol}_no_message", events=decoded.no_message, stored_as="_nomessage", peer=peer)
        if decoded.flagged:
            flagged = self.protocol(protocol).flagged
            for cause, count in decoded.flagged.items():
                flagged[cause] = flagged.get(cause, 0) + count
                warnings.warn(f"{protocol}_{cause}", count=count, stored=True, peer=peer)
        if decoded.rejected or decoded.close:
            counters = self.protocol(protocol)
            for cause, count in decoded.rejected.items():
                counters.rejected += count
                counters.causes[cause] = counters.causes.get(cause, 0) + count
                warnings.warn(f"{protocol}_{cause}", count=count, closed=cause == decoded.close, peer=peer)
            if decoded.close and decoded.close not in decoded.rejected:
                warnings.warn(f"{protocol}_{decoded.close}", closed=True, peer=peer)

    def count_rejected(self, protocol: str, cause: str, count: int = 1) -> None:
        """Count input refused for `cause` (a whole body or some of its items), warning once per cause per minute."""
        counters = self.protocol(protocol)
        counters.rejected += count
        counters.causes[cause] = counters.causes.get(cause, 0) + count
        self._warnings.warn(f"{protocol}_{cause}", count=count)

    def connection_opened(self, protocol: str) -> None:
        self.counters.tcp_connections += 1
        self.counters.tcp_connections_total += 1
        self.protocol(protocol).connections += 1

    def connection_closed(self, protocol: str) -> None:
        self.counters.tcp_connections -= 1
        self.protocol(protocol).connections -= 1

    def drop_datagram(self, protocol: str) -> None:
        """UDP cannot push back: a datagram that arrives while the backlog is full is counted and dropped."""
        self.counters.udp_dropped += 1
        counters = self.protocol(protocol)
        counters.rejected += 1
        counters.causes["dropped_backpressure"] = counters.causes.get("dropped_backpressure", 0) + 1

    def submit(self, events: list[Event], tenant: Tenant, raw_bytes: int, protocol: str) -> int:
        """Append the events to the WAL (written, not yet durable); return the last record's sequence.

        Personal data is masked here, after routing read the values as sent and before the WAL
        write, so with masking on the unmasked value never reaches the disk.
        """
        if not events:
            return self.wal.written_seq
        routing = self._routing
        org, env = tenant.org, tenant.env
        masker, masked = self._masking.masker_for(org), self.masked
        for event in events:
            event.org = org
            event.env = env
            # Most events name no index and most configs have no rules: skip the call (measured ~100 ns/event).
            if routing or "index" in event.attributes:
                _route(event, routing)
            if masker is not None:
                masker.mask_event(event, masked)
        now = time.monotonic()
        if not self._recent or now - self._recent[-1][0] >= RATE_SAMPLE_SECONDS:
            self._recent.append((now, self.counters.events_accepted))
        first = self.wal.next_seq
        seq = self.wal.append(tenant, events)
        if self.tap is not None and self.tap.wants(tenant):
            self._unpublished.append(_Published(seq, first, tenant, events))
        self.backlog.add(seq, len(events), raw_bytes)
        self.counters.events_accepted += len(events)
        self.counters.bytes_accepted += raw_bytes
        self.counters.records_written += seq - first + 1
        counters = self.protocol(protocol)
        counters.events += len(events)
        counters.bytes += raw_bytes
        if self.config.wal.fsync == "never":
            self._mark_durable(seq)
        else:
            self._dirty.set()
        return seq

    def masking_counters(self) -> dict[str, int]:
        """`masked_<rule>` for every rule, zeros included, so a monitor sees the counter before the first hit."""
        return {f"masked_{rule}": count for rule, count in msgspec.structs.asdict(self.masked).items()}

    def admit(self, *, may_overflow: bool) -> bool:
        """Refuse a batch early when storage or the writer cannot keep up; True when it goes to the overflow queue.

        A sender allowed to overflow (enterprise tier) is still accepted while the writer is behind:
        its batch is durable in the WAL, which is the overflow queue.
        """
        free = shutil.disk_usage(self.config.data_path).free
        if free < STORAGE_RESERVE_BYTES:
            self._warnings.warn("ingest_storage_low", free_bytes=free, reserve_bytes=STORAGE_RESERVE_BYTES)
            raise _storage_unavailable(f"only {free} bytes are free in the data directory")
        if self.full and not may_overflow:
            raise RateLimited(
                "the indexer is behind; nothing was stored, retry shortly",
                code="ingest_backpressure",
                retry_after=BACKPRESSURE_RETRY_SECONDS,
            )
        return self.full

    async def store(self, events: list[Event], tenant: Tenant, raw_bytes: int, protocol: str) -> None:
        """Submit and wait until durable: what every acknowledging receiver (HTTP 2xx, acks) awaits first.

        A failing disk (ENOSPC, EIO, read-only) or an fsync that never returns is a StorageError,
        and nothing may be acknowledged.
        """
        try:
            seq = self.submit(events, tenant, raw_bytes, protocol)
        except (OSError, StorageError) as exc:
            self._warnings.warn("ingest_storage_failed", error=str(exc))
            raise _storage_unavailable("the write-ahead log could not be written") from exc
        try:
            await asyncio.wait_for(self.durable(seq), DURABLE_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            raise _storage_unavailable("the write-ahead log did not reach the disk in time") from exc

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
                await loop.run_in_executor(None, self._timed_sync)
            except StorageError as exc:
                self._fail_waiters(exc)
                return
            self._mark_durable(seq)
            remaining = window - (loop.time() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)

    def _timed_sync(self) -> None:
        """fsync on an executor thread, timed there so the figure is the disk's, not the loop's wait."""
        started = time.perf_counter()
        self.wal.sync()
        self.fsync_seconds.observe(time.perf_counter() - started)

    def _mark_durable(self, seq: int) -> None:
        self.durable_seq = max(self.durable_seq, seq)
        while self._waiters and self._waiters[0].seq <= self.durable_seq:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
        while self._unpublished and self._unpublished[0].last_seq <= self.durable_seq:
            batch = self._unpublished.popleft()
            if self.tap is not None:
                self.tap.publish(batch.first_seq, batch.tenant, batch.events)
        self.notify_durable(self.durable_seq)

    def _fail_waiters(self, error: StorageError) -> None:
        """Nothing written since the last good fsync may be acknowledged; tell every waiting request."""
        get_logger("pipeline").error("wal_fsync_failed", error=str(error))
        self._unpublished.clear()  # never durable, so never shown
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
                await asyncio.get_running_loop().run_in_executor(None, self._timed_sync)
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
        """Events the receivers accepted per second over the last RATE_WINDOW_SECONDS, for /v1/health.

        Counted where events are accepted, not where they are committed, so a burst shows at once.
        Spans shorter than a second count as a second, so one batch does not read as a huge rate.
        """
        now = time.monotonic()
        for at, count in self._recent:
            if now - at <= RATE_WINDOW_SECONDS:
                return (self.counters.events_accepted - count) / max(now - at, 1.0)
        return 0.0


def _storage_unavailable(reason: str) -> StorageError:
    return StorageError(f"{reason}; nothing new is accepted until storage recovers", retry_after=STORAGE_RETRY_SECONDS)


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
