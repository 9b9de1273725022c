"""Syslog codec: RFC 5424 / RFC 3164 / Cisco lines, RFC 6587 framing, and real SysLogHandler bytes."""

from __future__ import annotations

import logging
import logging.handlers
import random
import socket
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from logtraced.ingest.syslog import (
    TAG_PARSE_FAILURE,
    SyslogFramingError,
    SyslogStream,
    parse_datagram,
    parse_syslog,
)

# 2026-02-25T06:13:20Z: late February, so a March date without a year is last year's.
NOW = 1_772_000_000 * 10**9


def ns(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def event_fields(record: bytes, zone: str = "UTC") -> dict[str, Any]:
    event = parse_syslog(record, NOW, zone)
    return {
        "timestamp": event.timestamp,
        "message": event.message,
        "level": event.level,
        "service": event.service,
        "host": event.host,
        "tags": event.tags,
        "attributes": event.attributes,
    }


RFC5424_CASES = [
    pytest.param(
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed",
        {
            "timestamp": ns("2003-10-11T22:14:15.003+00:00"),
            "message": "'su root' failed",
            "level": "fatal",
            "service": "su",
            "host": "mymachine.example.com",
            "tags": [],
            "attributes": {"syslog": {"facility": "auth", "severity": 2, "msgid": "ID47"}},
        },
        id="rfc5424-example-1-bom-dropped",
    ),
    pytest.param(
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        {
            "timestamp": ns("2003-08-24T12:14:15.000003+00:00"),
            "message": "%% It's time to make the do-nuts.",
            "level": "info",
            "service": "myproc",
            "host": "192.0.2.1",
            "tags": [],
            "attributes": {"syslog": {"facility": "local4", "severity": 5, "procid": "8710"}},
        },
        id="rfc5424-example-2-offset-microseconds",
    ),
    pytest.param(
        b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        b'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
        {
            "timestamp": ns("2003-10-11T22:14:15.003+00:00"),
            "message": "",
            "level": "info",
            "service": "evntslog",
            "host": "mymachine.example.com",
            "tags": [],
            "attributes": {
                "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                "examplePriority@32473": {"class": "high"},
                "syslog": {"facility": "local4", "severity": 5, "msgid": "ID47"},
            },
        },
        id="rfc5424-example-4-two-sd-elements-no-msg",
    ),
    pytest.param(
        b'<14>1 2024-05-06T07:08:09.123456789+02:00 web-1 app 42 req [meta path="C:\\\\tmp\\]" q="say \\"hi\\"" '
        b'odd="a\\b"][origin ip="10.0.0.1" ip="10.0.0.2"] body text',
        {
            "timestamp": ns("2024-05-06T05:08:09+00:00") + 123_456_789,
            "message": "body text",
            "level": "info",
            "service": "app",
            "host": "web-1",
            "tags": [],
            "attributes": {
                "meta": {"path": "C:\\tmp]", "q": 'say "hi"', "odd": "a\\b"},
                "origin": {"ip": ["10.0.0.1", "10.0.0.2"]},
                "syslog": {"facility": "user", "severity": 6, "procid": "42", "msgid": "req"},
            },
        },
        id="escapes-undone-repeated-param-nanoseconds",
    ),
    pytest.param(
        b"<15>1 - - - - - -",
        {
            "timestamp": NOW,
            "message": "",
            "level": "debug",
            "service": "",
            "host": "",
            "tags": [],
            "attributes": {"syslog": {"facility": "user", "severity": 7}},
        },
        id="all-nil",
    ),
    pytest.param(
        # systemd-journald/rsyslog RSYSLOG_SyslogProtocol23Format as sent for an sshd line.
        b"<38>1 2024-03-01T10:11:12.345678+00:00 bastion sshd 991 - - Accepted publickey for ops from 10.1.2.3",
        {
            "timestamp": ns("2024-03-01T10:11:12.345678+00:00"),
            "message": "Accepted publickey for ops from 10.1.2.3",
            "level": "info",
            "service": "sshd",
            "host": "bastion",
            "tags": [],
            "attributes": {"syslog": {"facility": "auth", "severity": 6, "procid": "991"}},
        },
        id="rsyslog-protocol23",
    ),
]

RFC3164_CASES = [
    pytest.param(
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        "UTC",
        {
            "timestamp": ns("2025-10-11T22:14:15+00:00"),
            "message": "'su root' failed for lonvick on /dev/pts/8",
            "level": "fatal",
            "service": "su",
            "host": "mymachine",
            "tags": [],
            "attributes": {"syslog": {"facility": "auth", "severity": 2}},
        },
        id="rfc3164-example-last-year",
    ),
    pytest.param(
        b"<13>Feb  5 17:32:18 10.0.0.99 sshd[1234]: Accepted publickey for root",
        "Europe/Berlin",
        {
            "timestamp": ns("2026-02-05T16:32:18+00:00"),
            "message": "Accepted publickey for root",
            "level": "info",
            "service": "sshd",
            "host": "10.0.0.99",
            "tags": [],
            "attributes": {"syslog": {"facility": "user", "severity": 5, "procid": "1234"}},
        },
        id="space-padded-day-pid-configured-zone",
    ),
    pytest.param(
        b"<78>Feb 25 06:17:01 db1 CRON[20233]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)",
        "UTC",
        {
            "timestamp": ns("2026-02-25T06:17:01+00:00"),
            "message": "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)",
            "level": "info",
            "service": "CRON",
            "host": "db1",
            "tags": [],
            "attributes": {"syslog": {"facility": "cron", "severity": 6, "procid": "20233"}},
        },
        id="debian-cron-minutes-ahead-is-this-year",
    ),
    pytest.param(
        b"<22>Feb 24 23:59:59 mx postfix/smtpd[1771]: connect from unknown[192.0.2.7]",
        "UTC",
        {
            "timestamp": ns("2026-02-24T23:59:59+00:00"),
            "message": "connect from unknown[192.0.2.7]",
            "level": "info",
            "service": "postfix/smtpd",
            "host": "mx",
            "tags": [],
            "attributes": {"syslog": {"facility": "mail", "severity": 6, "procid": "1771"}},
        },
        id="postfix-slash-tag",
    ),
    pytest.param(
        b"<4>Feb 25 06:00:00 kernel: [12345.678] usb 1-1: new high-speed USB device",
        "UTC",
        {
            "timestamp": ns("2026-02-25T06:00:00+00:00"),
            "message": "[12345.678] usb 1-1: new high-speed USB device",
            "level": "warn",
            "service": "kernel",
            "host": "",
            "tags": [],
            "attributes": {"syslog": {"facility": "kern", "severity": 4}},
        },
        id="no-hostname-tag-first",
    ),
    pytest.param(
        b"<30>2024-01-02T03:04:05.123456+01:00 web1 nginx[77]: GET / 200",
        "UTC",
        {
            "timestamp": ns("2024-01-02T02:04:05.123456+00:00"),
            "message": "GET / 200",
            "level": "info",
            "service": "nginx",
            "host": "web1",
            "tags": [],
            "attributes": {"syslog": {"facility": "daemon", "severity": 6, "procid": "77"}},
        },
        id="rsyslog-rfc3339-template",
    ),
    pytest.param(
        b"<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.1)",
        "UTC",
        {
            "timestamp": ns("2025-03-01T18:46:11.123+00:00"),
            "message": "%SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.1)",
            "level": "info",
            "service": "",
            "host": "",
            "tags": [],
            "attributes": {"syslog": {"facility": "local7", "severity": 5, "sequence": 123}},
        },
        id="cisco-ios-unsynchronised-clock-future-is-last-year",
    ),
    pytest.param(
        b"<187>45: core-sw1: Jan 14 2026 08:00:01.5 UTC: %LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
        "Asia/Tokyo",
        {
            "timestamp": ns("2026-01-14T08:00:01.5+00:00"),
            "message": "%LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
            "level": "error",
            "service": "",
            "host": "core-sw1",
            "tags": [],
            "attributes": {"syslog": {"facility": "local7", "severity": 3, "sequence": 45}},
        },
        id="cisco-origin-year-utc",
    ),
    pytest.param(
        b"<166>Jan 05 2024 10:00:00 fw01 : %ASA-6-302013: Built outbound TCP connection",
        "UTC",
        {
            "timestamp": ns("2024-01-05T10:00:00+00:00"),
            "message": "%ASA-6-302013: Built outbound TCP connection",
            "level": "info",
            "service": "",
            "host": "fw01",
            "tags": [],
            "attributes": {"syslog": {"facility": "local4", "severity": 6}},
        },
        id="cisco-asa",
    ),
    pytest.param(
        b"<14>myapp: hello world",
        "UTC",
        {
            "timestamp": NOW,
            "message": "hello world",
            "level": "info",
            "service": "myapp",
            "host": "",
            "tags": [],
            "attributes": {"syslog": {"facility": "user", "severity": 6}},
        },
        id="python-syslog-handler-with-ident",
    ),
]


@pytest.mark.parametrize(("record", "expected"), RFC5424_CASES)
def test_rfc5424(record: bytes, expected: dict[str, Any]) -> None:
    assert event_fields(record) == expected


@pytest.mark.parametrize(("record", "zone", "expected"), RFC3164_CASES)
def test_rfc3164_and_cisco(record: bytes, zone: str, expected: dict[str, Any]) -> None:
    assert event_fields(record, zone) == expected


def test_every_facility_has_its_name() -> None:
    names = [parse_syslog(f"<{facility * 8 + 3}>x: y".encode(), NOW).attributes for facility in range(24)]
    assert [attributes["syslog"]["facility"] for attributes in names] == [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
        "ntp", "security", "console", "solaris-cron", *(f"local{n}" for n in range(8)),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("severity", "level"),
    [(0, "fatal"), (1, "fatal"), (2, "fatal"), (3, "error"), (4, "warn"), (5, "info"), (6, "info"), (7, "debug")],
)
def test_severity_to_level(severity: int, level: str) -> None:
    event = parse_syslog(f"<{16 * 8 + severity}>1 - h a - - - m".encode(), NOW)
    assert (event.level, event.attributes["syslog"]["severity"]) == (level, severity)


@pytest.mark.parametrize(
    "record",
    [b"not syslog at all", b"<192>1 - - - - - - too big a PRI", b"<abc>x", b"", b"\xff\xfe garbage"],
)
def test_not_syslog_becomes_a_tagged_event(record: bytes) -> None:
    event = parse_syslog(record, NOW)
    assert event.tags == [TAG_PARSE_FAILURE]
    assert event.message == record.decode("utf-8", "replace")
    assert event.timestamp == NOW
    assert event.attributes == {}


@pytest.mark.parametrize(
    "record",
    [
        b'<13>1 2024-01-01T00:00:00Z host app - - [unterminated x="1"',
        b"<13>1 2024-01-01T00:00:00Z host app - - [id x=1]",
        b"<13>1 not-a-date host app - - - m",
        b"<13>1 short",
        b"<13>Feb 30 10:00:00 host app: no such day",
    ],
)
def test_malformed_after_a_valid_pri_keeps_the_pri(record: bytes) -> None:
    event = parse_syslog(record, NOW)
    assert event.tags == [TAG_PARSE_FAILURE]
    assert event.message == record.decode()
    assert event.level == "info"
    assert event.attributes == {"syslog": {"facility": "user", "severity": 5}}


def test_leap_day_without_a_year_is_the_last_year_that_had_one() -> None:
    now_2025 = ns("2025-03-10T00:00:00+00:00")
    event = parse_syslog(b"<13>Feb 29 12:00:00 host app: leap", now_2025)
    assert event.timestamp == ns("2024-02-29T12:00:00+00:00")


def test_date_a_day_ahead_is_this_year_more_is_last_year() -> None:
    soon = parse_syslog(b"<13>Feb 26 06:00:00 h app: skewed clock", NOW)
    later = parse_syslog(b"<13>Feb 27 06:00:00 h app: next year's? no, last year's", NOW)
    assert soon.timestamp == ns("2026-02-26T06:00:00+00:00")
    assert later.timestamp == ns("2025-02-27T06:00:00+00:00")


def test_datagram_trailers_are_stripped_and_empty_datagrams_ignored() -> None:
    event = parse_datagram(b"<13>app: hi\n\x00", NOW)
    assert event is not None and event.message == "hi"
    assert parse_datagram(b"\n", NOW) is None


# -- TCP framing -------------------------------------------------------------------------------


def feed_all(stream: SyslogStream, data: bytes, step: int) -> list[str]:
    messages = []
    for start in range(0, len(data), step):
        messages += [event.message for event in stream.feed(data[start : start + step])]
    return messages + [event.message for event in stream.close()]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_non_transparent_framing_any_split(step: int) -> None:
    data = b"<13>a: one\n<13>a: two\x00<13>a: three\r\n\n\x00<13>a: last"
    stream = SyslogStream(1000, clock=lambda: NOW)
    assert feed_all(stream, data, step) == ["one", "two", "three", "last"]


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_octet_counting_any_split(step: int) -> None:
    records = [b"<13>1 - h app - - - first", b"<13>1 - h app - - - second\nwith a newline", b"<13>a: \x00nul"]
    data = b"".join(str(len(record)).encode() + b" " + record for record in records)
    stream = SyslogStream(1000, clock=lambda: NOW)
    assert feed_all(stream, data, step) == ["first", "second\nwith a newline", "\x00nul"]


def test_octet_counted_frames_may_be_separated_by_newlines() -> None:
    stream = SyslogStream(1000, clock=lambda: NOW)
    assert [event.message for event in stream.feed(b"9 <13>a: x1\n9 <13>a: x2")] == ["x1", "x2"]


@pytest.mark.parametrize("data", [b"12x <13>a: b", b"012 <13>a: bcdef", b"99999999999 x", b"<13>a: lf line\n"])
def test_bad_octet_count_is_a_typed_error_that_keeps_earlier_records(data: bytes) -> None:
    stream = SyslogStream(1000, clock=lambda: NOW)
    with pytest.raises(SyslogFramingError) as caught:
        stream.feed(b"9 <13>a: ok" + data)
    assert caught.value.cause == "bad_octet_count"
    assert [event.message for event in caught.value.events] == ["ok"]
    with pytest.raises(SyslogFramingError):
        stream.feed(b"9 <13>a: ok")


def test_over_long_line_is_cut_and_tagged_then_the_stream_goes_on() -> None:
    stream = SyslogStream(16, clock=lambda: NOW)
    events = stream.feed(b"<13>a: " + b"x" * 40 + b"\n<13>a: short\n")
    assert [(event.message, event.tags) for event in events] == [
        ("xxxxxxxxx", ["_truncated"]),
        ("short", []),
    ]
    assert stream.truncated_count == 1


def test_line_exactly_at_the_bound_with_crlf_is_whole() -> None:
    stream = SyslogStream(16, clock=lambda: NOW)
    events = stream.feed(b"<13>a: 123456789\r\n")
    assert [(event.message, event.tags) for event in events] == [("123456789", [])]


def test_over_long_counted_record_is_cut_and_the_next_one_is_whole() -> None:
    stream = SyslogStream(16, clock=lambda: NOW)
    long = b"<13>a: " + b"y" * 40
    events = stream.feed(str(len(long)).encode() + b" " + long + b"11 <13>a: next")
    assert [(event.message, event.tags) for event in events] == [("yyyyyyyyy", ["_truncated"]), ("next", [])]


def test_close_flushes_a_counted_record_cut_short_as_truncated() -> None:
    stream = SyslogStream(100, clock=lambda: NOW)
    assert stream.feed(b"50 <13>a: partial") == []
    assert [(event.message, event.tags) for event in stream.close()] == [("partial", ["_truncated"])]


def test_fuzz_never_raises_anything_but_the_framing_error() -> None:
    rng = random.Random(5424)
    alphabet = b'<>0123456789 -[]="\\:\n\x00\r\xef\xbb\xbfabcTZ.+'
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(60)))
        parse_syslog(data, NOW)
        stream = SyslogStream(rng.randrange(1, 40), clock=lambda: NOW)
        try:
            for start in range(0, len(data), 5):
                for event in stream.feed(data[start : start + 5]):
                    assert isinstance(event.message, str)
            stream.close()
        except SyslogFramingError as error:
            assert error.cause == "bad_octet_count"


