"""GELF codec: real pygelf bytes over UDP and TCP, Docker-shaped payloads, chunking, bombs and fuzz."""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import socket
import threading
import time
import zlib
from typing import Any

import pytest
from pygelf import GelfTcpHandler, GelfUdpHandler

from logtraced.ingest.gelf import (
    TAG_NO_MESSAGE,
    ChunkAssembler,
    GelfError,
    GelfStream,
    decode_datagram,
    decode_payload,
)

NOW = 1_772_000_000 * 10**9
SECOND = 10**9


def chunks(payload: bytes, size: int, message_id: bytes = b"ABCDEFGH") -> list[bytes]:
    pieces = [payload[pos : pos + size] for pos in range(0, len(payload), size)]
    return [b"\x1e\x0f" + message_id + bytes((n, len(pieces))) + piece for n, piece in enumerate(pieces)]


def gelf_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"gelf-test-{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


# -- real client: pygelf -----------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_pygelf_udp_small_and_chunked(compress: bool) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        host, port = server.getsockname()
        handler = GelfUdpHandler(host, port, compress=compress, chunk_size=300, _service="checkout", _region="eu")
        logger = gelf_logger(handler)
        before = time.time_ns() // 1000 * 1000
        long_text = random.Random(1).randbytes(2500).hex()  # does not compress below one datagram
        logger.warning("payment %s refused", "p-17")
        logger.error(long_text)
        after = time.time_ns()
        handler.close()
        datagrams = []
        server.settimeout(0.5)
        try:
            while True:
                datagrams.append(server.recv(65536))
        except TimeoutError:
            pass
    assert len(datagrams) > 2, "the long message must have been chunked"
    assembler = ChunkAssembler()
    events = [decode_datagram(d, assembler, NOW, source=("127.0.0.1", 1)) for d in datagrams]
    whole = [event for event in events if event is not None]
    assert [(e.message, e.level, e.service, e.host, e.tags, e.attributes) for e in whole] == [
        ("payment p-17 refused", "warn", "checkout", socket.gethostname(), [], {"region": "eu"}),
        (long_text, "error", "checkout", socket.gethostname(), [], {"region": "eu"}),
    ]
    assert all(before <= e.timestamp <= after and e.timestamp % 1000 == 0 for e in whole)
    assert assembler.pending_messages == 0


def test_pygelf_timestamp_kept_to_the_microsecond() -> None:
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "m", None, None)
    record.created = 1700000000.123456
    payload = GelfUdpHandler("127.0.0.1", 9, compress=True).convert_record_to_gelf(record)
    event = decode_payload(payload, NOW)
    assert event.timestamp == 1_700_000_000_123_456_000


def test_pygelf_tcp_null_delimited_with_extra_fields() -> None:
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
        host, port = server.getsockname()
        handler = GelfTcpHandler(host, port, include_extra_fields=True, debug=True, _id="reserved")
        logger = gelf_logger(handler)
        logger.info("user %s logged in", "ada", extra={"user_id": 7})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("request failed")
        handler.close()
        reader.join(5)
    assert received.count(b"\x00") == 2
    stream = GelfStream(clock=lambda: NOW)
    events = []
    for pos in range(0, len(received), 13):  # any split of the stream
        events += stream.feed(bytes(received[pos : pos + 13]))
    events += stream.close()
    assert stream.take_failures() == {}
    first, second = events
    assert (first.message, first.level, first.host, first.service) == (
        "user ada logged in",
        "info",
        socket.gethostname(),
        "",
    )
    assert first.attributes["user_id"] == 7
    assert first.attributes["func"] == "test_pygelf_tcp_null_delimited_with_extra_fields"
    assert first.attributes["logger_name"] == logger.name
    assert "id" not in first.attributes and "gelf_id" not in first.attributes  # pygelf drops _id itself
    assert (second.message, second.level) == ("request failed", "error")
    assert "ValueError: boom" in second.attributes["full_message"]


# -- mapping -----------------------------------------------------------------------------------


