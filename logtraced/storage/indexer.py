"""The indexer process: tails the write-ahead log into Tantivy day-partitions and commits at most every interval.

It runs in its own process because tantivy-py releases the GIL inside every `add_json`:
sharing a process with the event loop makes each call wait for the loop to hand the GIL
back (measured: ~500 documents/s instead of ~190 000).  The WAL is the queue between the
two processes; small control messages travel over a pipe (see `IndexerMessage`).
"""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import msgspec
import tantivy

from logtraced.config import Config
from logtraced.log import WarningLimiter, configure_logging, get_logger
from logtraced.storage import wal
from logtraced.storage.partitions import NS_PER_DAY, Partition, PartitionLayout, max_wal_seq, open_index

IDLE_WRITER_SECONDS = 120.0
MAX_RECORDS_BETWEEN_CHECKS = 64


class IndexerMessage(msgspec.Struct, array_like=True, tag=True):
    """Base of the messages exchanged with the daemon over the pipe."""


class Durable(IndexerMessage, tag="durable"):
    """Daemon -> indexer: every WAL record up to `seq` is on disk and may be indexed."""

    seq: int


class Shutdown(IndexerMessage, tag="shutdown"):
    """Daemon -> indexer: index through `seq`, commit, exit, within `deadline_seconds` if possible."""

    seq: int
    deadline_seconds: float


class Committed(IndexerMessage, tag="committed"):
    """Indexer -> daemon: every record up to `seq` is searchable; counters for health."""

    seq: int
    documents: int
    expired: int
    rejected: int
    commit_ms: float


class RetentionDeleted(IndexerMessage, tag="retention_deleted"):
    """Indexer -> daemon: these partitions (WAL keys) were deleted; readers must drop them."""

    keys: list[str]


class Failed(IndexerMessage, tag="failed"):
    """Indexer -> daemon: the indexer hit an error it cannot get past."""

    reason: str


MESSAGE_TYPES = Durable | Shutdown | Committed | RetentionDeleted | Failed
encode_message = msgspec.msgpack.Encoder().encode
decode_message = msgspec.msgpack.Decoder(MESSAGE_TYPES).decode


@dataclass
class _OpenPartition:
    index: tantivy.Index
    writer: tantivy.IndexWriter
    committed_seq: int
    applied_seq: int = 0
    dirty: bool = False
    last_used: float = field(default_factory=time.monotonic)


