"""Tests for the canonical event: shipper spellings, timestamps, frames and index documents."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from logtraced.events import (
    MAX_NESTING,
    TAG_JSON_PARSE_FAILURE,
    TAG_NO_MESSAGE,
    TAG_NOT_OBJECT,
    TAG_TRUNCATED,
    Event,
    event_to_json,
    events_from_frame,
    normalise,
    parse_timestamp,
)
from logtraced.levels import canonical_level

RECEIVED = 1_700_000_000_000_000_000
NO_MESSAGE = [TAG_NO_MESSAGE]  # what an event with no message at all is tagged
T0 = 1_718_000_000 * 10**9  # 2024-06-10T06:13:20Z
I64_MAX = 2**63 - 1


def nested(depth: int) -> Any:
    """An object `depth` levels deep: {"a": {"a": ... 1}}."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


class TestCanonicalLevel:
    """Every shipper's level spelling maps onto the six canonical levels, unknown ones kept."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("info", "info"),
            ("INFO", "info"),
            ("Info", "info"),
            ("iNfO", "info"),
            (" info ", "info"),
            ("information", "info"),
            ("Informational", "info"),
            ("NOTICE", "info"),
            ("WARNING", "warn"),
            ("warn", "warn"),
            ("ERR", "error"),
            ("error", "error"),
            ("CRITICAL", "fatal"),
            ("crit", "fatal"),
            ("EMERG", "fatal"),
            ("alert", "fatal"),
            ("PANIC", "fatal"),
            ("Fatal", "fatal"),
            ("DEBUG", "debug"),
            ("TRACE", "trace"),
            ("Verbose", "verbose"),
            ("", ""),
            (0, "fatal"),
            (2, "fatal"),
            (3, "error"),
            (4, "warn"),
            (5, "info"),
            (6, "info"),
            (7, "debug"),
            ("3", "error"),
            (10, "trace"),
            (20, "debug"),
            (30, "info"),
            (40, "warn"),
            (50, "error"),
            (60, "fatal"),
            (30.0, "info"),
            (35, "35"),
            (None, ""),
            (True, ""),
            ({"name": "info"}, ""),
            (["info"], ""),
        ],
    )
    def test_maps_spelling(self, value: object, expected: str) -> None:
        assert canonical_level(value) == expected


class TestParseTimestamp:
    """Timestamps in every shape shippers send become exact nanoseconds since the epoch, UTC."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2024-06-10T06:13:20Z", T0),
            ("2024-06-10T06:13:20.281Z", T0 + 281_000_000),  # Logstash 7, Beats
            ("2024-06-10T06:13:20.200000Z", T0 + 200_000_000),  # Logstash 8
            ("2024-06-10T06:13:20.123456789Z", T0 + 123_456_789),
            ("2024-06-10T06:13:20.1Z", T0 + 100_000_000),
            ("2024-06-10T06:13:20,5Z", T0 + 500_000_000),
            ("2024-06-10t06:13:20.5z", T0 + 500_000_000),
            ("2024-06-10T08:13:20.5+02:00", T0 + 500_000_000),
            ("2024-06-10T01:13:20-05:00", T0),
            ("2024-06-10T08:13:20+0200", T0),
            ("2024-06-10T08:13:20.123456789+02:00", T0 + 123_456_789),
            ("2024-06-10T06:13:20.1234567891Z", T0 + 123_456_789),
            ("2024-06-10 06:13:20.123456", T0 + 123_456_000),  # Fluent Bit java_sql_timestamp
            ("2024-06-10T06:13:20", T0),
            ("20240610T061320Z", T0),
            ("2024-06-10.06:13:20Z", T0),  # a point between date and time is no fraction
            ("2024-06-10,06:13:20.1234567+00:00", T0 + 123_456_700),
            ("2024-W24-1T06:13:20.5Z", T0 + 500_000_000),  # an ISO week date
            ("2262-04-11T23:47:16.854775Z", I64_MAX - 807),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.5Z", -500_000_000),
            ("2262-04-11T23:47:16.854775807Z", I64_MAX),
            (1_718_000_000, T0),  # epoch seconds
            (1_718_000_000_123, T0 + 123_000_000),  # milliseconds (pino)
            (1_718_000_000_123_456, T0 + 123_456_000),  # microseconds
            (1_718_000_000_123_456_789, T0 + 123_456_789),  # nanoseconds
            (1_718_000_000.123456, T0 + 123_456_000),  # Fluent Bit json_date_format double
            (1_718_000_000_123.5, T0 + 123_500_000),
            ("1718000000", T0),
            ("1718000000.123456789", T0 + 123_456_789),
            ("1718000000123", T0 + 123_000_000),
            ("1718000000123.456", T0 + 123_456_000),
            ("-1.5", -1_500_000_000),
            (0, 0),
            (9_000_000_000, 9 * 10**18),  # seconds, year 2255
            (10**11, 10**17),  # the smallest read as milliseconds (1973)
            (10**14, 10**17),  # the smallest read as microseconds
            (10**17, 10**17),  # the smallest read as nanoseconds
        ],
    )
    def test_parses(self, value: object, expected: int) -> None:
        assert parse_timestamp(value, RECEIVED) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-06-10T24:00:00Z",
            " 2024-06-10T06:13:20Z",
            "2262-04-11T23:47:16.854775808Z",
            "9999-12-31T23:59:59Z",
            "1677-09-21T00:12:43Z",
            "1e9",
            "١٧١٨٠٠٠٠٠٠",
            10**30,
            float("nan"),
            float("inf"),
            True,
            None,
            {"seconds": 1},
            [1_718_000_000],
        ],
    )
    def test_rejects(self, value: object) -> None:
        assert parse_timestamp(value, RECEIVED) is None

    def test_float_seconds_keep_microseconds(self) -> None:
        rng = random.Random(7)
        micros = [rng.randrange(1_000_000_000_000_000, 2_000_000_000_000_000) for _ in range(2000)]
        for value in micros:
            text = f"{value // 1_000_000}.{value % 1_000_000:06d}"
            assert parse_timestamp(float(text), RECEIVED) == value * 1000, text
            assert parse_timestamp(msgspec.json.decode(text), RECEIVED) == value * 1000, text


