"""POST /v1/logs/ingest end to end: shapes from each sender, limits, bad bodies, environments, slow clients."""

from __future__ import annotations

import http.client
import json
import socket
import time
import zlib
from typing import Any

from logtraced.model import Tenant
from tests.api.conftest import CLIENT_TIMEOUT_SECONDS, MAX_BODY_BYTES, Api, Key, gzipped, marker


def events(word: str, count: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"message": f"{word} event {i}", "seq": i, **fields} for i in range(count)]


MISSING_MESSAGE = "missing required field `message` (also looked for msg, log, body)"


class TestAccepted:
    """A valid batch is acknowledged with 202 once durable, and becomes searchable with its fields."""

    def test_batch_answer_and_stored_fields(self, api: Api, writer: Key) -> None:
        word = marker()
        batch = {
            "logs": [
                {
                    "@timestamp": "2024-03-15T10:22:01.123456789Z",
                    "level": "WARNING",
                    "message": f"disk almost full {word}",
                    "service": "storage",
                    "host": {"name": "node-7"},
                    "tags": ["disk"],
                    "free_bytes": 1024,
                }
            ]
        }
        status, headers, body = api.ingest(writer, batch)
        assert status == 202
        assert body["accepted"] == 1 and body["status"] == "queued" and body["overflow"] is False
        assert body["request_id"].startswith("req_") and headers["X-Request-Id"] == body["request_id"]
        (event,) = api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
        assert event.timestamp == 1710498121123456789
        assert (event.level, event.service, event.host, event.tags) == ("warn", "storage", "node-7", ["disk"])
        assert event.attributes == {"free_bytes": 1024}

    def test_missing_fields_take_their_defaults(self, api: Api, writer: Key) -> None:
        word = marker()
        before = time.time_ns()
        assert api.ingest(writer, {"logs": [{"message": word}]})[0] == 202
        (event,) = api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
        assert before <= event.timestamp <= time.time_ns()
        assert (event.level, event.service, event.host, event.tags, event.attributes) == ("", "", "", [], {})

    def test_exactly_the_batch_limit_of_5000(self, api: Api, writer: Key) -> None:
        word = marker()
        status, _, body = api.ingest(writer, {"logs": events(word, 5000)})
        assert (status, body["accepted"]) == (202, 5000)
        assert len(api.store.wait_for(5000, tenant=writer.tenant, field="message", term=word)) == 5000

    def test_gzip_body(self, api: Api, writer: Key) -> None:
        word = marker()
        status, _, body = api.ingest(
            writer, raw=gzipped({"logs": events(word, 100)}), headers={"Content-Encoding": "gzip"}
        )
        assert (status, body["accepted"]) == (202, 100)
        api.store.wait_for(100, tenant=writer.tenant, field="message", term=word)

    def test_deflate_body(self, api: Api, writer: Key) -> None:
        word = marker()
        raw = zlib.compress(json.dumps({"logs": events(word, 3)}).encode())
        assert api.ingest(writer, raw=raw, headers={"Content-Encoding": "deflate"})[0] == 202
        api.store.wait_for(3, tenant=writer.tenant, field="message", term=word)

    def test_events_naming_the_keys_own_environment(self, api: Api, writer: Key) -> None:
        word = marker()
        batch = {"logs": [{"message": word, "env": "production"}, {"message": word, "environment": "production"}]}
        assert api.ingest(writer, batch)[0] == 202
        api.store.wait_for(2, tenant=writer.tenant, field="message", term=word)

    def test_empty_batch_is_a_no_op(self, api: Api, writer: Key) -> None:
        status, _, body = api.ingest(writer, {"logs": []})
        assert (status, body["accepted"]) == (202, 0)


class TestExpired:
    """An event already past retention is durable and acknowledged, and the answer says it will not be searchable."""

    def test_expired_events_are_counted_in_the_answer(self, api: Api, writer: Key) -> None:
        batch = {"logs": [{"message": "long ago", "timestamp": "1900-01-01T00:00:00Z"}, {"message": "now"}]}
        status, _, body = api.ingest(writer, batch)
        assert (status, body["accepted"], body["expired"]) == (202, 2, 1)


