"""Loki push end to end: snappy protobuf as Promtail sends it, JSON from python-logging-loki, tenants and bad bodies."""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from typing import Any

import cramjam
import logging_loki

from logtraced.ingest.proto import push_pb2
from tests.api.conftest import MAX_BODY_BYTES, Api, Key, marker
from tests.api.shippers import basic, declared_too_large, search

ROUTE = "/loki/api/v1/push"
PROTOBUF = "application/x-protobuf"


def promtail_body(streams: list[tuple[str, list[tuple[int, str, dict[str, str]]]]]) -> bytes:
    """A PushRequest from the vendored push.proto, snappy block-compressed, as Promtail's client builds it."""
    request = push_pb2.PushRequest()
    for labels, entries in streams:
        stream = request.streams.add(labels=labels)
        for ns, line, metadata in entries:
            entry = stream.entries.add(line=line)
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(ns, 1_000_000_000)
            for name, value in metadata.items():
                entry.structuredMetadata.add(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def push(
    api: Api, key: Key, raw: bytes, content_type: str = PROTOBUF, **headers: str
) -> tuple[int, dict[str, str], Any]:
    return api.request(
        "POST",
        ROUTE,
        raw=raw,
        headers={**basic(key), "Content-Type": content_type, "User-Agent": "promtail/3.0.0", **headers},
    )


class TestPromtail:
    """Snappy protobuf: labels onto canonical fields, structured metadata kept, searchable."""

    def test_protobuf_snappy_push(self, api: Api, writer: Key) -> None:
        word = marker()
        labels = '{job="varlogs", host="node-1", level="warn", filename="/var/log/syslog", team="core \\"sre\\""}'
        entries = [(1714564800_000000123 + i, f"disk {i} {word}", {"trace_id": f"t{i}"}) for i in range(4)]
        status, _, body = push(api, writer, promtail_body([(labels, entries)]))
        assert (status, body) == (204, "")
        events = api.store.wait_for(4, tenant=writer.tenant, field="message", term=word)
        event = next(e for e in events if e.message == f"disk 2 {word}")
        assert event.timestamp == 1714564800_000000125
        assert (event.service, event.host, event.level) == ("varlogs", "node-1", "warn")
        assert event.attributes == {"filename": "/var/log/syslog", "team": 'core "sre"', "trace_id": "t2"}
        found = search(api, writer, f'service:varlogs AND level:warn AND trace_id:t2 AND message:"{word}"', 1)
        assert found[0]["host"] == "node-1"

    def test_matching_tenant_header_is_accepted(self, api: Api, writer: Key) -> None:
        word = marker()
        raw = promtail_body([('{app="a"}', [(1714564800_000000000, word, {})])])
        assert push(api, writer, raw, **{"X-Scope-OrgID": writer.org})[0] == 204
        api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)

    def test_another_tenant_header_is_403_plain_text(self, api: Api, writer: Key) -> None:
        word = marker()
        raw = promtail_body([('{app="a"}', [(1714564800_000000000, word, {})])])
        status, headers, body = push(api, writer, raw, **{"X-Scope-OrgID": "someone-else"})
        assert status == 403 and headers["Content-Type"].startswith("text/plain")
        assert "someone-else" in body and "organisation" in body
        assert api.store.events(writer.tenant, field="message", term=word) == []


class TestPythonLoggingLoki:
    """JSON pushes from python-logging-loki's handler, with Basic auth carrying the key."""

    def test_logging_handler(self, api: Api, writer: Key) -> None:
        word = marker()
        handler = logging_loki.LokiHandler(
            url=api.daemon.url(ROUTE), tags={"application": "billing"}, auth=("loki", writer.secret), version="1"
        )
        failures: list[logging.LogRecord] = []
        handler.handleError = failures.append  # type: ignore[method-assign]
        logger = logging.getLogger("billing." + uuid.uuid4().hex)
        logger.propagate = False
        logger.addHandler(handler)
        logger.error("invoice %s failed %s", 42, word, extra={"tags": {"region": "eu-west"}})
        handler.close()
        assert failures == []
        (event,) = api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
        assert event.message == f"invoice 42 failed {word}"
        assert event.level == "error"
        assert event.attributes == {"application": "billing", "logger": logger.name, "region": "eu-west"}
        search(api, writer, f'level:error AND application:billing AND region:eu-west AND message:"{word}"', 1)

    def test_gzip_json_with_structured_metadata(self, api: Api, writer: Key) -> None:
        word = marker()
        body = {
            "streams": [
                {
                    "stream": {"service_name": "cart", "detected_level": "debug", "instance": "i-9"},
                    "values": [["1714564800000000000", f"added {word}", {"user": "u1"}]],
                }
            ]
        }
        raw = gzip.compress(json.dumps(body).encode())
        assert push(api, writer, raw, "application/json", **{"Content-Encoding": "gzip"})[0] == 204
        (event,) = api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
        assert (event.service, event.level, event.host, event.attributes) == ("cart", "debug", "i-9", {"user": "u1"})


class TestBadInput:
    """Plain-text errors with Loki's statuses; refused entries fail alone; the daemon keeps serving."""

    def test_bad_entries_fail_alone_with_400(self, api: Api, writer: Key) -> None:
        word = marker()
        body = {
            "streams": [
                {"stream": {"app": "a"}, "values": [["1714564800000000000", f"good {word}"], [1714564800, "number"]]},
                {"stream": {"app": "b"}, "values": [["1714564800000000001", f"also good {word}"]]},
            ]
        }
        status, _, text = push(api, writer, json.dumps(body).encode(), "application/json")
        assert status == 400
        assert "timestamp" in text and "total ignored: 1 out of 3" in text
        assert len(api.store.wait_for(2, tenant=writer.tenant, field="message", term=word)) == 2

    def test_whole_body_refusals(self, api: Api, writer: Key) -> None:
        bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 16  # declares 4 GiB after decompression
        cases = [
            (b"\x05garbage that is not snappy", PROTOBUF, 400, "snappy"),
            (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff not a protobuf")), PROTOBUF, 400, "PushRequest"),
            (bomb, PROTOBUF, 413, "decompresses"),
            (b"{not json", "application/json", 400, "JSON"),
            (b"hello", "text/plain", 415, "Content-Type"),
        ]
        for raw, content_type, expected, words in cases:
            status, headers, text = push(api, writer, raw, content_type)
            assert (status, headers["Content-Type"].split(";")[0]) == (expected, "text/plain"), words
            assert words in text
        word = marker()
        assert push(api, writer, promtail_body([('{app="a"}', [(1714564800_000000000, word, {})])]))[0] == 204

    def test_oversize_is_413_from_content_length_alone(self, api: Api, writer: Key) -> None:
        answer = declared_too_large(api, "POST", ROUTE, writer, MAX_BODY_BYTES + 1, PROTOBUF)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413") and b"exceeds" in body

    def test_wrong_method_is_plain_text(self, api: Api, writer: Key) -> None:
        status, headers, text = api.request("GET", ROUTE, key=writer)
        assert (status, headers["Content-Type"].split(";")[0]) == (405, "text/plain") and "GET" in text

    def test_credentials_and_scope(self, api: Api) -> None:
        raw = promtail_body([('{app="a"}', [(1714564800_000000000, "x", {})])])
        status, _, text = api.request("POST", ROUTE, raw=raw, headers={"Content-Type": PROTOBUF})
        assert status == 401 and text.startswith("send the credential")
        reader = api.create_key("read:logs")
        status, _, text = push(api, reader, raw)
        assert status == 403 and "write:logs" in text