def logstash_ecs() -> tuple[dict[str, Any], Event]:
    record = {
        "@timestamp": "2024-06-10T06:13:20.200000Z",
        "@version": "1",
        "message": "GET /index.html 200",
        "host": {"name": "web-1"},
        "event": {"original": "GET /index.html 200"},
        "tags": ["nginx", "_grokparsefailure"],
    }
    expected = Event(
        T0 + 200_000_000,
        "GET /index.html 200",
        host="web-1",
        tags=["nginx", "_grokparsefailure"],
        attributes={"@version": "1", "event": {"original": "GET /index.html 200"}},
    )
    return record, expected


NORMALISED = [
    pytest.param(*logstash_ecs(), id="logstash8-ecs"),
    pytest.param(
        {
            "@timestamp": "2024-06-10T06:13:20.281Z",
            "@version": "1",
            "message": "m",
            "host": "10.0.0.1",
            "port": 51000,
        },
        Event(T0 + 281_000_000, "m", host="10.0.0.1", attributes={"@version": "1", "port": 51000}),
        id="logstash7-plain-host",
    ),
    pytest.param(
        {
            "@timestamp": "2024-06-10T06:13:20.281Z",
            "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.14.0"},
            "message": "connection reset",
            "log": {"level": "warning", "file": {"path": "/var/log/app.log"}, "offset": 7},
            "host": {"name": "h1", "hostname": "h1", "os": {"family": "debian"}},
            "service": {"name": "api", "type": "nginx"},
            "ecs": {"version": "8.0.0"},
        },
        Event(
            T0 + 281_000_000,
            "connection reset",
            level="warn",
            service="api",
            host="h1",
            attributes={
                "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.14.0"},
                "log": {"file": {"path": "/var/log/app.log"}, "offset": 7},
                "host": {"hostname": "h1", "os": {"family": "debian"}},
                "service": {"type": "nginx"},
                "ecs": {"version": "8.0.0"},
            },
        ),
        id="filebeat-ecs-nested",
    ),
    pytest.param(
        {
            "@timestamp": "2024-06-10T06:13:20.000Z",
            "log.level": "ERR",
            "message": "boom",
            "service.name": "billing",
            "host.name": "h2",
            "ecs.version": "1.6.0",
        },
        Event(T0, "boom", level="error", service="billing", host="h2", attributes={"ecs.version": "1.6.0"}),
        id="ecs-logging-dotted-keys",
    ),
    pytest.param(
        {"date": 1_718_000_000.123456, "log": "plain line\n", "stream": "stdout"},
        Event(T0 + 123_456_000, "plain line\n", attributes={"stream": "stdout"}),
        id="fluent-bit-double-date",
    ),
    pytest.param(
        {"date": "2024-06-10 06:13:20.123456", "msg": "x", "app": "worker"},
        Event(T0 + 123_456_000, "x", service="worker"),
        id="fluent-bit-java-sql-timestamp",
    ),
    pytest.param(
        {"level": 30, "time": 1_718_000_000_123, "pid": 7, "hostname": "box", "msg": "hi"},
        Event(T0 + 123_000_000, "hi", level="info", host="box", attributes={"pid": 7}),
        id="pino",
    ),
    pytest.param(
        {
            "name": "app",
            "hostname": "box",
            "pid": 7,
            "level": 50,
            "msg": "failed",
            "time": "2024-06-10T06:13:20.123Z",
            "v": 0,
        },
        Event(
            T0 + 123_000_000,
            "failed",
            level="error",
            host="box",
            attributes={"name": "app", "pid": 7, "v": 0},
        ),
        id="bunyan",
    ),
    pytest.param(
        {
            "timestamp": "2024-06-10T06:13:20.123456+00:00",
            "levelname": "CRITICAL",
            "message": "disk full",
            "application": "ops",
        },
        Event(T0 + 123_456_000, "disk full", level="fatal", service="ops"),
        id="python-logging",
    ),
    pytest.param(
        {"log": "text\n", "stream": "stderr", "time": "2024-06-10T06:13:20.123456789Z"},
        Event(T0 + 123_456_789, "text\n", attributes={"stream": "stderr"}),
        id="docker-json-file",
    ),
    pytest.param(
        {"severity": 4, "body": "b", "ts": "1718000000"},
        Event(T0, "b", level="warn"),
        id="numeric-severity-and-body",
    ),
    pytest.param(
        {"@timestamp": "yesterday", "message": "m"},
        Event(RECEIVED, "m", attributes={"@timestamp": "yesterday"}),
        id="unparseable-timestamp-kept",
    ),
    pytest.param(
        {"@timestamp": "soon", "time": 1_718_000_000, "message": "m"},
        Event(T0, "m", attributes={"@timestamp": "soon"}),
        id="first-parseable-timestamp-wins",
    ),
    pytest.param(
        {"message": {"a": 1}, "msg": "second"},
        Event(RECEIVED, '{"a":1}', attributes={"msg": "second"}),
        id="structured-message-encoded",
    ),
    pytest.param(
        {"level": {"x": 1}, "severity": "Info"},
        Event(RECEIVED, "", tags=NO_MESSAGE, level="info", attributes={"level": {"x": 1}}),
        id="non-level-value-kept",
    ),
    pytest.param(
        {"level": "Verbose"},
        Event(RECEIVED, "", tags=NO_MESSAGE, level="verbose"),
        id="unknown-level-lowercased",
    ),
    pytest.param(
        {"tags": ["a", 1]},
        Event(RECEIVED, "", tags=NO_MESSAGE, attributes={"tags": ["a", 1]}),
        id="tags-not-all-strings-kept",
    ),
    pytest.param(
        {"service": {"type": "x"}, "host": "", "hostname": 5},
        Event(RECEIVED, "", tags=NO_MESSAGE, attributes={"service": {"type": "x"}, "host": "", "hostname": 5}),
        id="names-that-are-not-names-kept",
    ),
    pytest.param(
        {"env": "prod", "org": "acme", "index": "audit"},
        Event(RECEIVED, "", tags=NO_MESSAGE, attributes={"env": "prod", "org": "acme", "index": "audit"}),
        id="tenancy-never-from-the-record",
    ),
    pytest.param(
        {"n": 1, "f": 1.5, "big": 2**64, "neg": -3, "ok": True, "none": None, "deep": {"a": [1, {"b": 2.0}]}},
        Event(
            RECEIVED,
            "",
            tags=NO_MESSAGE,
            attributes={
                "n": 1,
                "f": 1.5,
                "big": 2**64,
                "neg": -3,
                "ok": True,
                "none": None,
                "deep": {"a": [1, {"b": 2.0}]},
            },
        ),
        id="attributes-verbatim",
    ),
    pytest.param({}, Event(RECEIVED, "", tags=NO_MESSAGE), id="empty"),
]


