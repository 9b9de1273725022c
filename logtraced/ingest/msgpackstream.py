"""Where msgpack values end in a byte stream, and a lenient decoder for values msgspec refuses.

msgspec decodes one complete msgpack value and has no streaming API, so a receiver of a
msgpack stream (Fluentd Forward) must find the end of each top-level value itself before
decoding it.  `ValueScanner` does that for a buffer that grows chunk by chunk, resuming where
it stopped, so every byte is walked once however the stream is cut:

* A container (array, map) is first skipped in C by decoding it as `msgspec.Raw` (no objects
  are built); msgspec reports where a complete value ends through its "trailing characters
  (byte N)" error.  Only a container that is cut by the end of the buffer is descended into
  and walked header by header in Python, so the Python walk covers just the spine of the
  incomplete part.
* A str, bin or ext value carries its length in its header: its end is known at once, and
  while the rest of it arrives each call costs O(1).

The lenient decoder is for what msgspec cannot decode although the framing is sound: strings
that are not UTF-8 (Fluent Bit's 16 random bytes of PING salt are sent as a msgpack str, and
Fluentd's out_forward sends PackedForward entries as a str), map keys that are arrays, values
nested deeper than msgspec's recursion limit.  `json_safe` then turns any decoded value into
one the JSON index can store.
"""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

# A stored attribute may nest at most this deep (the index's JSON parser refuses deeper ones).
MAX_DEPTH: Final = 100
TOO_DEEP: Final = "[nested too deep]"

_RAW: Final = msgspec.msgpack.Decoder(msgspec.Raw)
_RAW_LIST: Final = msgspec.msgpack.Decoder(list[msgspec.Raw])
_U32_ARRAY: Final = struct.Struct(">BI")  # an array 32 header
_TRAILING: Final = re.compile(r"trailing characters \(byte (\d+)\)")
_TRUNCATED: Final = "truncated"

# Kinds of value, read off the first byte.
_SCALAR: Final = 0  # the header is the whole value
_BLOB: Final = 1  # str, bin, ext: the header gives the payload length
_ARRAY: Final = 2
_MAP: Final = 3
_INVALID: Final = 4

_U8: Final = struct.Struct(">B")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_EVENT_TIME: Final = struct.Struct(">II")


class MalformedMsgpack(ValueError):
    """The bytes are not msgpack (an invalid first byte, an impossible length)."""


def _build_table() -> tuple[tuple[int, int, struct.Struct | None, int], ...]:
    """Per first byte: (kind, header length, struct of the length field after byte 0, fixed length)."""
    table: list[tuple[int, int, struct.Struct | None, int]] = []
    entry: tuple[int, int, struct.Struct | None, int]
    for byte in range(256):
        if byte <= 0x7F or byte >= 0xE0:
            entry = (_SCALAR, 1, None, 0)  # fixint
        elif byte <= 0x8F:
            entry = (_MAP, 1, None, byte & 0x0F)
        elif byte <= 0x9F:
            entry = (_ARRAY, 1, None, byte & 0x0F)
        elif byte <= 0xBF:
            entry = (_BLOB, 1, None, byte & 0x1F)  # fixstr
        else:
            entry = _SPECIAL.get(byte, (_INVALID, 1, None, 0))
        table.append(entry)
    return tuple(table)


