"""Sans-IO GELF 1.1: UDP datagrams (plain, zlib, gzip, chunked) and NUL-framed TCP onto Events.

Mapping onto `Event` (GELF 1.1 payload specification, Graylog docs):

* `short_message` -> message; `full_message` -> attribute `full_message`.  A payload without
  `short_message` is stored anyway, tagged `_nomessage` (cause `missing_short_message`), with
  `full_message` as its message when there is one: Graylog would drop it, but a log receiver
  that loses a line because its sender misnamed a field helps nobody.
* `level` (a syslog severity) -> level via `canonical_level`; when absent the level stays
  empty rather than the spec's default 1 (alert), which would flag every such event fatal.
* `host` -> host; `timestamp` (seconds with a fraction) -> timestamp, kept to the microsecond
  (what a double holds for current dates); one that is not a number stays as an attribute.
* `version` is dropped; additional `_name` fields become attribute `name`.  `_id` is reserved
  by GELF and Graylog ignores it; here it is kept as `gelf_id` so nothing sent is lost and it
  cannot be mistaken for the event id.  Other top-level fields are kept as sent.
* service := `_service`, else Docker's `_tag`, else `_container_name`.  Docker's gelf driver
  fields (`_container_name`, `_container_id`, `_image_name`, `_image_id`, `_tag`, `_command`,
  `_created`) are kept as attributes; only `_service` is consumed.

Failures that leave nothing to store raise `GelfError` with a stable `cause`; the TCP stream
counts them per cause instead, because one bad frame must not end the connection.
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final

import msgspec

from logtraced.errors import DecodeError
from logtraced.events import canonical_level, parse_timestamp
from logtraced.ingest.inflate import GZIP_WBITS, ZLIB_WBITS, InflateError, inflate
from logtraced.model import Event

TAG_NO_MESSAGE: Final = "_nomessage"
CAUSE_MISSING_SHORT_MESSAGE: Final = "missing_short_message"
CAUSE_MALFORMED_JSON: Final = "malformed_json"
CAUSE_NOT_OBJECT: Final = "not_an_object"
CAUSE_TOO_LARGE: Final = "decompressed_too_large"
CAUSE_BAD_COMPRESSION: Final = "bad_compression"
CAUSE_FRAME_TOO_LARGE: Final = "frame_too_large"
CAUSE_CHUNK_TOO_SHORT: Final = "chunk_too_short"
CAUSE_BAD_CHUNK_COUNT: Final = "bad_chunk_count"
CAUSE_CHUNK_OUT_OF_RANGE: Final = "chunk_out_of_range"
CAUSE_CHUNK_COUNT_MISMATCH: Final = "chunk_count_mismatch"
CAUSE_CHUNKED_TOO_LARGE: Final = "chunked_too_large"

CHUNK_MAGIC: Final = b"\x1e\x0f"
MAX_CHUNKS: Final = 128  # GELF 1.1: a message has at most 128 chunks
CHUNK_HEADER_BYTES: Final = 12  # magic 2, message id 8, sequence number 1, sequence count 1
DEFAULT_MAX_MESSAGE_BYTES: Final = 1 << 20
DEFAULT_CHUNK_TIMEOUT_NS: Final = 5_000_000_000  # Graylog drops chunks not complete within 5 s

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZLIB_FIRST: Final = 0x78
_NS_PER_US: Final = 1000
_US_PER_S: Final = 1_000_000
_DECODER: Final = msgspec.json.Decoder()
_ENCODER: Final = msgspec.json.Encoder()
_ABSENT: Final = object()
# Fields of the payload specification mapped onto Event fields (or dropped, for version).
_STANDARD: Final = frozenset(("version", "host", "short_message", "full_message", "timestamp", "level"))


class GelfError(DecodeError):
    """A GELF datagram, chunk or frame yielded no event; `cause` is stable snake_case for counters."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause


class _Pending:
    """The chunks of one message received so far."""

    __slots__ = ("chunks", "count", "first_ns", "size")

    def __init__(self, count: int, now_ns: int) -> None:
        self.chunks: dict[int, bytes] = {}
        self.count = count
        self.first_ns = now_ns
        self.size = 0


