"""Lumberjack v2 (Beats -> Logstash `output.logstash`), sans-IO: one connection's bytes in, windows and ACK bytes out.

Senders: Filebeat, Winlogbeat and every other Beat (through go-lumber), and lumberjack v1
writers (`D` key/value frames).  Every frame is a version byte (`'2'`, or `'1'`), a type
byte and big-endian u32 fields:

    W  count                       a window of `count` data frames follows
    J  seq, len, len bytes JSON    one event
    D  seq, n, n x (klen key vlen value)   one event of string pairs (v1)
    C  len, len bytes of zlib      more frames (go-lumber puts the whole window in one)
    A  seq                         server -> client: every data frame up to seq is stored

Rules (decided here, tested in tests/ingest/test_beats.py):

* A window is handed over only once all `count` of its data frames have arrived.  A
  connection cut mid-window hands over none of it: the sender resends the whole window.
* `ack(window)` is the reply once the window's events are durable: `'2' 'A'` and the
  sequence number of the window's last data frame, which is the highest one whether
  sequence numbers restart at 1 in every window (go-lumber) or run on across windows.
  Windows are acked in the order they were handed over (Filebeat pipelines two).
  A window of 0 frames is handed over at once, empty, and is acked with 0.
* `keepalive()` is an ACK of 0 while windows await their ack: go-lumber keeps waiting for the
  real ACK and restarts its 30 s timeout instead of resending (what Logstash does).
* JSON that does not parse inside a well-formed J frame does not end the connection: it is
  stored as a `_jsonparsefailure` event with the raw text as message, as every JSON receiver
  of logtraced does (`window.parse_failures` counts them).  A frame holding a JSON array
  gives one event per element.
* Everything else that is wrong ends the connection with `BeatsError` and a `cause`: a
  version other than '1'/'2', an unknown frame type, a frame over `max_frame_bytes`, a
  window over `max_window_events` / `max_window_bytes`, zlib that does not inflate or
  inflates past `max_decompressed_bytes`, a compressed payload ending mid-frame, a W or C
  frame inside a C frame, a data frame outside a window, a W frame before the current
  window is complete.

Event mapping: the JSON document is a Beats event and goes through `events.normalise`
(`@timestamp`, `message`, `log.level`, `host.name`, `service.name`, `tags` are read from
their usual places; `agent.*`, `ecs.version`, `log.file.path`, `input.type`, `fields` stay as
attributes, nested as sent).  `@metadata` is dropped, as Logstash drops it: its `beat` and
`version` repeat `agent.type` and `agent.version`, which every Beat since 7.0 sends.  In a D
frame, logstash-forwarder's `line` key is the message.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from logtraced.errors import DecodeError
from logtraced.events import TAG_JSON_PARSE_FAILURE, events_from_frame, normalise
from logtraced.ingest.inflate import InflateError, inflate
from logtraced.model import Event

# Causes carried by BeatsError, stable for counters and logs.
UNSUPPORTED_VERSION: Final = "unsupported_version"
UNKNOWN_FRAME_TYPE: Final = "unknown_frame_type"
FRAME_TOO_LARGE: Final = "frame_too_large"
WINDOW_TOO_LARGE: Final = "window_too_large"
DECOMPRESSED_TOO_LARGE: Final = "decompressed_too_large"
MALFORMED_ZLIB: Final = "malformed_zlib"
TRUNCATED_COMPRESSED_FRAME: Final = "truncated_compressed_frame"
UNEXPECTED_FRAME: Final = "unexpected_frame"  # W or C inside a compressed frame
DATA_OUTSIDE_WINDOW: Final = "data_outside_window"
UNEXPECTED_WINDOW: Final = "unexpected_window"  # W before the current window is complete
INCOMPLETE_WINDOW: Final = "incomplete_window"  # the connection closed mid-window

MIB: Final = 1 << 20
_VERSIONS: Final = {ord("1"): 1, ord("2"): 2}
_WINDOW: Final = ord("W")
_JSON: Final = ord("J")
_DATA: Final = ord("D")
_COMPRESSED: Final = ord("C")
_U32: Final = struct.Struct(">I")
_TWO_U32: Final = struct.Struct(">II")
_ACK: Final = struct.Struct(">BBI")
_DROP_KEYS: Final = ("@metadata",)


class BeatsError(DecodeError):
    """Input that ends the connection; `cause` is one of this module's cause constants.

    `windows` holds the windows completed earlier in the same `feed` call: they are whole and
    are to be stored and acked as usual before the connection is closed.
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(f"{cause}: {message}")
        self.cause = cause
        self.message = message
        self.windows: list[BeatsWindow] = []


