"""Segmented write-ahead log: every accepted batch is appended and fsynced here before it is acknowledged.

A record holds one accepted batch: its tenant and its canonical events (msgpack arrays of
`model.Event`), under one sequence number.  The log knows nothing of any storage backend: the
writer process tails it and turns the events into the backend's own documents, and the backend
records the sequence numbers it holds, so after a crash the store itself says where replay resumes.

Record layout (little endian)::

    magic "LTW2" | payload length u32 | crc32 u32 | seq u64 | count u32 | key length u16 | key | payload

where key is `org/env` and payload the msgpack array of the events.

The CRC covers everything after itself.  A torn tail (a crash mid-write) fails the length or
CRC check and is truncated away when the writer reopens the log; it was never acknowledged.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from logtraced.errors import StorageError
from logtraced.model import EVENT_ROW, MAX_EVENTS_PER_RECORD, Event, EventColumns, Tenant

MAGIC = b"LTW2"
# The format written before events were canonical: refused at start instead of being read as a torn tail.
OLD_MAGICS = (b"LTW1",)
_HEADER = struct.Struct("<4sIIQIH")
HEADER_SIZE = _HEADER.size
SEGMENT_SUFFIX = ".wal"
MAX_PAYLOAD = 1 << 31
READ_CHUNK_BYTES = 4 * 1024 * 1024


_encode_events = msgspec.msgpack.Encoder().encode
_decode_events = msgspec.msgpack.Decoder(list[Event]).decode
_decode_rows = msgspec.msgpack.Decoder(list[EVENT_ROW]).decode


@dataclass(frozen=True, slots=True)
class WalRecord:
    seq: int
    key: str
    count: int
    payload: bytes

    @property
    def tenant(self) -> Tenant:
        org, _, env = self.key.partition("/")
        return Tenant(org, env)

    def events(self) -> list[Event]:
        """The batch's canonical events, in the order they were accepted."""
        return _decode_events(self.payload)

    def columns(self) -> EventColumns:
        """The same events as columns, decoded without an Event struct each (the writer process's hot path)."""
        return EventColumns.of_rows(_decode_rows(self.payload))


def tenant_key(tenant: Tenant) -> str:
    """`org/env`: organisations are slugs, so the first slash separates the two."""
    return f"{tenant.org}/{tenant.env}"


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """Segments sorted by the first sequence number they may hold (their name)."""
    found = []
    for path in directory.glob("*" + SEGMENT_SUFFIX):
        try:
            found.append((int(path.stem), path))
        except ValueError:
            continue
    return sorted(found)


def encode_record(seq: int, tenant: Tenant, events: list[Event]) -> bytes:
    key_bytes = tenant_key(tenant).encode()
    try:
        payload = _encode_events(events)
    except OverflowError:  # an attribute integer beyond 64 bits: JSON allows it, msgpack does not
        payload = _encode_events(
            [msgspec.structs.replace(event, attributes=_in_64_bits(event.attributes)) for event in events]
        )
    body = struct.pack("<QIH", seq, len(events), len(key_bytes)) + key_bytes + payload
    crc = zlib.crc32(body)
    return MAGIC + struct.pack("<II", len(payload), crc) + body


def _in_64_bits(value: Any) -> Any:
    """`value` with every integer msgpack cannot hold (below -2**63 or above 2**64-1) as the nearest float.

    What a JSON store does with such a number too; the rest of the batch is kept as sent.
    """
    if type(value) is dict:
        return {key: _in_64_bits(item) for key, item in value.items()}
    if type(value) is list:
        return [_in_64_bits(item) for item in value]
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value)
    return value


def read_records(data: bytes, start: int = 0) -> Iterator[tuple[int, WalRecord]]:
    """Yield (end offset, record) for every complete, intact record from `start` on; stop at the first bad one."""
    offset = start
    size = len(data)
    while offset + HEADER_SIZE <= size:
        magic, length, crc, seq, count, key_len = _HEADER.unpack_from(data, offset)
        end = offset + HEADER_SIZE + key_len + length
        if magic != MAGIC or end > size:
            return
        if zlib.crc32(data[offset + 12 : end]) != crc:
            return
        key_start = offset + HEADER_SIZE
        key = data[key_start : key_start + key_len].decode()
        yield end, WalRecord(seq, key, count, data[key_start + key_len : end])
        offset = end