# -- real senders ------------------------------------------------------------------------------


def python_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"syslog-test-{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


def test_python_syslog_handler_over_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        handler = logging.handlers.SysLogHandler(
            address=server.getsockname(), facility=logging.handlers.SysLogHandler.LOG_LOCAL3
        )
        handler.ident = "billing[77]: "
        logger = python_logger(handler)
        try:
            logger.warning("card declined for order %s", 991)
            logger.debug("détails: ünïcode")
            datagrams = [server.recv(65536), server.recv(65536)]
        finally:
            handler.close()
    events = [parse_datagram(datagram, NOW) for datagram in datagrams]
    assert [
        (e.message, e.level, e.service, e.host, e.timestamp, e.tags, e.attributes) for e in events if e is not None
    ] == [
        (
            "card declined for order 991",
            "warn",
            "billing",
            "",
            NOW,
            [],
            {"syslog": {"facility": "local3", "severity": 4, "procid": "77"}},
        ),
        (
            "détails: ünïcode",
            "debug",
            "billing",
            "",
            NOW,
            [],
            {"syslog": {"facility": "local3", "severity": 7, "procid": "77"}},
        ),
    ]


@pytest.mark.parametrize("append_nul", [True, False])
def test_python_syslog_handler_over_tcp(append_nul: bool) -> None:
    received = bytearray()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5)

        def accept() -> None:
            connection, _ = server.accept()
            with connection:
                while chunk := connection.recv(65536):
                    received.extend(chunk)

        reader = threading.Thread(target=accept)
        reader.start()
        handler = logging.handlers.SysLogHandler(address=server.getsockname(), socktype=socket.SOCK_STREAM)
        handler.append_nul = append_nul
        if not append_nul:
            handler.setFormatter(logging.Formatter("worker: %(message)s\n"))
        logger = python_logger(handler)
        logger.error("disk %s full", "/var")
        logger.info("second line")
        handler.close()
        reader.join(5)
    stream = SyslogStream(1024, clock=lambda: NOW)
    events = stream.feed(bytes(received)) + stream.close()
    assert [(e.message, e.level, e.service, e.attributes["syslog"]["facility"], e.tags) for e in events] == [
        ("disk /var full", "error", "" if append_nul else "worker", "user", []),
        ("second line", "info", "" if append_nul else "worker", "user", []),
    ]


