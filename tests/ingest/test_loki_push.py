"""Loki push: snappy protobuf as Promtail sends it, JSON from python-logging-loki, label mapping, bad input."""

from __future__ import annotations

import gzip
import logging
import random
import time
import urllib.request
import uuid
from typing import Any

import cramjam
import msgspec
import pytest
from logging_loki import LokiHandler

from logtraced.ingest.loki_push import LokiPush, decode_push, error_text, parse_selector, rejection_text
from logtraced.ingest.proto import push_pb2
from logtraced.ingest.rejection import BodyRejected
from tests.ingest.capture_server import Captured, Reply, capture_server

NOW = 1_700_000_000_000_000_000
LIMIT = 1 << 20
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def decode(body: bytes, content_type: str = PROTOBUF, **kwargs: Any) -> LokiPush:
    return decode_push(
        body,
        content_type,
        NOW,
        max_decompressed_bytes=kwargs.get("max_decompressed_bytes", LIMIT),
        max_events=kwargs.get("max_events", 1000),
    )


def promtail_body(*streams: tuple[str, list[tuple[int, str, dict[str, str]]]]) -> bytes:
    """A PushRequest as Promtail's client builds it: labels as selector text, snappy block-compressed."""
    request = push_pb2.PushRequest()
    for labels, entries in streams:
        stream = request.streams.add(labels=labels)
        for ns, line, metadata in entries:
            entry = stream.entries.add(line=line)
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(ns, 1_000_000_000)
            for name, value in metadata.items():
                entry.structuredMetadata.add(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def json_body(streams: list[dict[str, Any]]) -> bytes:
    return msgspec.json.encode({"streams": streams})


class TestPromtailProtobuf:
    """The binary form: labels parsed from selector text, timestamps to the nanosecond, structured metadata."""

    def test_entries_map_onto_events(self) -> None:
        body = promtail_body(
            (
                '{filename="/var/log/app.log", host="web-1", job="varlogs", level="WARNING"}',
                [
                    (1_714_557_600_123_456_789, "disk almost full", {"trace_id": "abc"}),
                    (1_714_557_601_000_000_000, '{"msg":"json stays text"}', {}),
                ],
            ),
            ('{service_name="checkout", detected_level="error"}', [(1, "boom", {})]),
        )
        push = decode(body)
        assert (push.refused, push.entries) == ([], 3)
        first, second, third = push.events
        assert (first.timestamp, first.message, first.level, first.service, first.host) == (
            1_714_557_600_123_456_789,
            "disk almost full",
            "warn",
            "varlogs",
            "web-1",
        )
        assert first.attributes == {"filename": "/var/log/app.log", "trace_id": "abc"}
        assert second.message == '{"msg":"json stays text"}' and second.attributes == {"filename": "/var/log/app.log"}
        assert (third.service, third.level, third.host, third.attributes) == ("checkout", "error", "", {})

    def test_no_content_type_is_protobuf_as_in_loki(self) -> None:
        assert len(decode(promtail_body(('{a="b"}', [(5, "x", {})])), "").events) == 1

    def test_escaped_label_values(self) -> None:
        body = promtail_body(('{path="C:\\\\logs\\\\a \\"b\\"", emoji="\\u00e9\\xc3\\xa9"}', [(5, "x", {})]))
        (event,) = decode(body).events
        assert event.attributes == {"path": 'C:\\logs\\a "b"', "emoji": "éé"}

    def test_bad_labels_refuse_only_their_stream(self) -> None:
        body = promtail_body(('{a="b", a="c"}', [(1, "x", {}), (2, "y", {})]), ('{ok="1"}', [(3, "z", {})]))
        push = decode(body)
        assert [e.message for e in push.events] == ["z"]
        assert len(push.refused) == 2 and "duplicate label name" in push.refused[0]
        text = error_text(push)
        assert text is not None and text.endswith("total ignored: 2 out of 3")

    def test_negative_timestamp_is_refused_alone(self) -> None:
        request = push_pb2.PushRequest()
        stream = request.streams.add(labels='{a="b"}')
        stream.entries.add(line="bad").timestamp.seconds = -5
        stream.entries.add(line="good").timestamp.seconds = 5
        push = decode(bytes(cramjam.snappy.compress_raw(request.SerializeToString())))
        assert [e.message for e in push.events] == ["good"] and len(push.refused) == 1

    def test_entry_without_timestamp_gets_the_received_time(self) -> None:
        request = push_pb2.PushRequest()
        request.streams.add(labels='{a="b"}').entries.add(line="no time")
        (event,) = decode(bytes(cramjam.snappy.compress_raw(request.SerializeToString()))).events
        assert event.timestamp == NOW


class TestSelector:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("{}", {}),
            ('{a="1"}', {"a": "1"}),
            (' { a = "1" , b="2", } ', {"a": "1", "b": "2"}),
            ('{a="x,y}z"}', {"a": "x,y}z"}),
            ('{a="\\n\\t\\101"}', {"a": "\n\tA"}),
        ],
    )
    def test_parses(self, text: str, expected: dict[str, str]) -> None:
        assert parse_selector(text) == expected

    @pytest.mark.parametrize("text", ['a="1"', "{a=1}", '{a="1" b="2"}', '{a!="1"}', '{a="\\q"}', '{a="1"', '{1a="x"}'])
    def test_refuses(self, text: str) -> None:
        assert isinstance(parse_selector(text), str)


