"""Sans-IO Loki push dialect: `POST /loki/api/v1/push` bodies (JSON or snappy protobuf) in, events out.

Promtail, Grafana Alloy, Vector and Fluent Bit's `loki` output push here unchanged.  A route
reads the (size-bounded, already gunzipped) body, calls `decode_push`, submits
`LokiPush.events`, and answers 204, or, when some entries were refused, 400 with
`error_text(push)` as a plain-text body, as Loki does (the accepted entries are still stored:
clients do not retry a 400, so nothing is duplicated).  A body refused whole raises
BodyRejected; `rejection_text` gives its Loki-style message.

Choices:

* Content type: `application/json` is JSON; `application/x-protobuf`, or no Content-Type at
  all (Loki's own default), is snappy block-compressed protobuf; anything else is 415.
* The snappy header declares the decompressed length; it is checked against
  `max_decompressed_bytes` before a byte is inflated, so a small body cannot expand into a
  huge one (`decompressed_too_large`).
* Stream labels map onto the canonical fields (first present wins, see the tables below); the
  rest become attributes, as does each entry's structured metadata (which wins on a clash,
  being the more specific).
* The line is the message verbatim.  A JSON line is not parsed: Loki stores lines as text,
  LogQL's `| json` parses at query time, and parsing here would make the stored event depend
  on whether a line happened to look like JSON.
* An entry with a bad timestamp or shape, or a stream whose labels cannot be parsed, is
  refused alone and counted in the 400's text; the rest land.
"""

from __future__ import annotations

import re
from typing import Any, Final

import cramjam
import msgspec
from google.protobuf.message import DecodeError as ProtobufDecodeError

from logtraced.ingest.proto import push_pb2
from logtraced.ingest.rejection import (
    DECOMPRESSED_TOO_LARGE,
    INVALID_BODY,
    MALFORMED_JSON,
    MALFORMED_PROTOBUF,
    MALFORMED_SNAPPY,
    TOO_MANY_EVENTS,
    UNSUPPORTED_CONTENT_TYPE,
    BodyRejected,
    media_type,
)
from logtraced.levels import canonical_level
from logtraced.model import Event

JSON_TYPE: Final = "application/json"
PROTOBUF_TYPE: Final = "application/x-protobuf"
_PROTOBUF_TYPES: Final = frozenset({PROTOBUF_TYPE, ""})

# Labels that fill a canonical field, in order of preference; the one used leaves the attributes.
SERVICE_LABELS: Final = ("service_name", "service", "app", "job")
LEVEL_LABELS: Final = ("level", "detected_level", "severity")
HOST_LABELS: Final = ("host", "hostname", "instance")

_NS_PER_S: Final = 1_000_000_000
_I64_MAX: Final = 2**63 - 1
_MAX_VARINT_BYTES: Final = 5  # snappy's length header is a uvarint of at most 32 bits
_MAX_REPORTED: Final = 1  # Loki names one refused entry and counts the rest

# One `name="value"` pair of a Prometheus/LogQL selector, with Go string escapes in the value.
_PAIR: Final = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*', re.DOTALL)
_ESCAPE: Final = re.compile(r"\\(?:([abfnrtv\\\"'])|x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|([0-7]{3}))")
_SIMPLE_ESCAPES: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError)


class LokiPush(msgspec.Struct):
    """What a push body held: the events to store, and why any entries were refused."""

    events: list[Event]
    refused: list[str]  # one reason per refused entry, in body order
    entries: int  # every entry the body held, refused ones included


class _Stream(msgspec.Struct, frozen=True):
    """The canonical fields one stream's labels give every entry of it."""

    service: str
    level: str
    host: str
    attributes: dict[str, str]


def decode_push(
    body: bytes,
    content_type: str,
    received_ns: int,
    *,
    max_decompressed_bytes: int,
    max_events: int,
) -> LokiPush:
    """The events of a push body; raises BodyRejected when none of it can be read.

    `received_ns` stands in for a protobuf entry sent without a timestamp (Loki would store
    it at the epoch and then refuse it as too old).
    """
    kind = media_type(content_type)
    if kind == JSON_TYPE:
        streams = _json_streams(body)
    elif kind in _PROTOBUF_TYPES:
        streams = _protobuf_streams(_unsnappy(body, max_decompressed_bytes))
    else:
        raise BodyRejected(
            UNSUPPORTED_CONTENT_TYPE,
            f"unsupported Content-Type {kind!r}: send {JSON_TYPE} or {PROTOBUF_TYPE}",
            status=415,
        )
    push = LokiPush([], [], 0)
    for number, (labels, entries) in enumerate(streams):
        push.entries += len(entries)
        if push.entries > max_events:
            raise BodyRejected(TOO_MANY_EVENTS, f"more than {max_events} entries in one push; split the batch")
        _add_stream(push, number, labels, entries, received_ns)
    return push