def test_docker_gelf_driver_payload() -> None:
    # The fields the Docker gelf driver writes (docs: "GELF options" / the driver's GelfFields).
    payload = {
        "version": "1.1",
        "host": "docker-host-1",
        "short_message": "GET /healthz 200",
        "timestamp": 1771999999.5,
        "level": 6,
        "_command": "nginx -g daemon off;",
        "_container_id": "4c01db0b339c" + "0" * 52,
        "_container_name": "web_nginx_1",
        "_created": "2026-02-20T10:00:00.123456789Z",
        "_image_id": "sha256:" + "a" * 64,
        "_image_name": "nginx:1.27",
        "_tag": "4c01db0b339c",
        "_com.docker.compose.service": "web",
    }
    event = decode_payload(gzip.compress(json.dumps(payload).encode()), NOW)
    assert (event.timestamp, event.message, event.level, event.host, event.service, event.tags) == (
        1_771_999_999_500_000_000,
        "GET /healthz 200",
        "info",
        "docker-host-1",
        "4c01db0b339c",
        [],
    )
    assert event.attributes == {
        "command": "nginx -g daemon off;",
        "container_id": "4c01db0b339c" + "0" * 52,
        "container_name": "web_nginx_1",
        "created": "2026-02-20T10:00:00.123456789Z",
        "image_id": "sha256:" + "a" * 64,
        "image_name": "nginx:1.27",
        "tag": "4c01db0b339c",
        "com.docker.compose.service": "web",
    }
    assert event.env == event.org == event.index == "" and event.id == 0


@pytest.mark.parametrize(
    ("extra", "service"),
    [
        ({"_service": "api", "_tag": "t", "_container_name": "c"}, "api"),
        ({"_tag": "t", "_container_name": "c"}, "t"),
        ({"_container_name": "c"}, "c"),
        ({}, ""),
    ],
)
def test_service_precedence(extra: dict[str, str], service: str) -> None:
    event = decode_payload(json.dumps({"short_message": "m", **extra}).encode(), NOW)
    assert event.service == service
    assert "service" not in event.attributes


def test_missing_short_message_is_kept_and_tagged() -> None:
    with_full = decode_payload(b'{"version":"1.1","host":"h","full_message":"long text"}', NOW)
    bare = decode_payload(b'{"host":"h","_a":1}', NOW)
    assert (with_full.message, with_full.tags, with_full.attributes) == ("long text", [TAG_NO_MESSAGE], {})
    assert (bare.message, bare.tags, bare.attributes, bare.timestamp) == ("", [TAG_NO_MESSAGE], {"a": 1}, NOW)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1700000000, 1_700_000_000 * SECOND),
        (1700000000.000001, 1_700_000_000_000_001_000),
        ("1700000000.25", 1_700_000_000_250_000_000),
    ],
)
def test_timestamps(timestamp: object, expected: int) -> None:
    event = decode_payload(json.dumps({"short_message": "m", "timestamp": timestamp}).encode(), NOW)
    assert event.timestamp == expected and "timestamp" not in event.attributes


def test_unusable_timestamp_stays_as_an_attribute() -> None:
    event = decode_payload(b'{"short_message":"m","timestamp":"yesterday"}', NOW)
    assert (event.timestamp, event.attributes) == (NOW, {"timestamp": "yesterday"})


def test_reserved_id_is_renamed_and_other_fields_kept() -> None:
    event = decode_payload(b'{"short_message":"m","_id":"x","facility":"gelf-1.0","_nested":{"a":[1]}}', NOW)
    assert event.attributes == {"gelf_id": "x", "facility": "gelf-1.0", "nested": {"a": [1]}}


@pytest.mark.parametrize(("level", "canonical"), [(0, "fatal"), (3, "error"), (4, "warn"), (6, "info"), (7, "debug")])
def test_levels(level: int, canonical: str) -> None:
    assert decode_payload(json.dumps({"short_message": "m", "level": level}).encode(), NOW).level == canonical


# -- compression and errors --------------------------------------------------------------------


