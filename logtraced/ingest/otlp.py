"""Sans-IO OTLP/HTTP logs dialect: `ExportLogsServiceRequest` (protobuf or JSON) in, events and the reply out.

Every OpenTelemetry SDK and the Collector's `otlphttp` exporter send logs this way.  A route
reads the (size-bounded, already gunzipped) body, calls `decode_logs`, submits
`OtlpLogs.events`, and answers 200 with `encode_response` in the request's encoding (with
`partial_success` when records were refused, which clients must not retry).  A body refused
whole raises BodyRejected; `encode_status` renders it, or any other failure, as the
`google.rpc.Status` the specification requires, with `response_type` as its Content-Type.

Mapping onto the canonical event:

* resource `service.name` -> service, `host.name` -> host; the other resource attributes are
  kept under the attribute `resource`; the scope's name, version and attributes under `scope`;
* `severity_number` 1-24 -> trace/debug/info/warn/error/fatal in blocks of four; without a
  number, `severity_text` read as a level name.  A text other than the level's own name in
  any case (say "NOTICE" or "Information") is kept as attribute `severity_text`;
* body: a string is the message; a number or boolean its JSON text; bytes their base64; a map
  or array is kept as attribute `body` with its compact JSON as the message;
* the record's attributes as plain JSON values at the top of `attributes`; the keys derived
  here (`resource`, `scope`, `body`, `trace_id`, `span_id`, `trace_flags`, `event_name`,
  `severity_text`) win over a record attribute of the same name;
* `trace_id`/`span_id` as lowercase hex; a record whose id has the wrong length is refused;
* time: `time_unix_nano`, else `observed_time_unix_nano`, else the time received.

OTLP/JSON differs from protobuf's canonical JSON only in its ids, which are hex rather than
base64: they are converted before protobuf's JSON parser (which also takes camelCase or
snake_case names, 64-bit integers as strings or numbers and enums as integers) reads the body.
Unknown fields are ignored in both encodings, as the specification requires.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any, Final

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from logtraced.ingest.rejection import (
    INVALID_BODY,
    MALFORMED_JSON,
    MALFORMED_PROTOBUF,
    TOO_MANY_EVENTS,
    UNSUPPORTED_CONTENT_TYPE,
    BodyRejected,
    media_type,
)
from logtraced.levels import canonical_level
from logtraced.model import Event

PROTOBUF_TYPE: Final = "application/x-protobuf"
JSON_TYPE: Final = "application/json"
_PROTOBUF_TYPES: Final = frozenset({PROTOBUF_TYPE, "application/protobuf"})

_LEVEL_BY_BLOCK: Final = ("trace", "debug", "info", "warn", "error", "fatal")  # severity numbers 1-4, 5-8, ...
_MAX_SEVERITY: Final = 24
_I64_MAX: Final = 2**63 - 1
_TRACE_ID_BYTES: Final = 16
_SPAN_ID_BYTES: Final = 8
_HEX: Final = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError)

# google.rpc.Code for the HTTP statuses the OTLP routes answer with (RFC: grpc/http-grpc-status-mapping).
_RPC_CODES: Final = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}
_RPC_UNKNOWN: Final = 2


class OtlpLogs(msgspec.Struct):
    """What an export request held: the events to store, and why any records were refused."""

    events: list[Event]
    refused: list[str]  # one reason per refused record, in body order
    records: int  # every record the body held, refused ones included


class _Context(msgspec.Struct, frozen=True):
    """What a record inherits from its resource and scope."""

    service: str
    host: str
    resource: dict[str, Any]
    scope: dict[str, Any]


def response_type(content_type: str) -> str:
    """The Content-Type of the reply to a request of `content_type`: protobuf for protobuf, else JSON."""
    return PROTOBUF_TYPE if media_type(content_type) in _PROTOBUF_TYPES else JSON_TYPE


def decode_logs(body: bytes, content_type: str, received_ns: int, *, max_events: int) -> OtlpLogs:
    """The events of an export request; raises BodyRejected when none of it can be read."""
    kind = media_type(content_type)
    request = logs_service_pb2.ExportLogsServiceRequest()
    if kind in _PROTOBUF_TYPES:
        bad_ids: set[int] = set()
        try:
            request.ParseFromString(body)
        except (ProtobufDecodeError, RecursionError) as exc:
            raise BodyRejected(MALFORMED_PROTOBUF, "the body is not a valid ExportLogsServiceRequest") from exc
    elif kind == JSON_TYPE:
        bad_ids = _parse_json(body, request)
    else:
        raise BodyRejected(
            UNSUPPORTED_CONTENT_TYPE,
            f"unsupported Content-Type {kind!r}: send {PROTOBUF_TYPE} or {JSON_TYPE}",
            status=415,
        )
    logs = OtlpLogs([], [], 0)
    for context, record in _records(request):
        if logs.records == max_events:
            raise BodyRejected(TOO_MANY_EVENTS, f"more than {max_events} log records in one request; split the batch")
        event = (
            "invalid hex in trace_id or span_id" if logs.records in bad_ids else _event(context, record, received_ns)
        )
        logs.records += 1
        if isinstance(event, str):
            logs.refused.append(event)
        else:
            logs.events.append(event)
    return logs


def _records(request: Any) -> Iterator[tuple[_Context, Any]]:
    """Every log record of the request, in order, with what it inherits."""
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        service = _take_string(resource, "service.name")
        host = _take_string(resource, "host.name")
        for scope_logs in resource_logs.scope_logs:
            scope = _scope(scope_logs.scope)
            context = _Context(service, host, resource, scope)
            for record in scope_logs.log_records:
                yield context, record


def _take_string(attributes: dict[str, Any], key: str) -> str:
    value = attributes.get(key)
    if type(value) is str and value:
        del attributes[key]
        return value
    return ""


def _scope(scope: Any) -> dict[str, Any]:
    described: dict[str, Any] = {}
    if scope.name:
        described["name"] = scope.name
    if scope.version:
        described["version"] = scope.version
    if scope.attributes:
        described["attributes"] = _attributes(scope.attributes)
    return described


def _event(context: _Context, record: Any, received_ns: int) -> Event | str:
    """One record's event, or why it is refused."""
    attributes = _attributes(record.attributes)
    for name, raw, size in (
        ("trace_id", record.trace_id, _TRACE_ID_BYTES),
        ("span_id", record.span_id, _SPAN_ID_BYTES),
    ):
        if raw and len(raw) != size:
            return f"{name} must be {size} bytes, got {len(raw)}"
        if raw.strip(b"\0"):
            attributes[name] = raw.hex()
    if record.flags & 0xFF:
        attributes["trace_flags"] = record.flags & 0xFF
    if record.event_name:
        attributes["event_name"] = record.event_name
    level = severity_level(record.severity_number, record.severity_text)
    if record.severity_text and record.severity_text.lower() != level:
        attributes["severity_text"] = record.severity_text
    message = _message(record.body, attributes)
    if context.resource:
        attributes["resource"] = dict(context.resource)
    if context.scope:
        attributes["scope"] = dict(context.scope)
    timestamp = _timestamp(record.time_unix_nano) or _timestamp(record.observed_time_unix_nano) or received_ns
    return Event(timestamp, message, level, context.service, context.host, attributes=attributes)