class ChunkAssembler:
    """Joins chunked GELF datagrams back into payloads, within bounds on memory and time.

    Messages are keyed by (source, message id): `source` is the sender's address when the
    caller passes it, so two senders' ids cannot collide.  A message still incomplete
    `timeout_ns` after its first chunk is dropped (`expired`); when more than
    `max_pending_messages` are open or their chunks pass `max_pending_bytes`, the oldest are
    dropped (`evicted`).  Duplicate chunks are ignored (`duplicates`).  Time is passed in.
    """

    def __init__(
        self,
        *,
        max_pending_messages: int = 1000,
        max_pending_bytes: int = 32 << 20,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        timeout_ns: int = DEFAULT_CHUNK_TIMEOUT_NS,
    ) -> None:
        if min(max_pending_messages, max_pending_bytes, max_message_bytes, timeout_ns) < 1:
            raise ValueError("chunk assembler bounds must be positive")
        self._max_messages = max_pending_messages
        self._max_bytes = max_pending_bytes
        self._max_message = max_message_bytes
        self._timeout = timeout_ns
        self._pending: OrderedDict[tuple[Hashable, bytes], _Pending] = OrderedDict()
        self.pending_bytes = 0
        self.expired = 0
        self.evicted = 0
        self.duplicates = 0

    @property
    def pending_messages(self) -> int:
        return len(self._pending)

    def add(self, chunk: bytes, now_ns: int, source: Hashable = None) -> bytes | None:
        """The whole payload once `chunk` completes its message, else None; raises GelfError."""
        self.expire(now_ns)
        if len(chunk) <= CHUNK_HEADER_BYTES:
            raise GelfError(CAUSE_CHUNK_TOO_SHORT, f"{len(chunk)} bytes")
        key = (source, chunk[2:10])
        number, count = chunk[10], chunk[11]
        if not 0 < count <= MAX_CHUNKS:
            raise GelfError(CAUSE_BAD_CHUNK_COUNT, f"sequence count {count}")
        if number >= count:
            raise GelfError(CAUSE_CHUNK_OUT_OF_RANGE, f"chunk {number} of {count}")
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(count, now_ns)
        elif pending.count != count:
            self._drop(key)
            raise GelfError(CAUSE_CHUNK_COUNT_MISMATCH, f"count {count} after {pending.count}")
        if number in pending.chunks:
            self.duplicates += 1
            return None
        body = chunk[CHUNK_HEADER_BYTES:]
        if pending.size + len(body) > self._max_message:
            self._drop(key)
            raise GelfError(CAUSE_CHUNKED_TOO_LARGE, f"more than {self._max_message} bytes")
        pending.chunks[number] = body
        pending.size += len(body)
        self.pending_bytes += len(body)
        if len(pending.chunks) == count:
            self._drop(key)
            return b"".join(pending.chunks[n] for n in range(count))
        self._evict(key)
        return None

    def expire(self, now_ns: int) -> int:
        """Drop the messages whose time is up; how many were dropped."""
        dropped = 0
        while self._pending:
            key, oldest = next(iter(self._pending.items()))
            if now_ns - oldest.first_ns < self._timeout:
                break
            self._drop(key)
            dropped += 1
        self.expired += dropped
        return dropped

    def _evict(self, keep: tuple[Hashable, bytes]) -> None:
        """Drop the oldest messages (never `keep`, the one just added to) until within bounds."""
        while len(self._pending) > self._max_messages or self.pending_bytes > self._max_bytes:
            key = next(iter(self._pending))
            if key == keep:
                if len(self._pending) == 1:
                    break
                self._pending.move_to_end(key)
                continue
            self._drop(key)
            self.evicted += 1

    def _drop(self, key: tuple[Hashable, bytes]) -> None:
        pending = self._pending.pop(key)
        self.pending_bytes -= pending.size