def test_zlib_and_gzip_and_plain_decode_alike() -> None:
    body = b'{"short_message":"same","host":"h"}'
    events = [decode_payload(p, NOW) for p in (body, zlib.compress(body), gzip.compress(body))]
    assert [(e.message, e.host) for e in events] == [("same", "h")] * 3


@pytest.mark.parametrize("compress", [zlib.compress, gzip.compress])
def test_decompression_bomb_is_refused(compress: Any) -> None:
    bomb = compress(b'{"short_message":"' + b"a" * 5_000_000 + b'"}')
    assert len(bomb) < 20_000
    with pytest.raises(GelfError) as caught:
        decode_payload(bomb, NOW, max_message_bytes=1 << 20)
    assert caught.value.cause == "decompressed_too_large"


@pytest.mark.parametrize(
    ("payload", "cause"),
    [
        (b"{not json", "malformed_json"),
        (b"[1,2]", "not_an_object"),
        (b"\x78\x9c garbage", "bad_compression"),
        (zlib.compress(b'{"short_message":"x"}')[:-6], "bad_compression"),
        (b"\x1f\x8b\x08\x00 nope", "bad_compression"),
        (b"\xff\xfe", "malformed_json"),
    ],
)
def test_bad_payloads_raise_their_cause(payload: bytes, cause: str) -> None:
    with pytest.raises(GelfError) as caught:
        decode_payload(payload, NOW)
    assert caught.value.cause == cause


# -- chunking ----------------------------------------------------------------------------------


def test_chunks_out_of_order_with_duplicates() -> None:
    text = random.Random(7).randbytes(1500).hex()
    payload = zlib.compress(json.dumps({"short_message": text, "_seq": 1}).encode())
    parts = chunks(payload, 100)
    assert len(parts) > 10
    # Last chunk first, the rest shuffled with five duplicates among them, the first chunk last.
    middle = parts[1:-1] + random.Random(12201).sample(parts[1:], 5)
    random.Random(3).shuffle(middle)
    arrival = [parts[-1], *middle, parts[0]]
    assembler = ChunkAssembler()
    results = [decode_datagram(part, assembler, NOW) for part in arrival]
    assert results[:-1] == [None] * (len(arrival) - 1)
    last = results[-1]
    assert last is not None and last.message == text and last.attributes == {"seq": 1}
    assert assembler.duplicates == 5
    assert (assembler.pending_messages, assembler.pending_bytes) == (0, 0)


def test_same_id_from_two_sources_does_not_mix() -> None:
    a, b = chunks(b'{"short_message":"from a"}', 10), chunks(b'{"short_message":"from b"}', 10)
    assembler = ChunkAssembler()
    out = []
    for part_a, part_b in zip(a, b, strict=True):
        out.append(decode_datagram(part_a, assembler, NOW, source="a"))
        out.append(decode_datagram(part_b, assembler, NOW, source="b"))
    assert [event.message for event in out if event is not None] == ["from a", "from b"]


def test_incomplete_message_expires_after_the_timeout() -> None:
    assembler = ChunkAssembler(timeout_ns=5 * SECOND)
    first, second = chunks(b'{"short_message":"late"}', 15)
    assert decode_datagram(first, assembler, NOW) is None
    assert assembler.expire(NOW + 4 * SECOND) == 0
    assert decode_datagram(second, assembler, NOW + 5 * SECOND) is None  # too late: starts over
    assert assembler.expired == 1
    assert assembler.pending_messages == 1


@pytest.mark.parametrize(
    ("chunk", "cause"),
    [
        (b"\x1e\x0fABCDEFGH\x00", "chunk_too_short"),
        (b"\x1e\x0fABCDEFGH\x00\x00body", "bad_chunk_count"),
        (b"\x1e\x0fABCDEFGH\x00\x81body", "bad_chunk_count"),
        (b"\x1e\x0fABCDEFGH\x05\x05body", "chunk_out_of_range"),
        (b"\x1e\x0fABCDEFGH\xff\x80body", "chunk_out_of_range"),
    ],
)
def test_bad_chunks_raise_their_cause(chunk: bytes, cause: str) -> None:
    with pytest.raises(GelfError) as caught:
        decode_datagram(chunk, ChunkAssembler(), NOW)
    assert caught.value.cause == cause