def test_current_year_comes_from_the_clock_in_the_zone() -> None:
    # 2025-12-31T23:30Z is already 2026 in Tokyo: a Jan 1 Tokyo date is "now", not last year.
    now = ns("2025-12-31T23:30:00+00:00")
    event = parse_syslog(b"<13>Jan  1 08:29:00 h app: new year", now, "Asia/Tokyo")
    assert datetime.fromtimestamp(event.timestamp / 1e9, UTC) == datetime(2025, 12, 31, 23, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sd", "expected"),
    [
        ('[a@1 k=" leading space"]', {"a@1": {"k": " leading space"}}),
        ('[a@1 k="" q="x"]', {"a@1": {"k": "", "q": "x"}}),
        ('[a@1 k="close]bracket" q="a=b"]', {"a@1": {"k": "close]bracket", "q": "a=b"}}),
        ('[a@1 k="\\"quoted\\" \\\\ \\]"]', {"a@1": {"k": '"quoted" \\ ]'}}),
        ('[a@1 k="other \\n backslash"]', {"a@1": {"k": "other \\n backslash"}}),
        ('[a@1 k="x"][a@1 k="y" k="z"][b@2]', {"a@1": {"k": ["x", "y", "z"]}, "b@2": {}}),
        ('[a@1 k="unicode ü"]', {"a@1": {"k": "unicode ü"}}),
    ],
)
def test_structured_data_values(sd: str, expected: dict[str, Any]) -> None:
    event = parse_syslog(f"<13>1 - h app - - {sd} msg".encode(), NOW)
    assert event.message == "msg"
    assert {key: value for key, value in event.attributes.items() if key != "syslog"} == expected


