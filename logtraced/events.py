"""Shippers' JSON field spellings onto the canonical Event, and the Event's public JSON shape.

Logstash, Fluent Bit, Beats and plain applications each name the same facts differently
(`@timestamp` or `date`, `level` or `log.level`, `host` as a string or an object).  This
module maps all of them onto one `Event`.  It is sans-IO and runs once per received event, so
the decoders and encoders are built once at import and the decoded dict becomes `attributes`.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from logtraced.config import FieldMap
from logtraced.levels import canonical_level
from logtraced.model import Event

TAG_JSON_PARSE_FAILURE: Final = "_jsonparsefailure"  # Logstash's own tag, so queries carry over
TAG_TRUNCATED: Final = "_truncated"
TAG_NOT_OBJECT: Final = "_notobject"

# tantivy's JSON parser (serde_json) refuses documents nested deeper than 128 levels; a frame
# nested deeper than this is stored as raw text so that its document can always be indexed.
MAX_NESTING: Final = 100
_CONTAINERS: Final = frozenset((dict, list))


def json_value_type(depth: int) -> Any:
    """The type of any JSON value nested at most `depth` levels deep (build it once: its size grows with depth)."""
    value_type: Any = str | int | float | bool | None
    for _ in range(depth):
        value_type = dict[str, value_type] | list[value_type] | str | int | float | bool | None
    return value_type


_DECODER: Final = msgspec.json.Decoder()
# Decodes as fast as the untyped decoder and refuses deeper nesting in C, so the common
# shallow frame needs no depth check of its own.  (msgspec builds the type in time
# exponential in the depth, so this cannot be MAX_NESTING itself.)
_SHALLOW_DEPTH: Final = 8
_SHALLOW_DECODER: Final = msgspec.json.Decoder(json_value_type(_SHALLOW_DEPTH))
_ENCODER: Final = msgspec.json.Encoder()
_DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)

_ABSENT: Final = object()
_is_str: Final = str.__instancecheck__
# Each list: the common spellings first (the hot path stops there), then those of particular senders:
# syslog-ng's format-json (ISODATE, MESSAGE, PROGRAM, HOST, PRIORITY), rsyslog's %jsonmesg%
# (timereported, programname, syslogseverity), Logstash event v0 (@message, @source_host), GELF sent
# as JSON lines (short_message), python-json-logger (asctime), python-logstash-async (program,
# logsource) and several Python formatters (source_host).
_TIMESTAMP_KEYS: Final = ("@timestamp", "timestamp", "time", "date", "ts", "ISODATE", "timereported", "asctime")
_MESSAGE_KEYS: Final = ("message", "msg", "log", "body", "@message", "short_message", "MESSAGE")
# Objects some transports wrap the message in (winston3-logstash-transport's `data`).
_MESSAGE_WRAPPERS: Final = ("data",)
TAG_NO_MESSAGE: Final = "_nomessage"

# Where a canonical field may be, in order of preference: (key, whether a plain value there
# counts, keys to look for when the value there is an object).  A plain `log` is a message.
_Candidates = tuple[tuple[str, bool, tuple[str, ...]], ...]
_LEVEL_KEYS: Final[_Candidates] = (
    ("level", True, ()),
    ("log.level", True, ()),
    ("log", False, ("level",)),
    ("severity", True, ()),
    ("levelname", True, ()),
    ("PRIORITY", True, ()),
    ("syslogseverity-text", True, ()),
    ("syslogseverity", True, ()),
)
_SERVICE_KEYS: Final[_Candidates] = (
    ("service", True, ("name",)),
    ("service.name", True, ()),
    ("app", True, ()),
    ("application", True, ()),
    ("PROGRAM", True, ()),
    ("programname", True, ()),
    ("program", True, ()),
)
_HOST_KEYS: Final[_Candidates] = (
    ("host", True, ("name", "hostname")),
    ("host.name", True, ()),
    ("hostname", True, ()),
    ("HOST", True, ()),
    ("source_host", True, ()),
    ("@source_host", True, ()),
    ("logsource", True, ()),
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE: Final = datetime(1970, 1, 1)
_NS_PER_S: Final = 1_000_000_000
_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1

# Epoch numbers carry no unit, so it is read from the magnitude of the integer part:
# below 1e11 seconds (up to year 5138), below 1e14 milliseconds, below 1e17 microseconds,
# otherwise nanoseconds.  Millisecond values before March 1973 are therefore read as seconds.
# Each entry: (exclusive upper bound, nanoseconds per unit, fraction digits down to 1 ns).
_EPOCH_UNITS: Final = (
    (10**11, 1_000_000_000, 9),
    (10**14, 1_000_000, 6),
    (10**17, 1_000, 3),
)
# Nanoseconds per unit of the last digit of an n-digit fraction of a second.
_FRACTION_SCALE: Final[tuple[int, ...]] = tuple(10 ** (9 - digits) for digits in range(10))
_DECIMAL: Final = re.compile(r"(-?)(\d+)(?:\.(\d*))?", re.ASCII)
_SUBMICRO_DIGITS: Final = re.compile(r"\d{1,3}", re.ASCII)


def parse_timestamp(value: object, received_ns: int) -> int | None:
    """Nanoseconds since the epoch for a shipper's timestamp value; None if not understood.

    Understood: ISO-8601/RFC 3339 strings with any offset (no offset means UTC, as in Fluent
    Bit's java_sql_timestamp), fractions kept to the nanosecond; epoch numbers (int, float or
    numeric string) with the unit read from their magnitude (see `_EPOCH_UNITS`).  Results
    outside the signed 64-bit nanosecond range (years 1677-2262) are not understood either.
    `received_ns` is part of the signature so callers need not care which formats are
    relative; every format understood today is absolute and does not use it.
    """
    if type(value) is str:
        # Hot path: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, what Logstash, Beats and Fluent Bit's
        # iso8601 send, read without building a datetime.
        if value[-1:] == "Z" and len(value) >= 20:
            second = _utc_second(value[:19])
            if second is not None:
                if len(value) == 20:
                    return second
                digits = value[20:-1]
                if value[19] in ".," and len(digits) <= 9 and digits.isascii() and digits.isdigit():
                    return second + int(digits) * _FRACTION_SCALE[len(digits)]
        ns = _parse_decimal(value) if value[4:5] != "-" else None  # "YYYY-" is no number
        if ns is None:
            ns = _parse_iso(value)
    elif type(value) is int:
        ns = _epoch_int(value)
    elif type(value) is float:
        ns = _epoch_float(value)
    else:
        return None
    if ns is None or not _I64_MIN <= ns <= _I64_MAX:
        return None
    return ns


@functools.lru_cache(maxsize=4096)
def _utc_second(prefix: str) -> int | None:
    """Nanoseconds of a `YYYY-MM-DDTHH:MM:SS` prefix read as UTC, else None.

    Cached because a stream's events share their second: this is the hot path's saving.
    Seconds whose fraction could leave the 64-bit range are None, so callers need no check.
    """
    if prefix[4:5] != "-" or prefix[13:14] != ":" or prefix[16:17] != ":" or prefix[10:11] != "T":
        return None
    try:
        parsed = datetime.fromisoformat(prefix)
    except ValueError:
        return None
    delta = parsed - _EPOCH_NAIVE
    ns = (delta.days * 86_400 + delta.seconds) * _NS_PER_S
    return ns if _I64_MIN <= ns <= _I64_MAX - _NS_PER_S else None


def _parse_iso(text: str) -> int | None:
    """Any ISO-8601 via `datetime.fromisoformat`, plus the sub-microsecond digits it drops."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # RFC 3339 allows lowercase "t" and "z"; fromisoformat does not.
        upper = text.upper()
        if upper == text:
            return None
        try:
            parsed = datetime.fromisoformat(upper)
        except ValueError:
            return None
    delta = parsed - (_EPOCH_NAIVE if parsed.tzinfo is None else _EPOCH)
    ns = ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000
    point = text.rfind(".")
    if point < 0:
        point = text.rfind(",")
    # Past the date (at 10 a point separates date and time, which fromisoformat allows): a fraction.
    if point > 10 and text[point + 7 : point + 8].isdigit():
        # fromisoformat keeps microseconds only; digits 7-9 of the fraction are added here.
        match = _SUBMICRO_DIGITS.match(text, point + 7)
        if match is not None:
            ns += int(match.group().ljust(3, "0"))
    return ns


