"""Fluentd Forward protocol v1, sans-IO: one connection's bytes in, events and reply bytes out.

Senders: Fluent Bit's and Fluentd's `forward` outputs, fluent-logger libraries, Docker's
fluentd log driver.  The stream is msgpack values back to back; each is one request:

* Message `[tag, time, record, option?]`, Forward `[tag, [[time, record], ...], option?]`,
  PackedForward `[tag, str|bin of concatenated [time, record] entries, option?]`, and
  CompressedPackedForward (option `compressed: "gzip"`, one or more gzip members).  The mode
  is read off the type of the second element, as the spec says.
* `nil` is a heartbeat and is ignored.
* time is integer seconds, float seconds, or EventTime (ext 0: u32 BE seconds, u32 BE
  nanoseconds), also inside `[time, {metadata}]` (v1.5, Fluent Bit's retain_metadata).
  Fluent Bit's group markers (time -1/-2, or EventTime seconds 0xFFFFFFFF/0xFFFFFFFE) are
  skipped; a time of 0 means "now" (Fluentd does the same), i.e. the time received.

Mapping onto `Event` (decided here, table-tested in tests/ingest/test_forward.py):

* The record goes through `events.normalise`, so `log`/`message`, `level`, `host` and the
  rest are read exactly as on every other receiver.  A time key of the record's own
  (`@timestamp`, `time`, `date`, ...) that parses wins, so the same record gets the same
  timestamp whichever port it came through; otherwise the forward time is the timestamp.
* The tag is kept as the attribute `fluent.tag`, and is the service when the record names
  none (a Fluent Bit tag is normally the input's name, e.g. `kube.var.log...` or `app.web`).
* Non-empty v1.5 metadata is kept as the attribute `fluent.metadata`.
* A nil record is skipped (as Fluentd does).  A record that is not a map is stored, tagged
  `_notobject`, with its JSON text as the message, as the JSON receivers do: records are
  the user's data and are never rejected.  Strings that are not UTF-8, binary values, map
  keys that are not strings and ext values other than EventTime are made storable by
  `msgpackstream.json_safe` rather than refused.

Errors.  The protocol has no per-request refusal: an ack means "stored", and a missing ack
makes the sender retry.  So a request that cannot be stored (bad framing, a wrong shape
where the protocol defines one, a bad time, undecodable compression, a limit exceeded) ends
the connection: `feed` raises `ForwardError` with a stable `cause`, nothing of that request
is stored or acked, and the sender's own retry policy decides what happens to it.

Authentication.  With `resolve` given, the server opens with HELO (16 random nonce bytes, an
empty `auth`, so no username/password is asked) and the first request must be the client's
PING.  Its digest, sha512_hex(salt + client_hostname + nonce + shared_key), can only be checked
by someone who holds the shared key in clear: logtraced's API keys are stored hashed, so the
candidates come from the glue's configuration (shared keys in clear, each naming a tenant).
The glue passes `resolve(check)`, which calls `check(shared_key)` for its candidates and
returns the tenant of the first key for which it returns True (or None); the digest itself
never leaves this module.  On success the server answers PONG with its own digest and
`tenant` is the resolved tenant; on failure it answers PONG false and `feed` raises
(`auth_failed`, or `handshake_failed` when the first request is not a well-formed PING).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from logtraced.errors import DecodeError
from logtraced.events import TAG_NOT_OBJECT, json_value_type, normalise
from logtraced.ingest.inflate import GZIP_WBITS, InflateError, inflate
from logtraced.ingest.msgpackstream import (
    MalformedMsgpack,
    ValueScanner,
    array_header,
    array_items,
    blob_payload,
    count_values,
    decode_lenient,
    json_safe,
    value_ends,
)
from logtraced.model import Event, Tenant

# Causes carried by ForwardError, stable for counters and logs.
MALFORMED_MSGPACK: Final = "malformed_msgpack"  # not msgpack (framing lost, or bad packed entries)
FRAME_TOO_LARGE: Final = "frame_too_large"  # one request longer than max_frame_bytes
INVALID_MESSAGE: Final = "invalid_message"  # a request that is not one of the four modes
INVALID_ENTRY: Final = "invalid_entry"  # an entry that is not [time, record], or a bad time
UNSUPPORTED_COMPRESSION: Final = "unsupported_compression"  # option.compressed other than gzip/text
MALFORMED_GZIP: Final = "malformed_gzip"  # compressed entries that do not inflate
DECOMPRESSED_TOO_LARGE: Final = "decompressed_too_large"  # inflates past max_decompressed_bytes
HANDSHAKE_FAILED: Final = "handshake_failed"  # first request is not a well-formed PING
AUTH_FAILED: Final = "auth_failed"  # no shared key matches the PING digest
INCOMPLETE_MESSAGE: Final = "incomplete_message"  # the connection closed in the middle of a request

MIB: Final = 1 << 20
NS_PER_S: Final = 1_000_000_000
_MAX_SECONDS: Final = (2**63 - 1) // NS_PER_S
_GROUP_MARKERS: Final = frozenset((-1, -2))  # Fluent Bit group start / end
_GROUP_MARKER_SECONDS: Final = frozenset((0xFFFFFFFF, 0xFFFFFFFE))
_EVENT_TIME: Final = struct.Struct(">II")
_HEARTBEAT: Final = b"\xc0"
_ARRAY_BYTES: Final = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}
_Ext: Final = msgspec.msgpack.Ext

# An entry as nearly every sender writes it, checked in C: any time, and a record whose keys are
# strings and whose values are plain JSON nested a few levels deep.  Anything else (bin values,
# ext values, other keys, deeper nesting, another shape) takes the slower per-entry path.
_RECORD_TYPE: Final = dict[str, json_value_type(6)]  # type: ignore[misc]
_ENTRY_TYPE: Final = tuple[Any, _RECORD_TYPE]  # type: ignore[valid-type]
_ENTRIES: Final = msgspec.msgpack.Decoder(list[_ENTRY_TYPE])  # type: ignore[valid-type]
_ENTRY: Final = msgspec.msgpack.Decoder(_ENTRY_TYPE)
_RECORD: Final = msgspec.msgpack.Decoder(_RECORD_TYPE)
_ANY: Final = msgspec.msgpack.Decoder()
_ENCODER: Final = msgspec.msgpack.Encoder()
_JSON: Final = msgspec.json.Encoder()

Resolver = Callable[[Callable[[str], bool]], Tenant | None]
"""Given `check(shared_key) -> bool`, the tenant of the first candidate key that checks, else None."""


class ForwardError(DecodeError):
    """Input that ends the connection; `cause` is one of this module's cause constants.

    `batches` holds the requests completed earlier in the same `feed` call: they are valid
    and are to be stored and acked as usual before the connection is closed.
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(f"{cause}: {message}")
        self.cause = cause
        self.message = message
        self.batches: list[ForwardBatch] = []