class TestNormalise:
    """Logstash, Beats, Fluent Bit and application spellings map onto one Event."""

    @pytest.mark.parametrize(("record", "expected"), NORMALISED)
    def test_maps_record(self, record: dict[str, Any], expected: Event) -> None:
        assert normalise(record, RECEIVED) == expected

    def test_numbers_stay_numbers(self) -> None:
        event = events_from_frame(b'{"status":200,"took":1.25,"ids":[1,2]}', RECEIVED)[0]
        assert event.attributes == {"status": 200, "took": 1.25, "ids": [1, 2]}
        assert type(event.attributes["status"]) is int

    def test_record_becomes_the_attributes(self) -> None:
        record: dict[str, Any] = {"message": "m", "extra": 1}
        assert normalise(record, RECEIVED).attributes is record


class TestEventsFromFrame:
    """A frame becomes events as Logstash's json codec would make them, and nothing is lost."""

    def test_object_is_one_event(self) -> None:
        frame = b'{"@timestamp":"2024-06-10T06:13:20Z","message":"hi","tags":["a"]}'
        assert events_from_frame(frame, RECEIVED) == [Event(T0, "hi", tags=["a"])]

    def test_array_is_one_event_per_element(self) -> None:
        frame = b'[{"message":"a"}, 5, "s", [1], null, {"msg":"b"}]'
        events = events_from_frame(frame, RECEIVED)
        assert [(e.message, e.tags) for e in events] == [
            ("a", []),
            ("5", [TAG_NOT_OBJECT]),
            ('"s"', [TAG_NOT_OBJECT]),
            ("[1]", [TAG_NOT_OBJECT]),
            ("null", [TAG_NOT_OBJECT]),
            ("b", []),
        ]

    @pytest.mark.parametrize(
        ("frame", "message"),
        [(b'"hello"', '"hello"'), (b" 42 ", "42"), (b"null", "null"), (b"true", "true")],
    )
    def test_scalar_is_not_an_object(self, frame: bytes, message: str) -> None:
        assert events_from_frame(frame, RECEIVED) == [Event(RECEIVED, message, tags=[TAG_NOT_OBJECT])]

    @pytest.mark.parametrize(
        ("frame", "message"),
        [
            (b"plain text line", "plain text line"),
            (b'{"a":1', '{"a":1'),
            (b'{"a":1}{"b":2}', '{"a":1}{"b":2}'),
            (b'{"a":1,}', '{"a":1,}'),
            (b'{"a":1e400}', '{"a":1e400}'),
            (b'{"a":"\\ud800"}', '{"a":"\\ud800"}'),
            (b'\xff\xfe{"a":1}', '\ufffd\ufffd{"a":1}'),
            (b"\x00\x01binary", "\x00\x01binary"),
            (b"NaN", "NaN"),
        ],
    )
    def test_unparsed_frame_is_kept_whole(self, frame: bytes, message: str) -> None:
        assert events_from_frame(frame, RECEIVED) == [Event(RECEIVED, message, tags=[TAG_JSON_PARSE_FAILURE])]

    @pytest.mark.parametrize("frame", [b"", b" ", b"\r\n\t ", b"[]"])
    def test_nothing_yields_no_event(self, frame: bytes) -> None:
        assert events_from_frame(frame, RECEIVED) == []

    @pytest.mark.parametrize(
        ("frame", "tags"),
        [
            (b'{"message":"cut', [TAG_JSON_PARSE_FAILURE, TAG_TRUNCATED]),
            (b'{"message":"whole","tags":["x"]}', ["x", TAG_TRUNCATED]),
            (b"[1]", [TAG_NOT_OBJECT, TAG_TRUNCATED]),
        ],
    )
    def test_truncated_frame_is_tagged(self, frame: bytes, tags: list[str]) -> None:
        assert [event.tags for event in events_from_frame(frame, RECEIVED, truncated=True)] == [tags]

    @pytest.mark.parametrize(
        "frame",
        [b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b"[" * 10_000],
    )
    def test_absurd_nesting_is_kept_as_text(self, frame: bytes) -> None:
        [event] = events_from_frame(frame, RECEIVED)
        assert event.tags == [TAG_JSON_PARSE_FAILURE]
        assert event.message == frame.decode()

    @pytest.mark.parametrize(("depth", "parsed"), [(MAX_NESTING, True), (MAX_NESTING + 1, False)])
    def test_nesting_limit(self, depth: int, parsed: bool) -> None:
        frame = msgspec.json.encode(nested(depth))
        [event] = events_from_frame(frame, RECEIVED)
        assert (event.attributes == nested(depth)) is parsed
        assert (event.tags == [TAG_JSON_PARSE_FAILURE]) is not parsed