def _parse_decimal(text: str) -> int | None:
    """An epoch number written as a string, exactly: digits are scaled, never rounded via float."""
    match = _DECIMAL.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction = match.groups()
    integer = int(whole)
    per_unit, digits = _epoch_unit(integer)
    ns = integer * per_unit + (int(fraction[:digits].ljust(digits, "0")) if fraction and digits else 0)
    return -ns if sign else ns


def _epoch_unit(magnitude: int) -> tuple[int, int]:
    """(nanoseconds per unit, fraction digits kept) for an epoch number of this size."""
    magnitude = abs(magnitude)
    for bound, per_unit, digits in _EPOCH_UNITS:
        if magnitude < bound:
            return per_unit, digits
    return 1, 0


def _epoch_int(value: int) -> int:
    per_unit, _ = _epoch_unit(value)
    return value * per_unit


def _epoch_float(value: float) -> int | None:
    """Floats are rounded to the microsecond, the most a double holds for current dates."""
    if not math.isfinite(value):
        return None
    per_unit, _ = _epoch_unit(int(value))
    if per_unit == 1:
        return round(value / 1000) * 1000
    return round(value * (per_unit // 1000)) * 1000


def normalise(record: dict[str, Any], received_ns: int, fields: FieldMap | None = None) -> Event:
    """Map one decoded JSON object onto an Event; `record` is consumed and becomes `attributes`.

    Fields used for the canonical ones are removed; everything else stays verbatim, nested
    as sent.  A timestamp that cannot be parsed stays under its key and the event gets
    `received_ns`, so nothing the shipper sent is lost.  `fields` names where this sender puts
    the canonical fields (a listener's or a request's mapping); those paths are tried first.
    """
    if "@fields" in record:
        _lift_fields(record)
    if fields:
        return _normalise_mapped(record, received_ns, fields)
    timestamp = _take_timestamp(record, received_ns)
    level = _take_level(record)
    message = _take_message(record)
    service = _take_name(record, _SERVICE_KEYS)
    host = _take_name(record, _HOST_KEYS)
    return _event(record, received_ns, timestamp, message, level, service, host)


def _normalise_mapped(record: dict[str, Any], received_ns: int, fields: FieldMap) -> Event:
    """`normalise` with the sender's own paths tried before the built-in spellings."""
    found = _take_path(record, fields.timestamp, lambda value: parse_timestamp(value, received_ns))
    timestamp = found if found is not None else _take_timestamp(record, received_ns)
    level = _take_path(record, fields.level, lambda value: canonical_level(value) or None) or _take_level(record)
    message = _take_path(record, fields.message, _text_of) or _take_message(record)
    service = _take_path(record, fields.service, _name_of) or _take_name(record, _SERVICE_KEYS)
    host = _take_path(record, fields.host, _name_of) or _take_name(record, _HOST_KEYS)
    return _event(record, received_ns, timestamp, message, level, service, host)


def _take_path(record: dict[str, Any], paths: list[str], read: Any) -> Any:
    """The first path (nested objects, or a literal dotted key) whose value `read` accepts, taken out of the record."""
    for path in paths:
        parent, key = _locate(record, path)
        if parent is not None:
            value = read(parent[key])
            if value is not None:
                del parent[key]
                return value
    return None


def _locate(record: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The object holding `path` and the key in it: a literal dotted key wins over nested objects."""
    if path in record:
        return record, path
    node: Any = record
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.get(part) if type(node) is dict else None
    return (node, leaf) if type(node) is dict and leaf in node else (None, "")


def _text_of(value: Any) -> str | None:
    if type(value) is str:
        return value or None
    return None if value is None else _ENCODER.encode(value).decode()


def _name_of(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _event(
    record: dict[str, Any], received_ns: int, timestamp: int | None, message: str, level: str, service: str, host: str
) -> Event:
    """The Event of what was taken out of `record`; the rest of it becomes the attributes."""
    tags = record.get("tags")
    if type(tags) is list and all(map(_is_str, tags)):
        del record["tags"]
    else:
        tags = []
    if not message:
        tags.append(TAG_NO_MESSAGE)
    return Event(
        received_ns if timestamp is None else timestamp,
        message,
        level,
        service,
        host,
        "",
        "",
        "",
        tags,
        record,
    )


def _take_timestamp(record: dict[str, Any], received_ns: int) -> int | None:
    """The first timestamp key whose value parses; unparseable ones stay in the record."""
    for key in _TIMESTAMP_KEYS:
        value = record.get(key, _ABSENT)
        if value is not _ABSENT:
            ns = parse_timestamp(value, received_ns)
            if ns is not None:
                del record[key]
                return ns
    return None


def _take_message(record: dict[str, Any]) -> str:
    """The first message key present; an object under `log` is ECS metadata, not a message."""
    for key in _MESSAGE_KEYS:
        value = record.get(key, _ABSENT)
        if value is _ABSENT or (key == "log" and type(value) is dict):
            continue
        del record[key]
        if type(value) is not str:
            return _ENCODER.encode(value).decode()
        # rsyslog's templates leave the space that followed the tag in front of the message.
        return value.lstrip(" ") if key == "msg" and "syslogtag" in record else value
    for key in _MESSAGE_WRAPPERS:
        wrapper = record.get(key)
        if type(wrapper) is dict:
            for inner in ("message", "msg"):
                value = wrapper.get(inner)
                if type(value) is str:
                    del wrapper[inner]
                    if not wrapper:
                        del record[key]
                    return value
    return ""


def _lift_fields(record: dict[str, Any]) -> None:
    """Logstash event v0 (python-logstash's default, logstash_formatter v0) nests every field under `@fields`."""
    fields = record.get("@fields")
    if type(fields) is dict:
        del record["@fields"]
        for key, value in fields.items():
            record.setdefault(key, value)


def _take_level(record: dict[str, Any]) -> str:
    """Pop the first level candidate that is a level; an object it leaves empty goes too.

    A value that is not a level stays where it is, so the shipper's data is kept.
    """
    for key, plain, inner_keys in _LEVEL_KEYS:
        value = record.get(key, _ABSENT)
        if value is _ABSENT:
            continue
        if type(value) is dict:
            for inner in inner_keys:
                level = canonical_level(value.get(inner))
                if level:
                    del value[inner]
                    if not value:
                        del record[key]
                    return level
        elif plain:
            level = canonical_level(value)
            if level:
                del record[key]
                return level
    return ""


def _take_name(record: dict[str, Any], candidates: _Candidates) -> str:
    """Pop the first candidate that is a non-empty string, as `_take_level` does for levels."""
    for key, plain, inner_keys in candidates:
        value = record.get(key, _ABSENT)
        if type(value) is str:
            if plain and value:
                del record[key]
                return value
        elif type(value) is dict:
            for inner in inner_keys:
                name = value.get(inner)
                if type(name) is str and name:
                    del value[inner]
                    if not value:
                        del record[key]
                    return name
    return ""


def events_from_frame(
    frame: bytes,
    received_ns: int,
    *,
    truncated: bool = False,
    drop_keys: tuple[str, ...] = (),
    fields: FieldMap | None = None,
) -> list[Event]:
    """The events in one frame, as Logstash's json codec would make them; never raises.

    An object is one event, an array one event per element.  Anything that is not JSON, or
    is nested too deep to index, is kept whole as the message of a `_jsonparsefailure` event.
    Top-level keys in `drop_keys` are removed from each object first (Beats' `@metadata`,
    which Logstash never stores either).
    """
    try:
        value = _decode(frame)
    except _DECODE_ERRORS:
        if not frame or frame.isspace():
            return []
        return [_unparsed(frame, received_ns, truncated)]
    if drop_keys:
        for item in value if type(value) is list else (value,):
            if type(item) is dict:
                for key in drop_keys:
                    item.pop(key, None)
    if type(value) is dict:
        events = [normalise(value, received_ns, fields)]
    elif type(value) is list:
        events = [
            normalise(item, received_ns, fields) if type(item) is dict else _not_object(item, received_ns)
            for item in value
        ]
    else:
        events = [_not_object(value, received_ns)]
    if truncated:
        for event in events:
            event.tags.append(TAG_TRUNCATED)
    return events


def _decode(frame: bytes) -> Any:
    """The JSON value in `frame`; a DecodeError too when it nests deeper than MAX_NESTING."""
    try:
        return _SHALLOW_DECODER.decode(frame)
    except msgspec.ValidationError:
        # Deeper than the shallow type (or a number out of range, which fails again here).
        value = _DECODER.decode(frame)
        if _too_deep(value):
            raise msgspec.DecodeError(f"JSON nested deeper than {MAX_NESTING} levels") from None
        return value


def _unparsed(frame: bytes, received_ns: int, truncated: bool) -> Event:
    tags = [TAG_JSON_PARSE_FAILURE, TAG_TRUNCATED] if truncated else [TAG_JSON_PARSE_FAILURE]
    return Event(received_ns, frame.decode("utf-8", "replace"), tags=tags)


def _not_object(value: object, received_ns: int) -> Event:
    return Event(received_ns, _ENCODER.encode(value).decode(), tags=[TAG_NOT_OBJECT])


def _too_deep(value: object) -> bool:
    """Whether `value` nests deeper than MAX_NESTING, found level by level without recursion."""
    level: list[object] = [value]
    for _ in range(MAX_NESTING):
        children: list[object] = []
        for item in level:
            if type(item) is dict:
                children.extend(child for child in item.values() if type(child) in _CONTAINERS)
            elif type(item) is list:
                children.extend(child for child in item if type(child) in _CONTAINERS)
        if not children:
            return False
        level = children
    return True


def event_to_json(event: Event) -> dict[str, Any]:
    """The public shape of an event in query results; `index` only when the event was routed."""
    seconds, nanos = divmod(event.timestamp, _NS_PER_S)
    moment = _EPOCH + timedelta(seconds=seconds)
    shape: dict[str, Any] = {
        "timestamp": f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{nanos:09d}Z",
        "timestamp_ns": event.timestamp,
        "message": event.message,
        "level": event.level,
        "service": event.service,
        "host": event.host,
        "env": event.env,
        "org": event.org,
    }
    if event.index:
        shape["index"] = event.index
    shape["tags"] = event.tags
    shape["attributes"] = event.attributes
    return shape
