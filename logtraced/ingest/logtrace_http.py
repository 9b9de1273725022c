"""The LogTrace ingest body, sans-IO: JSON or NDJSON bytes in, validated canonical events out, or the reason why not.

One route takes every shape the LogTrace API, Logstash and Fluent Bit http outputs send,
chosen by Content-Type and the top-level JSON value:

- `application/json`, an object with a `logs` array: the LogTrace batch;
- `application/json`, an array: Logstash `json_batch`, Fluent Bit `json`;
- `application/json`, any other object: one event (Logstash `json`, one request per event);
- `application/json`, objects back to back: Fluent Bit `json_stream`;
- `application/x-ndjson` (and its aliases): one object per line (Fluent Bit `json_lines`).

A batch is atomic: every event is decoded, normalised and checked before anything is
written, so a refusal means nothing was stored and a retry cannot duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from logtraced.config import FieldMap
from logtraced.errors import Forbidden, InvalidInput
from logtraced.events import normalise
from logtraced.ingest.framing import StreamFramer
from logtraced.model import Event

JSON_TYPE: Final = "application/json"
# Fluent Bit's json_lines sends application/x-ndjson; the others are spellings seen in the wild.
NDJSON_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl"}
)
MAX_REPORTED_PROBLEMS: Final = 10
_BYTE_POSITION: Final = re.compile(r"\(byte (\d+)\)")
_TRAILING: Final = "trailing characters"
_JSON_TYPE_NAMES: Final = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


class Problem(msgspec.Struct, frozen=True):
    """Why one event of a batch was refused; `index` counts from 0 in the order sent."""

    index: int
    field: str | None
    problem: str

    def describe(self) -> str:
        """What a person reads: the field (when one is to blame) and what is wrong with it."""
        return (
            f"`{self.field}` {self.problem}" if self.field and not self.problem.startswith("missing") else self.problem
        )


def decode_batch(body: bytes, *, ndjson: bool, max_events: int) -> list[Any]:
    """The records of a body, still undecided whether each is a valid event; sans-IO."""
    if ndjson:
        return _decode_lines(body, max_events)
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        if _TRAILING in str(exc):
            return _decode_stream(body, max_events)
        value = _decode(body, 0)  # raises the 400 that names the position
    except RecursionError:
        value = _decode(body, 0)
    if type(value) is dict:
        logs = value.get("logs")
        records = logs if type(logs) is list else [value]
    elif type(value) is list:
        records = value
    else:
        raise InvalidInput(f"the body must be a JSON object or array, got {_json_type(value)}", code="invalid_body")
    if len(records) > max_events:
        raise _too_many(f"{len(records)} events", max_events)
    return records


def _decode_lines(body: bytes, max_events: int) -> list[Any]:
    """NDJSON: one value per non-blank line (LF or CRLF), refused as soon as there are too many."""
    records: list[Any] = []
    offset = 0
    for line in body.split(b"\n"):
        if line.strip():
            if len(records) == max_events:
                raise _too_many(f"more than {max_events} lines", max_events)
            records.append(_decode(line, offset))
        offset += len(line) + 1
    return records


def _decode_stream(body: bytes, max_events: int) -> list[Any]:
    """Objects back to back (`{..}{..}`, Fluent Bit's `json_stream`), split as the TCP port splits them."""
    framer = StreamFramer(len(body) + 1)
    records: list[Any] = []
    offset = 0
    for frame in [*framer.feed(body), *framer.close()]:
        if len(records) == max_events:
            raise _too_many(f"more than {max_events} objects", max_events)
        offset = body.find(frame.data, offset)
        records.append(_decode(frame.data, max(offset, 0)))
        offset += len(frame.data)
    return records


def _too_many(found: str, max_events: int) -> InvalidInput:
    return InvalidInput(f"{found} in one request; the limit is {max_events} events", code="too_many_events")


def _decode(data: bytes, offset: int) -> Any:
    """One JSON value; malformed or truncated input is 400 `malformed_json` with the byte position in the body."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        text = str(exc)
        found = _BYTE_POSITION.search(text)
        position = offset + (int(found.group(1)) if found else len(data))
        reason = text.removeprefix("JSON is malformed: ")
        reason = _BYTE_POSITION.sub("", reason).strip()
    except UnicodeDecodeError as exc:
        position, reason = offset + exc.start, "invalid UTF-8"
    except RecursionError:
        position, reason = offset, "nested too deeply"
    raise InvalidInput(
        f"the body is not valid JSON at byte {position}: {reason.lower()}",
        code="malformed_json",
        details={"position": position},
    )


def to_events(
    records: Sequence[Any], environment: str, received_ns: int, fields: FieldMap | None = None
) -> list[Event]:
    """Normalise every record, or refuse the whole batch: 403 for another environment, 400 for bad events.

    `records` are consumed (each dict becomes its event's attributes).
    """
    events: list[Event] = []
    problems: list[Problem] = []
    foreign: Problem | None = None
    fields = fields or None  # an empty map is asked once here, not once an event
    for index, record in enumerate(records):
        problem = _record_problem(index, record)
        if problem is not None:
            problems.append(problem)
            continue
        event = normalise(record, received_ns, fields)
        if not event.message:
            problems.append(
                Problem(index, "message", "missing required field `message` (also looked for msg, log, body)")
            )
            continue
        foreign = foreign or _environment_problem(index, event, environment)
        events.append(event)
    if foreign is not None:
        raise Forbidden(
            f"event {foreign.index} {foreign.problem}; nothing was stored",
            code="cross_environment",
            details=[msgspec.to_builtins(foreign)],
        )
    if problems:
        first = problems[0]
        raise InvalidInput(
            f"{len(problems)} of {len(records)} events are invalid; nothing was stored "
            f"(event {first.index}: {first.describe()})",
            code="invalid_events",
            details=msgspec.to_builtins(problems[:MAX_REPORTED_PROBLEMS]),
        )
    return events


def _record_problem(index: int, record: Any) -> Problem | None:
    """What is wrong with a record before normalisation: it must be an object whose `message`, if any, is a string."""
    if type(record) is not dict:
        return Problem(index, None, f"an event must be a JSON object, got {_json_type(record)}")
    message = record.get("message")
    if "message" in record and type(message) is not str:
        return Problem(index, "message", f"must be a string, got {_json_type(message)}")
    return None


def _environment_problem(index: int, event: Event, environment: str) -> Problem | None:
    """An event naming another environment (`env` or `environment`) than the key's, if it does."""
    for field in ("env", "environment"):
        named = event.attributes.get(field)
        if type(named) is str and named != environment:
            return Problem(index, field, f"names environment {named!r} but this key belongs to {environment!r}")
    return None


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