@dataclass(frozen=True)
class BeatsLimits:
    """Per-connection bounds: a connection holds at most one frame and one window's payloads."""

    max_frame_bytes: int = 64 * MIB  # a J payload, a D frame, or a C frame's compressed payload
    max_decompressed_bytes: int = 256 * MIB  # what one C frame may inflate to
    max_window_events: int = 65536  # Filebeat's bulk_max_size defaults to 2048
    max_window_bytes: int = 256 * MIB  # event payloads of one window, uncompressed

    def __post_init__(self) -> None:
        if min(self.max_frame_bytes, self.max_decompressed_bytes, self.max_window_events, self.max_window_bytes) < 1:
            raise ValueError("beats limits must be positive")


@dataclass(eq=False)
class BeatsWindow:
    """The events of one complete window; once they are durable, `BeatsConnection.ack(window)` is the reply."""

    events: list[Event]
    last_seq: int  # sequence number of the window's last data frame, 0 for an empty window
    version: int  # protocol version of the W frame, echoed in the ACK
    frames: int  # data frames in the window (a J frame holding an array gives several events)
    size: int  # payload bytes of the window, uncompressed
    parse_failures: int = 0  # events stored as _jsonparsefailure


class _Pending:
    """The window being received."""

    __slots__ = ("version", "count", "payloads", "size", "last_seq")

    def __init__(self, version: int, count: int) -> None:
        self.version = version
        self.count = count
        self.payloads: list[bytes | dict[str, Any]] = []
        self.size = 0
        self.last_seq = 0