def decode_datagram(
    datagram: bytes,
    assembler: ChunkAssembler,
    now_ns: int,
    *,
    source: Hashable = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Event | None:
    """The event of one UDP datagram, or None while its chunked message is incomplete.

    `now_ns` is the receive time: the timestamp of payloads without one, and the assembler's
    clock.  Raises GelfError (with its cause) when the datagram yields nothing.
    """
    if datagram[:2] == CHUNK_MAGIC:
        payload = assembler.add(datagram, now_ns, source)
        if payload is None:
            return None
        datagram = payload
    return decode_payload(datagram, now_ns, max_message_bytes)


def decode_payload(payload: bytes, received_ns: int, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Event:
    """One whole GELF message, plain or compressed (zlib or gzip, told by its first bytes)."""
    if payload[:2] == _GZIP_MAGIC:
        payload = _inflate(payload, GZIP_WBITS, max_message_bytes)
    elif payload[:1] == b"\x78" and len(payload) > 1 and (payload[0] << 8 | payload[1]) % 31 == 0:
        payload = _inflate(payload, ZLIB_WBITS, max_message_bytes)
    elif len(payload) > max_message_bytes:
        raise GelfError(CAUSE_FRAME_TOO_LARGE, f"more than {max_message_bytes} bytes")
    try:
        record = _DECODER.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
        raise GelfError(CAUSE_MALFORMED_JSON, str(error)) from None
    if type(record) is not dict:
        raise GelfError(CAUSE_NOT_OBJECT, f"a JSON {type(record).__name__}")
    return event_from_gelf(record, received_ns)


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Decompress at most `limit` bytes, so a small bomb cannot take the daemon's memory."""
    try:
        return inflate(data, limit, wbits=wbits)
    except InflateError as error:
        raise GelfError(CAUSE_TOO_LARGE if error.too_large else CAUSE_BAD_COMPRESSION, error.detail) from None


def event_from_gelf(record: dict[str, Any], received_ns: int) -> Event:
    """Map one decoded GELF object onto an Event (see the module docstring for the rules)."""
    tags: list[str] = []
    short = record.get("short_message", _ABSENT)
    full = record.get("full_message", _ABSENT)
    if short is not _ABSENT:
        message = _text(short)
    else:
        tags.append(TAG_NO_MESSAGE)
        message = "" if full is _ABSENT else _text(full)
        full = _ABSENT
    attributes: dict[str, Any] = {}
    if full is not _ABSENT:
        attributes["full_message"] = full
    timestamp = _timestamp(record.get("timestamp"), received_ns)
    if timestamp is None:
        timestamp = received_ns
        attributes["timestamp"] = record["timestamp"]
    for key, value in record.items():
        if key in _STANDARD:
            continue
        if key[:1] == "_" and len(key) > 1:
            key = "gelf_id" if key == "_id" else key[1:]
        attributes[key] = value
    service = attributes.pop("service", None)
    if service is None:
        service = attributes.get("tag") or attributes.get("container_name") or ""
    host = record.get("host")
    return Event(
        timestamp,
        message,
        canonical_level(record.get("level")),
        _text(service) if service != "" else "",
        "" if host is None else _text(host),
        tags=tags,
        attributes=attributes,
    )


def _text(value: object) -> str:
    return value if type(value) is str else _ENCODER.encode(value).decode()


def _timestamp(value: object, received_ns: int) -> int | None:
    """Seconds since the epoch with an optional fraction, to the microsecond; None if not that.

    GELF says a number; a numeric string is accepted too.  Absent means now.
    """
    if value is None:
        return received_ns
    if type(value) is int:
        return value * _US_PER_S * _NS_PER_US
    if type(value) is float:
        return round(value * _US_PER_S) * _NS_PER_US if math.isfinite(value) else None
    if type(value) is str:
        ns = parse_timestamp(value, received_ns)
        return None if ns is None else ns // _NS_PER_US * _NS_PER_US
    return None


class GelfStream:
    """The GELF frames of one TCP connection (each ends with a NUL), fed read by read.

    A frame longer than `max_frame_bytes` is skipped to its NUL without being buffered
    (a cut JSON object cannot be parsed).  Frames that yield no event are counted per cause;
    the caller takes the counts with `take_failures`.
    """

    def __init__(
        self, max_frame_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, clock: Callable[[], int] = time.time_ns
    ) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self._max = max_frame_bytes
        self._clock = clock
        self._buffer = bytearray()
        self._skipping = False  # inside a frame already counted as too large
        self._failures: Counter[str] = Counter()

    def feed(self, data: bytes) -> list[Event]:
        """The events of the frames completed by `data`."""
        pieces = data.split(b"\x00")
        frames: list[bytes] = []
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            if not self._skipping:
                self._buffer += piece
                if len(self._buffer) > self._max:
                    self._failures[CAUSE_FRAME_TOO_LARGE] += 1
                    self._buffer.clear()
                    self._skipping = True
                elif index < last:
                    frames.append(bytes(self._buffer))
                    self._buffer.clear()
            if index < last:
                self._skipping = False
        return self._events(frames)

    def close(self) -> list[Event]:
        """The sender closed: a last frame without its NUL still counts."""
        frames = [] if self._skipping else [bytes(self._buffer)]
        self._buffer.clear()
        return self._events(frames)

    def take_failures(self) -> dict[str, int]:
        """Frames that yielded no event since the last call, by cause."""
        failures = dict(self._failures)
        self._failures.clear()
        return failures

    def _events(self, frames: list[bytes]) -> list[Event]:
        events: list[Event] = []
        now = self._clock()
        for frame in frames:
            frame = frame.strip()  # some clients add a newline before the NUL
            if not frame:
                continue
            try:
                events.append(decode_payload(frame, now, self._max))
            except GelfError as error:
                self._failures[error.cause] += 1
        return events