@dataclass(frozen=True)
class ForwardLimits:
    """Per-connection bounds; memory per connection stays below max_frame_bytes plus one read."""

    max_frame_bytes: int = 64 * MIB
    max_decompressed_bytes: int = 256 * MIB

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 1 or self.max_decompressed_bytes < 1:
            raise ValueError("forward limits must be positive")


@dataclass(eq=False)
class ForwardBatch:
    """The events of one request; once they are durable, `ForwardConnection.ack(batch)` is the reply.

    `events` may be empty (only nil records or group markers): a chunk must be acked all the same.
    """

    tag: str
    events: list[Event]
    chunk: str | bytes | None  # option.chunk, echoed back in the ack
    size: int  # bytes of the request on the wire
    entries: int = 0  # entries in the request, skipped ones included
    option: dict[str, Any] = field(default_factory=dict)


def heartbeat_reply(datagram: bytes) -> bytes | None:
    """The answer to a datagram on the forward UDP port: Fluentd's heartbeat (0 or 1 byte) is echoed.

    Anything longer is not a heartbeat and gets no answer (None).
    """
    return datagram if len(datagram) <= 1 else None


class ForwardConnection:
    """The protocol state of one forward connection.

    Call sequence for the glue: `data_to_send()` right after connecting (HELO when auth is
    on), then for every read `feed(data)` followed by `data_to_send()` (PONG); for each
    returned batch store the events and, once durable, write `ack(batch)`; at EOF `close()`.
    """

    def __init__(
        self,
        limits: ForwardLimits | None = None,
        *,
        resolve: Resolver | None = None,
        self_hostname: str = "logtraced",
        nonce: bytes | None = None,
        keepalive: bool = True,
    ) -> None:
        self.limits = limits or ForwardLimits()
        self.tenant: Tenant | None = None
        self.authenticated = False
        self._resolve = resolve
        self._self_hostname = self_hostname
        self._buffer = bytearray()
        self._scanner = ValueScanner()
        self._outgoing = bytearray()
        self._failed: ForwardError | None = None
        self._awaiting_ping = resolve is not None
        self._nonce = b""
        if resolve is not None:
            self._nonce = os.urandom(16) if nonce is None else nonce
            helo = ["HELO", {"nonce": self._nonce, "auth": "", "keepalive": keepalive}]
            self._outgoing += _ENCODER.encode(helo)

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete request held so far."""
        return len(self._buffer)

    def data_to_send(self) -> bytes:
        """Handshake bytes to write now (HELO, PONG); empty when there are none."""
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def ack(self, batch: ForwardBatch) -> bytes:
        """The reply for `batch`, to write once its events are durable: `{"ack": chunk}`, or b"" without a chunk."""
        if batch.chunk is None:
            return b""
        return _ENCODER.encode({"ack": batch.chunk})

    def close(self) -> None:
        """The peer closed: a request cut in the middle is lost (the sender resends what was not acked)."""
        if self._buffer:
            size = len(self._buffer)
            self._buffer.clear()
            self._scanner.reset()
            raise ForwardError(INCOMPLETE_MESSAGE, f"connection closed with {size} bytes of an incomplete request")

    def feed(self, data: bytes, received_ns: int | None = None) -> list[ForwardBatch]:
        """The requests completed by `data`; raises ForwardError (with the earlier ones in `.batches`)."""
        if self._failed is not None:
            raise self._failed
        if received_ns is None:
            received_ns = time.time_ns()
        batches: list[ForwardBatch] = []
        try:
            self._feed(data, received_ns, batches)
        except ForwardError as error:
            error.batches = batches
            self._failed = error
            self._buffer.clear()
            raise
        return batches

    def _feed(self, data: bytes, received_ns: int, batches: list[ForwardBatch]) -> None:
        buffer = self._buffer
        source: bytes | bytearray
        if buffer:
            buffer += data
            source = buffer
        else:
            source = data
        limit = self.limits.max_frame_bytes
        scanner = self._scanner
        start, end = 0, len(source)
        try:
            while start < end:
                try:
                    length = scanner.scan(source, start)
                except MalformedMsgpack as error:
                    raise ForwardError(MALFORMED_MSGPACK, f"the stream is not msgpack ({error})") from None
                if length < 0:
                    if end - start > limit or scanner.known_length > limit:
                        raise ForwardError(FRAME_TOO_LARGE, f"a request is longer than {limit} bytes")
                    break
                if length > limit:
                    raise ForwardError(FRAME_TOO_LARGE, f"a request of {length} bytes is longer than {limit}")
                if start == 0 and length == end and type(source) is bytes:
                    frame = source
                else:
                    frame = bytes(memoryview(source)[start : start + length])
                start += length
                scanner.reset()
                batch = self._request(frame, received_ns)
                if batch is not None:
                    batches.append(batch)
        finally:
            if source is buffer:
                del buffer[:start]
            elif start < end:
                buffer += memoryview(source)[start:]

    def _request(self, frame: bytes, received_ns: int) -> ForwardBatch | None:
        if self._awaiting_ping:
            self._handshake(frame)
            return None
        if frame == _HEARTBEAT:
            return None
        try:
            return self._decode_request(frame, received_ns)
        except MalformedMsgpack as error:
            raise ForwardError(MALFORMED_MSGPACK, str(error)) from None

    def _decode_request(self, frame: bytes, received_ns: int) -> ForwardBatch:
        items = array_items(frame)
        if items is None or not 2 <= len(items) <= 4:
            raise ForwardError(INVALID_MESSAGE, "a request must be an array of 2 to 4 items")
        tag = _decode_any(frame[items[0][0] : items[0][1]])
        if type(tag) is not str:
            raise ForwardError(INVALID_MESSAGE, "the tag must be a string")
        second = frame[items[1][0] : items[1][1]]
        packed = blob_payload(second)
        if packed is not None or second[0] in _ARRAY_BYTES:
            mode_items = 2  # Forward and PackedForward: [tag, entries, option?]
        else:
            mode_items = 3  # Message: [tag, time, record, option?]
        if len(items) not in (mode_items, mode_items + 1):
            raise ForwardError(INVALID_MESSAGE, f"a request of this mode has {mode_items} or {mode_items + 1} items")
        option = _decode_option(frame, items[mode_items] if len(items) > mode_items else None)
        entries: list[Any]
        if packed is not None:
            entries = self._packed_entries(packed, option)
        elif mode_items == 2:
            entries = _forward_entries(second)
        else:
            entries = [(_decode_any(second), _decode_record(frame[items[2][0] : items[2][1]]))]
        events = _events(tag, entries, received_ns)
        chunk = option.get("chunk")
        if chunk is not None and type(chunk) not in (str, bytes):
            raise ForwardError(INVALID_MESSAGE, "option.chunk must be a string")
        return ForwardBatch(tag, events, chunk, len(frame), len(entries), option)

    def _packed_entries(self, packed: bytes, option: dict[str, Any]) -> list[Any]:
        compressed = option.get("compressed")
        if compressed == "gzip":
            packed = _gunzip(packed, self.limits.max_decompressed_bytes)
        elif compressed not in (None, "text"):
            raise ForwardError(UNSUPPORTED_COMPRESSION, f"option.compressed {compressed!r} is not supported")
        if not packed:
            return []
        size = option.get("size")
        if type(size) is int and 0 < size < 1 << 32:
            try:
                return _ENTRIES.decode(array_header(size) + packed)
            except (msgspec.DecodeError, RecursionError):
                pass  # the size is wrong (it is informational) or an entry is unusual
        count = count_values(packed)
        try:
            return _ENTRIES.decode(array_header(count) + packed)
        except (msgspec.DecodeError, RecursionError):
            pass
        entries, start = [], 0
        for stop in value_ends(packed):
            entries.append(_decode_entry(packed[start:stop]))
            start = stop
        return entries

    def _handshake(self, frame: bytes) -> None:
        try:
            ping = decode_lenient(frame, raw_strings=True)
        except MalformedMsgpack:
            ping = None
        if (
            type(ping) is not list
            or len(ping) != 6
            or ping[0] != b"PING"
            or not all(type(item) is bytes for item in ping[1:4])
        ):
            self._pong_failure("invalid ping message")
            raise ForwardError(HANDSHAKE_FAILED, "the first request must be a PING")
        _, hostname, salt, digest, _username, _password = ping
        digest = digest.lower()
        nonce = self._nonce
        matched: list[str] = []

        def check(shared_key: str) -> bool:
            expected = hashlib.sha512(salt + hostname + nonce + shared_key.encode()).hexdigest().encode()
            if hmac.compare_digest(expected, digest):
                matched.append(shared_key)
                return True
            return False

        assert self._resolve is not None
        tenant = self._resolve(check)
        if tenant is None or not matched:
            self._pong_failure("shared_key mismatch")
            raise ForwardError(AUTH_FAILED, "no shared key matches the PING digest")
        server = self._self_hostname.encode()
        pong_digest = hashlib.sha512(salt + server + nonce + matched[-1].encode()).hexdigest()
        self._outgoing += _ENCODER.encode(["PONG", True, "", self._self_hostname, pong_digest])
        self._awaiting_ping = False
        self.authenticated = True
        self.tenant = tenant

    def _pong_failure(self, reason: str) -> None:
        self._outgoing += _ENCODER.encode(["PONG", False, reason, "", ""])


def _decode_any(data: bytes) -> Any:
    """Any msgpack value; one that msgspec refuses (a str that is not UTF-8, say) is decoded leniently."""
    try:
        return _ANY.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return decode_lenient(data)


def _decode_option(frame: bytes, span: tuple[int, int] | None) -> dict[str, Any]:
    if span is None:
        return {}
    option = _decode_any(frame[span[0] : span[1]])
    if option is None:
        return {}
    if type(option) is not dict:
        raise ForwardError(INVALID_MESSAGE, "the option must be a map")
    return option


def _decode_record(data: bytes) -> Any:
    """A record, checked to be storable in C when it is an ordinary one, else made storable."""
    try:
        return _RECORD.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return json_safe(_decode_any(data))


def _decode_entry(data: bytes) -> Any:
    try:
        return _ENTRY.decode(data)
    except (msgspec.DecodeError, RecursionError):
        entry = _decode_any(data)
    if type(entry) is not list or len(entry) != 2:
        raise ForwardError(INVALID_ENTRY, "an entry must be [time, record]")
    return entry[0], json_safe(entry[1])


def _forward_entries(data: bytes) -> list[Any]:
    try:
        return _ENTRIES.decode(data)
    except (msgspec.DecodeError, RecursionError):
        pass
    spans = array_items(data)
    assert spans is not None  # the caller saw an array header
    return [_decode_entry(data[start:stop]) for start, stop in spans]


def _gunzip(data: bytes, limit: int) -> bytes:
    """Inflate one or more concatenated gzip members, never holding more than limit + 1 bytes."""
    try:
        return inflate(data, limit, wbits=GZIP_WBITS, members=True)
    except InflateError as error:
        cause = DECOMPRESSED_TOO_LARGE if error.too_large else MALFORMED_GZIP
        raise ForwardError(cause, f"compressed entries {error.detail}") from None


def _events(tag: str, entries: list[Any], received_ns: int) -> list[Event]:
    events: list[Event] = []
    append = events.append
    for entry in entries:
        moment, record = entry
        metadata = None
        if type(moment) is list:
            if not 1 <= len(moment) <= 2:
                raise ForwardError(INVALID_ENTRY, "a time with metadata must be [time, metadata]")
            if len(moment) == 2 and moment[1]:
                metadata = moment[1]
            moment = moment[0]
        ns = _time_ns(moment, received_ns)
        if ns is None or record is None:
            continue  # a group marker, or a nil record
        if type(record) is dict:
            event = normalise(record, ns)
        else:
            text = _JSON.encode(json_safe(record)).decode()
            event = Event(ns, text, tags=[TAG_NOT_OBJECT], attributes={})
        if not event.service:
            event.service = tag
        attributes = event.attributes
        attributes["fluent.tag"] = tag
        if metadata is not None:
            attributes["fluent.metadata"] = json_safe(metadata)
        append(event)
    return events


def _time_ns(moment: Any, received_ns: int) -> int | None:
    """Nanoseconds of a forward time; None for a group marker; 0 means the time received."""
    kind = type(moment)
    if kind is _Ext:
        if moment.code != 0 or len(moment.data) != 8:
            raise ForwardError(INVALID_ENTRY, f"ext type {moment.code} of {len(moment.data)} bytes is not an EventTime")
        seconds, nanos = _EVENT_TIME.unpack(moment.data)
        if seconds in _GROUP_MARKER_SECONDS and nanos == 0:
            return None
        ns = seconds * NS_PER_S + nanos
        return ns if ns else received_ns
    if kind is int:
        if moment in _GROUP_MARKERS:
            return None
        if not 0 <= moment <= _MAX_SECONDS:
            raise ForwardError(INVALID_ENTRY, f"time {moment} is out of range")
        return moment * NS_PER_S if moment else received_ns
    if kind is float:
        if not 0.0 <= moment <= _MAX_SECONDS:  # also refuses NaN
            raise ForwardError(INVALID_ENTRY, f"time {moment} is out of range")
        return round(moment * 1_000_000) * 1000 if moment else received_ns
    raise ForwardError(INVALID_ENTRY, f"time must be an integer, a float or an EventTime, not {kind.__name__}")
