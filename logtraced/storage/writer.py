"""The writer process: tails the write-ahead log into the storage backend and commits it.

What was applied is committed at most `index.commit_interval_ms` after the first of it, and as soon
as the input pauses (nothing new for `index.commit_quiet_ms`, every durable record applied): the
end of a burst, or a lone event, is searchable about a tenth of a second after it was acknowledged
instead of up to a second.  Commits on a pause stay a quarter interval apart, so a trickle makes
at most four segments a second.

It runs in its own process because tantivy-py releases the GIL inside every `add_json`:
sharing a process with the event loop makes each call wait for the loop to hand the GIL
back (measured: ~500 documents/s instead of ~190 000).  The WAL is the queue between the
two processes; small control messages travel over a pipe (see `WriterMessage`).  The loop
here knows nothing of any engine: it gives each record's events their ids, leaves out those
older than the retention period, and hands the rest to the backend's `StoreWriter`.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import msgspec
import setproctitle

from logtraced import heap
from logtraced.config import Config
from logtraced.log import WarningLimiter, configure_logging, get_logger
from logtraced.model import NS_PER_DAY, record_ids, retention_start_ns
from logtraced.storage import wal
from logtraced.storage.backend import StoreWriter
from logtraced.storage.backends import open_writer

MAX_RECORDS_BETWEEN_CHECKS = 64
# Commits on a pause in the input are at least this share of the commit interval apart.
PAUSE_COMMIT_SPACING = 0.25
# What `ps` shows for the writer process, so an operator can tell it from the daemon.
PROCESS_TITLE = "logtraced: indexer"


class WriterMessage(msgspec.Struct, array_like=True, tag=True):
    """Base of the messages exchanged with the daemon over the pipe."""


class Durable(WriterMessage, tag="durable"):
    """Daemon -> writer: every WAL record up to `seq` is on disk and may be stored."""

    seq: int


class Shutdown(WriterMessage, tag="shutdown"):
    """Daemon -> writer: store through `seq`, commit, exit, within `deadline_seconds` if possible."""

    seq: int
    deadline_seconds: float


class Committed(WriterMessage, tag="committed"):
    """Writer -> daemon: every record up to `seq` is searchable; counters for health and the store's footprint."""

    seq: int
    documents: int
    expired: int
    rejected: int
    commit_ms: float
    partitions: int = 0
    disk_bytes: int = 0


class RetentionDeleted(WriterMessage, tag="retention_deleted"):
    """Writer -> daemon: these partitions were deleted; readers must drop them."""

    keys: list[str]


class Failed(WriterMessage, tag="failed"):
    """Writer -> daemon: the writer hit an error it cannot get past."""

    reason: str


MESSAGE_TYPES = Durable | Shutdown | Committed | RetentionDeleted | Failed
encode_message = msgspec.msgpack.Encoder().encode
decode_message = msgspec.msgpack.Decoder(MESSAGE_TYPES).decode