_SPECIAL: Final[dict[int, tuple[int, int, struct.Struct | None, int]]] = {
    0xC0: (_SCALAR, 1, None, 0),  # nil
    0xC2: (_SCALAR, 1, None, 0),  # false
    0xC3: (_SCALAR, 1, None, 0),  # true
    0xC4: (_BLOB, 2, _U8, 0),  # bin 8
    0xC5: (_BLOB, 3, _U16, 0),
    0xC6: (_BLOB, 5, _U32, 0),
    0xC7: (_BLOB, 3, _U8, 0),  # ext 8: length, then the type byte (counted in the header)
    0xC8: (_BLOB, 4, _U16, 0),
    0xC9: (_BLOB, 6, _U32, 0),
    0xCA: (_SCALAR, 5, None, 0),  # float 32
    0xCB: (_SCALAR, 9, None, 0),
    0xCC: (_SCALAR, 2, None, 0),  # uint 8..64
    0xCD: (_SCALAR, 3, None, 0),
    0xCE: (_SCALAR, 5, None, 0),
    0xCF: (_SCALAR, 9, None, 0),
    0xD0: (_SCALAR, 2, None, 0),  # int 8..64
    0xD1: (_SCALAR, 3, None, 0),
    0xD2: (_SCALAR, 5, None, 0),
    0xD3: (_SCALAR, 9, None, 0),
    0xD4: (_SCALAR, 3, None, 0),  # fixext 1, 2, 4, 8, 16 (type byte included)
    0xD5: (_SCALAR, 4, None, 0),
    0xD6: (_SCALAR, 6, None, 0),
    0xD7: (_SCALAR, 10, None, 0),
    0xD8: (_SCALAR, 18, None, 0),
    0xD9: (_BLOB, 2, _U8, 0),  # str 8
    0xDA: (_BLOB, 3, _U16, 0),
    0xDB: (_BLOB, 5, _U32, 0),
    0xDC: (_ARRAY, 3, _U16, 0),
    0xDD: (_ARRAY, 5, _U32, 0),
    0xDE: (_MAP, 3, _U16, 0),
    0xDF: (_MAP, 5, _U32, 0),
}
_TABLE: Final = _build_table()
_STR_BYTES: Final = frozenset(range(0xA0, 0xC0)) | {0xD9, 0xDA, 0xDB}
_BIN_BYTES: Final = frozenset((0xC4, 0xC5, 0xC6))
_EXT_WITH_LENGTH: Final = frozenset((0xC7, 0xC8, 0xC9))  # their type byte follows the length


def _header(data: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, int, int] | None:
    """(kind, header length, payload length or child count) of the value at `pos`; None if cut."""
    kind, size, length_field, fixed = _TABLE[data[pos]]
    if pos + size > end:
        return None
    if kind == _INVALID:
        raise MalformedMsgpack(f"invalid msgpack byte 0x{data[pos]:02x} at {pos}")
    length = length_field.unpack_from(data, pos + 1)[0] if length_field is not None else fixed
    return kind, size, length


def _c_skip(view: memoryview, pos: int, end: int) -> int | None:
    """End of the value at view[pos], skipped in C; None when it is cut (or too deep for C)."""
    try:
        _RAW.decode(view[pos:end])  # the Raw it returns is dropped at once, so no export outlives this
    except msgspec.DecodeError as error:
        text = str(error)
        if _TRUNCATED in text:
            return None
        trailing = _TRAILING.search(text)
        if trailing is None:
            raise MalformedMsgpack(text) from None
        return pos + int(trailing.group(1))
    except RecursionError:
        return None
    return end