class BeatsConnection:
    """The protocol state of one Beats connection.

    Call sequence for the glue: for every read `feed(data)`; store the events of each returned
    window and, once durable, write `ack(window)` (in the order the windows were returned);
    while windows wait to be durable, write `keepalive()` every few seconds; at EOF `close()`.
    """

    def __init__(self, limits: BeatsLimits | None = None) -> None:
        self.limits = limits or BeatsLimits()
        self._buffer = bytearray()
        self._need = 0  # bytes the buffer must hold before parsing can progress
        self._pending: _Pending | None = None
        self._unacked: deque[BeatsWindow] = deque()
        self._failed: BeatsError | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held so far."""
        return len(self._buffer)

    @property
    def unacked(self) -> int:
        """Windows handed over and not yet acked."""
        return len(self._unacked)

    def ack(self, window: BeatsWindow) -> bytes:
        """The ACK frame for `window`, to write once its events are durable; windows are acked in order."""
        if not self._unacked or self._unacked[0] is not window:
            raise ValueError("windows must be acked once each, in the order feed() returned them")
        self._unacked.popleft()
        return _ACK.pack(ord(str(window.version)), ord("A"), window.last_seq)

    def keepalive(self) -> bytes | None:
        """An ACK of sequence 0 while a window awaits its ACK (the sender keeps waiting), else None."""
        if not self._unacked:
            return None
        return _ACK.pack(ord(str(self._unacked[0].version)), ord("A"), 0)

    def close(self) -> None:
        """The peer closed: a window cut in the middle is dropped (the sender resends all of it)."""
        pending, buffered = self._pending, len(self._buffer)
        self._pending = None
        self._buffer.clear()
        self._need = 0
        if pending is not None or buffered:
            frames = len(pending.payloads) if pending is not None else 0
            total = pending.count if pending is not None else 0
            raise BeatsError(
                INCOMPLETE_WINDOW,
                f"connection closed with {frames} of {total} data frames and {buffered} bytes of a frame",
            )

    def feed(self, data: bytes, received_ns: int | None = None) -> list[BeatsWindow]:
        """The windows completed by `data`; raises BeatsError (with the earlier ones in `.windows`)."""
        if self._failed is not None:
            raise self._failed
        windows: list[BeatsWindow] = []
        buffer = self._buffer
        buffer += data
        if len(buffer) < self._need:
            return windows
        if received_ns is None:
            received_ns = time.time_ns()
        try:
            consumed = self._frames(buffer, False, received_ns, windows)
        except BeatsError as error:
            error.windows = windows
            self._failed = error
            buffer.clear()
            self._pending = None
            raise
        del buffer[:consumed]
        return windows

    def _frames(self, data: bytes | bytearray, compressed: bool, received_ns: int, windows: list[BeatsWindow]) -> int:
        """Handle the whole frames in `data`; return how many bytes they took.

        Inside a compressed payload every frame must be whole and only data frames may appear.
        """
        limits = self.limits
        pos, end = 0, len(data)
        self._need = 0
        while pos < end:
            if end - pos < 2:
                return self._cut(pos, 2, compressed)
            version = _VERSIONS.get(data[pos])
            if version is None:
                raise BeatsError(UNSUPPORTED_VERSION, f"version byte 0x{data[pos]:02x} is neither '1' nor '2'")
            kind = data[pos + 1]
            if kind == _JSON:
                if end - pos < 10:
                    return self._cut(pos, 10, compressed)
                seq, length = _TWO_U32.unpack_from(data, pos + 2)
                if length > limits.max_frame_bytes:
                    raise BeatsError(
                        FRAME_TOO_LARGE, f"a JSON frame of {length} bytes is over {limits.max_frame_bytes}"
                    )
                stop = pos + 10 + length
                if stop > end:
                    return self._cut(pos, stop - pos, compressed)
                self._data_frame(seq, bytes(data[pos + 10 : stop]), length, received_ns, windows)
                pos = stop
            elif kind == _DATA:
                parsed = self._kv_frame(data, pos, end)
                if parsed is None:
                    return self._cut(pos, self._need, compressed)
                seq, record, stop = parsed
                self._data_frame(seq, record, stop - pos, received_ns, windows)
                pos = stop
            elif kind == _WINDOW or kind == _COMPRESSED:
                if compressed:
                    raise BeatsError(UNEXPECTED_FRAME, f"a {chr(kind)} frame inside a compressed frame")
                if end - pos < 6:
                    return self._cut(pos, 6, compressed)
                (value,) = _U32.unpack_from(data, pos + 2)
                if kind == _WINDOW:
                    self._window(version, value, windows)
                    pos += 6
                    continue
                if value > limits.max_frame_bytes:
                    raise BeatsError(
                        FRAME_TOO_LARGE, f"a compressed frame of {value} bytes is over {limits.max_frame_bytes}"
                    )
                stop = pos + 6 + value
                if stop > end:
                    return self._cut(pos, stop - pos, compressed)
                inflated = _inflate(bytes(data[pos + 6 : stop]), limits.max_decompressed_bytes)
                self._frames(inflated, True, received_ns, windows)
                self._need = 0
                pos = stop
            else:
                raise BeatsError(UNKNOWN_FRAME_TYPE, f"frame type 0x{kind:02x} is not W, J, D or C")
        return pos

    def _cut(self, pos: int, need: int, compressed: bool) -> int:
        """The frame at `pos` is incomplete and needs `need` bytes: wait for them (or fail inside C)."""
        if compressed:
            raise BeatsError(TRUNCATED_COMPRESSED_FRAME, "a compressed payload ends in the middle of a frame")
        self._need = need
        return pos

    def _kv_frame(self, data: bytes | bytearray, pos: int, end: int) -> tuple[int, dict[str, Any], int] | None:
        """A whole D frame at `pos`: (seq, pairs, end); None with `_need` set when it is cut."""
        limit = self.limits.max_frame_bytes
        cursor = pos + 10
        if cursor > end:
            self._need = 10
            return None
        seq, count = _TWO_U32.unpack_from(data, pos + 2)
        if count * 8 > limit:
            raise BeatsError(FRAME_TOO_LARGE, f"a data frame of {count} pairs is over {limit} bytes")
        record: dict[str, Any] = {}
        for _ in range(count):
            texts = []
            for _ in range(2):
                if cursor + 4 > end:
                    self._need = cursor + 4 - pos
                    return None
                (length,) = _U32.unpack_from(data, cursor)
                stop = cursor + 4 + length
                if stop - pos > limit:
                    raise BeatsError(FRAME_TOO_LARGE, f"a data frame is over {limit} bytes")
                if stop > end:
                    self._need = stop - pos
                    return None
                texts.append(bytes(data[cursor + 4 : stop]).decode("utf-8", "replace"))
                cursor = stop
            record[texts[0]] = texts[1]
        return seq, record, cursor

    def _window(self, version: int, count: int, windows: list[BeatsWindow]) -> None:
        pending = self._pending
        if pending is not None:
            raise BeatsError(
                UNEXPECTED_WINDOW,
                f"a new window began after {len(pending.payloads)} of {pending.count} data frames",
            )
        if count > self.limits.max_window_events:
            raise BeatsError(WINDOW_TOO_LARGE, f"a window of {count} events is over {self.limits.max_window_events}")
        if count == 0:
            self._hand_over(BeatsWindow([], 0, version, 0, 0), windows)
        else:
            self._pending = _Pending(version, count)

    def _data_frame(
        self, seq: int, payload: bytes | dict[str, Any], size: int, received_ns: int, windows: list[BeatsWindow]
    ) -> None:
        pending = self._pending
        if pending is None:
            raise BeatsError(DATA_OUTSIDE_WINDOW, f"data frame {seq} is not part of a window")
        pending.size += size
        if pending.size > self.limits.max_window_bytes:
            raise BeatsError(WINDOW_TOO_LARGE, f"a window's events are over {self.limits.max_window_bytes} bytes")
        pending.payloads.append(payload)
        pending.last_seq = seq
        if len(pending.payloads) == pending.count:
            self._pending = None
            self._hand_over(_complete(pending, received_ns), windows)

    def _hand_over(self, window: BeatsWindow, windows: list[BeatsWindow]) -> None:
        self._unacked.append(window)
        windows.append(window)


def _complete(pending: _Pending, received_ns: int) -> BeatsWindow:
    events: list[Event] = []
    failures = 0
    for payload in pending.payloads:
        if isinstance(payload, bytes):
            decoded = events_from_frame(payload, received_ns, drop_keys=_DROP_KEYS)
            if len(decoded) == 1 and decoded[0].tags and TAG_JSON_PARSE_FAILURE in decoded[0].tags:
                failures += 1
            events.extend(decoded)
        else:
            if "line" in payload and "message" not in payload:
                payload["message"] = payload.pop("line")
            events.append(normalise(payload, received_ns))
    return BeatsWindow(events, pending.last_seq, pending.version, len(pending.payloads), pending.size, failures)


def _inflate(data: bytes, limit: int) -> bytes:
    """Inflate one zlib stream, never holding more than limit + 1 bytes; bytes after its end are ignored."""
    try:
        return inflate(data, limit)
    except InflateError as error:
        cause = DECOMPRESSED_TOO_LARGE if error.too_large else MALFORMED_ZLIB
        raise BeatsError(cause, f"a compressed frame {error.detail}") from None