class WalWriter:
    """Appends records to the newest segment and rotates by size; owned by the daemon's event loop.

    Writes go to the OS immediately; `sync()` makes them durable and is called by the group
    committer (in a worker thread) so that many batches share one fsync.
    """

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.next_seq, self._path, size = self._recover()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = size
        self.written_seq = self.next_seq - 1
        self.failure = ""
        self.bytes_written = 0  # since this process opened the log (/metrics)
        _fsync_directory(directory)

    def _recover(self) -> tuple[int, Path, int]:
        """Find where to continue: cut a torn tail off the newest segment, resume after its last record."""
        segments = list_segments(self.directory)
        if not segments:
            return 1, self.directory / segment_name(1), 0
        for _, older in segments:
            with older.open("rb") as handle:
                if handle.read(len(MAGIC)) in OLD_MAGICS:
                    raise StorageError(
                        f"{older} was written by an older logtraced whose log format this version cannot read; "
                        "start with an empty data directory"
                    )
        first_seq, path = segments[-1]
        data = path.read_bytes()
        last_seq, good_end = first_seq - 1, 0
        for end, record in read_records(data):
            last_seq, good_end = record.seq, end
        if good_end < len(data):
            with path.open("r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())
        return max(last_seq + 1, first_seq), path, good_end

    def append(self, tenant: Tenant, events: list[Event]) -> int:
        """Write one batch as records numbered next_seq, next_seq+1, ... in one write; return the last number.

        A batch larger than the ids of one record can number is split into several records.

        All or nothing: if the write fails part-way (disk full, I/O error), the file is cut back
        to where it was, so a later append can never land behind a torn record.
        """
        if self.failure:
            raise StorageError(f"the write-ahead log is unusable until restart: {self.failure}")
        if self._size >= self.segment_bytes:
            self._rotate()
        first = self.next_seq
        chunks = [events[at : at + MAX_EVENTS_PER_RECORD] for at in range(0, len(events), MAX_EVENTS_PER_RECORD)]
        data = b"".join(encode_record(first + i, tenant, chunk) for i, chunk in enumerate(chunks))
        if len(data) >= MAX_PAYLOAD:
            raise StorageError(f"a WAL write of {len(data)} bytes is too large")
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            self._cut_back()
            raise StorageError(f"cannot write the write-ahead log: {exc.strerror or exc}") from exc
        self._size += len(data)
        self.bytes_written += len(data)
        self.next_seq = first + len(chunks)
        self.written_seq = self.next_seq - 1
        return self.written_seq

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            self.failure = f"could not remove a partial write: {exc.strerror or exc}"

    def sync(self) -> None:
        """fsync; after a failed fsync the page cache state is unknown, so the log refuses further writes."""
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.failure = f"fsync failed: {exc.strerror or exc}"
            raise StorageError(self.failure) from exc

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._path = self.directory / segment_name(self.next_seq)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = 0
        _fsync_directory(self.directory)

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)


class WalTailer:
    """Reads records in order across segments, never past the sequence number the writer made durable.

    The writer may be mid-append while we read: an incomplete record stays in `_pending`
    until the rest arrives, and a complete one beyond the durable mark is held back.  The file
    is read in chunks and records are taken from the buffer by offset, so a reader far behind
    neither holds a whole segment in memory nor copies the buffer once per record.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._segment_first = -1
        self._handle: BinaryIO | None = None
        self._pending = b""
        self._offset = 0
        self._held: WalRecord | None = None
        self.last_seq = 0

    def read_until(self, durable_seq: int) -> Iterator[WalRecord]:
        """Yield, in order, every record with seq <= durable_seq not yielded before."""
        while True:
            record = self._held or self._next_record()
            if record is None:
                return
            if record.seq > durable_seq:
                self._held = record
                return
            self._held = None
            if record.seq > self.last_seq:
                self.last_seq = record.seq
                yield record

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _next_record(self) -> WalRecord | None:
        while True:
            if self._handle is None and not self._open_following_segment():
                return None
            for end, record in read_records(self._pending, self._offset):
                self._offset = end
                return record
            if not self._read_more():
                return None

    def _read_more(self) -> bool:
        """Pull appended bytes from the current segment, or move to the next one once it exists."""
        assert self._handle is not None
        more = self._handle.read(READ_CHUNK_BYTES)
        if more:
            self._pending = self._pending[self._offset :] + more
            self._offset = 0
            return True
        if not any(first > self._segment_first for first, _ in list_segments(self.directory)):
            return False
        # The writer only rotates after fsyncing a complete record, so nothing is left here.
        self.close()
        return self._open_following_segment()

    def _open_following_segment(self) -> bool:
        for first, path in list_segments(self.directory):
            if first > self._segment_first:
                try:
                    self._handle = path.open("rb")
                except FileNotFoundError:
                    continue
                self._segment_first, self._pending, self._offset = first, b"", 0
                return True
        return False


def delete_segments_through(directory: Path, committed_seq: int) -> int:
    """Remove segments whose every record is <= committed_seq; the newest segment always stays."""
    segments = list_segments(directory)
    removed = 0
    for (_, path), (next_first, _) in zip(segments, segments[1:], strict=False):
        if next_first - 1 <= committed_seq:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
