"""Instants shown in a reader's time zone (`logtraced query --tz Europe/Moscow`); every API answers in UTC.

Zones are IANA names read from the system's zone database (or the tzdata package), so daylight
saving and historical offsets (Moscow was UTC+4 in 2011-2014) come out right for each instant.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, tzinfo
from typing import Final

from logtraced.errors import InvalidInput

NS_PER_SECOND: Final = 1_000_000_000


def time_zone(name: str) -> tzinfo:
    """The zone named `name` (e.g. Europe/Moscow, UTC); an unknown name is InvalidInput naming it."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Moscow or UTC", code="invalid_time_zone"
        ) from None


def local_rfc3339(ns: int, zone: tzinfo) -> str:
    """RFC 3339 with nanoseconds and the zone's offset at that instant: 2024-03-15T13:22:01.123456789+03:00."""
    seconds, nanos = divmod(ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, zone)
    offset = f"{moment:%z}"  # +0300 (`%:z` needs Python 3.12)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}{offset[:3]}:{offset[3:]}"
