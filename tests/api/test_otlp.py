"""OTLP/HTTP logs end to end: the OpenTelemetry SDK's exporter (protobuf), OTLP/JSON, google.rpc.Status errors."""

from __future__ import annotations

import gzip
import json
import logging
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tests.api.conftest import MAX_BODY_BYTES, Api, Key, marker
from tests.api.shippers import declared_too_large, search

ROUTE = "/v1/logs"
PROTOBUF = "application/x-protobuf"
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


class RecordingExporter(OTLPLogExporter):
    """The SDK's own HTTP exporter, keeping each export's result so a test can see it succeed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results: list[LogRecordExportResult] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = super().export(batch)
        self.results.append(result)
        return result


def sdk_logger(api: Api, key: Key, resource: dict[str, Any]) -> tuple[logging.Logger, RecordingExporter]:
    """A Python logger wired to the daemon through the SDK's LoggingHandler and protobuf OTLP/HTTP exporter."""
    exporter = RecordingExporter(endpoint=api.daemon.url(ROUTE), headers={"Authorization": f"Bearer {key.secret}"})
    provider = LoggerProvider(resource=Resource.create(resource))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with warnings.catch_warnings():
        # The SDK's handler is deprecated in favour of a separate instrumentation package; it still
        # is what most applications run, and the wire is the same.
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=provider)
    logger = logging.getLogger("otlp." + uuid.uuid4().hex)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger, exporter


def export(
    api: Api, key: Key | None, raw: bytes, content_type: str = "application/json", **headers: str
) -> tuple[int, dict[str, str], Any]:
    return api.request("POST", ROUTE, key=key, raw=raw, headers={"Content-Type": content_type, **headers})


def export_protobuf(api: Api, key: Key, raw: bytes) -> tuple[int, str, bytes]:
    """POST a protobuf body; the answer's status, Content-Type and raw bytes (protobuf is not text)."""
    headers = {**key.bearer, "Content-Type": PROTOBUF}
    request = urllib.request.Request(api.daemon.url(ROUTE), data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def json_request(*records: dict[str, Any], resource: dict[str, Any] | None = None) -> bytes:
    attributes = [{"key": k, "value": {"stringValue": v}} for k, v in (resource or {"service.name": "svc"}).items()]
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": attributes},
                "scopeLogs": [{"scope": {"name": "io.example", "version": "1.2"}, "logRecords": list(records)}],
                "someFutureField": {"ignored": True},
            }
        ]
    }
    return json.dumps(body).encode()


class TestSdkExporter:
    """The OpenTelemetry Python SDK's LoggingHandler and protobuf exporter, unchanged, against the daemon."""

    def test_records_land_with_every_mapped_field(self, api: Api, writer: Key) -> None:
        word = marker()
        logger, exporter = sdk_logger(
            api, writer, {"service.name": "checkout", "host.name": "pod-3", "deployment.environment": "prod"}
        )
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("pay") as span:
            logger.warning("card declined %s", word, extra={"user.id": 42, "retry": True})
        logger.debug("detail %s", word)
        assert exporter.results == [LogRecordExportResult.SUCCESS] * 2
        events = api.store.wait_for(2, tenant=writer.tenant, field="message", term=word)
        event = next(e for e in events if e.message.startswith("card declined"))
        context = span.get_span_context()
        assert (event.service, event.host, event.level) == ("checkout", "pod-3", "warn")
        assert event.attributes["trace_id"] == format(context.trace_id, "032x")
        assert event.attributes["span_id"] == format(context.span_id, "016x")
        assert event.attributes["user.id"] == 42 and event.attributes["retry"] is True
        assert event.attributes["resource"]["deployment.environment"] == "prod"
        assert event.attributes["scope"]["name"] == logger.name
        assert {e.level for e in events} == {"warn", "debug"}
        found = search(api, writer, f"service:checkout AND level:warn AND trace_id:{event.attributes['trace_id']}", 1)
        assert found[0]["message"] == f"card declined {word}"

    def test_wrong_key_fails_the_export(self, api: Api) -> None:
        logger, exporter = sdk_logger(api, Key("lt_live_" + "0" * 32, "", "", ""), {"service.name": "x"})
        logger.error("refused")
        assert exporter.results == [LogRecordExportResult.FAILURE]