class TestJson:
    """The JSON form, including what python-logging-loki's handler really POSTs."""

    def test_python_logging_loki_handler(self) -> None:
        with capture_server(lambda request: Reply(204)) as server:
            handler = LokiHandler(url=f"{server.url}/loki/api/v1/push", tags={"app": "billing"}, version="1")
            logger = logging.getLogger(f"test-loki-{uuid.uuid4().hex}")
            logger.propagate = False
            logger.addHandler(handler)
            try:
                logger.error("payment failed", extra={"tags": {"host": "pay-1"}})
            finally:
                logger.removeHandler(handler)
                handler.close()
        (request,) = server.requests
        assert request.path == "/loki/api/v1/push"
        push = decode(request.body, request.headers["content-type"])
        (event,) = push.events
        assert (event.message, event.level, event.service, event.host) == (
            "payment failed",
            "error",
            "billing",
            "pay-1",
        )
        assert event.attributes == {"logger": logger.name}
        assert abs(event.timestamp - time.time_ns()) < 60 * 10**9

    def test_values_with_structured_metadata(self) -> None:
        body = json_body(
            [
                {
                    "stream": {"job": "fluent-bit", "env": "prod"},
                    "values": [
                        ["1714557600000000001", '{"log":"x"}'],
                        ["1714557600000000002", "with meta", {"trace_id": "t1", "env": "meta-wins"}],
                    ],
                }
            ]
        )
        first, second = decode(body, JSON).events
        assert (first.timestamp, first.service, first.attributes) == (
            1_714_557_600_000_000_001,
            "fluent-bit",
            {"env": "prod"},
        )
        assert second.attributes == {"env": "meta-wins", "trace_id": "t1"}

    @pytest.mark.parametrize(
        "value",
        [
            [1714557600000000000, "number timestamp"],
            ["17145576e9", "not digits"],
            ["99999999999999999999", "out of range"],
            ["1", 5],
            ["1"],
            ["1", "x", {"k": 1}],
            ["1", "x", "meta"],
            "not an array",
        ],
    )
    def test_bad_value_is_refused_alone(self, value: object) -> None:
        body = json_body([{"stream": {"a": "b"}, "values": [value, ["7", "good"]]}])
        push = decode(body, JSON)
        assert [e.message for e in push.events] == ["good"] and len(push.refused) == 1

    def test_label_values_must_be_strings(self) -> None:
        push = decode(json_body([{"stream": {"a": 1}, "values": [["1", "x"]]}]), JSON)
        assert push.events == [] and len(push.refused) == 1

    @pytest.mark.parametrize(
        ("body", "cause"),
        [
            (b"{", "malformed_json"),
            (b"\xff\xfe", "malformed_json"),
            (b"[]", "invalid_body"),
            (b'{"streams": {}}', "invalid_body"),
            (b'{"streams": [{"stream": {}}]}', "invalid_body"),
            (b'{"streams": [5]}', "invalid_body"),
        ],
    )
    def test_whole_body_refusals(self, body: bytes, cause: str) -> None:
        with pytest.raises(BodyRejected) as caught:
            decode(body, JSON)
        assert (caught.value.cause, caught.value.http_status) == (cause, 400)
        assert rejection_text(caught.value).endswith("\n")