class TestEventToJson:
    """The public JSON shape of an event carries both timestamp forms and the index only when set."""

    def test_shape(self) -> None:
        event = Event(
            T0 + 123_456_789,
            "m",
            level="info",
            service="s",
            host="h",
            env="production",
            org="acme",
            tags=["t"],
            attributes={"n": 1},
        )
        assert event_to_json(event) == {
            "timestamp": "2024-06-10T06:13:20.123456789Z",
            "timestamp_ns": T0 + 123_456_789,
            "message": "m",
            "level": "info",
            "service": "s",
            "host": "h",
            "env": "production",
            "org": "acme",
            "tags": ["t"],
            "attributes": {"n": 1},
        }

    @pytest.mark.parametrize(
        ("timestamp", "text"),
        [
            (0, "1970-01-01T00:00:00.000000000Z"),
            (-500_000_000, "1969-12-31T23:59:59.500000000Z"),
            (I64_MAX, "2262-04-11T23:47:16.854775807Z"),
            (-(2**63), "1677-09-21T00:12:43.145224192Z"),
        ],
    )
    def test_timestamp_text(self, timestamp: int, text: str) -> None:
        assert event_to_json(Event(timestamp, ""))["timestamp"] == text

    def test_index_only_when_routed(self) -> None:
        assert "index" not in event_to_json(Event(0, ""))
        assert event_to_json(Event(0, "", index="audit"))["index"] == "audit"

    def test_text_round_trips_through_parse_timestamp(self) -> None:
        rng = random.Random(3)
        for _ in range(1000):
            timestamp = rng.randrange(-(2**63), 2**63)
            text = event_to_json(Event(timestamp, ""))["timestamp"]
            assert parse_timestamp(text, RECEIVED) == timestamp, text