# A stream as the two encodings give it: labels (a map, a selector text, or junk to refuse) and raw entries.
_RawStream = tuple[object, list[Any]]


def _add_stream(push: LokiPush, number: int, labels: object, entries: list[Any], received_ns: int) -> None:
    stream = _stream(labels)
    if isinstance(stream, str):
        push.refused += [f"stream {number}: {stream}"] * len(entries)
        return
    for entry in entries:
        event = _event(stream, entry, received_ns)
        if isinstance(event, str):
            push.refused.append(f"stream {number}: {event}")
        else:
            push.events.append(event)


def _stream(labels: object) -> _Stream | str:
    """The canonical fields of a stream's labels, or why they cannot be read."""
    if isinstance(labels, str):
        parsed = parse_selector(labels)
        if isinstance(parsed, str):
            return f"error parsing labels: {parsed}"
        labels = parsed
    if type(labels) is not dict or not all(type(v) is str for v in labels.values()):
        return "labels must be an object of strings"
    rest: dict[str, str] = dict(labels)
    service = _take(rest, SERVICE_LABELS, str)
    level = _take(rest, LEVEL_LABELS, canonical_level)
    host = _take(rest, HOST_LABELS, str)
    return _Stream(service, level, host, rest)


def _take(labels: dict[str, str], names: tuple[str, ...], convert: Any) -> str:
    """Remove and return (converted) the first label of `names` with a non-empty value."""
    for name in names:
        value = convert(labels.get(name, ""))
        if value:
            del labels[name]
            return str(value)
    return ""


def parse_selector(text: str) -> dict[str, str] | str:
    """The labels of a stream selector such as `{job="x", env="y"}`, or why it is not one.

    Only equality matchers are labels; values are Go-quoted strings (what Promtail's
    `labels.String()` writes).  A repeated name is refused, as Loki refuses it.
    """
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return "expected a selector in braces"
    inner = stripped[1:-1]
    labels: dict[str, str] = {}
    position = 0
    while inner[position:].strip():
        match = _PAIR.match(inner, position)
        if match is None:
            return f"unexpected text at offset {position + 1}"
        name, quoted = match.groups()
        value = _unquote(quoted)
        if value is None:
            return f"bad escape in the value of {name!r}"
        if name in labels:
            return f"duplicate label name {name!r}"
        labels[name] = value
        position = match.end()
        if position < len(inner):
            if inner[position] != ",":
                return f"expected ',' at offset {position + 1}"
            position += 1
    return labels


def _unquote(quoted: str) -> str | None:
    """A Go string literal's body unescaped (byte escapes may build UTF-8); None on a bad escape."""
    if "\\" not in quoted:
        return quoted
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(quoted):
        if "\\" in quoted[position : match.start()]:
            return None
        out += quoted[position : match.start()].encode()
        simple, hex_byte, short, long, octal = match.groups()
        if simple is not None:
            out += _SIMPLE_ESCAPES.get(simple, simple).encode()
        elif hex_byte is not None or octal is not None:
            code = int(hex_byte, 16) if hex_byte is not None else int(octal, 8)
            if code > 0xFF:
                return None
            out.append(code)
        else:
            point = int(short or long, 16)
            if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
                return None
            out += chr(point).encode()
        position = match.end()
    if "\\" in quoted[position:]:
        return None
    out += quoted[position:].encode()
    return out.decode("utf-8", "replace")


def _event(stream: _Stream, entry: Any, received_ns: int) -> Event | str:
    """One entry's event, or why it is refused; `entry` is a JSON value array or an EntryAdapter."""
    if isinstance(entry, push_pb2.EntryAdapter):
        return _proto_event(stream, entry, received_ns)
    if type(entry) is not list or len(entry) not in (2, 3):
        return "each value must be [timestamp, line] or [timestamp, line, metadata]"
    timestamp = _json_timestamp(entry[0])
    line = entry[1]
    metadata = entry[2] if len(entry) == 3 else {}
    if isinstance(timestamp, str):
        return timestamp
    if type(line) is not str:
        return "the line must be a string"
    if type(metadata) is not dict or not all(type(v) is str for v in metadata.values()):
        return "structured metadata must be an object of strings"
    attributes: dict[str, Any] = {**stream.attributes, **metadata}
    return Event(timestamp, line, stream.level, stream.service, stream.host, attributes=attributes)