def severity_level(number: int, text: str) -> str:
    """The canonical level of an OTLP severity: the number's block of four, else the text as a level name."""
    if 1 <= number <= _MAX_SEVERITY:
        return _LEVEL_BY_BLOCK[(number - 1) // 4]
    return canonical_level(text) if text else ""


def _message(body: Any, attributes: dict[str, Any]) -> str:
    """The message a body gives; a map or array body is also kept whole as attribute `body`."""
    kind = body.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return str(body.string_value)
    value = plain_value(body)
    if kind in ("kvlist_value", "array_value"):
        attributes["body"] = value
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def plain_value(value: Any) -> Any:
    """An AnyValue as a plain JSON value; bytes become base64 text (what OTLP/JSON writes for them)."""
    kind = value.WhichOneof("value")
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "array_value":
        return [plain_value(item) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    """KeyValue pairs as a dict (a repeated key keeps its last value)."""
    return {pair.key: plain_value(pair.value) for pair in pairs}


def _timestamp(ns: int) -> int:
    """`ns` when it is a time this store can hold (set, and within signed 64 bits), else 0."""
    return ns if 0 < ns <= _I64_MAX else 0


def _parse_json(body: bytes, request: Message) -> set[int]:
    """Fill `request` from an OTLP/JSON body; the positions of records whose ids are not hex."""
    try:
        value = msgspec.json.decode(body)
    except _DECODE_ERRORS as exc:
        raise BodyRejected(MALFORMED_JSON, "the body is not valid JSON") from exc
    if type(value) is not dict:
        raise BodyRejected(INVALID_BODY, "the body must be a JSON object (an ExportLogsServiceRequest)")
    bad_ids = _hex_ids_to_base64(value)
    try:
        json_format.ParseDict(value, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise BodyRejected(INVALID_BODY, "the body is not a valid ExportLogsServiceRequest") from exc
    return bad_ids


def _hex_ids_to_base64(request: dict[str, Any]) -> set[int]:
    """Rewrite each record's hex trace and span ids as the base64 protobuf's JSON parser reads.

    Records are numbered as `_records` will yield them; an id that is not hex is dropped and
    its record's number returned, so that record alone is refused.
    """
    bad: set[int] = set()
    position = 0
    for resource_logs in _list(request, "resourceLogs", "resource_logs"):
        for scope_logs in _list(resource_logs, "scopeLogs", "scope_logs"):
            for record in _list(scope_logs, "logRecords", "log_records"):
                if type(record) is dict:
                    for key in ("traceId", "trace_id", "spanId", "span_id"):
                        text = record.get(key)
                        if text is None:
                            continue
                        if type(text) is str and _HEX.fullmatch(text):
                            record[key] = base64.b64encode(bytes.fromhex(text)).decode()
                        else:
                            del record[key]
                            bad.add(position)
                position += 1
    return bad


def _list(parent: object, camel: str, snake: str) -> list[Any]:
    """A repeated field of a JSON message under either spelling; [] if absent or malformed (the parser refuses it)."""
    if type(parent) is not dict:
        return []
    found = parent.get(camel, parent.get(snake))
    return found if type(found) is list else []


def encode_response(logs: OtlpLogs, content_type: str) -> bytes:
    """The ExportLogsServiceResponse for a request of `content_type`, with partial_success when records were refused."""
    response = logs_service_pb2.ExportLogsServiceResponse()
    if logs.refused:
        response.partial_success.rejected_log_records = len(logs.refused)
        response.partial_success.error_message = (
            f"{len(logs.refused)} of {logs.records} log records were rejected; the first: {logs.refused[0]}"
        )
    return _encode(response, content_type)


def encode_status(http_status: int, message: str, content_type: str) -> bytes:
    """A google.rpc.Status body for a failed request, in the encoding `response_type(content_type)` names."""
    status = status_pb2.Status(code=_RPC_CODES.get(http_status, _RPC_UNKNOWN), message=message)
    return _encode(status, content_type)


def rejection_status(rejected: BodyRejected, content_type: str) -> bytes:
    """`encode_status` for a body refused whole."""
    return encode_status(rejected.http_status, rejected.message, content_type)


def _encode(message: Message, content_type: str) -> bytes:
    if response_type(content_type) == PROTOBUF_TYPE:
        return bytes(message.SerializeToString())
    return msgspec.json.encode(json_format.MessageToDict(message))