class TestBadBodies:
    def test_wrong_content_type(self) -> None:
        with pytest.raises(BodyRejected) as caught:
            decode(b"{}", "text/plain")
        assert (caught.value.cause, caught.value.http_status) == ("unsupported_content_type", 415)

    def test_snappy_bomb_is_refused_before_inflating(self) -> None:
        bomb = bytes(cramjam.snappy.compress_raw(b"\0" * (4 * LIMIT)))
        assert len(bomb) < LIMIT // 4
        with pytest.raises(BodyRejected) as caught:
            decode(bomb)
        assert (caught.value.cause, caught.value.http_status) == ("decompressed_too_large", 413)

    def test_huge_declared_length_on_a_tiny_body(self) -> None:
        with pytest.raises(BodyRejected) as caught:
            decode(b"\xff\xff\xff\xff\x0f" + b"\0" * 8)
        assert caught.value.cause == "decompressed_too_large"

    @pytest.mark.parametrize("body", [b"", b"\x80\x80\x80\x80\x80\x80", b"\x0aabc", gzip.compress(b"hello")])
    def test_not_snappy(self, body: bytes) -> None:
        with pytest.raises(BodyRejected) as caught:
            decode(body)
        assert caught.value.cause in {"malformed_snappy", "malformed_protobuf"}

    def test_truncated_protobuf(self) -> None:
        data = push_pb2.PushRequest(streams=[push_pb2.StreamAdapter(labels='{a="b"}')]).SerializeToString()
        with pytest.raises(BodyRejected) as caught:
            decode(bytes(cramjam.snappy.compress_raw(data[:-3])))
        assert caught.value.cause == "malformed_protobuf"

    def test_too_many_entries(self) -> None:
        body = promtail_body(('{a="b"}', [(n, "x", {}) for n in range(5)]))
        assert len(decode(body, max_events=5).events) == 5
        with pytest.raises(BodyRejected) as caught:
            decode(body, max_events=4)
        assert caught.value.cause == "too_many_events"

    def test_fuzz_gives_events_or_typed_errors(self) -> None:
        rng = random.Random(3100)
        valid = [
            promtail_body(('{job="x", level="info"}', [(1, "a", {"k": "v"}), (2, "b", {})])),
            json_body([{"stream": {"job": "x"}, "values": [["1", "a"], ["2", "b", {"k": "v"}]]}]),
        ]
        for round_number in range(3000):
            content_type = (PROTOBUF, JSON)[round_number % 2]
            if rng.random() < 0.3:
                body = rng.randbytes(rng.randrange(64))
            else:
                data = bytearray(valid[round_number % 2])
                for _ in range(rng.randrange(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                body = bytes(data)
            try:
                push = decode(body, content_type)
            except BodyRejected as rejected:
                assert rejected.cause.isidentifier() and rejected.cause.islower()
            else:
                assert len(push.events) + len(push.refused) == push.entries

    def test_fuzz_selectors(self) -> None:
        rng = random.Random(7)
        alphabet = '{}="\\,ab_1 \n\tuxU0'
        for _ in range(5000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(16)))
            assert isinstance(parse_selector(text), dict | str)


def test_capture_server_records_headers() -> None:
    """The capture server hands over headers lowercased, which the JSON test relies on."""

    def respond(request: Captured) -> Reply:
        return Reply(204)

    with capture_server(respond) as server:
        urllib.request.urlopen(urllib.request.Request(server.url, data=b"x", headers={"X-Test": "1"})).close()
    assert server.requests[0].headers["x-test"] == "1"