class TestSenderShapes:
    """What the Logstash and Fluent Bit http outputs send arrives as events."""

    def test_logstash_http_json_one_object_per_request(self, api: Api, writer: Key) -> None:
        word = marker()
        event = {
            "@timestamp": "2024-03-15T10:22:01.200000Z",
            "@version": "1",
            "message": f"GET /index {word}",
            "host": {"name": "web-1"},
            "tags": ["nginx"],
        }
        assert api.ingest(writer, event)[0] == 202
        (stored,) = api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
        assert (stored.timestamp, stored.host, stored.tags) == (1710498121200000000, "web-1", ["nginx"])
        assert stored.attributes == {"@version": "1"}

    def test_logstash_http_json_batch_gzipped(self, api: Api, writer: Key) -> None:
        """format => json_batch with http_compression => true: a gzipped array."""
        word = marker()
        batch = [
            {"@timestamp": "2024-03-15T10:22:01.000Z", "@version": "1", "message": f"{word} {i}"} for i in range(125)
        ]
        status, _, body = api.ingest(writer, raw=gzipped(batch), headers={"Content-Encoding": "gzip"})
        assert (status, body["accepted"]) == (202, 125)
        api.store.wait_for(125, tenant=writer.tenant, field="message", term=word)

    def test_fluent_bit_http_json_array_with_float_date(self, api: Api, writer: Key) -> None:
        word = marker()
        records = [
            {"date": 1718000000.123456, "log": f"{word} started", "stream": "stdout"},
            {"date": 1718000001.5, "log": f"{word} ready", "stream": "stdout"},
        ]
        assert api.ingest(writer, records)[0] == 202
        stored = api.store.wait_for(2, tenant=writer.tenant, field="message", term=word)
        assert sorted(event.timestamp for event in stored) == [1718000000123456000, 1718000001500000000]
        assert {event.message for event in stored} == {f"{word} started", f"{word} ready"}
        assert all(event.attributes == {"stream": "stdout"} for event in stored)

    def test_fluent_bit_http_json_lines(self, api: Api, writer: Key) -> None:
        word = marker()
        lines = [{"date": 1718000000.25 + i, "log": f"{word} line {i}"} for i in range(3)]
        raw = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        status, _, body = api.ingest(writer, raw=raw, headers={"Content-Type": "application/x-ndjson"})
        assert (status, body["accepted"]) == (202, 3)
        api.store.wait_for(3, tenant=writer.tenant, field="message", term=word)

    def test_fluent_bit_http_json_stream(self, api: Api, writer: Key) -> None:
        """Format json_stream: objects back to back on application/json, split as the TCP port splits them."""
        word = marker()
        raw = b"".join(json.dumps({"date": 1718000000.5 + i, "log": f"{word} s{i}"}).encode() for i in range(4))
        status, _, body = api.ingest(writer, raw=raw, headers={"Content-Type": "application/json"})
        assert (status, body["accepted"]) == (202, 4)
        stored = api.store.wait_for(4, tenant=writer.tenant, field="message", term=word)
        assert sorted(event.message for event in stored) == [f"{word} s{i}" for i in range(4)]

    def test_json_stream_with_a_broken_object_is_refused_whole(self, api: Api, writer: Key) -> None:
        raw = b'{"message": "ok"}{"message": "cut'
        status, _, body = api.ingest(writer, raw=raw, headers={"Content-Type": "application/json"})
        assert (status, body["error"]["code"]) == (400, "malformed_json")

    def test_ndjson_with_crlf_and_blank_lines(self, api: Api, writer: Key) -> None:
        word = marker()
        raw = f'{{"message": "{word} a"}}\r\n\r\n{{"message": "{word} b"}}\r\n'.encode()
        status, _, body = api.ingest(writer, raw=raw, headers={"Content-Type": "application/x-ndjson"})
        assert (status, body["accepted"]) == (202, 2)