class ValueScanner:
    """Finds where the first msgpack value of a growing buffer ends; one scan per value.

    Call `scan(buffer)` after each append; it returns the end of the first value once that
    value is complete, else -1, and remembers how far it got.  `reset()` after removing the
    value from the buffer.  `known_length` is a lower bound of the value's length, so a
    caller can refuse an oversize value before it has arrived.

    The state is one position and the count of values still to skip: descending into a
    container that is cut replaces it by its children, so the values still to skip are
    always complete values back to back.  That lets runs of them (the entries of a large
    Forward request) be skipped in one C call, a `list[Raw]` decode behind an array header
    of a guessed count that doubles while it fits and halves when it overshoots.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._pos = 0
        self._remaining = 1  # values still to skip before the first top-level value is complete
        self._run = 1  # how many values the next bulk skip tries

    @property
    def known_length(self) -> int:
        return self._pos

    def scan(self, data: bytes | bytearray, start: int = 0) -> int:
        """Length of the value starting at data[start] once it is complete there, else -1."""
        pos, remaining, run, end = start + self._pos, self._remaining, self._run, len(data)
        view = memoryview(data)
        try:
            while remaining:
                if pos >= end:
                    return -1
                if run > 1 and remaining > 1:
                    count = min(run, remaining)
                    stop = _bulk_skip(view, pos, end, count)
                    if stop is None:
                        run //= 2
                    else:
                        pos, remaining, run = stop, remaining - count, run * 2
                    continue
                header = _header(data, pos, end)
                if header is None:
                    return -1
                kind, size, length = header
                if kind == _SCALAR:
                    pos += size
                elif kind == _BLOB:
                    pos += size + length
                elif length == 0:
                    pos += size
                else:
                    stop = _c_skip(view, pos, end)
                    if stop is None:  # cut by the end of the buffer: walk into it
                        pos += size
                        remaining += length * (2 if kind == _MAP else 1)
                    else:
                        pos = stop
                remaining -= 1
                run = 2
        finally:
            view.release()  # the caller may resize a bytearray buffer next
            self._pos, self._remaining, self._run = pos - start, remaining, run
        return pos - start if pos <= end else -1


def _bulk_skip(view: memoryview, pos: int, end: int, count: int) -> int | None:
    """End of the `count` complete values at view[pos] back to back; None if they are not all there."""
    try:
        _RAW_LIST.decode(_U32_ARRAY.pack(0xDD, count) + view[pos:end])
    except msgspec.DecodeError as error:
        text = str(error)
        if _TRUNCATED in text:
            return None
        trailing = _TRAILING.search(text)
        if trailing is None:
            raise MalformedMsgpack(text) from None
        return pos + int(trailing.group(1)) - _U32_ARRAY.size
    except RecursionError:
        return None
    return end


def skip(data: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """End of the complete value at `pos`; MalformedMsgpack if it is cut or invalid."""
    end = len(data)
    with memoryview(data) as view:
        stop = _c_skip(view, pos, end) if pos < end else None
    if stop is not None:
        return stop
    scanner = ValueScanner()
    with memoryview(data) as view, view[pos:] as piece:
        found = scanner.scan(bytes(piece))
    if found < 0:
        raise MalformedMsgpack("msgpack value is truncated")
    return pos + found


def array_items(data: bytes | bytearray | memoryview) -> list[tuple[int, int]] | None:
    """(start, end) of each item when `data` is exactly one msgpack array, else None.

    MalformedMsgpack when an item is invalid or the items do not fill `data` exactly.
    """
    end = len(data)
    header = _header(data, 0, end) if end else None
    if header is None or header[0] != _ARRAY:
        return None
    _, pos, count = header
    items = []
    for _ in range(count):
        stop = skip(data, pos)
        items.append((pos, stop))
        pos = stop
    if pos != end:
        raise MalformedMsgpack("trailing bytes after the array")
    return items


def blob_payload(data: bytes | bytearray | memoryview) -> bytes | None:
    """The payload of `data` when it is exactly one msgpack str or bin value, else None."""
    if not data or (data[0] not in _STR_BYTES and data[0] not in _BIN_BYTES):
        return None
    header = _header(data, 0, len(data))
    if header is None or header[1] + header[2] != len(data):
        raise MalformedMsgpack("str or bin length does not match")
    return bytes(data[header[1] :])


def count_values(data: bytes | bytearray) -> int:
    """How many complete msgpack values `data` holds back to back; MalformedMsgpack if one is cut.

    Probes `list[Raw]` decodes of an array header plus the data, growing the guessed count
    while the guess is exceeded and halving it when it overshoots, so the data is read a
    few times over in C instead of once per value in Python.
    """
    raw_list = _RAW_LIST
    count, pos, guess, end = 0, 0, 256, len(data)
    with memoryview(data) as view:
        while pos < end:
            with view[pos:] as rest:
                probe = _U32_ARRAY.pack(0xDD, guess) + rest
            try:
                raw_list.decode(probe)
            except msgspec.DecodeError as error:
                text = str(error)
                if _TRUNCATED in text:
                    if guess == 1:
                        raise MalformedMsgpack("the last msgpack value is truncated") from None
                    guess //= 2
                    continue
                trailing = _TRAILING.search(text)
                if trailing is None:
                    raise MalformedMsgpack(text) from None
                count += guess
                pos += int(trailing.group(1)) - _U32_ARRAY.size
                guess *= 2
                continue
            except RecursionError:
                return _count_by_walking(data)
            return count + guess
    return count


def _count_by_walking(data: bytes | bytearray) -> int:
    count, pos = 0, 0
    while pos < len(data):
        pos = skip(data, pos)
        count += 1
    return count


def value_ends(data: bytes | bytearray) -> list[int]:
    """End of each msgpack value that `data` holds back to back; MalformedMsgpack if one is cut."""
    ends = []
    pos = 0
    while pos < len(data):
        pos = skip(data, pos)
        ends.append(pos)
    return ends


def array_header(count: int) -> bytes:
    """The msgpack header of an array of `count` items."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + _U16.pack(count)
    return b"\xdd" + _U32.pack(count)