@pytest.mark.parametrize("sd", ['[a@1 k="unclosed]', "[a@1 k=x]", '[a@1  k="double space"]', '[=bad k="v"]', "[a@1"])
def test_malformed_structured_data_is_a_parse_failure(sd: str) -> None:
    assert parse_syslog(f"<13>1 - h app - - {sd} msg".encode(), NOW).tags == ["_syslogparsefailure"]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # Records in the common shape that one match reads, at the edges of that shape.
        (b'<13>1 - h app - - [a@1 k="v"]', ("", "h", "app", {"a@1": {"k": "v"}})),
        (b'<13>1 - h app - - [a@1 k="v"] \xef\xbb\xbf', ("", "h", "app", {"a@1": {"k": "v"}})),
        (b"<13>1 - h app - - -  two spaces", (" two spaces", "h", "app", {})),
        (
            b'<13>1 - h app - - [a@1 k="line\nbreak"][b@2] m',
            ("m", "h", "app", {"a@1": {"k": "line\nbreak"}, "b@2": {}}),
        ),
        # Shapes it leaves to the general path, which must read them as before.
        (b'<13>1 - h app - - [a@1 k="v"]glued', ("glued", "h", "app", {"a@1": {"k": "v"}})),
        (b'<13>1 - h app - - [a@1 k="v" k="w"] m', ("m", "h", "app", {"a@1": {"k": ["v", "w"]}})),
        (b'<13>1 - h app - - [a@1 k="v"][a@1 q="w"] m', ("m", "h", "app", {"a@1": {"k": "v", "q": "w"}})),
    ],
)
def test_common_rfc5424_shape_and_its_edges(record: bytes, expected: tuple[str, str, str, dict[str, Any]]) -> None:
    event = parse_syslog(record, NOW)
    attributes = {key: value for key, value in event.attributes.items() if key != "syslog"}
    assert (event.message, event.host, event.service, attributes) == expected
    assert event.tags == []
    assert event.attributes["syslog"] == {"facility": "user", "severity": 5}


@pytest.mark.parametrize(
    "record",
    [b"<13>1 2026-02-30T00:00:00Z h app - - - impossible date", b"<13>1 - h\tx app - - - tab in a field"],
)
def test_common_rfc5424_shape_with_a_bad_header_is_a_parse_failure(record: bytes) -> None:
    event = parse_syslog(record, NOW)
    assert (event.tags, event.message, event.attributes) == (
        [TAG_PARSE_FAILURE],
        record.decode(),
        {"syslog": {"facility": "user", "severity": 5}},
    )
