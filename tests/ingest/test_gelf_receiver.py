"""End-to-end tests of the GELF listeners: pygelf over UDP (chunked, compressed) and TCP, Docker payloads, bad input."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import socket
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from pygelf import GelfTcpHandler, GelfUdpHandler

from tests.harness import wait_until
from tests.ingest.conftest import Running, marker, start_running

MAX_MESSAGE_BYTES = 256 * 1024
NOW_S = int(time.time()) - 600


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    started = start_running(
        tmp_path_factory.mktemp("gelf") / "data",
        "--set",
        f"gelf.max_message_bytes={MAX_MESSAGE_BYTES}",
        "--set",
        "gelf.chunk_timeout_seconds=0.5",
    )
    yield started
    started.daemon.kill()


class Created(logging.Filter):
    """Remembers each record's `created`, the float pygelf sends as the GELF timestamp."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.times.append(record.created)
        return True


def log_with(handler: logging.Handler, *messages: tuple[int, str], **extra: Any) -> list[float]:
    created = Created()
    logger = logging.Logger(f"gelf-{marker()}")
    logger.addFilter(created)
    logger.addHandler(handler)
    try:
        for level, text in messages:
            logger.log(level, text, extra=extra)
    finally:
        handler.close()
    return created.times


def microseconds(created: float) -> int:
    """GELF's float seconds kept to the microsecond, as the listener stores them."""
    return round(created * 1_000_000) * 1000


class TestPygelf:
    """pygelf's handlers: UDP zlib-compressed (chunked when large) and uncompressed, TCP NUL-delimited."""

    @pytest.mark.parametrize("compress", [True, False], ids=["zlib", "plain"])
    def test_udp_handler(self, running: Running, compress: bool) -> None:
        mark = marker()
        handler = GelfUdpHandler(
            "127.0.0.1", running.port("gelf_udp"), compress=compress, _service="checkout", _region="eu-1"
        )
        (created,) = log_with(handler, (logging.ERROR, f"{mark} card declined"))
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.timestamp == microseconds(created)
        assert (event.message, event.level, event.service) == (f"{mark} card declined", "error", "checkout")
        assert event.host == socket.gethostname()
        assert event.attributes.pop("source")["address"] == "127.0.0.1"
        assert event.attributes == {"region": "eu-1"}
        assert [row["message"] for row in running.kql(f'"{mark}" and service:checkout and region:"eu-1"')] == [
            f"{mark} card declined"
        ]
        query = {"$and": [{"$eq": ["level", "error"]}, {"$contains": ["body", mark]}]}
        assert [row[1] for row in running.pipeline(query)] == [f"{mark} card declined"]

    def test_udp_message_larger_than_one_datagram_is_chunked_and_joined(self, running: Running) -> None:
        mark = marker()
        body = base64.b64encode(os.urandom(60_000)).decode()  # ~80 KB that zlib cannot shrink much
        handler = GelfUdpHandler("127.0.0.1", running.port("gelf_udp"), compress=True, chunk_size=1300)
        log_with(handler, (logging.WARNING, f"{mark} {body}"))
        assert len(zlib.compress(f"{mark} {body}".encode())) > 1300 * 40  # dozens of chunks
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.message == f"{mark} {body}"
        assert event.level == "warn"

    def test_tcp_handler_with_extra_fields(self, running: Running) -> None:
        mark = marker()
        handler = GelfTcpHandler(
            "127.0.0.1", running.port("gelf"), include_extra_fields=True, debug=True, _app="billing"
        )
        times = log_with(handler, (logging.INFO, f"{mark} first"), (logging.WARNING, f"{mark} second"), order_id=42)
        events = {e.message: e for e in running.store.wait_for(2, field="message", term=mark)}
        first = events[f"{mark} first"]
        assert first.timestamp == microseconds(times[0])
        assert (first.level, first.service) == ("info", "")
        assert first.attributes["app"] == "billing"
        assert first.attributes["order_id"] == 42
        assert first.attributes["func"] == "log_with"
        assert events[f"{mark} second"].level == "warn"
        assert len(running.kql(f'"{mark}" and order_id:42 and app:billing', count=2)) == 2


def docker_payload(mark: str, stream: str = "stdout") -> dict[str, Any]:
    """What Docker's gelf log driver sends for one line of a container's output (daemon/logger/gelf)."""
    return {
        "version": "1.1",
        "host": "docker-host-1",
        "short_message": f'{mark} 172.17.0.1 - - "GET / HTTP/1.1" 200 615',
        "timestamp": NOW_S + 0.123456,
        "level": 6 if stream == "stdout" else 3,
        "_command": "nginx -g daemon off;",
        "_container_id": "3f1a2b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708",
        "_container_name": "web",
        "_created": "2024-05-01T10:00:00.000000001Z",
        "_image_id": "sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6",
        "_image_name": "nginx:1.25",
        "_tag": "3f1a2b4c5d6e",
    }