def test_count_changing_mid_message_drops_it() -> None:
    assembler = ChunkAssembler()
    decode_datagram(b"\x1e\x0fABCDEFGH\x00\x03abc", assembler, NOW)
    with pytest.raises(GelfError) as caught:
        decode_datagram(b"\x1e\x0fABCDEFGH\x01\x04abc", assembler, NOW)
    assert caught.value.cause == "chunk_count_mismatch"
    assert assembler.pending_messages == 0


def half(n: int, sequence: int, body: bytes) -> bytes:
    """Chunk `sequence` of 2 of message number n."""
    return b"\x1e\x0f" + b"id%06d" % n + bytes((sequence, 2)) + body


def test_pending_messages_are_bounded_oldest_evicted_first() -> None:
    assembler = ChunkAssembler(max_pending_messages=3)
    for n in range(5):
        assert decode_datagram(half(n, 0, b'{"short_message":'), assembler, NOW) is None
    assert (assembler.pending_messages, assembler.evicted) == (3, 2)
    newest = decode_datagram(half(4, 1, b'"newest"}'), assembler, NOW)
    assert newest is not None and newest.message == "newest"
    assert decode_datagram(half(0, 1, b'"oldest"}'), assembler, NOW) is None  # its first half is gone


def test_pending_bytes_are_bounded() -> None:
    assembler = ChunkAssembler(max_pending_bytes=120, max_message_bytes=100)
    for n in range(3):
        decode_datagram(half(n, 0, b"x" * 50), assembler, NOW)
    assert (assembler.pending_messages, assembler.pending_bytes, assembler.evicted) == (2, 100, 1)
    with pytest.raises(GelfError) as caught:
        decode_datagram(half(9, 0, b"z" * 101), assembler, NOW)
    assert caught.value.cause == "chunked_too_large"
    assert assembler.pending_bytes == 100


# -- TCP stream --------------------------------------------------------------------------------


def test_tcp_stream_counts_bad_frames_and_goes_on() -> None:
    stream = GelfStream(max_frame_bytes=64, clock=lambda: NOW)
    data = b'{"short_message":"a"}\x00{broken\x00' + b'{"short_message":"' + b"x" * 100 + b'"}\x00\n\x00[1]\x00'
    events = stream.feed(data) + stream.feed(b'{"short_message":"b"}\n') + stream.close()
    assert [event.message for event in events] == ["a", "b"]
    assert stream.take_failures() == {"malformed_json": 1, "frame_too_large": 1, "not_an_object": 1}
    assert stream.take_failures() == {}


# -- fuzz --------------------------------------------------------------------------------------


def test_fuzz_only_gelf_errors() -> None:
    rng = random.Random(0x1E0F)
    good = zlib.compress(b'{"short_message":"ok","_k":[1,{"a":null}],"level":"3","timestamp":1.5}')
    seeds = [good, gzip.compress(good), *chunks(good, 7), b'{"short_message":1}', os.urandom(40)]
    assembler = ChunkAssembler(max_pending_messages=20, timeout_ns=SECOND)
    stream = GelfStream(max_frame_bytes=200, clock=lambda: NOW)
    for step in range(4000):
        seed = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(4)):
            if seed:
                seed[rng.randrange(len(seed))] = rng.randrange(256)
        data = bytes(seed[: rng.randrange(len(seed) + 1)]) if rng.random() < 0.5 else bytes(seed)
        try:
            event = decode_datagram(data, assembler, NOW + step * 1000)
        except GelfError as error:
            assert error.cause.isidentifier()
        else:
            assert event is None or isinstance(event.message, str)
        stream.feed(data + (b"\x00" if rng.random() < 0.3 else b""))
    stream.close()
    assert all(cause.isidentifier() for cause in stream.take_failures())