def _proto_event(stream: _Stream, entry: push_pb2.EntryAdapter, received_ns: int) -> Event | str:
    """A protobuf entry's event: protobuf already guarantees string lines and metadata, so only time is checked."""
    timestamp = _proto_timestamp(entry) if entry.HasField("timestamp") else received_ns
    if isinstance(timestamp, str):
        return timestamp
    attributes: dict[str, Any] = dict(stream.attributes)
    for pair in entry.structuredMetadata:
        attributes[pair.name] = pair.value
    return Event(timestamp, entry.line, stream.level, stream.service, stream.host, attributes=attributes)


def _json_timestamp(value: object) -> int | str:
    """Nanoseconds from the JSON form's timestamp, which must be a string of digits (Loki refuses numbers)."""
    if type(value) is not str or not value.isascii() or not value.isdigit():
        return "the timestamp must be a string of nanoseconds since the epoch"
    ns = int(value)
    return ns if ns <= _I64_MAX else "the timestamp is out of range"


def _proto_timestamp(entry: push_pb2.EntryAdapter) -> int | str:
    stamp = entry.timestamp
    if stamp.seconds < 0 or not 0 <= stamp.nanos < _NS_PER_S:
        return "the timestamp is out of range"
    ns = stamp.seconds * _NS_PER_S + stamp.nanos
    return ns if ns <= _I64_MAX else "the timestamp is out of range"


def _json_streams(body: bytes) -> list[_RawStream]:
    try:
        value = msgspec.json.decode(body)
    except _DECODE_ERRORS as exc:
        raise BodyRejected(MALFORMED_JSON, "the body is not valid JSON") from exc
    streams = value.get("streams") if type(value) is dict else None
    if type(streams) is not list:
        raise BodyRejected(INVALID_BODY, 'the body must be an object with a "streams" array')
    found: list[_RawStream] = []
    for stream in streams:
        if type(stream) is not dict or type(stream.get("values")) is not list:
            raise BodyRejected(INVALID_BODY, 'each stream must be an object with a "values" array')
        found.append((stream.get("stream", {}), stream["values"]))
    return found


def _protobuf_streams(data: bytes) -> list[_RawStream]:
    request = push_pb2.PushRequest()
    try:
        request.ParseFromString(data)
    except (ProtobufDecodeError, RecursionError) as exc:
        raise BodyRejected(MALFORMED_PROTOBUF, "the body is not a valid PushRequest") from exc
    return [(stream.labels, list(stream.entries)) for stream in request.streams]


def _unsnappy(body: bytes, limit: int) -> bytes:
    """The snappy block `body` decompressed, refused before inflating when its declared length passes `limit`."""
    length = snappy_declared_length(body)
    if length is None:
        raise BodyRejected(MALFORMED_SNAPPY, "the body is not snappy block-compressed data")
    if length > limit:
        raise BodyRejected(
            DECOMPRESSED_TOO_LARGE,
            f"the body decompresses to {length} bytes; the limit is {limit}",
            status=413,
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise BodyRejected(MALFORMED_SNAPPY, "the body is not valid snappy block-compressed data") from exc


def snappy_declared_length(body: bytes) -> int | None:
    """The decompressed length a snappy block declares in its uvarint header, or None if it has none."""
    length = 0
    for position, byte in enumerate(body[:_MAX_VARINT_BYTES]):
        length |= (byte & 0x7F) << (7 * position)
        if not byte & 0x80:
            return length
    return None


def error_text(push: LokiPush) -> str | None:
    """The plain-text 400 body when entries were refused (the first reason and the count), else None."""
    if not push.refused:
        return None
    shown = "; ".join(push.refused[:_MAX_REPORTED])
    return f"{shown}\ntotal ignored: {len(push.refused)} out of {push.entries}"


def rejection_text(rejected: BodyRejected) -> str:
    """The plain-text body for a push refused whole, as Loki words its own (`loghttp.ParseRequest` errors)."""
    return f"{rejected.message}\n"
