"""OTLP/HTTP logs: the OpenTelemetry SDK exporter's real POST, hand-written OTLP/JSON, mapping, replies, bad input."""

from __future__ import annotations

import base64
import gzip
import random
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from logtraced.ingest.otlp import (
    JSON_TYPE,
    PROTOBUF_TYPE,
    OtlpLogs,
    decode_logs,
    encode_response,
    encode_status,
    rejection_status,
    response_type,
    severity_level,
)
from logtraced.ingest.rejection import BodyRejected
from tests.ingest.capture_server import Captured, CaptureServer, Reply, capture_server

NOW = 1_700_000_000_000_000_000
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174


def decode(body: bytes, content_type: str = PROTOBUF_TYPE, max_events: int = 1000) -> OtlpLogs:
    return decode_logs(body, content_type, NOW, max_events=max_events)


def request_with(*records: dict[str, Any], resource: dict[str, Any] | None = None) -> bytes:
    """A protobuf ExportLogsServiceRequest holding `records` (LogRecord fields by name)."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in (resource or {}).items():
        resource_logs.resource.attributes.add(key=key).value.string_value = value
    scope_logs = resource_logs.scope_logs.add()
    for fields in records:
        scope_logs.log_records.add(**fields)
    return bytes(request.SerializeToString())


def length_delimited(field: int, payload: bytes) -> bytes:
    """A protobuf length-delimited field, encoded by hand."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def string_value(text: str) -> common_pb2.AnyValue:
    return common_pb2.AnyValue(string_value=text)


def reply_as_collector(request: Captured) -> Reply:
    content_type = request.headers["content-type"]
    logs = decode_logs(request.body, content_type, NOW, max_events=1000)
    return Reply(200, encode_response(logs, content_type), {"Content-Type": response_type(content_type)})


@pytest.fixture
def collector() -> Iterator[CaptureServer]:
    with capture_server(reply_as_collector) as server:
        yield server


class TestSdkExporter:
    """Records built with the OpenTelemetry SDK, sent by its OTLP/HTTP exporter to a local socket."""

    def emit_all(self, url: str) -> None:
        provider = LoggerProvider(
            resource=Resource.create(
                {"service.name": "checkout", "host.name": "web-7", "deployment.environment": "prod"}
            )
        )
        provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs")))
        logger = provider.get_logger("shop.payments", "1.2.3")
        span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1)))
        context = trace.set_span_in_context(span)
        bodies: list[Any] = [
            "card declined",
            42,
            2.5,
            True,
            {"order": {"id": 7}, "items": [1, 2]},
            ["a", 1],
            b"\x00\xff",
        ]
        for number, body in enumerate(bodies):
            logger.emit(
                timestamp=1_714_557_600_000_000_000 + number,
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body=body,
                attributes={"http.status_code": 402, "retry": False, "tags": ["x", "y"]},
                context=context,
            )
        provider.shutdown()

    def test_exporter_post_decodes_and_our_reply_is_accepted(self, collector: CaptureServer) -> None:
        self.emit_all(collector.url)
        assert {request.path for request in collector.requests} == {"/v1/logs"}
        assert collector.requests[0].headers["content-type"] == PROTOBUF_TYPE
        events = [event for request in collector.requests for event in decode(request.body).events]
        assert [event.message for event in events] == [
            "card declined",
            "42",
            "2.5",
            "true",
            '{"order":{"id":7},"items":[1,2]}',
            '["a",1]',
            base64.b64encode(b"\x00\xff").decode(),
        ]
        first = events[0]
        assert (first.timestamp, first.level, first.service, first.host) == (
            1_714_557_600_000_000_000,
            "error",
            "checkout",
            "web-7",
        )
        assert first.attributes["http.status_code"] == 402 and first.attributes["retry"] is False
        assert first.attributes["tags"] == ["x", "y"]
        assert first.attributes["trace_id"] == f"{TRACE_ID:032x}" and first.attributes["span_id"] == f"{SPAN_ID:016x}"
        assert first.attributes["trace_flags"] == 1
        assert first.attributes["scope"] == {"name": "shop.payments", "version": "1.2.3"}
        resource = first.attributes["resource"]
        assert resource["deployment.environment"] == "prod" and "service.name" not in resource
        assert "severity_text" not in first.attributes
        assert events[4].attributes["body"] == {"order": {"id": 7}, "items": [1, 2]}
        assert events[5].attributes["body"] == ["a", 1]
        assert "body" not in first.attributes


