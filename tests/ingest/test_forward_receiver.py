"""End-to-end tests of the forward listener: fluent-logger and Fluent Bit's frames over real sockets to the daemon.

What fluent-logger (PyPI) cannot send (PackedForward, CompressedPackedForward, `chunk`, the
shared-key handshake) is written here from the Forward protocol v1 specification, byte for
byte as Fluent Bit's out_forward writes it (forward.c, forward_format.c).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack  # fluent-logger's own dependency: a streaming reader of the replies
import msgspec
import pytest
from fluent import handler as fluent_handler
from fluent import sender as fluent_sender

from tests.api.conftest import mint_key
from tests.ingest.conftest import Running, closed_by_peer, marker, start_running

Ext = msgspec.msgpack.Ext
encode = msgspec.msgpack.encode
NOW_S = int(time.time()) - 600


def event_time(seconds: int, nanos: int) -> Ext:
    return Ext(0, struct.pack(">II", seconds, nanos))


def fluent_bit_request(tag: str, records: list[dict[str, Any]], *, compress: bool = False, nanos: int = 0) -> bytes:
    """A flush of Fluent Bit's forward output with `Require_ack_response true` (and `Compress gzip`).

    Entries are `[[EventTime, {metadata}], record]` (retain_metadata_in_forward_mode, on by default
    since v5.0.5), packed back to back; options carry `chunk` (base64 of the first 16 bytes of the
    payload's SHA-512), `size` and `fluent_signal`, and `compressed` when gzipped.
    """
    payload = b"".join(encode([[event_time(NOW_S + i, nanos + i), {}], record]) for i, record in enumerate(records))
    chunk = base64.b64encode(hashlib.sha512(payload).digest()[:16]).decode()
    options: dict[str, Any] = {"chunk": chunk, "size": len(records), "fluent_signal": 0}
    if compress:
        payload = gzip.compress(payload)
        options["compressed"] = "gzip"
    return encode([tag, payload, options])


class Replies:
    """The msgpack values the server writes on one connection (acks, HELO, PONG), read one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.unpacker = msgpack.Unpacker(raw=False)

    def next(self, timeout: float = 10.0) -> Any:
        self.sock.settimeout(timeout)
        for value in self.unpacker:
            return value
        while True:
            piece = self.sock.recv(65536)
            if not piece:
                raise ConnectionError("the server closed the connection")
            self.unpacker.feed(piece)
            for value in self.unpacker:
                return value


def read_msgpack(sock: socket.socket) -> Any:
    """One reply on a connection that gets only one at a time."""
    return Replies(sock).next()


class TestFluentLogger:
    """fluent-logger's FluentSender and FluentHandler (Message mode, EventTime) arrive with every field."""

    def test_sender_events_are_stored_with_their_fields_and_searchable(self, running: Running) -> None:
        mark = marker()
        port = running.port("forward")
        sender = fluent_sender.FluentSender("app", host="127.0.0.1", port=port, nanosecond_precision=True)
        try:
            assert sender.emit_with_time(
                "web",
                fluent_sender.EventTime(NOW_S, 123456789),
                {"message": f"{mark} payment failed", "level": "ERROR", "host": "web-07", "order": {"id": 42}},
            )
            assert sender.emit_with_time("web", NOW_S + 1, {"log": f"{mark} integer time", "service": "checkout"})
        finally:
            sender.close()
        events = {e.message: e for e in running.store.wait_for(2, field="message", term=mark)}
        failed = events[f"{mark} payment failed"]
        assert failed.timestamp == NOW_S * 10**9 + 123456789
        assert (failed.level, failed.service, failed.host) == ("error", "app.web", "web-07")
        assert failed.attributes.pop("source")["address"] == "127.0.0.1"  # the sender, kept on every stream event
        assert failed.attributes == {"order": {"id": 42}, "fluent.tag": "app.web"}
        assert (failed.org, failed.env) == ("default", "production")
        second = events[f"{mark} integer time"]
        assert (second.timestamp, second.service) == ((NOW_S + 1) * 10**9, "checkout")

        (shown,) = running.kql(f'"{mark}" and level:error and fluent.tag:"app.web" and order.id:42')
        assert shown["timestamp_ns"] == NOW_S * 10**9 + 123456789
        assert shown["service"] == "app.web"
        rows = running.pipeline({"$and": [{"$eq": ["service", "checkout"]}, {"$contains": ["body", mark]}]})
        assert rows == [[str((NOW_S + 1) * 10**9), f"{mark} integer time"]]

    def test_logging_handler(self, running: Running) -> None:
        mark = marker()
        handler = fluent_handler.FluentHandler("svc.log", host="127.0.0.1", port=running.port("forward"))
        handler.setFormatter(fluent_handler.FluentRecordFormatter({"level": "%(levelname)s", "where": "%(module)s"}))
        logger = logging.Logger("forward-e2e")
        logger.addHandler(handler)
        try:
            logger.warning({"message": f"{mark} from logging", "user": "ann"})
        finally:
            handler.close()
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert (event.level, event.service, event.attributes["user"]) == ("warn", "svc.log", "ann")


class TestFluentBitFrames:
    """PackedForward and CompressedPackedForward with `chunk`: acked only once durable, ack echoes the chunk."""

    @pytest.mark.parametrize("compress", [False, True], ids=["packed", "compressed"])
    def test_ack_echoes_the_chunk_and_the_events_land(self, running: Running, compress: bool) -> None:
        mark = marker()
        records = [{"log": f"{mark} line {i}", "stream": "stdout", "kubernetes": {"pod_name": f"web-{i % 3}"}}
                   for i in range(50)]  # fmt: skip
        request = fluent_bit_request("kube.var.log.containers.web", records, compress=compress, nanos=1000)
        with socket.create_connection(("127.0.0.1", running.port("forward"))) as sock:
            sock.sendall(request)
            ack = read_msgpack(sock)
        chunk = msgspec.msgpack.decode(request)[2]["chunk"]
        assert ack == {"ack": chunk}
        events = running.store.wait_for(50, field="message", term=mark)
        first = next(e for e in events if e.message == f"{mark} line 0")
        assert first.timestamp == NOW_S * 10**9 + 1000
        assert first.service == "kube.var.log.containers.web"
        assert first.attributes["kubernetes"] == {"pod_name": "web-0"}
        assert first.attributes["stream"] == "stdout"
        assert len(running.kql(f'"{mark}" and kubernetes.pod_name:"web-1"', count=17)) == 17

    def test_several_requests_are_acked_in_order(self, running: Running) -> None:
        mark = marker()
        requests = [fluent_bit_request("app", [{"log": f"{mark} r{n} e{i}"} for i in range(20)]) for n in range(5)]
        chunks = [msgspec.msgpack.decode(request)[2]["chunk"] for request in requests]
        with socket.create_connection(("127.0.0.1", running.port("forward"))) as sock:
            sock.sendall(b"".join(requests))
            replies = Replies(sock)
            acks = [replies.next()["ack"] for _ in requests]
        assert acks == chunks
        assert len(running.store.wait_for(100, field="message", term=mark)) == 100

    def test_forward_mode_without_chunk_gets_no_reply(self, running: Running) -> None:
        mark = marker()
        request = encode(["app", [[event_time(NOW_S, 5), {"message": f"{mark} forward mode"}]]])
        with socket.create_connection(("127.0.0.1", running.port("forward"))) as sock:
            sock.sendall(request)
            running.store.wait_for(1, field="message", term=mark)
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(10)

    def test_udp_heartbeat_is_answered(self, running: Running) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(b"\x00", ("127.0.0.1", running.port("forward_udp")))
            assert sock.recvfrom(16)[0] == b"\x00"
            sock.sendto(b"not a heartbeat", ("127.0.0.1", running.port("forward_udp")))
        running.wait_for_cause("forward_udp", "not_a_heartbeat")


class TestAckMeansDurable:
    """kill -9 right after an ack: after a restart on the same data directory, the acked events are there."""

    @pytest.mark.parametrize("compress", [False, True], ids=["packed", "compressed"])
    def test_acked_events_survive_kill_9(self, tmp_path: Path, compress: bool) -> None:
        data = tmp_path / "data"
        first = start_running(
            data, "--set", "index.commit_interval_ms=60000", "--set", "index.commit_quiet_ms=0"
        )  # nothing indexed before the kill
        mark = marker()
        try:
            request = fluent_bit_request("app", [{"log": f"{mark} e{i}"} for i in range(200)], compress=compress)
            with socket.create_connection(("127.0.0.1", first.port("forward"))) as sock:
                sock.sendall(request)
                assert "ack" in read_msgpack(sock)
                first.daemon.kill()
        finally:
            first.daemon.kill()
        second = start_running(data)
        try:
            events = second.store.wait_for(200, field="message", term=mark)
            assert sorted(e.message for e in events) == sorted(f"{mark} e{i}" for i in range(200))
        finally:
            second.daemon.kill()


def ping(helo: Any, shared_key: str, hostname: str = "fluent-bit-host") -> bytes:
    """The client's PING as Fluent Bit writes it: a 16-byte salt, sha512_hex(salt + hostname + nonce + key)."""
    salt = os.urandom(16)
    nonce = helo[1]["nonce"]
    digest = hashlib.sha512(salt + hostname.encode() + nonce + shared_key.encode()).hexdigest()
    return encode(["PING", hostname, salt, digest, "", ""])


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    keys = '[{key="acme-shared-secret", org="acme", environment="staging"}, {key="other-secret", org="globex"}]'
    started = start_running(
        tmp_path_factory.mktemp("forward-auth") / "data",
        "--set",
        "forward.require_shared_key=true",
        "--set",
        f"forward.shared_keys={keys}",
    )
    yield started
    started.daemon.kill()


class TestSharedKey:
    """forward.require_shared_key: HELO first, a PING with a configured key selects that key's tenant."""

    def test_the_right_key_selects_its_tenant(self, secured: Running) -> None:
        mark = marker()
        with socket.create_connection(("127.0.0.1", secured.port("forward"))) as sock:
            helo = read_msgpack(sock)
            assert helo[0] == "HELO" and len(helo[1]["nonce"]) == 16
            sock.sendall(ping(helo, "acme-shared-secret"))
            pong = read_msgpack(sock)
            assert pong[:4] == ["PONG", True, "", "logtraced"]
            request = fluent_bit_request("app", [{"log": f"{mark} authenticated"}])
            sock.sendall(request)
            assert "ack" in read_msgpack(sock)
        key = mint_key(secured.daemon.data_dir, "read:logs", org="acme", environment="staging")
        (event,) = secured.store.wait_for(1, tenant=key.tenant, field="message", term=mark)
        assert (event.org, event.env) == ("acme", "staging")
        assert secured.store.events(field="message", term=mark) == []  # not in the listener's own tenant
        assert [row["message"] for row in secured.kql(f'"{mark}"', key=key)] == [f"{mark} authenticated"]

    def test_a_wrong_key_gets_pong_false_and_the_connection_is_closed(self, secured: Running) -> None:
        mark = marker()
        with socket.create_connection(("127.0.0.1", secured.port("forward"))) as sock:
            helo = read_msgpack(sock)
            sock.sendall(ping(helo, "guessed") + fluent_bit_request("app", [{"log": f"{mark} refused"}]))
            pong = read_msgpack(sock)
            assert pong[:3] == ["PONG", False, "shared_key mismatch"]
            assert closed_by_peer(sock)
        secured.wait_for_cause("forward", "auth_failed")
        assert secured.store.events(field="message", term=mark) == []

    def test_data_without_a_handshake_is_refused(self, secured: Running) -> None:
        with socket.create_connection(("127.0.0.1", secured.port("forward"))) as sock:
            read_msgpack(sock)
            sock.sendall(fluent_bit_request("app", [{"log": "no ping"}]))
            assert read_msgpack(sock)[:3] == ["PONG", False, "invalid ping message"]
            assert closed_by_peer(sock)
        secured.wait_for_cause("forward", "handshake_failed")


class TestBadInput:
    """Bad input ends that connection only, counted per cause; requests before it are stored and acked."""

    def test_garbage_after_a_good_request_acks_the_good_one_then_closes(self, running: Running) -> None:
        mark = marker()
        before = running.counters("forward")["causes"].get("malformed_msgpack", 0)
        good = fluent_bit_request("app", [{"log": f"{mark} before garbage"}])
        with socket.create_connection(("127.0.0.1", running.port("forward"))) as sock:
            sock.sendall(good + b"\xc1 garbage")
            assert read_msgpack(sock) == {"ack": msgspec.msgpack.decode(good)[2]["chunk"]}
            assert closed_by_peer(sock)
        running.store.wait_for(1, field="message", term=mark)
        running.wait_for_cause("forward", "malformed_msgpack", before + 1)
        running.serving()

    @pytest.mark.parametrize(
        ("cause", "data"),
        [
            ("invalid_message", encode({"tag": "not an array"})),
            ("invalid_entry", encode(["app", [["not a time", {"log": "x"}]]])),
            ("unsupported_compression", encode(["app", b"\x00", {"compressed": "zstd"}])),
            ("malformed_gzip", encode(["app", b"not gzip", {"compressed": "gzip"}])),
        ],
    )
    def test_each_cause_is_counted(self, running: Running, cause: str, data: bytes) -> None:
        before = running.counters("forward")["causes"].get(cause, 0)
        with socket.create_connection(("127.0.0.1", running.port("forward"))) as sock:
            sock.sendall(data)
            assert closed_by_peer(sock)
        running.wait_for_cause("forward", cause, before + 1)
        running.serving()

    def test_a_request_cut_by_the_sender_is_counted_and_not_stored(self, running: Running) -> None:
        mark = marker()
        before = running.counters("forward")["causes"].get("incomplete_message", 0)
        request = fluent_bit_request("app", [{"log": f"{mark} cut"}])
        with socket.create_connection(("127.0.0.1", running.port("forward"))) as sock:
            sock.sendall(request[: len(request) // 2])
        running.wait_for_cause("forward", "incomplete_message", before + 1)
        assert running.store.events(field="message", term=mark) == []

    def test_decompression_bomb(self, tmp_path: Path) -> None:
        small = start_running(tmp_path / "data", "--set", "forward.max_decompressed_bytes=1048576")
        try:
            bomb = encode(["app", gzip.compress(b"\x00" * (8 << 20), 9), {"compressed": "gzip", "chunk": "c"}])
            with socket.create_connection(("127.0.0.1", small.port("forward"))) as sock:
                sock.sendall(bomb)
                assert closed_by_peer(sock)
            small.wait_for_cause("forward", "decompressed_too_large")
            small.serving()
        finally:
            small.daemon.kill()

    def test_health_reports_every_listener(self, running: Running) -> None:
        status, _, body = running.daemon.request("GET", "/v1/health", headers=running.key.bearer)
        assert status == 200
        assert set(body["protocols"]) >= {
            "tcp", "udp", "forward", "forward_udp", "beats", "syslog", "syslog_udp", "gelf", "gelf_udp"
        }  # fmt: skip
        forward = body["protocols"]["forward"]
        assert set(forward) == {
            "events", "bytes", "rejected", "causes", "truncated", "parse_failures", "flagged", "connections"
        }  # fmt: skip
        assert forward["rejected"] == sum(forward["causes"].values())
