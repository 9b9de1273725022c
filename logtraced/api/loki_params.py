"""Loki's query parameters, read exactly as Loki reads them (pkg/loghttp/params.go): times, step, limit, direction.

Sans-IO: a mapping of parameters in, values out, InvalidInput naming the parameter otherwise.
Times are integers of up to 10 digits as seconds, longer ones as nanoseconds, decimals as float
seconds, or RFC 3339 (Grafana sends ns, Drilldown ISO).  `step` is float seconds or a Prometheus
duration (Grafana always sends `<N>ms`).  Defaults: limit 100, direction backward, end now,
start one hour before end, step max(ceil(range / 250) s, 1 s).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from logtraced.errors import InvalidInput

NS: Final = 1_000_000_000
DEFAULT_LIMIT: Final = 100
DEFAULT_SINCE_NS: Final = 3600 * NS
MAX_POINTS: Final = 11_000  # Loki's limit on points per series of a range query
_PROM_DURATION: Final = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_PROM_UNITS: Final = (365 * 86400 * NS, 7 * 86400 * NS, 86400 * NS, 3600 * NS, 60 * NS, NS, NS // 1000)
_FRACTION: Final = re.compile(r"\.(\d+)")


def parse_time(raw: str, name: str) -> int:
    """One of Loki's time spellings as ns since the epoch."""
    text = raw.strip()
    try:
        if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
            value = int(text)
            return value * NS if len(text.lstrip("-")) <= 10 else value
        if re.fullmatch(r"-?\d*\.\d+|-?\d+\.\d*", text):
            seconds, _, fraction = text.partition(".")
            return int(seconds or "0") * NS + int((fraction + "000000000")[:9])
        return _rfc3339(text)
    except ValueError:
        raise InvalidInput(
            f"invalid parameter {name}: cannot parse {raw!r} as a timestamp (ns, seconds or RFC 3339)",
            code="invalid_parameter",
        ) from None


def _rfc3339(text: str) -> int:
    """RFC 3339 with up to nanosecond precision (datetime keeps microseconds, so the rest is added back)."""
    nanos = 0
    match = _FRACTION.search(text)
    if match is not None:
        digits = (match.group(1) + "000000000")[:9]
        nanos = int(digits)
        text = text[: match.start()] + text[match.end() :]
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(text)
    return int(moment.timestamp()) * NS + nanos


def parse_step(raw: str) -> int:
    """`step` as float seconds or a Prometheus duration, in ns; it must be positive."""
    text = raw.strip()
    step: int | None = None
    try:
        step = round(float(text) * NS)
    except ValueError:
        match = _PROM_DURATION.fullmatch(text)
        if match is not None and text:
            step = sum(int(part) * unit for part, unit in zip(match.groups(), _PROM_UNITS, strict=True) if part)
    if step is None:
        raise InvalidInput(f"invalid parameter step: cannot parse {raw!r} as a duration", code="invalid_parameter")
    if step <= 0:
        raise InvalidInput(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
            code="invalid_parameter",
        )
    return step


def window(params: Mapping[str, str], now_ns: int) -> tuple[int, int]:
    """(start, end) with Loki's defaults; end must not be before start."""
    end = parse_time(params["end"], "end") if params.get("end") else now_ns
    start = parse_time(params["start"], "start") if params.get("start") else end - DEFAULT_SINCE_NS
    if end < start:
        raise InvalidInput("the end timestamp must not be before the start time", code="invalid_parameter")
    return start, end


def step_of(params: Mapping[str, str], start: int, end: int) -> int:
    """The given step, else Loki's default; too many points is refused as Loki refuses it."""
    raw = params.get("step")
    step = parse_step(raw) if raw else max(math.ceil((end - start) / NS / 250), 1) * NS
    if (end - start) // step > MAX_POINTS:
        raise InvalidInput(
            f"exceeded maximum resolution of {MAX_POINTS} points per timeseries. "
            "Try decreasing the query resolution (?step=XX)",
            code="invalid_parameter",
        )
    return step


def limit_of(params: Mapping[str, str], maximum: int) -> int:
    raw = params.get("limit")
    if not raw:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidInput(f"invalid parameter limit: {raw!r} is not an integer", code="invalid_parameter") from None
    if limit <= 0:
        raise InvalidInput("limit must be a positive value", code="invalid_parameter")
    return min(limit, maximum)


def backward(params: Mapping[str, str]) -> bool:
    """True for `backward` (newest first, the default), False for `forward`."""
    raw = params.get("direction", "backward").lower() or "backward"
    if raw not in ("backward", "forward"):
        raise InvalidInput(f"invalid direction {raw!r}: expected forward or backward", code="invalid_parameter")
    return raw == "backward"