class TestMapping:
    @pytest.mark.parametrize("number", range(25))
    def test_every_severity_number(self, number: int) -> None:
        (event,) = decode(request_with({"severity_number": number, "body": string_value("m")})).events
        expected = ["", *[level for level in ("trace", "debug", "info", "warn", "error", "fatal") for _ in range(4)]]
        assert event.level == expected[number]

    @pytest.mark.parametrize(
        ("number", "text", "level"),
        [(0, "Warning", "warn"), (0, "", ""), (0, "NOTICE", "info"), (99, "fatal", "fatal"), (9, "whatever", "info")],
    )
    def test_severity_text_when_the_number_is_unset(self, number: int, text: str, level: str) -> None:
        assert severity_level(number, text) == level

    def test_severity_text_saying_more_than_the_level_is_kept(self) -> None:
        (event,) = decode(request_with({"severity_number": 10, "severity_text": "NOTICE"})).events
        (plain,) = decode(request_with({"severity_number": 9, "severity_text": "INFO"})).events
        assert event.attributes["severity_text"] == "NOTICE" and "severity_text" not in plain.attributes

    @pytest.mark.parametrize(
        ("body", "message", "kept"),
        [
            (common_pb2.AnyValue(), "", None),
            (common_pb2.AnyValue(string_value="s"), "s", None),
            (common_pb2.AnyValue(int_value=-3), "-3", None),
            (common_pb2.AnyValue(double_value=0.5), "0.5", None),
            (common_pb2.AnyValue(bool_value=False), "false", None),
            (common_pb2.AnyValue(bytes_value=b"hi"), "aGk=", None),
            (
                common_pb2.AnyValue(
                    array_value=common_pb2.ArrayValue(values=[string_value("a"), common_pb2.AnyValue()])
                ),
                '["a",null]',
                ["a", None],
            ),
            (
                common_pb2.AnyValue(
                    kvlist_value=common_pb2.KeyValueList(values=[common_pb2.KeyValue(key="k", value=string_value("v"))])
                ),
                '{"k":"v"}',
                {"k": "v"},
            ),
        ],
    )
    def test_every_body_type(self, body: common_pb2.AnyValue, message: str, kept: object) -> None:
        (event,) = decode(request_with({"body": body})).events
        assert event.message == message
        assert event.attributes.get("body") == kept

    def test_time_falls_back_to_observed_then_received(self) -> None:
        events = decode(
            request_with(
                {"time_unix_nano": 5, "observed_time_unix_nano": 6},
                {"observed_time_unix_nano": 6},
                {},
                {"time_unix_nano": 2**64 - 1, "observed_time_unix_nano": 7},
            )
        ).events
        assert [event.timestamp for event in events] == [5, 6, NOW, 7]

    def test_wrong_id_length_refuses_only_that_record(self) -> None:
        logs = decode(request_with({"trace_id": b"\x01" * 15}, {"span_id": b"\x01" * 9}, {"body": string_value("ok")}))
        assert [event.message for event in logs.events] == ["ok"]
        assert len(logs.refused) == 2 and "trace_id must be 16 bytes" in logs.refused[0]

    def test_all_zero_ids_are_absent(self) -> None:
        (event,) = decode(request_with({"trace_id": bytes(16), "span_id": bytes(8)})).events
        assert "trace_id" not in event.attributes and "span_id" not in event.attributes

    def test_unknown_protobuf_fields_are_ignored(self) -> None:
        unknown = b"\xf8\x06\x01"  # field 111, varint 1
        body = request_with({"body": string_value("m")}) + unknown
        assert [event.message for event in decode(body).events] == ["m"]

    def test_derived_keys_win_over_record_attributes(self) -> None:
        record = logs_service_pb2.ExportLogsServiceRequest()
        log = record.resource_logs.add().scope_logs.add().log_records.add(trace_id=bytes(range(16)))
        log.attributes.add(key="trace_id").value.string_value = "forged"
        (event,) = decode(record.SerializeToString()).events
        assert event.attributes["trace_id"] == bytes(range(16)).hex()


