"""The Tantivy backend's write side: one IndexWriter per open day-partition, fed WAL records in order.

A WAL record holds one tenant's batch, which may span several UTC days, so its events are
grouped by day here.  Each partition knows the newest WAL record it holds (the high bits of its
newest event id), so a record replayed after a crash is skipped by every partition that
committed it and applied by the ones that did not.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

import tantivy

from logtraced.config import Config
from logtraced.log import WarningLimiter, get_logger
from logtraced.model import EventColumns, Tenant
from logtraced.storage.backend import Footprint, StoreWriter, WriterCounters
from logtraced.storage.datadir import tree_bytes
from logtraced.storage.tantivy.documents import encode_columns
from logtraced.storage.tantivy.partitions import Partition, PartitionLayout, day_of, max_wal_seq, open_index

IDLE_WRITER_SECONDS = 120.0


@dataclass
class _OpenPartition:
    index: tantivy.Index
    writer: tantivy.IndexWriter
    committed_seq: int
    applied_seq: int = 0
    dirty: bool = False
    last_used: float = field(default_factory=time.monotonic)


class TantivyWriter(StoreWriter):
    """Owns every IndexWriter; one instance per writer process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.layout = PartitionLayout(config.data_path)
        self.open: dict[Partition, _OpenPartition] = {}
        self.counters = WriterCounters()
        self.warnings = WarningLimiter(get_logger("writer"))
        # Bytes of each partition with no open writer: it does not change until one opens again.
        self.settled_bytes: dict[Partition, int] = {}

    def apply(self, seq: int, tenant: Tenant, events: EventColumns) -> None:
        """A record's events go to the partition of their UTC day; its oldest and newest tell when that is one day."""
        stamps = events.timestamp
        first_day, last_day = day_of(min(stamps)), day_of(max(stamps))
        if first_day == last_day:
            self._apply_day(seq, Partition(tenant.org, first_day), events)
            return
        days = [day_of(stamp) for stamp in stamps]
        for day in dict.fromkeys(days):
            self._apply_day(seq, Partition(tenant.org, day), events.select([other == day for other in days]))

    def _apply_day(self, seq: int, partition: Partition, events: EventColumns) -> None:
        state = self._partition(partition)
        if seq <= state.committed_seq:
            return  # already in the index: a replay after a crash
        add = state.writer.add_json
        index = self.config.index
        for document in encode_columns(events, stemming=index.stemming, capitals=index.capitals):
            try:
                add(document)
            except ValueError as exc:  # one bad document must not stop the writer forever
                self.counters.rejected += 1
                self.warnings.warn("document_rejected_by_index", error=str(exc)[:200])
        self.counters.documents += len(events)
        state.applied_seq = seq
        state.dirty = True
        state.last_used = time.monotonic()

    def _partition(self, partition: Partition) -> _OpenPartition:
        state = self.open.get(partition)
        if state is None:
            index = open_index(
                self.layout.path(partition),
                stemming=self.config.index.stemming,
                capitals=self.config.index.capitals,
                create=True,
            )
            assert index is not None
            self.settled_bytes.pop(partition, None)
            writer = index.writer(self.config.index.writer_heap_bytes, self.config.index.writer_threads)
            state = _OpenPartition(index, writer, max_wal_seq(index))
            self.open[partition] = state
        return state

    def commit(self) -> None:
        for state in self.open.values():
            if state.dirty:
                state.writer.commit()
                state.committed_seq = state.applied_seq
                state.dirty = False
        self._close_idle_writers()

    def _close_idle_writers(self) -> None:
        now = time.monotonic()
        for partition, state in list(self.open.items()):
            if not state.dirty and now - state.last_used > IDLE_WRITER_SECONDS:
                state.writer.wait_merging_threads()
                del self.open[partition]
                self.settled_bytes.pop(partition, None)  # its merges are done: measured once more

    def enforce_retention(self, oldest_day: int) -> list[str]:
        deleted = []
        for partition in self.layout.existing():
            if partition.day >= oldest_day:
                continue
            state = self.open.pop(partition, None)
            if state is not None:
                state.writer.rollback()
                state.writer.wait_merging_threads()
            shutil.rmtree(self.layout.path(partition), ignore_errors=True)
            deleted.append(partition.key)
        return deleted

    def footprint(self) -> Footprint:
        """Partitions on disk and their bytes; only those being written are walked again at each commit."""
        partitions = self.layout.existing()
        total = 0
        for partition in partitions:
            size = self.settled_bytes.get(partition)
            if size is None:
                size = tree_bytes(self.layout.path(partition))
                if partition not in self.open:
                    self.settled_bytes[partition] = size
            total += size
        for gone in self.settled_bytes.keys() - set(partitions):
            del self.settled_bytes[gone]
        return Footprint(len(partitions), total)

    def close(self) -> None:
        for state in self.open.values():
            state.writer.wait_merging_threads()
        self.open.clear()
