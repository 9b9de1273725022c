"""Tests of the write-ahead log: record framing, torn tails, rotation, tailing, segment deletion, columns."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from logtraced.errors import StorageError
from logtraced.model import Event, EventColumns, Tenant, event_id, record_ids
from logtraced.storage import wal
from logtraced.storage.wal import WalTailer, WalWriter, delete_segments_through, list_segments, read_records

TENANT = Tenant("default", "production")
K = Tenant("k", "production")


def _append(writer: WalWriter, count: int, tenant: Tenant = TENANT) -> list[int]:
    return [writer.append(tenant, [Event(i, f"n{i}"), Event(1, "m", attributes={"m": 1})]) for i in range(count)]


class TestWriter:
    """Appending assigns increasing sequence numbers that survive reopening."""

    def test_sequence_continues_after_reopen(self, tmp_path: Path) -> None:
        writer = WalWriter(tmp_path, 1 << 20)
        assert _append(writer, 3) == [1, 2, 3]
        writer.close()
        writer = WalWriter(tmp_path, 1 << 20)
        assert _append(writer, 1) == [4]
        writer.close()

    def test_integers_beyond_64_bits_are_kept_as_floats_with_the_rest_of_the_batch(self, tmp_path: Path) -> None:
        """JSON carries any integer and msgpack only 64-bit ones: such a value must not cost the batch."""
        writer = WalWriter(tmp_path, 1 << 20)
        attributes = {"big": 2**64, "small": -(2**63) - 1, "deep": [{"n": 10**30, "ok": 2**64 - 1}], "text": "t"}
        writer.append(TENANT, [Event(1, "big", attributes=attributes), Event(2, "plain", attributes={"n": 1})])
        writer.close()
        [(_, segment)] = list_segments(tmp_path)
        [(_, record)] = read_records(segment.read_bytes())
        assert [event.attributes for event in record.events()] == [
            {"big": float(2**64), "small": float(-(2**63) - 1), "deep": [{"n": 1e30, "ok": 2**64 - 1}], "text": "t"},
            {"n": 1},
        ]

    def test_torn_tail_is_cut_and_never_read(self, tmp_path: Path) -> None:
        writer = WalWriter(tmp_path, 1 << 20)
        _append(writer, 2)
        writer.close()
        ((_, path),) = list_segments(tmp_path)
        intact = path.stat().st_size
        with path.open("ab") as handle:
            handle.write(b"LTW1\x40\x00\x00\x00garbage")
        writer = WalWriter(tmp_path, 1 << 20)
        assert path.stat().st_size == intact
        assert writer.append(K, [Event(1, "")]) == 3
        writer.close()
        assert [record.seq for _, record in read_records(path.read_bytes())] == [1, 2, 3]

    def test_corrupted_record_stops_reading(self, tmp_path: Path) -> None:
        writer = WalWriter(tmp_path, 1 << 20)
        _append(writer, 3)
        writer.close()
        ((_, path),) = list_segments(tmp_path)
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF
        assert [record.seq for _, record in read_records(bytes(data))] == [1, 2]

    def test_rotation_by_size(self, tmp_path: Path) -> None:
        writer = WalWriter(tmp_path, 100)
        _append(writer, 5)
        writer.close()
        assert len(list_segments(tmp_path)) >= 3


class TestTailer:
    """The tailer yields every durable record once, in order, across segments."""

    def test_reads_only_up_to_the_durable_mark(self, tmp_path: Path) -> None:
        writer = WalWriter(tmp_path, 120)
        tailer = WalTailer(tmp_path)
        _append(writer, 10)
        assert [r.seq for r in tailer.read_until(4)] == [1, 2, 3, 4]
        assert [r.seq for r in tailer.read_until(4)] == []
        assert [r.seq for r in tailer.read_until(10)] == [5, 6, 7, 8, 9, 10]
        _append(writer, 2)
        records = list(tailer.read_until(12))
        assert [r.seq for r in records] == [11, 12]
        assert records[0].events() == [Event(0, "n0"), Event(1, "m", attributes={"m": 1})]
        assert records[0].tenant == TENANT
        writer.close()
        tailer.close()

    def test_partial_record_waits_for_the_rest(self, tmp_path: Path) -> None:
        writer = WalWriter(tmp_path, 1 << 20)
        _append(writer, 1)
        tailer = WalTailer(tmp_path)
        ((_, path),) = list_segments(tmp_path)
        whole = path.read_bytes()
        writer.close()
        path.write_bytes(whole[:-5])
        assert list(tailer.read_until(1)) == []
        path.write_bytes(whole)
        assert [r.seq for r in tailer.read_until(1)] == [1]
        tailer.close()


class TestSegmentDeletion:
    """Committed segments are removed, the newest one always stays."""

    def test_deletes_only_fully_committed_segments(self, tmp_path: Path) -> None:
        writer = WalWriter(tmp_path, 100)
        _append(writer, 6)
        firsts = [first for first, _ in list_segments(tmp_path)]
        delete_segments_through(tmp_path, firsts[1] - 1)
        assert [first for first, _ in list_segments(tmp_path)] == firsts[1:]
        delete_segments_through(tmp_path, 10_000)
        assert len(list_segments(tmp_path)) == 1
        writer.close()
        writer = WalWriter(tmp_path, 100)
        assert writer.append(K, [Event(1, "")]) == 7
        writer.close()


class TestWriteFailures:
    """A failed write leaves no torn record behind; a failed fsync stops all further writes."""

    def test_failed_write_is_cut_back_and_later_appends_survive_reopen(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The disk fills half-way through a write (fault injected at the os.write call)."""
        writer = WalWriter(tmp_path, 1 << 20)
        _append(writer, 2)
        real_write = os.write
        calls = {"n": 0}

        def half_write(fd: int, data: bytes | memoryview) -> int:
            calls["n"] += 1
            if calls["n"] == 1:
                real_write(fd, bytes(data)[: len(data) // 2])
                raise OSError(28, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", half_write)
        with pytest.raises(StorageError, match="No space left"):
            writer.append(K, [Event(1, "a"), Event(2, "b")])
        monkeypatch.undo()
        assert writer.append(K, [Event(1, "")]) == 3
        writer.close()
        ((_, path),) = list_segments(tmp_path)
        assert [record.seq for _, record in read_records(path.read_bytes())] == [1, 2, 3]

    def test_batch_larger_than_a_record_is_split_in_one_write(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(wal, "MAX_EVENTS_PER_RECORD", 2)
        writer = WalWriter(tmp_path, 1 << 20)
        assert writer.append(Tenant("a", "staging"), [Event(n, "x") for n in range(5)]) == 3
        writer.close()
        ((_, path),) = list_segments(tmp_path)
        assert [(r.seq, r.tenant, r.count) for _, r in read_records(path.read_bytes())] == [
            (1, Tenant("a", "staging"), 2),
            (2, Tenant("a", "staging"), 2),
            (3, Tenant("a", "staging"), 1),
        ]

    def test_log_of_an_older_format_is_refused_not_truncated(self, tmp_path: Path) -> None:
        old = tmp_path / "00000000000000000001.wal"
        old.write_bytes(b"LTW1" + bytes(40))
        with pytest.raises(StorageError, match="older logtraced"):
            WalWriter(tmp_path, 1 << 20)
        assert old.read_bytes() == b"LTW1" + bytes(40)


class TestColumns:
    """The writer reads a record as columns: the same events, field by field, in WAL order."""

    def test_columns_are_the_events_field_by_field(self, tmp_path: Path) -> None:
        full = Event(5, "m", "error", "api", "web-1", "production", "default", "audit", ["t"], {"a": {"b": [1]}}, 9)
        writer = WalWriter(tmp_path, 1 << 20)
        writer.append(TENANT, [Event(3, "first"), full, Event(4, "last", attributes={"n": 2.5})])
        writer.close()
        [(_, record)] = read_records(list_segments(tmp_path)[0][1].read_bytes())
        columns = record.columns()
        assert columns == EventColumns.of_events(record.events())
        assert (len(columns), columns.message, columns.attributes[1]) == (3, ("first", "m", "last"), {"a": {"b": [1]}})

    def test_column_fields_follow_the_event_fields(self) -> None:
        names = [field.name for field in msgspec.structs.fields(EventColumns)]
        assert names == [field.name for field in msgspec.structs.fields(Event)]

    def test_no_events_no_columns(self) -> None:
        assert len(EventColumns.of_events([])) == 0

    def test_select_keeps_order_and_every_field(self) -> None:
        events = [Event(n, f"m{n}", tags=[str(n)], id=n) for n in range(5)]
        chosen = EventColumns.of_events(events).select([n % 2 == 0 for n in range(5)])
        assert chosen == EventColumns.of_events(events[::2])

    def test_ids_are_the_record_positions(self) -> None:
        ids = record_ids(7, 3)
        assert list(ids) == [event_id(7, 0), event_id(7, 1), event_id(7, 2)]
        columns = EventColumns.of_events([Event(1, "a"), Event(2, "b"), Event(3, "c")]).with_ids(ids)
        assert list(columns.id) == list(ids)
