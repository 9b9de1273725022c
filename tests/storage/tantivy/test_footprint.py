"""The writer's footprint (partitions and bytes on disk, for /metrics) equals a fresh walk of the data tree."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from logtraced.config import Config, IndexConfig
from logtraced.model import NS_PER_DAY, Event, EventColumns, Tenant, record_ids
from logtraced.storage.datadir import tree_bytes
from logtraced.storage.tantivy import writer as writer_module
from logtraced.storage.tantivy.writer import TantivyWriter

TENANT = Tenant("acme", "production")


def _apply(writer: TantivyWriter, seq: int, day_offset: int, count: int) -> None:
    base = (time.time_ns() // NS_PER_DAY - day_offset) * NS_PER_DAY + 1
    columns = EventColumns.of_events([Event(base + i, f"event {seq} {i}", "info", "svc") for i in range(count)])
    writer.apply(seq, TENANT, columns.with_ids(record_ids(seq, count)))


def _walked(writer: TantivyWriter) -> tuple[int, int]:
    partitions = writer.layout.existing()
    return len(partitions), sum(tree_bytes(writer.layout.path(partition)) for partition in partitions)


def test_footprint_follows_writes_idle_writers_and_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = TantivyWriter(Config(data_dir=str(tmp_path), index=IndexConfig(retention_days=3650)))
    _apply(writer, 1, 2, 50)
    _apply(writer, 2, 0, 50)
    writer.commit()
    first = writer.footprint()
    assert (first.partitions, first.bytes) == _walked(writer)
    _apply(writer, 3, 0, 500)  # today's partition grows; the measured size must follow
    writer.commit()
    grown = writer.footprint()
    assert (grown.partitions, grown.bytes) == _walked(writer) and grown.bytes > first.bytes
    monkeypatch.setattr(writer_module, "IDLE_WRITER_SECONDS", 0.0)
    writer.commit()  # closes every idle writer: their final sizes are measured once more
    closed = writer.footprint()
    assert (closed.partitions, closed.bytes) == _walked(writer)
    writer.enforce_retention(time.time_ns() // NS_PER_DAY)
    remaining = writer.footprint()
    assert (remaining.partitions, remaining.bytes) == _walked(writer) and remaining.partitions == 1
    writer.close()