class TestOtlpJson:
    """OTLP/JSON: hex ids, camelCase, any body type, severity text only, unknown fields ignored."""

    def test_json_records(self, api: Api, writer: Key) -> None:
        word = marker()
        raw = json_request(
            {
                "timeUnixNano": "1714564800000000007",
                "severityNumber": 17,
                "body": {"stringValue": f"boom {word}"},
                "traceId": TRACE_ID,
                "spanId": SPAN_ID,
                "attributes": [{"key": "http.status", "value": {"intValue": "503"}}],
                "unknownField": 1,
            },
            {
                "observedTimeUnixNano": "1714564800000000008",
                "severityText": "WARN",
                "body": {"kvlistValue": {"values": [{"key": "op", "value": {"stringValue": word}}]}},
            },
            {
                "timeUnixNano": "1714564800000000009",
                "body": {"intValue": "12"},
                "attributes": [{"key": "tag", "value": {"stringValue": word}}],
            },
            resource={"service.name": "gateway", "host.name": "gw-1"},
        )
        status, headers, body = export(api, writer, gzip.compress(raw), **{"Content-Encoding": "gzip"})
        assert (status, headers["Content-Type"], body) == (200, "application/json", {})
        first, second = api.store.wait_for(2, tenant=writer.tenant, field="message", term=word)
        by_time = {e.timestamp: e for e in (first, second)}
        boom = by_time[1714564800000000007]
        assert (boom.level, boom.service, boom.host) == ("error", "gateway", "gw-1")
        assert (boom.attributes["trace_id"], boom.attributes["span_id"]) == (TRACE_ID, SPAN_ID)
        assert boom.attributes["http.status"] == 503
        assert boom.attributes["scope"] == {"name": "io.example", "version": "1.2"}
        structured = by_time[1714564800000000008]
        assert structured.level == "warn" and structured.attributes["body"] == {"op": word}
        (number,) = api.store.wait_for(1, tenant=writer.tenant, field="tag", term=word)
        assert number.message == "12"
        search(api, writer, f"service:gateway AND level:error AND trace_id:{TRACE_ID}", 1)

    def test_partial_success_counts_refused_records(self, api: Api, writer: Key) -> None:
        word = marker()
        raw = json_request(
            {"body": {"stringValue": f"kept {word}"}},
            {"body": {"stringValue": "bad id"}, "traceId": "abcd"},
        )
        status, _, body = export(api, writer, raw)
        assert status == 200 and body["partialSuccess"]["rejectedLogRecords"] == "1"
        assert "trace_id" in body["partialSuccess"]["errorMessage"]
        api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)

    def test_protobuf_request_gets_a_protobuf_answer(self, api: Api, writer: Key) -> None:
        request = logs_service_pb2.ExportLogsServiceRequest()
        record = request.resource_logs.add().scope_logs.add().log_records.add()
        record.body.string_value = marker()
        status, content_type, body = export_protobuf(api, writer, request.SerializeToString())
        assert (status, content_type) == (200, PROTOBUF)
        answer = logs_service_pb2.ExportLogsServiceResponse()
        answer.ParseFromString(body)
        assert not answer.HasField("partial_success")


class TestErrors:
    """Every failure is a google.rpc.Status in the request's encoding, with its HTTP status."""

    def test_garbage_protobuf(self, api: Api, writer: Key) -> None:
        status, content_type, body = export_protobuf(api, writer, b"\xff\xff\xff\xff garbage")
        assert (status, content_type) == (400, PROTOBUF)
        rpc = status_pb2.Status()
        rpc.ParseFromString(body)
        assert rpc.code == 3 and "ExportLogsServiceRequest" in rpc.message

    def test_json_failures(self, api: Api, writer: Key) -> None:
        reader = api.create_key("read:logs")
        cases = [
            (writer, b"{nope", "application/json", 400, 3),
            (writer, b"hello", "text/plain", 415, 3),
            (None, json_request(), "application/json", 401, 16),
            (reader, json_request(), "application/json", 403, 7),
        ]
        for key, raw, content_type, expected, code in cases:
            status, headers, body = export(api, key, raw, content_type)
            assert (status, headers["Content-Type"], body["code"]) == (expected, "application/json", code), raw
            assert body["message"]

    def test_wrong_method_is_a_status_too(self, api: Api, writer: Key) -> None:
        status, headers, body = api.request("GET", ROUTE, key=writer, headers={"Content-Type": "application/json"})
        assert (status, headers["Content-Type"], body["code"], headers["Allow"]) == (
            405,
            "application/json",
            12,
            "POST",
        )
        put = urllib.request.Request(
            api.daemon.url(ROUTE), data=b"", method="PUT", headers={**writer.bearer, "Content-Type": PROTOBUF}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(put, timeout=30)
        rpc = status_pb2.Status()
        rpc.ParseFromString(refused.value.read())
        assert (refused.value.code, refused.value.headers["Content-Type"], rpc.code) == (405, PROTOBUF, 12)
        assert "PUT" in rpc.message

    def test_oversize_is_413_from_content_length_alone(self, api: Api, writer: Key) -> None:
        answer = declared_too_large(api, "POST", ROUTE, writer, MAX_BODY_BYTES + 1, "application/json")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413")
        assert json.loads(body)["code"] == 8

    def test_gzip_bomb_and_the_daemon_keeps_serving(self, api: Api, writer: Key) -> None:
        bomb = gzip.compress(b" " * (MAX_BODY_BYTES + 1024))
        status, _, body = export(api, writer, bomb, **{"Content-Encoding": "gzip"})
        assert (status, body["code"]) == (413, 8)
        word = marker()
        assert export(api, writer, json_request({"body": {"stringValue": word}}))[0] == 200
        api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