class Indexer:
    """Owns every IndexWriter; one instance per indexer process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.layout = PartitionLayout(config.data_path)
        self.tailer = wal.WalTailer(config.data_path / "wal")
        self.open: dict[Partition, _OpenPartition] = {}
        self.documents = 0
        self.expired = 0
        self.rejected = 0
        self.dirty_since: float | None = None
        self.log = get_logger("indexer")
        self.warnings = WarningLimiter(self.log)

    def index_until(self, durable_seq: int, deadline: float) -> None:
        """Index records up to durable_seq, returning early at `deadline` so commits stay on time."""
        count = 0
        for record in self.tailer.read_until(durable_seq):
            self._index_record(record)
            count += 1
            if count % MAX_RECORDS_BETWEEN_CHECKS == 0 and time.monotonic() >= deadline:
                return

    def _index_record(self, record: wal.WalRecord) -> None:
        partition = Partition.from_key(record.key)
        if partition.day < self._oldest_kept_day():
            self.expired += record.count
            self.warnings.warn("events_older_than_retention", day=partition.key, events=record.count)
            return
        state = self._partition(partition)
        if record.seq <= state.committed_seq:
            return  # already in the index: a replay after a crash
        add = state.writer.add_json
        for document in record.documents():
            try:
                add(document)
            except ValueError as exc:  # one bad document must not stop the indexer forever
                self.rejected += 1
                self.warnings.warn("document_rejected_by_index", error=str(exc)[:200])
        self.documents += record.count
        state.applied_seq = record.seq
        state.dirty = True
        state.last_used = time.monotonic()
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()

    def _partition(self, partition: Partition) -> _OpenPartition:
        state = self.open.get(partition)
        if state is None:
            index = open_index(self.layout.path(partition), stemming=self.config.index.stemming, create=True)
            assert index is not None
            writer = index.writer(self.config.index.writer_heap_bytes, self.config.index.writer_threads)
            state = _OpenPartition(index, writer, max_wal_seq(index))
            self.open[partition] = state
        return state

    def commit_due(self) -> bool:
        if self.dirty_since is None:
            return False
        return time.monotonic() - self.dirty_since >= self.config.index.commit_interval_ms / 1000

    def commit(self) -> Committed:
        """Commit every dirty writer; afterwards everything the tailer has read is searchable."""
        started = time.perf_counter()
        for state in self.open.values():
            if state.dirty:
                state.writer.commit()
                state.committed_seq = state.applied_seq
                state.dirty = False
        self.dirty_since = None
        seq = self.tailer.last_seq
        wal.delete_segments_through(self.tailer.directory, seq)
        self._close_idle_writers()
        elapsed_ms = (time.perf_counter() - started) * 1000
        return Committed(seq, self.documents, self.expired, self.rejected, elapsed_ms)

    def _close_idle_writers(self) -> None:
        now = time.monotonic()
        for partition, state in list(self.open.items()):
            if not state.dirty and now - state.last_used > IDLE_WRITER_SECONDS:
                state.writer.wait_merging_threads()
                del self.open[partition]

    def _oldest_kept_day(self) -> int:
        return int(time.time() * 1e9) // NS_PER_DAY - self.config.index.retention_days + 1

    def enforce_retention(self) -> list[str]:
        """Delete whole day-partitions older than the retention period; return their keys."""
        oldest = self._oldest_kept_day()
        deleted = []
        for partition in self.layout.existing():
            if partition.day >= oldest:
                continue
            state = self.open.pop(partition, None)
            if state is not None:
                state.writer.rollback()
                state.writer.wait_merging_threads()
            shutil.rmtree(self.layout.path(partition), ignore_errors=True)
            deleted.append(partition.key)
            self.log.info("retention_deleted_partition", partition=partition.key)
        return deleted

    def close(self) -> None:
        for state in self.open.values():
            state.writer.wait_merging_threads()
        self.open.clear()
        self.tailer.close()


def run(config: Config, conn: Connection) -> None:
    """Entry point of the indexer process (spawned by the daemon).

    Signals are the daemon's business: systemd and a terminal's Ctrl-C signal the whole group,
    and the indexer must stay up until the daemon has flushed the WAL and sent `Shutdown`.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(config.log)
    indexer = Indexer(config)
    log = indexer.log
    try:
        _serve(indexer, conn)
    except Exception as exc:  # report, then let the daemon decide; the WAL still holds everything
        log.exception("indexer_failed")
        conn.send_bytes(encode_message(Failed(f"{type(exc).__name__}: {exc}")))
        raise
    finally:
        indexer.close()


def _serve(indexer: Indexer, conn: Connection) -> None:
    durable = 0
    next_retention = time.monotonic()
    while True:
        if time.monotonic() >= next_retention:
            deleted = indexer.enforce_retention()
            if deleted:
                conn.send_bytes(encode_message(RetentionDeleted(deleted)))
            next_retention = time.monotonic() + indexer.config.index.retention_check_seconds
        backlog = indexer.tailer.last_seq < durable
        timeout = 0.0 if backlog else _poll_timeout(indexer, next_retention)
        while conn.poll(timeout):
            try:
                message = decode_message(conn.recv_bytes())
            except EOFError:  # the daemon died (kill -9): commit what is indexed; the WAL has the rest
                _drain(indexer, conn, Shutdown(indexer.tailer.last_seq, 0.0), report=False)
                return
            if isinstance(message, Shutdown):
                _drain(indexer, conn, message)
                return
            if isinstance(message, Durable):
                durable = max(durable, message.seq)
            timeout = 0.0
        indexer.index_until(durable, _commit_deadline(indexer))
        if indexer.commit_due():
            conn.send_bytes(encode_message(indexer.commit()))


def _commit_deadline(indexer: Indexer) -> float:
    interval = indexer.config.index.commit_interval_ms / 1000
    start = indexer.dirty_since if indexer.dirty_since is not None else time.monotonic()
    return start + interval


def _poll_timeout(indexer: Indexer, next_retention: float) -> float:
    wake = min(next_retention, _commit_deadline(indexer)) if indexer.dirty_since is not None else next_retention
    return max(0.0, min(wake - time.monotonic(), 1.0))


def _drain(indexer: Indexer, conn: Connection, message: Shutdown, *, report: bool = True) -> None:
    deadline = time.monotonic() + message.deadline_seconds
    indexer.index_until(message.seq, deadline)
    committed = indexer.commit()
    if report:
        conn.send_bytes(encode_message(committed))
