"""Turns the time values users send (`-15m`, `now-1h`, ISO-8601, epoch) into nanoseconds.

The clock is an argument (`now_ns`), so parsing is deterministic and tested without patching time.
Epoch numbers follow Loki's rule (a '.' means float seconds, up to 10 digits means seconds, longer
means nanoseconds) plus two widths Loki would misread as 1970: 13 digits are milliseconds and 16
digits are microseconds, which is what shippers and browsers actually send.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import msgspec

from logtraced.errors import QueryError
from logtraced.query.gosyntax import DURATION_UNITS_NS, NS_PER_SECOND

# Relative times take the duration units people type into time pickers, spelled as Go spells them.
_UNIT_NS = {unit: DURATION_UNITS_NS[unit] for unit in ("ms", "s", "m", "h", "d", "w")}
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

_RELATIVE = re.compile(r"(?:now)?\s*([+-])\s*(\d+)\s*(ms|s|m|h|d|w)", re.ASCII)
_EPOCH_INT = re.compile(r"\d+", re.ASCII)
_EPOCH_FLOAT = re.compile(r"\d*\.\d*", re.ASCII)
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz])|([+-])(\d{2}):?(\d{2})?)?",
    re.ASCII,
)
# What tantivy's JSON indexing recognises as a date (checked against tantivy 0.27): strict RFC 3339,
# any one ASCII character between date and time, any number of fraction digits, a zone required.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[\x00-\x7f](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


class TimeRange(msgspec.Struct, frozen=True):
    """A query window in ns since the epoch: start inclusive, end exclusive (as in Loki)."""

    start_ns: int
    end_ns: int


def parse_time(value: str | int | float, *, now_ns: int) -> int:
    """A `from`/`to` value: `now`, `now-1h`, `-15m`, ISO-8601 or an epoch number, as ns."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "now":
            return now_ns
        relative = _RELATIVE.fullmatch(text.lower())
        if relative is not None:
            sign = -1 if relative.group(1) == "-" else 1
            return _in_range(now_ns + sign * int(relative.group(2)) * _UNIT_NS[relative.group(3)], value)
    return parse_instant(value)


def parse_instant(value: str | int | float) -> int:
    """An absolute time (ISO-8601 or epoch seconds/ms/us/ns) as ns; relative forms are refused."""
    if isinstance(value, bool):
        raise _invalid(value)
    if isinstance(value, int):
        if value < 0:
            raise _invalid(value)
        return _epoch_int(str(value), value)
    if isinstance(value, float):
        return _epoch_float(repr(value), value)
    text = value.strip()
    if _EPOCH_INT.fullmatch(text):
        return _epoch_int(text, value)
    if _EPOCH_FLOAT.fullmatch(text) and text != ".":
        return _epoch_float(text, value)
    return _iso(text, value)


def rfc3339_ns(text: str) -> int | None:
    """The instant of a string the index stores as a date rather than as words, else None.

    Tantivy indexes JSON strings in this exact shape as dates, so evaluation must treat them the
    same way for the index and the exact check to agree.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _zulu, sign, off_h, off_m = match.groups()
    if int(second) > 59 or int(off_h or 0) > 23 or int(off_m or 0) > 59:
        return None
    try:
        ns = _to_ns(year, month, day, hour, minute, second, fraction, sign, off_h, off_m)
    except ValueError:
        return None
    return ns if _I64_MIN <= ns <= _I64_MAX else None


def resolve_range(
    start: str | int | float | None,
    end: str | int | float | None,
    *,
    now_ns: int,
    default_lookback_ns: int,
) -> TimeRange:
    """The window a query covers: `end` defaults to now, `start` to `default_lookback_ns` before it."""
    end_ns = now_ns if end is None else parse_time(end, now_ns=now_ns)
    start_ns = end_ns - default_lookback_ns if start is None else parse_time(start, now_ns=now_ns)
    if start_ns > end_ns:
        raise QueryError(f"time range start {start!r} is after end {end!r}", code="invalid_time")
    return TimeRange(start_ns, end_ns)


def _epoch_int(digits: str, original: object) -> int:
    """Integer epoch by width: <=10 digits seconds, 13 ms, 16 us, anything else ns (Loki)."""
    width = len(digits.lstrip("0")) or 1
    if width <= 10:
        scale = NS_PER_SECOND
    elif width == 13:
        scale = 1_000_000
    elif width == 16:
        scale = 1_000
    else:
        scale = 1
    return _in_range(int(digits) * scale, original)


def _epoch_float(text: str, original: object) -> int:
    """Float seconds, converted through Decimal so `1710496921.123456789` keeps every digit."""
    try:
        seconds = Decimal(text)
    except ArithmeticError:
        raise _invalid(original) from None
    if not seconds.is_finite() or seconds < 0:
        raise _invalid(original)
    return _in_range(int(seconds * NS_PER_SECOND), original)


def _iso(text: str, original: object) -> int:
    """ISO-8601 date or date-time; a missing zone means UTC, a date alone means its midnight."""
    match = _ISO.fullmatch(text)
    if match is None:
        raise _invalid(original)
    year, month, day, hour, minute, second, fraction, _zulu, sign, off_h, off_m = match.groups()
    try:
        ns = _to_ns(year, month, day, hour or "0", minute or "0", second or "0", fraction, sign, off_h, off_m)
    except ValueError:
        raise _invalid(original) from None
    return _in_range(ns, original)


def _to_ns(
    year: str,
    month: str,
    day: str,
    hour: str,
    minute: str,
    second: str,
    fraction: str | None,
    sign: str | None,
    off_h: str | None,
    off_m: str | None,
) -> int:
    """Exact integer arithmetic (datetime would round away nanoseconds); ValueError if invalid."""
    wall = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    offset = 0
    if sign is not None:
        if int(off_h or 0) > 23 or int(off_m or 0) > 59:
            raise ValueError("offset out of range")
        offset = (int(off_h or 0) * 3600 + int(off_m or 0) * 60) * (-1 if sign == "-" else 1)
    days = wall.toordinal() - _EPOCH_ORDINAL
    seconds = days * 86400 + wall.hour * 3600 + wall.minute * 60 + wall.second - offset
    fraction_ns = int((fraction or "").ljust(9, "0")[:9])
    return seconds * NS_PER_SECOND + fraction_ns


def _in_range(ns: int, original: object) -> int:
    """Index timestamps are i64 nanoseconds, so anything outside cannot match and is an error."""
    if not _I64_MIN <= ns <= _I64_MAX:
        raise QueryError(f"time {original!r} is out of range", code="invalid_time")
    return ns


def _invalid(value: object) -> QueryError:
    """One wording for every unparseable time, listing the forms that are accepted."""
    return QueryError(
        f"invalid time {value!r}: expected now, now-1h, -15m, ISO-8601 or epoch seconds/ms/ns",
        code="invalid_time",
    )