SPEC_JSON = {
    "resourceLogs": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "my.service"}},
                    {"key": "k8s.pod.uid", "value": {"stringValue": "abc"}},
                ]
            },
            "scopeLogs": [
                {
                    "scope": {
                        "name": "my.library",
                        "version": "1.0.0",
                        "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}],
                    },
                    "logRecords": [
                        {
                            "timeUnixNano": "1544712660300000000",
                            "observedTimeUnixNano": 1544712660300000001,
                            "severityNumber": 10,
                            "severityText": "Information",
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "body": {"stringValue": "Example log record"},
                            "attributes": [
                                {"key": "string.attribute", "value": {"stringValue": "some string"}},
                                {"key": "boolean.attribute", "value": {"boolValue": True}},
                                {"key": "int.attribute", "value": {"intValue": "10"}},
                                {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                                {
                                    "key": "array.attribute",
                                    "value": {
                                        "arrayValue": {"values": [{"stringValue": "many"}, {"stringValue": "values"}]}
                                    },
                                },
                                {
                                    "key": "map.attribute",
                                    "value": {
                                        "kvlistValue": {
                                            "values": [{"key": "some.map.key", "value": {"stringValue": "some value"}}]
                                        }
                                    },
                                },
                            ],
                            "someFutureField": {"ignored": True},
                        }
                    ],
                }
            ],
        }
    ]
}


