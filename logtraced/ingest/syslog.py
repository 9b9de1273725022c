"""Sans-IO syslog: RFC 5424 and RFC 3164 (BSD) messages onto Events, and RFC 6587 TCP framing.

Senders disagree on nearly everything, so parsing is lenient and never raises: a record
that is not syslog at all becomes an event whose message is the text, tagged
`_syslogparsefailure` as Logstash does, so nothing a sender wrote is lost.

Mapping onto `Event`:

* PRI: severity -> `level` (via `canonical_level`); `attributes["syslog"]` holds `facility`
  (its name) and `severity` (the number), plus `procid` and `msgid` when sent.
* APP-NAME (5424) or TAG (3164) -> `service`; HOSTNAME -> `host`; the message excludes the
  `TAG[pid]: ` prefix; the UTF-8 BOM before a 5424 MSG is dropped.
* RFC 5424 structured data -> one attribute object per SD-ID holding its params as strings,
  e.g. `{"exampleSDID@32473": {"iut": "3"}}`; a param sent more than once (RFC 5424 6.3.3
  allows it) becomes a list of its values in order.  A registered SD-ID never contains `@`
  and none is named `syslog`, so they cannot collide with the header attributes.
* Timestamps keep their fraction to the nanosecond and their offset; those without a zone
  (BSD, Cisco, ISO without offset) are read in the configured zone, and those without a year
  get the current one unless that puts them more than a day in the future (then last year).
  A message without a timestamp gets the time it was received.

TCP framing (RFC 6587) is chosen per connection from its first byte: a digit means
octet-counting (`LEN SP MSG`), anything else non-transparent framing, where LF or NUL ends
a record (rsyslog sends LF, Python's SysLogHandler a NUL) and a CR before it is dropped.
(rsyslog decides per frame; deciding once keeps a non-syslog line starting with a digit on
an LF connection a line instead of a broken count.)  Records longer than the bound are cut
and tagged `_truncated`, as logtraced.ingest.framing does for JSON lines; a malformed octet
count cannot be resynchronised, so it raises `SyslogFramingError` and the connection ends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from logtraced.errors import DecodeError
from logtraced.events import TAG_TRUNCATED, parse_timestamp
from logtraced.levels import canonical_level
from logtraced.model import Event

TAG_PARSE_FAILURE: Final = "_syslogparsefailure"  # Logstash's syslog input uses the same word
CAUSE_BAD_OCTET_COUNT: Final = "bad_octet_count"

FACILITIES: Final = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    *(f"local{n}" for n in range(8)),
)
MAX_PRI: Final = 191
# A count longer than this many digits is a broken stream, not a big message.
_MAX_COUNT_DIGITS: Final = 10
_NS_PER_S: Final = 1_000_000_000
_DAY_NS: Final = 86_400 * _NS_PER_S
_EPOCH_NAIVE: Final = datetime(1970, 1, 1)
_BOM: Final = "\ufeff"
_BETWEEN_FRAMES: Final = frozenset(b"\n\r\x00")
# One octet-counted frame's head, after any LF, CR or NUL between frames: a count without a leading zero.
_COUNTED_FRAME: Final = re.compile(rb"[\n\r\x00]*([1-9][0-9]{0,%d}) " % (_MAX_COUNT_DIGITS - 1))
_NIL: Final = "-"

_PRI: Final = re.compile(r"<(\d{1,3})>")
_SEVERITY_LEVELS: Final = tuple(canonical_level(severity) for severity in range(8))
_HEADER_5424: Final = re.compile(r"1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
_MONTHS: Final = {
    name: number for number, name in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)
}
# BSD and Cisco: an optional Cisco sequence number and origin host, an optional `*` or `.`
# (clock not or no longer synchronised), `Mmm dd [yyyy] hh:mm:ss[.frac] [yyyy] [ZONE][:]`.
_BSD_TIME: Final = re.compile(
    r"(?:(?P<seq>\d+): (?:(?P<origin>[^\s:]+): )?)?[*.]?"
    r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(?P<day>\d{1,2})"
    r"(?: (?P<year>\d{4}))? (?P<hms>\d{1,2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?: (?P<year2>\d{4}))?(?: (?P<zone>UTC|GMT|Z|[+-]\d{2}:?\d{2}|[A-Z]{3,5}))?:?(?: |$)",
    re.ASCII,
)
# rsyslog's RFC3339 templates: `<PRI>2024-01-02T03:04:05.123456+01:00 host tag: msg`.
_ISO_TIME: Final = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?)(?: |$)",
    re.ASCII,
)
# A Cisco sequence number alone (no timestamp configured): `<189>123: %SYS-5-...`.
_CISCO_SEQ: Final = re.compile(r"(\d+): ")
# `TAG[pid]: `, `TAG: ` or `TAG[pid] `; a `%` starts a Cisco mnemonic, which is message text.
_TAG: Final = re.compile(r"(?P<tag>[^\s\[\]:%][^\s\[\]:]{0,47})(?:\[(?P<pid>[^\]\s]*)\])?(?::(?: |$)|(?<=\]) )")
_ZONE_OFFSET: Final = re.compile(r"([+-])(\d{2}):?(\d{2})")
# Structured data (RFC 5424 6.3): an SD-ID or SD-NAME is printable US-ASCII but `=`, `]`, `"` and
# space; a param value runs to the first `"` not escaped by a backslash.  Only `\"`, `\\` and `\]`
# are escapes: any other backslash is kept with the character after it.
_SD_NAME: Final = r"[\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]+"
_SD_VALUE: Final = r'[^"\\]*(?:\\.[^"\\]*)*'
_SD_ELEMENT: Final = re.compile(rf'\[({_SD_NAME})((?: {_SD_NAME}="{_SD_VALUE}")*)\]', re.DOTALL)
_SD_PARAM: Final = re.compile(rf' ({_SD_NAME})="({_SD_VALUE})"', re.DOTALL)
_SD_ESCAPE: Final = re.compile(r'\\(["\\\]])')
_SD_PLAIN_PARAM: Final = re.compile(r' ([^=]+)="([^"]*)"')  # inside an element already matched, without escapes
# What nearly every sender writes (rsyslog, syslog-ng, journald): an RFC 5424 record whose structured
# data is nil or elements without escapes, its header and SD matched by one expression and read
# without the general path's steps.  Whatever it does not match (or reads oddly) takes the general path.
_SD_PLAIN_PARAMS: Final = rf'(?: {_SD_NAME}="[^"\\]*")*'
# Groups: PRI, the five header fields, then the first SD element's SD-ID and params (None for nil SD)
# and any further elements.
_COMMON_5424: Final = re.compile(
    rf"<(\d{{1,3}})>1 (\S+) (\S+) (\S+) (\S+) (\S+) "
    rf"(?:-|\[({_SD_NAME})({_SD_PLAIN_PARAMS})\]((?:\[{_SD_NAME}{_SD_PLAIN_PARAMS}\])*))(?: |\Z)"
)
_SD_PLAIN_ELEMENT: Final = re.compile(rf"\[({_SD_NAME})({_SD_PLAIN_PARAMS})\]")


class SyslogFramingError(DecodeError):
    """The TCP stream cannot be framed any further; the connection must be closed.

    `events` are the records completed by the same `feed` call before the fault, so the
    caller can still store them; `cause` is stable snake_case for per-cause counters.
    """

    def __init__(self, cause: str, detail: str, events: list[Event]) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.events = events


def parse_syslog(record: bytes, now_ns: int, zone: str = "UTC") -> Event:
    """One syslog record (framing already removed) as an Event; never raises.

    `now_ns` is the receive time: the timestamp of messages that carry none, and the clock
    that picks the year of BSD timestamps.  `zone` is a zoneinfo name for timestamps sent
    without an offset (an unknown name raises ZoneInfoNotFoundError: check it at config time).
    """
    return _parse(record.decode("utf-8", "replace"), now_ns, ZoneInfo(zone))


def parse_datagram(datagram: bytes, now_ns: int, zone: str = "UTC") -> Event | None:
    """The event in one UDP datagram (RFC 5426: one message each), or None for an empty one.

    Trailing LF, CR and NUL are not part of the message: many senders append one anyway.
    """
    record = datagram.rstrip(b"\n\r\x00")
    return parse_syslog(record, now_ns, zone) if record else None


class SyslogStream:
    """The syslog records of one TCP connection, fed read by read.

    Memory stays bounded by `max_frame_bytes` plus the chunk being fed.  `clock` gives the
    receive time in ns (injected so tests control it).
    """

    def __init__(self, max_frame_bytes: int, zone: str = "UTC", clock: Callable[[], int] = time.time_ns) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self._max = max_frame_bytes
        self._zone = ZoneInfo(zone)  # fails at accept time, not per record
        self._clock = clock
        self._octet_counting: bool | None = None  # decided by the first byte
        self._buffer = bytearray()
        self._digits = bytearray()  # octet-counting: the count read so far
        self._remaining = 0  # octet-counting: bytes of the current record still to come
        self._cut = False  # octet-counting: the current record is longer than the bound
        self._dropping = False  # non-transparent: discarding the rest of an over-long record
        self._broken: SyslogFramingError | None = None
        self.truncated_count = 0

    def feed(self, data: bytes) -> list[Event]:
        """The events of the records completed by `data`; raises SyslogFramingError on a bad count."""
        if self._broken is not None:
            raise SyslogFramingError(self._broken.cause, "stream already broken", [])
        if self._octet_counting is None and data:
            self._octet_counting = data[:1].isdigit()
        records: list[tuple[bytes, bool]] = []
        try:
            if self._octet_counting:
                self._feed_counted(data, records)
            else:
                self._feed_delimited(data, records)
        except SyslogFramingError as error:
            error.events = self._events(records)
            self._broken = error
            raise
        return self._events(records)

    def close(self) -> list[Event]:
        """The sender closed: a last record without its trailer (or cut short) still counts."""
        records: list[tuple[bytes, bool]] = []
        if self._broken is None and self._buffer:
            if self._octet_counting:
                records.append((bytes(self._buffer), True))  # the count promised more
            elif not self._dropping:
                records.append((bytes(self._buffer.rstrip(b"\r")), False))
        self._buffer.clear()
        return self._events(records)

    def _events(self, records: list[tuple[bytes, bool]]) -> list[Event]:
        now = self._clock()
        events = []
        for record, truncated in records:
            # An octet-counted frame may end with the LF of the sender's template (rsyslog's
            # RSYSLOG_SyslogProtocol23Format does): like a datagram's, it is not part of the message.
            record = record.rstrip(b"\n\r\x00")
            if not record or record.isspace():
                continue
            event = _parse(record.decode("utf-8", "replace"), now, self._zone)
            if truncated:
                event.tags.append(TAG_TRUNCATED)
                self.truncated_count += 1
            events.append(event)
        return events

    def _feed_delimited(self, data: bytes, records: list[tuple[bytes, bool]]) -> None:
        """Non-transparent framing: LF or NUL ends a record."""
        pieces = re.split(b"[\n\x00]", data)
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            complete = index < last
            if not self._dropping:
                self._buffer += piece
                if len(self._buffer) > self._max and not (complete and self._only_cr_over()):
                    records.append((bytes(self._buffer[: self._max]), True))
                    self._buffer.clear()
                    self._dropping = True
                elif complete:
                    records.append((bytes(self._buffer.rstrip(b"\r")), False))
                    self._buffer.clear()
            if complete:
                self._dropping = False

    def _only_cr_over(self) -> bool:
        """A complete record one byte over the bound is not cut when that byte is the CR of a CRLF."""
        return len(self._buffer) == self._max + 1 and self._buffer[-1:] == b"\r"

    def _feed_counted(self, data: bytes, records: list[tuple[bytes, bool]]) -> None:
        """Octet-counting: `LEN SP MSG`, where a count may arrive apart from its message."""
        pos, end = 0, len(data)
        while pos < end:
            if self._remaining:
                step = min(self._remaining, end - pos)
                room = self._max - len(self._buffer)
                if room > 0:
                    self._buffer += data[pos : pos + min(step, room)]
                self._remaining -= step
                pos += step
                if not self._remaining:
                    records.append((bytes(self._buffer), self._cut))
                    self._buffer.clear()
                continue
            if not self._digits:
                pos = self._whole_frames(data, pos, records)
                if pos >= end:
                    break
            pos = self._read_count(data, pos)

    def _whole_frames(self, data: bytes, pos: int, records: list[tuple[bytes, bool]]) -> int:
        """Fast path: the frames lying whole inside `data` from `pos`, their counts not cut (nearly all)."""
        match, limit, end = _COUNTED_FRAME.match, self._max, len(data)
        append = records.append
        while (frame := match(data, pos)) is not None:
            start = frame.end()
            stop = start + int(frame.group(1))
            if stop > end or stop - start > limit:
                break
            append((data[start:stop], False))
            pos = stop
        return pos

    def _read_count(self, data: bytes, pos: int) -> int:
        """Consume count digits from data[pos:]; return where the stream goes on.

        LF, CR or NUL between frames is skipped: some senders end counted frames with one.
        """
        if not self._digits:
            while pos < len(data) and data[pos] in _BETWEEN_FRAMES:
                pos += 1
        space = data.find(b" ", pos)
        self._digits += data[pos : len(data) if space < 0 else space]
        digits = self._digits
        if (digits and not digits.isdigit()) or digits[:1] == b"0" or len(digits) > _MAX_COUNT_DIGITS:
            shown = bytes(digits[:16]).decode("ascii", "replace")
            raise SyslogFramingError(CAUSE_BAD_OCTET_COUNT, f"bad octet count {shown!r}", [])
        if space < 0:
            return len(data)
        if not digits:
            raise SyslogFramingError(CAUSE_BAD_OCTET_COUNT, "empty octet count", [])
        count = int(digits)
        digits.clear()
        self._remaining = count
        self._cut = count > self._max
        return space + 1


class _Malformed(Exception):
    """Inside this module only: the record is not the syslog it started out as."""


def _parse(text: str, now_ns: int, zone: ZoneInfo) -> Event:
    """`parse_syslog` of the decoded record: the common RFC 5424 shape first, then every other."""
    event = _parse_common_5424(text, now_ns, zone)
    if event is not None:
        return event
    pri = _PRI.match(text)
    if pri is None or (value := int(pri.group(1))) > MAX_PRI:
        return _failure(text, now_ns, None)
    header = _pri_attributes(value)
    start = pri.end()
    if text.startswith("1 ", start):
        event = _parse_5424(text, start, now_ns, header, zone)
    else:
        event = _parse_3164(text[start:], now_ns, header, zone)
    if event is None:
        return _failure(text, now_ns, value)
    event.level = _SEVERITY_LEVELS[value & 7]
    return event


def _parse_common_5424(text: str, now_ns: int, zone: ZoneInfo) -> Event | None:
    """The event `_parse_5424` would make of a record in the common shape, in one match; None for any other.

    None is not a verdict: the general path reads the record again (a PRI out of range, an
    impossible timestamp, an SD-ID or param name sent twice), so both paths give the same event.
    """
    match = _COMMON_5424.match(text)
    if match is None:
        return None
    pri, stamp, host, app, procid, msgid, first_id, first_params, more = match.groups()
    value = int(pri)
    timestamp = now_ns if stamp == _NIL else _iso_ns(stamp, zone)
    if value > MAX_PRI or timestamp is None:
        return None
    attributes: dict[str, Any] = {}
    if first_id is not None:
        elements = [(first_id, first_params), *_SD_PLAIN_ELEMENT.findall(more)] if more else [(first_id, first_params)]
        for sd_id, params_text in elements:
            pairs = _SD_PLAIN_PARAM.findall(params_text)
            params = dict(pairs)
            if len(params) != len(pairs) or sd_id in attributes:
                return None
            attributes[sd_id] = params
    attributes["syslog"] = _with_ids(_pri_attributes(value), procid, msgid)
    pos = match.end()
    return Event(
        timestamp,
        text[pos + 1 :] if text.startswith(_BOM, pos) else text[pos:],
        _SEVERITY_LEVELS[value & 7],
        "" if app == _NIL else app,
        "" if host == _NIL else host,
        attributes=attributes,
    )


def _failure(text: str, now_ns: int, pri: int | None) -> Event:
    """The whole text as the message, tagged; what the PRI said is kept when it was valid."""
    event = Event(now_ns, text, tags=[TAG_PARSE_FAILURE])
    if pri is not None:
        event.level = _SEVERITY_LEVELS[pri & 7]
        event.attributes = {"syslog": _pri_attributes(pri)}
    return event


def _pri_attributes(pri: int) -> dict[str, Any]:
    return {"facility": FACILITIES[pri >> 3], "severity": pri & 7}


def _with_ids(header: dict[str, Any], procid: str, msgid: str) -> dict[str, Any]:
    """The RFC 5424 header's PROCID and MSGID added to the PRI's attributes, each only when sent (not `-`)."""
    if procid != _NIL:
        header["procid"] = procid
    if msgid != _NIL:
        header["msgid"] = msgid
    return header


def _parse_5424(text: str, start: int, now_ns: int, header: dict[str, Any], zone: ZoneInfo) -> Event | None:
    """`1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]` from text[start] (after the PRI), or None if malformed."""
    match = _HEADER_5424.match(text, start)
    if match is None:
        return None
    stamp, host, app, procid, msgid = match.groups()
    timestamp = now_ns if stamp == _NIL else _iso_ns(stamp, zone)
    if timestamp is None:
        return None
    try:
        attributes, pos = _structured_data(text, match.end())
    except _Malformed:
        return None
    if text.startswith(" ", pos):
        pos += 1
    if text.startswith(_BOM, pos):
        pos += 1
    message = text[pos:]
    attributes["syslog"] = _with_ids(header, procid, msgid)
    return Event(
        timestamp,
        message,
        service="" if app == _NIL else app,
        host="" if host == _NIL else host,
        attributes=attributes,
    )


def _structured_data(text: str, pos: int) -> tuple[dict[str, Any], int]:
    """The SD elements starting at text[pos] and where they end; `-` is none.

    Each element is matched whole by one regular expression (SD-ID, then ` name="value"`
    params whose values may hold the escapes `\\"`, `\\\\` and `\\]`), so a record costs a
    few C calls rather than a Python step per character.
    """
    if text.startswith("- ", pos) or (text.startswith(_NIL, pos) and pos + 1 == len(text)):
        return {}, pos + 1
    elements: dict[str, Any] = {}
    if text[pos : pos + 1] != "[":
        raise _Malformed
    while text[pos : pos + 1] == "[":
        element = _SD_ELEMENT.match(text, pos)
        if element is None:
            raise _Malformed
        pos = element.end()
        sd_id, params_text = element.groups()
        if "\\" not in params_text and sd_id not in elements:
            # Nearly every element: no escapes, so a value is everything up to the next quote.
            pairs = _SD_PLAIN_PARAM.findall(params_text)
            params = dict(pairs)
            if len(params) == len(pairs):  # no param sent twice
                elements[sd_id] = params
                continue
        params = elements.setdefault(sd_id, {})
        for name, raw in _SD_PARAM.findall(params_text):
            value = _SD_ESCAPE.sub(r"\1", raw) if "\\" in raw else raw
            previous = params.get(name)
            if previous is None:
                params[name] = value
            elif type(previous) is list:
                previous.append(value)
            else:
                params[name] = [previous, value]
    return elements, pos


def _parse_3164(rest: str, now_ns: int, header: dict[str, Any], zone: ZoneInfo) -> Event | None:
    """BSD syslog after the PRI, in all its variants; None only for an impossible date."""
    timestamp = now_ns
    host = ""
    bsd = _BSD_TIME.match(rest)
    iso = None if bsd else _ISO_TIME.match(rest)
    if bsd is not None:
        found = _bsd_ns(bsd, now_ns, zone)
        if found is None:
            return None
        timestamp = found
        if bsd.group("seq"):
            header["sequence"] = int(bsd.group("seq"))
        host = bsd.group("origin") or ""
        rest = rest[bsd.end() :]
    elif iso is not None:
        found = _iso_ns(iso.group("ts"), zone)
        if found is None:
            return None
        timestamp = found
        rest = rest[iso.end() :]
    else:
        cisco = _CISCO_SEQ.match(rest)
        if cisco is not None:
            header["sequence"] = int(cisco.group(1))
            rest = rest[cisco.end() :]
    if (bsd is not None and not host and not bsd.group("seq")) or iso is not None:
        host, rest = _hostname(rest)
    service = ""
    tag = _TAG.match(rest)
    if tag is not None:
        service = tag.group("tag")
        if tag.group("pid"):
            header["procid"] = tag.group("pid")
        rest = rest[tag.end() :]
    return Event(timestamp, rest, service=service, host=host, attributes={"syslog": header})


def _hostname(rest: str) -> tuple[str, str]:
    """Split off the HOSTNAME after a timestamp, unless the first word is already the TAG.

    Python's SysLogHandler and some devices send no HOSTNAME: a first word ending in `:` or
    holding `[pid]` is then the tag.
    """
    word, space, after = rest.partition(" ")
    if not space or not word or word.endswith(":") or "[" in word or word.startswith("%"):
        return "", rest
    # Cisco ASA writes `HOST : %ASA-...`: the lone colon separates, it is not message text.
    return word, after[2:] if after.startswith(": ") else after


def _bsd_ns(match: re.Match[str], now_ns: int, zone: ZoneInfo) -> int | None:
    """The instant of a BSD/Cisco timestamp; the year, when absent, is picked from `now_ns`."""
    hour, minute, second = (int(part) for part in match.group("hms").split(":"))
    fraction = match.group("frac") or ""
    sent_zone = _zone_named(match.group("zone"), zone)
    year_text = match.group("year") or match.group("year2")
    if year_text:
        years = [int(year_text)]
    else:
        this_year = datetime.fromtimestamp(now_ns // _NS_PER_S, sent_zone).year
        years = [this_year, this_year - 1]
    for year in years:
        try:
            moment = datetime(year, _MONTHS[match.group("mon")], int(match.group("day")), hour, minute, second)
        except ValueError:
            continue  # 29 Feb of a year that has none: try last year
        ns = _local_ns(moment, sent_zone) + (int(fraction.ljust(9, "0")) if fraction else 0)
        if year_text or ns <= now_ns + _DAY_NS:
            return ns
    return None


def _zone_named(name: str | None, default: ZoneInfo) -> ZoneInfo:
    """The zone a BSD timestamp names; abbreviations other than UTC/GMT are ambiguous, so ignored."""
    if name in ("UTC", "GMT", "Z"):
        return ZoneInfo("UTC")
    if name is not None:
        offset = _ZONE_OFFSET.fullmatch(name)
        if offset is not None:
            sign, hours, minutes = offset.groups()
            return ZoneInfo(f"Etc/GMT{'-' if sign == '+' else '+'}{int(hours)}") if minutes == "00" else default
    return default


def _local_ns(moment: datetime, zone: ZoneInfo) -> int:
    """Nanoseconds of a wall-clock time in `zone` (a time skipped by DST is read as before it)."""
    aware = moment.replace(tzinfo=zone)
    offset = aware.utcoffset() or timedelta(0)
    delta = moment - offset - _EPOCH_NAIVE
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S


def _iso_ns(text: str, zone: ZoneInfo) -> int | None:
    """An RFC 3339 timestamp to the ns; one without an offset is wall-clock time in `zone`."""
    tail = text[-6:]
    if text[-1:] in "Zz" or (tail[:1] in "+-" and tail[3:4] == ":"):
        return parse_timestamp(text, 0)
    naive = parse_timestamp(text, 0)  # read as UTC, so the zone's offset is all that is missing
    if naive is None:
        return None
    seconds, fraction = divmod(naive, _NS_PER_S)
    moment = _EPOCH_NAIVE + timedelta(seconds=seconds)
    return _local_ns(moment, zone) + fraction