T_ISO = "2024-06-10T06:13:20"  # T0
SENDER_SHAPES = [
    pytest.param(
        {"@fields": {"levelname": "INFO", "logger": "app"}, "@message": "hello", "@source_host": "box",
         "@timestamp": T_ISO + ".123456", "@type": "logstash"},
        Event(T0 + 123_456_000, "hello", level="info", host="box", attributes={"logger": "app", "@type": "logstash"}),
        id="logstash-event-v0",
    ),
    pytest.param(
        {"version": "1.1", "host": "gw", "short_message": "m", "full_message": "f", "timestamp": 1718000000.5,
         "level": 3},
        Event(T0 + 500_000_000, "m", level="error", host="gw", attributes={"version": "1.1", "full_message": "f"}),
        id="gelf-as-json-lines",
    ),
    pytest.param(
        {"PROGRAM": "sshd", "PRIORITY": "info", "PID": "123", "MESSAGE": "Accepted key", "HOST": "h1",
         "ISODATE": T_ISO + "+00:00", "FACILITY": "auth"},
        Event(T0, "Accepted key", level="info", service="sshd", host="h1",
              attributes={"PID": "123", "FACILITY": "auth"}),
        id="syslog-ng-format-json",
    ),
    pytest.param(
        {"@timestamp": T_ISO + "Z", "data": {"msg": "wrapped", "meta": 1}, "level": "warn", "service": "api"},
        Event(T0, "wrapped", level="warn", service="api", attributes={"data": {"meta": 1}}),
        id="winston3-logstash-transport",
    ),
    pytest.param(
        {"msg": " Accepted publickey", "timereported": T_ISO + ".5+00:00", "hostname": "h2", "syslogtag": "sshd[7]:",
         "syslogseverity": "6", "programname": "sshd", "procid": "7"},
        Event(T0 + 500_000_000, "Accepted publickey", level="info", service="sshd", host="h2",
              attributes={"syslogtag": "sshd[7]:", "procid": "7"}),
        id="rsyslog-jsonmesg",
    ),
    pytest.param(
        {"@timestamp": T_ISO + "Z", "host": "h3", "level": "INFO", "logsource": "h3", "message": "m", "pid": 1,
         "program": "worker.py", "extra": {"logger_name": "jobs"}},
        Event(T0, "m", level="info", service="worker.py", host="h3",
              attributes={"logsource": "h3", "pid": 1, "extra": {"logger_name": "jobs"}}),
        id="python-logstash-async",
    ),
    pytest.param(
        {"asctime": "2024-06-10 06:13:20,123", "levelname": "WARNING", "name": "app", "message": "m"},
        Event(T0 + 123_000_000, "m", level="warn", attributes={"name": "app"}),
        id="python-json-logger",
    ),
    pytest.param(
        {"message": "m", "source_host": "h4"},
        Event(RECEIVED, "m", host="h4"),
        id="source-host",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("record", "expected"), SENDER_SHAPES)
def test_each_senders_shape_lands_on_the_canonical_fields(record: dict[str, Any], expected: Event) -> None:
    assert normalise(record, RECEIVED) == expected