class WalApplier:
    """Feeds WAL records, in order, to one StoreWriter; knows when a commit is due.

    Sans-process: tests drive it directly with a clock of their choosing.
    """

    def __init__(self, config: Config, store: StoreWriter, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.tailer = wal.WalTailer(config.data_path / "wal")
        self.dirty_since: float | None = None
        self.arrived_at = time.monotonic()  # when durable records were last announced
        self.committed_at = -math.inf
        self.log = get_logger("writer")
        self.warnings = WarningLimiter(self.log)

    def apply_until(self, durable_seq: int, deadline: float) -> None:
        """Store records up to durable_seq, returning early at `deadline` (monotonic) so commits stay on time."""
        count = 0
        for record in self.tailer.read_until(durable_seq):
            self._apply(record)
            count += 1
            if count % MAX_RECORDS_BETWEEN_CHECKS == 0 and time.monotonic() >= deadline:
                return

    def _apply(self, record: wal.WalRecord) -> None:
        """Ids by position in the record, then retention: no Python step per event unless some have expired."""
        columns = record.columns()
        events = columns.with_ids(record_ids(record.seq, len(columns)))
        oldest_ns = retention_start_ns(int(self.clock() * 1e9), self.config.index.retention_days)
        if events and min(events.timestamp) < oldest_ns:
            kept = events.select([stamp >= oldest_ns for stamp in events.timestamp])
            expired = len(events) - len(kept)
            self.store.counters.expired += expired
            self.warnings.warn("events_older_than_retention", events=expired)
            events = kept
        if events:
            self.store.apply(record.seq, record.tenant, events)
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()

    def note_arrival(self) -> None:
        """New durable records were announced: the input has not paused."""
        self.arrived_at = time.monotonic()

    def deadline(self) -> float:
        """When what is applied must be committed at the latest (monotonic): an interval after the first of it."""
        start = self.dirty_since if self.dirty_since is not None else time.monotonic()
        return start + self.config.index.commit_interval_ms / 1000

    def commit_at(self, caught_up: bool) -> float:
        """When the next commit is due (monotonic; infinity with nothing applied).

        Sooner than the deadline once the writer has `caught_up` with every durable record and the
        input has paused, but no sooner than `PAUSE_COMMIT_SPACING` of an interval after the last commit.
        """
        if self.dirty_since is None:
            return math.inf
        index = self.config.index
        due = self.deadline()
        if caught_up and index.commit_quiet_ms and self.store.commits_on_pause:
            paused = max(
                self.arrived_at + index.commit_quiet_ms / 1000,
                self.committed_at + PAUSE_COMMIT_SPACING * index.commit_interval_ms / 1000,
            )
            due = min(due, paused)
        return due

    def commit_due(self, caught_up: bool) -> bool:
        return time.monotonic() >= self.commit_at(caught_up)

    def commit(self) -> Committed:
        """Commit the backend; afterwards everything the tailer has read is searchable and its WAL can go."""
        started = time.perf_counter()
        self.store.commit()
        self.dirty_since = None
        self.committed_at = time.monotonic()
        seq = self.tailer.last_seq
        wal.delete_segments_through(self.tailer.directory, seq)
        elapsed_ms = (time.perf_counter() - started) * 1000
        counters, footprint = self.store.counters, self.store.footprint()
        return Committed(
            seq,
            counters.documents,
            counters.expired,
            counters.rejected,
            elapsed_ms,
            footprint.partitions,
            footprint.bytes,
        )

    def enforce_retention(self) -> list[str]:
        oldest_day = retention_start_ns(int(self.clock() * 1e9), self.config.index.retention_days) // NS_PER_DAY
        deleted = self.store.enforce_retention(oldest_day)
        for key in deleted:
            self.log.info("retention_deleted_partition", partition=key)
        return deleted

    def close(self) -> None:
        self.store.close()
        self.tailer.close()


def run(config: Config, conn: Connection) -> None:
    """Entry point of the writer process (spawned by the daemon).

    Signals are the daemon's business: systemd and a terminal's Ctrl-C signal the whole group,
    and the writer must stay up until the daemon has flushed the WAL and sent `Shutdown`.
    """
    setproctitle.setproctitle(PROCESS_TITLE)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(config.log)
    applier = WalApplier(config, open_writer(config))
    heap.settle_after_start()
    try:
        _serve(applier, conn)
    except Exception as exc:  # report, then let the daemon decide; the WAL still holds everything
        applier.log.exception("writer_failed")
        conn.send_bytes(encode_message(Failed(f"{type(exc).__name__}: {exc}")))
        raise
    finally:
        applier.close()


def _serve(applier: WalApplier, conn: Connection) -> None:
    durable = 0
    next_retention = time.monotonic()
    while True:
        if time.monotonic() >= next_retention:
            deleted = applier.enforce_retention()
            if deleted:
                conn.send_bytes(encode_message(RetentionDeleted(deleted)))
            next_retention = time.monotonic() + applier.config.index.retention_check_seconds
        backlog = applier.tailer.last_seq < durable
        timeout = 0.0 if backlog else _poll_timeout(applier, next_retention)
        while conn.poll(timeout):
            try:
                message = decode_message(conn.recv_bytes())
            except EOFError:  # the daemon died (kill -9): commit what is applied; the WAL has the rest
                _drain(applier, conn, Shutdown(applier.tailer.last_seq, 0.0), report=False)
                return
            if isinstance(message, Shutdown):
                _drain(applier, conn, message)
                return
            if isinstance(message, Durable) and message.seq > durable:
                durable = message.seq
                applier.note_arrival()
            timeout = 0.0
        applier.apply_until(durable, applier.deadline())
        # A message still in the pipe may announce more records: caught up only with none waiting.
        if applier.commit_due(caught_up=applier.tailer.last_seq >= durable and not conn.poll(0)):
            conn.send_bytes(encode_message(applier.commit()))


def _poll_timeout(applier: WalApplier, next_retention: float) -> float:
    """How long to wait for a message when caught up: until the next commit or retention check, at most 1 s."""
    wake = min(next_retention, applier.commit_at(caught_up=True))
    return max(0.0, min(wake - time.monotonic(), 1.0))


def _drain(applier: WalApplier, conn: Connection, message: Shutdown, *, report: bool = True) -> None:
    deadline = time.monotonic() + message.deadline_seconds
    applier.apply_until(message.seq, deadline)
    committed = applier.commit()
    if report:
        conn.send_bytes(encode_message(committed))