def decode_lenient(data: bytes | bytearray | memoryview, *, raw_strings: bool = False) -> Any:
    """The one msgpack value in `data`, decoded in Python without msgspec's refusals.

    Strings that are not UTF-8 get U+FFFD replacements (or stay bytes with raw_strings),
    containers deeper than MAX_DEPTH become TOO_DEEP, and unhashable map keys become tuples.
    MalformedMsgpack when `data` is not exactly one valid value.
    """
    value, pos = _decode_at(bytes(data), 0, raw_strings, 0)
    if pos != len(data):
        raise MalformedMsgpack("trailing bytes after the value")
    return value


def _decode_at(data: bytes, pos: int, raw_strings: bool, depth: int) -> tuple[Any, int]:
    end = len(data)
    if pos >= end:
        raise MalformedMsgpack("msgpack value is truncated")
    byte = data[pos]
    header = _header(data, pos, end)
    if header is None:
        raise MalformedMsgpack("msgpack value is truncated")
    kind, size, length = header
    if kind == _SCALAR:
        if size == 1 or 0xCA <= byte <= 0xD3:
            return msgspec.msgpack.decode(data[pos : pos + size]), pos + size
        code = data[pos + 1] - 256 if data[pos + 1] > 127 else data[pos + 1]
        return msgspec.msgpack.Ext(code, data[pos + 2 : pos + size]), pos + size
    if kind == _BLOB:
        stop = pos + size + length
        if byte in _EXT_WITH_LENGTH:
            if stop > end:
                raise MalformedMsgpack("msgpack value is truncated")
            code = data[pos + size - 1] - 256 if data[pos + size - 1] > 127 else data[pos + size - 1]
            return msgspec.msgpack.Ext(code, data[pos + size : stop]), stop
        if stop > end:
            raise MalformedMsgpack("msgpack value is truncated")
        payload = data[pos + size : stop]
        if byte in _BIN_BYTES or raw_strings:
            return payload, stop
        return payload.decode("utf-8", "replace"), stop
    if depth >= MAX_DEPTH:
        return TOO_DEEP, skip(data, pos)
    pos += size
    if kind == _ARRAY:
        items = []
        for _ in range(length):
            item, pos = _decode_at(data, pos, raw_strings, depth + 1)
            items.append(item)
        return items, pos
    mapping: dict[Any, Any] = {}
    for _ in range(length):
        key, pos = _decode_at(data, pos, raw_strings, depth + 1)
        value, pos = _decode_at(data, pos, raw_strings, depth + 1)
        mapping[_hashable(key)] = value
    return mapping, pos


def _hashable(key: Any) -> Any:
    """A map key as a dict can hold it: arrays and maps become tuples, an ext its (code, data)."""
    kind = type(key)
    if kind is list:
        return tuple(_hashable(item) for item in key)
    if kind is dict:
        return tuple((_hashable(k), _hashable(v)) for k, v in key.items())
    if kind is msgspec.msgpack.Ext:
        return (key.code, bytes(key.data))
    return key


def event_time_ns(ext: msgspec.msgpack.Ext) -> int | None:
    """Nanoseconds of a Fluentd EventTime (ext type 0, u32 seconds + u32 nanoseconds), else None."""
    data = bytes(ext.data)
    if ext.code != 0 or len(data) != 8:
        return None
    seconds, nanos = _EVENT_TIME.unpack(data)
    return int(seconds) * 1_000_000_000 + int(nanos)


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` with everything the JSON index cannot store replaced, depth bounded by MAX_DEPTH.

    Map keys become strings (numbers and bools as JSON spells them), bytes become text
    (undecodable bytes as backslash escapes), an EventTime becomes an RFC 3339 string with
    nanoseconds, any other ext a `{"ext_type", "data"}` object with base64 data.
    """
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    if kind is dict:
        return {_key_text(key): json_safe(item, depth + 1) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [json_safe(item, depth + 1) for item in value]
    if kind is bytes:
        return value.decode("utf-8", "backslashreplace")
    if kind is msgspec.msgpack.Ext:
        ns = event_time_ns(value)
        if ns is not None:
            return rfc3339_ns(ns)
        return {"ext_type": value.code, "data": base64.b64encode(value.data).decode()}
    return str(value)


def _key_text(key: Any) -> str:
    if type(key) is str:
        return key
    if type(key) is bytes:
        return key.decode("utf-8", "backslashreplace")
    if key is None or type(key) in (bool, int, float):
        return msgspec.json.encode(key).decode()
    return msgspec.json.encode(json_safe(key)).decode()


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339_ns(ns: int) -> str:
    """`ns` since the epoch as `YYYY-MM-DDTHH:MM:SS.fffffffffZ`."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{nanos:09d}Z"