class TestRefused:
    """A refused batch stores nothing, and the error says why in the one envelope."""

    def test_5001_events_are_too_many(self, api: Api, writer: Key) -> None:
        word = marker()
        status, _, body = api.ingest(writer, {"logs": events(word, 5001)})
        assert status == 400
        assert body["error"]["code"] == "too_many_events"
        assert "5000" in body["error"]["message"]

    def test_5001_ndjson_lines_are_too_many(self, api: Api, writer: Key) -> None:
        raw = b"".join(json.dumps(event).encode() + b"\n" for event in events(marker(), 5001))
        status, _, body = api.ingest(writer, raw=raw, headers={"Content-Type": "application/x-ndjson"})
        assert (status, body["error"]["code"]) == (400, "too_many_events")

    def test_malformed_json_reports_the_position(self, api: Api, writer: Key) -> None:
        raw = b'{"logs":[{"message":"a"},]}'
        status, _, body = api.ingest(writer, raw=raw)
        assert (status, body["error"]["code"]) == (400, "malformed_json")
        assert body["error"]["details"] == {"position": 25}
        assert "byte 25" in body["error"]["message"]

    def test_truncated_json(self, api: Api, writer: Key) -> None:
        raw = b'{"logs":[{"message":"a"}'
        status, _, body = api.ingest(writer, raw=raw)
        assert (status, body["error"]["code"]) == (400, "malformed_json")
        assert "truncated" in body["error"]["message"]
        assert body["error"]["details"] == {"position": len(raw)}

    def test_malformed_ndjson_line_position_counts_from_the_body_start(self, api: Api, writer: Key) -> None:
        raw = b'{"message":"ok"}\n{"message": oops}\n'
        status, _, body = api.ingest(writer, raw=raw, headers={"Content-Type": "application/x-ndjson"})
        assert (status, body["error"]["code"]) == (400, "malformed_json")
        assert body["error"]["details"] == {"position": 17 + 12}

    def test_one_missing_message_is_named_in_the_message(self, api: Api, writer: Key) -> None:
        status, _, body = api.ingest(writer, {"logs": [{"message": "fine"}, {"level": "error"}]})
        assert (status, body["error"]["code"]) == (400, "invalid_events")
        assert "event 1: missing required field `message`" in body["error"]["message"]

    def test_invalid_events_are_listed_and_nothing_is_stored(self, api: Api, writer: Key) -> None:
        word = marker()
        batch = {"logs": [{"message": word}, {"level": "info"}, "text", {"message": 42}, {"message": ""}]}
        status, _, body = api.ingest(writer, batch)
        assert (status, body["error"]["code"]) == (400, "invalid_events")
        assert body["error"]["details"] == [
            {"index": 1, "field": "message", "problem": MISSING_MESSAGE},
            {"index": 2, "field": None, "problem": "an event must be a JSON object, got string"},
            {"index": 3, "field": "message", "problem": "must be a string, got number"},
            {"index": 4, "field": "message", "problem": MISSING_MESSAGE},
        ]
        assert body["error"]["message"] == (
            "4 of 5 events are invalid; nothing was stored (event 1: missing required field `message` "
            "(also looked for msg, log, body))"
        )
        assert api.ingest(writer, {"logs": [{"message": f"{word} later"}]})[0] == 202
        api.store.wait_for(1, tenant=writer.tenant, field="message", term="later")
        assert [event.message for event in api.store.events(writer.tenant, field="message", term=word)] == [
            f"{word} later"
        ]

    def test_at_most_ten_problems_are_detailed(self, api: Api, writer: Key) -> None:
        status, _, body = api.ingest(writer, {"logs": [{"level": "info"}] * 25})
        assert status == 400
        assert len(body["error"]["details"]) == 10
        assert body["error"]["message"].startswith("25 of 25 events are invalid")

    def test_top_level_scalar(self, api: Api, writer: Key) -> None:
        status, _, body = api.ingest(writer, raw=b'"just a string"')
        assert (status, body["error"]["code"]) == (400, "invalid_body")

    def test_wrong_content_types(self, api: Api, writer: Key) -> None:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/msgpack"):
            status, _, body = api.ingest(writer, {"logs": []}, headers={"Content-Type": content_type})
            assert (status, body["error"]["code"]) == (415, "unsupported_media_type"), content_type

    def test_unsupported_content_encoding(self, api: Api, writer: Key) -> None:
        status, _, body = api.ingest(writer, raw=b"xx", headers={"Content-Encoding": "snappy"})
        assert (status, body["error"]["code"]) == (415, "unsupported_media_type")

    def test_corrupt_gzip(self, api: Api, writer: Key) -> None:
        raw = gzipped({"logs": []})[:10] + b"garbage" * 10
        status, _, body = api.ingest(writer, raw=raw, headers={"Content-Encoding": "gzip"})
        assert (status, body["error"]["code"]) == (400, "malformed_body")

    def test_corrupt_gzip_announces_the_close_and_the_next_request_works(self, api: Api, writer: Key) -> None:
        """A body that fails to inflate cannot be skipped to find the next request: say so, then close."""
        raw = gzipped({"logs": []})[:10] + b"garbage" * 10
        connection = http.client.HTTPConnection("127.0.0.1", api.daemon.http_port, timeout=10)
        headers = {**writer.bearer, "Content-Type": "application/json", "Content-Encoding": "gzip"}
        connection.request("POST", "/v1/logs/ingest", body=raw, headers=headers)
        response = connection.getresponse()
        assert (response.status, response.getheader("Connection")) == (400, "close")
        response.read()
        connection.request("POST", "/v1/logs/ingest", body=json.dumps({"logs": [{"message": "next"}]}), headers={
            **writer.bearer, "Content-Type": "application/json"})  # fmt: skip
        assert connection.getresponse().status == 202
        connection.close()

    def test_body_nested_too_deeply(self, api: Api, writer: Key) -> None:
        raw = b'{"logs": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
        status, _, body = api.ingest(writer, raw=raw)
        assert (status, body["error"]["code"]) == (400, "malformed_json")
        assert "nested too deeply" in body["error"]["message"]
        assert api.ingest(writer, {"logs": [{"message": "still serving"}]})[0] == 202

    def test_body_over_the_limit(self, api: Api, writer: Key) -> None:
        raw = json.dumps({"logs": [{"message": "x" * (MAX_BODY_BYTES + 10)}]}).encode()
        status, _, body = api.ingest(writer, raw=raw)
        assert (status, body["error"]["code"]) == (413, "payload_too_large")

    def test_chunked_body_over_the_limit(self, api: Api, writer: Key) -> None:
        """No Content-Length to refuse up front: the count while reading stops it."""

        def chunks() -> Any:
            yield b'{"logs":[{"message":"'
            for _ in range(MAX_BODY_BYTES // 65536 + 2):
                yield b"x" * 65536
            yield b'"}]}'

        status, _, body = api.ingest(writer, raw=chunks(), headers={"Transfer-Encoding": "chunked"})
        assert (status, body["error"]["code"]) == (413, "payload_too_large")

    def test_gzip_bomb_stops_at_the_limit(self, api: Api, writer: Key) -> None:
        """1 MB on the wire that inflates to 1 GiB: refused at 4 MiB, the daemon's memory stays small."""
        squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [squeeze.compress(b'{"logs":[{"message":"')]
        zeros = b"0" * (1 << 20)
        parts += [squeeze.compress(zeros) for _ in range(1024)]
        parts.append(squeeze.flush())
        bomb = b"".join(parts)
        assert len(bomb) < 2 * 1024 * 1024
        status, _, body = api.ingest(writer, raw=bomb, headers={"Content-Encoding": "gzip"})
        assert (status, body["error"]["code"]) == (413, "payload_too_large")
        assert api.daemon.process is not None
        assert _peak_resident_bytes(api.daemon.process.pid) < 512 * 1024 * 1024


class TestEnvironments:
    """A key writes only into its own environment."""

    def test_event_naming_another_environment_refuses_the_batch(self, api: Api, writer: Key) -> None:
        word = marker()
        batch = {"logs": [{"message": word}, {"message": word, "env": "staging"}]}
        status, _, body = api.ingest(writer, batch)
        assert (status, body["error"]["code"]) == (403, "cross_environment")
        assert body["error"]["details"] == [
            {"index": 1, "field": "env", "problem": "names environment 'staging' but this key belongs to 'production'"}
        ]

    def test_environment_spelling_is_checked_too(self, api: Api, writer: Key) -> None:
        status, _, body = api.ingest(writer, [{"message": "x", "environment": "development"}])
        assert (status, body["error"]["code"]) == (403, "cross_environment")

    def test_environment_header_and_parameter(self, api: Api, writer: Key) -> None:
        header = {"X-LogTrace-Environment": "staging"}
        assert api.ingest(writer, {"logs": []}, headers=header)[0] == 403
        status, _, body = api.request("POST", "/v1/logs/ingest?env=development", key=writer, body={"logs": []})
        assert (status, body["error"]["code"]) == (403, "cross_environment")
        assert api.ingest(writer, {"logs": []}, headers={"X-LogTrace-Environment": "production"})[0] == 202

    def test_staging_key_stores_into_staging(self, api: Api) -> None:
        key = api.create_key("write:logs", environment="staging")
        word = marker()
        assert api.ingest(key, {"logs": [{"message": word, "env": "staging"}]})[0] == 202
        (event,) = api.store.wait_for(1, tenant=key.tenant, field="message", term=word)
        assert event.env == "staging"
        assert api.store.events(Tenant(key.org, "production"), field="message", term=word) == []


class TestSlowClients:
    """A sender that stalls is timed out without holding up anyone else."""

    def test_stalled_body_gets_408_while_others_are_served(self, api: Api, writer: Key) -> None:
        with socket.create_connection(("127.0.0.1", api.daemon.http_port)) as sock:
            sock.sendall(
                b"POST /v1/logs/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {writer.secret}\r\nContent-Length: 1000\r\n\r\n".encode()
                + b'{"logs":['
            )
            started = time.monotonic()
            assert api.request("GET", "/v1/health", key=writer)[0] == 200
            sock.settimeout(CLIENT_TIMEOUT_SECONDS + 10)
            answer = sock.recv(65536)
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408")
        assert b'"request_timeout"' in answer
        assert CLIENT_TIMEOUT_SECONDS - 0.5 <= waited <= CLIENT_TIMEOUT_SECONDS + 5

    def test_trickled_headers_are_cut_off(self, api: Api) -> None:
        """A sender that never finishes its request headers is disconnected after the client timeout."""
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", api.daemon.http_port)) as sock:
            sock.sendall(b"POST /v1/logs/ingest HTTP/1.1\r\nHost: x\r\n")
            try:
                while time.monotonic() - started < CLIENT_TIMEOUT_SECONDS + 10:
                    sock.sendall(b"X-Slow: 1\r\n")
                    time.sleep(0.2)
            except OSError:
                pass
        assert time.monotonic() - started <= CLIENT_TIMEOUT_SECONDS + 5

    def test_silent_connection_is_closed(self, api: Api) -> None:
        with socket.create_connection(("127.0.0.1", api.daemon.http_port)) as sock:
            sock.settimeout(CLIENT_TIMEOUT_SECONDS + 10)
            started = time.monotonic()
            assert sock.recv(1024) == b""
        assert time.monotonic() - started <= CLIENT_TIMEOUT_SECONDS + 5


def _peak_resident_bytes(pid: int) -> int:
    """The most memory the process ever had resident (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