class TestJson:
    """OTLP/JSON as the specification's example writes it: hex ids, lowerCamelCase, int64 as strings."""

    def test_specification_example(self) -> None:
        (event,) = decode(msgspec.json.encode(SPEC_JSON), JSON_TYPE).events
        assert (event.timestamp, event.message, event.level, event.service) == (
            1_544_712_660_300_000_000,
            "Example log record",
            "info",
            "my.service",
        )
        assert event.attributes["trace_id"] == "5b8efff798038103d269b633813fc60c"
        assert event.attributes["span_id"] == "eee19b7ec3c1b174"
        assert event.attributes["int.attribute"] == 10 and event.attributes["double.attribute"] == 637.704
        assert event.attributes["array.attribute"] == ["many", "values"]
        assert event.attributes["map.attribute"] == {"some.map.key": "some value"}
        assert event.attributes["resource"] == {"k8s.pod.uid": "abc"}
        assert event.attributes["scope"] == {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": {"my.scope.attribute": "some scope attribute"},
        }
        assert event.attributes["severity_text"] == "Information"

    def test_snake_case_names_and_enum_names_are_read_too(self) -> None:
        body = {
            "resource_logs": [
                {
                    "scope_logs": [
                        {
                            "log_records": [
                                {
                                    "severity_number": "SEVERITY_NUMBER_WARN",
                                    "trace_id": "00" * 15 + "01",
                                    "body": {"string_value": "m"},
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        (event,) = decode(msgspec.json.encode(body), JSON_TYPE).events
        assert (event.level, event.attributes["trace_id"]) == ("warn", "00" * 15 + "01")

    @pytest.mark.parametrize("bad_id", ["zz" * 16, "abc", 5, "5B8EFFF7 98038103D269B633813FC60C"])
    def test_bad_hex_refuses_only_that_record(self, bad_id: object) -> None:
        body = {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {"traceId": bad_id, "body": {"stringValue": "bad"}},
                                {"body": {"stringValue": "good"}},
                            ]
                        }
                    ]
                }
            ]
        }
        logs = decode(msgspec.json.encode(body), JSON_TYPE)
        assert [event.message for event in logs.events] == ["good"] and len(logs.refused) == 1

    def test_base64_ids_are_not_mistaken_for_hex(self) -> None:
        """Protobuf's canonical JSON would send base64; OTLP/JSON forbids it, so it is refused, never misread."""
        body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": base64.b64encode(bytes(16)).decode()}]}]}]}
        assert len(decode(msgspec.json.encode(body), JSON_TYPE).refused) == 1

    @pytest.mark.parametrize(
        ("body", "cause"),
        [
            (b"{", "malformed_json"),
            (b"[]", "invalid_body"),
            (b'{"resourceLogs": 5}', "invalid_body"),
            (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}', "invalid_body"),
            (
                b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": {"not": "a list"}}]}]}]}',
                "invalid_body",
            ),
        ],
    )
    def test_whole_body_refusals(self, body: bytes, cause: str) -> None:
        with pytest.raises(BodyRejected) as caught:
            decode(body, JSON_TYPE)
        assert (caught.value.cause, caught.value.http_status) == (cause, 400)

    def test_deep_nesting_is_refused_not_a_crash(self) -> None:
        value: dict[str, Any] = {"stringValue": "leaf"}
        for _ in range(300):
            value = {"arrayValue": {"values": [value]}}
        body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": value}]}]}]}
        with pytest.raises(BodyRejected) as caught:
            decode(msgspec.json.encode(body), JSON_TYPE)
        assert caught.value.cause == "invalid_body"


class TestReplies:
    def test_full_success_is_an_empty_response(self) -> None:
        logs = decode(request_with({}))
        assert encode_response(logs, PROTOBUF_TYPE) == b""
        assert encode_response(logs, JSON_TYPE) == b"{}"

    def test_partial_success_in_both_encodings(self) -> None:
        logs = decode(request_with({"trace_id": b"x"}, {}))
        parsed = logs_service_pb2.ExportLogsServiceResponse.FromString(encode_response(logs, PROTOBUF_TYPE))
        assert parsed.partial_success.rejected_log_records == 1
        assert "1 of 2" in parsed.partial_success.error_message
        as_json = msgspec.json.decode(encode_response(logs, "application/json; charset=utf-8"))
        assert as_json["partialSuccess"]["rejectedLogRecords"] in ("1", 1)
        again = json_format.Parse(encode_response(logs, JSON_TYPE), logs_service_pb2.ExportLogsServiceResponse())
        assert again == parsed

    def test_status_bodies(self) -> None:
        rejected = BodyRejected("malformed_protobuf", "the body is not valid")
        status = status_pb2.Status.FromString(rejection_status(rejected, PROTOBUF_TYPE))
        assert (status.code, status.message) == (3, "the body is not valid")
        assert msgspec.json.decode(encode_status(503, "later", JSON_TYPE)) == {"code": 14, "message": "later"}
        assert msgspec.json.decode(encode_status(418, "odd", "text/plain"))["code"] == 2
        assert response_type("application/x-protobuf") == PROTOBUF_TYPE and response_type("text/plain") == JSON_TYPE


class TestBadBodies:
    def test_wrong_content_type(self) -> None:
        with pytest.raises(BodyRejected) as caught:
            decode(b"", "application/x-www-form-urlencoded")
        assert (caught.value.cause, caught.value.http_status) == ("unsupported_content_type", 415)

    @pytest.mark.parametrize(
        "body", [b"\xff" * 20, gzip.compress(request_with({})), request_with({"body": string_value("x" * 50)})[:-4]]
    )
    def test_garbage_and_truncated_protobuf(self, body: bytes) -> None:
        with pytest.raises(BodyRejected) as caught:
            decode(body)
        assert caught.value.cause == "malformed_protobuf"

    def test_huge_declared_length_is_refused(self) -> None:
        body = b"\x0a\xff\xff\xff\xff\x0f" + b"\0" * 10  # resource_logs claiming 4 GiB
        with pytest.raises(BodyRejected) as caught:
            decode(body)
        assert caught.value.cause == "malformed_protobuf"

    def test_deeply_nested_protobuf(self) -> None:
        """Nesting past protobuf's depth limit, written by hand since the library refuses to build it."""
        value = string_value("leaf").SerializeToString()
        for _ in range(200):
            value = length_delimited(5, length_delimited(1, value))  # AnyValue.array_value.values
        record = length_delimited(5, value)  # LogRecord.body
        body = length_delimited(1, length_delimited(2, length_delimited(2, record)))
        with pytest.raises(BodyRejected) as caught:
            decode(body)
        assert caught.value.cause == "malformed_protobuf"

    def test_too_many_records(self) -> None:
        body = request_with(*[{}] * 5)
        assert len(decode(body, max_events=5).events) == 5
        with pytest.raises(BodyRejected) as caught:
            decode(body, max_events=4)
        assert caught.value.cause == "too_many_events"

    def test_fuzz(self) -> None:
        rng = random.Random(4318)
        valid = [
            request_with(
                {"body": string_value("a"), "severity_number": 9, "trace_id": bytes(range(16))},
                {"body": common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList())},
                resource={"service.name": "s"},
            ),
            msgspec.json.encode(SPEC_JSON),
        ]
        for round_number in range(3000):
            content_type = (PROTOBUF_TYPE, JSON_TYPE)[round_number % 2]
            if rng.random() < 0.3:
                body = rng.randbytes(rng.randrange(80))
            else:
                data = bytearray(valid[round_number % 2])
                for _ in range(rng.randrange(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                body = bytes(data)
            try:
                logs = decode(body, content_type)
            except BodyRejected as rejected:
                assert rejected.cause.isidentifier() and rejected.cause.islower()
            else:
                assert len(logs.events) + len(logs.refused) == logs.records
                encode_response(logs, content_type)
                for event in logs.events:
                    msgspec.json.encode(event)