class TestDockerPayloads:
    """Docker's gelf driver: gzip (its default) or zlib over UDP, plain over TCP; `_tag` becomes the service."""

    @pytest.mark.parametrize("compression", ["gzip", "zlib", "none"])
    def test_udp(self, running: Running, compression: str) -> None:
        mark = marker()
        data = json.dumps(docker_payload(mark)).encode()
        compressors = {"gzip": gzip.compress, "zlib": zlib.compress, "none": lambda raw: raw}
        running.daemon.send_udp(compressors[compression](data), "gelf_udp")
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.timestamp == NOW_S * 10**9 + 123456000
        assert (event.service, event.host, event.level) == ("3f1a2b4c5d6e", "docker-host-1", "info")
        assert event.attributes["container_name"] == "web"
        assert event.attributes["image_name"] == "nginx:1.25"
        assert event.attributes["tag"] == "3f1a2b4c5d6e"
        assert event.attributes["command"] == "nginx -g daemon off;"
        assert len(running.kql(f'"{mark}" and container_name:web and image_name:"nginx:1.25"')) == 1

    def test_tcp_stderr_line_without_tag_uses_the_container_name(self, running: Running) -> None:
        mark = marker()
        payload = docker_payload(mark, "stderr")
        del payload["_tag"]
        running.daemon.send_stream("gelf", json.dumps(payload).encode() + b"\x00")
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert (event.service, event.level) == ("web", "error")


class TestBadInput:
    """Datagrams and frames that yield no event are counted by cause; the connection and the daemon go on."""

    @pytest.mark.parametrize(
        ("cause", "datagram"),
        [
            ("malformed_json", b'{"short_message": '),
            ("not_an_object", b"[1, 2]"),
            ("bad_compression", b"\x1f\x8b\x08\x00not really gzip"),
            ("decompressed_too_large", gzip.compress(b" " * (2 * MAX_MESSAGE_BYTES))),
            ("chunk_too_short", b"\x1e\x0f\x00"),
            ("bad_chunk_count", b"\x1e\x0f" + b"12345678" + bytes([0, 200]) + b"x"),
        ],
    )
    def test_udp_causes(self, running: Running, cause: str, datagram: bytes) -> None:
        before = running.counters("gelf_udp")["causes"].get(cause, 0)
        running.daemon.send_udp(datagram, "gelf_udp")
        running.wait_for_cause("gelf_udp", cause, before + 1)

    def test_an_incomplete_chunked_message_expires_and_is_counted(self, running: Running) -> None:
        before = running.counters("gelf_udp")["causes"].get("chunked_message_expired", 0)
        first_of_three = b"\x1e\x0f" + os.urandom(8) + bytes([0, 3]) + b'{"short_message":'
        running.daemon.send_udp(first_of_three, "gelf_udp")
        running.wait_for_cause("gelf_udp", "chunked_message_expired", before + 1)

    def test_a_bad_tcp_frame_is_counted_and_the_next_frame_on_the_connection_is_stored(self, running: Running) -> None:
        mark = marker()
        before = running.counters("gelf")["causes"]
        frames = [
            b"not json",
            b'"a string"',
            b"{" + b" " * (MAX_MESSAGE_BYTES + 10) + b"}",
            json.dumps({"short_message": f"{mark} after the bad ones", "host": "h"}).encode(),
        ]
        running.daemon.send_stream("gelf", b"\x00".join(frames) + b"\x00")
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.host == "h"

        def counted() -> bool:
            causes = running.counters("gelf")["causes"]
            return all(
                causes.get(cause, 0) >= before.get(cause, 0) + 1
                for cause in ("malformed_json", "not_an_object", "frame_too_large")
            )

        wait_until(counted)
        running.serving()

    def test_a_payload_without_short_message_is_stored_tagged_and_counted(self, running: Running) -> None:
        mark = marker()
        before = running.counters("gelf_udp")["flagged"].get("missing_short_message", 0)
        running.daemon.send_udp(json.dumps({"full_message": f"{mark} only full", "host": "h"}).encode(), "gelf_udp")
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.tags == ["_nomessage"]
        running.wait_for_cause("gelf_udp", "missing_short_message", before + 1, key="flagged")
