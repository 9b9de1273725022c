"""End-to-end tests of the Beats listener with the spec-written Lumberjack v2 client over real sockets to the daemon.

No Filebeat (or other Beat) binary can be installed on these machines, so the client in
tests/ingest/lumberjack_client.py, written from the lumberjack v2 specification (PROTOCOL.md of
logstash-input-beats) and go-lumber's frame layout, stands in for it: window frames, JSON data
frames plain or in one zlib compressed frame, ACKs read until the window's last sequence.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.ingest.conftest import Running, closed_by_peer, marker, start_running
from tests.ingest.lumberjack_client import (
    LumberjackClient,
    encode_window,
    json_frame,
    kv_frame,
    parse_acks,
    window_frame,
)

NOW_S = int(time.time()) - 600


def filebeat_event(mark: str, index: int, **extra: Any) -> dict[str, Any]:
    """An event as Filebeat 8 writes it to output.logstash (@timestamp always UTC with 3 decimals)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(NOW_S + index)) + f".{index % 1000:03d}Z"
    event = {
        "@timestamp": stamp,
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.13.4"},
        "message": f"{mark} GET /item/{index} 200",
        "log": {"offset": index * 100, "file": {"path": "/var/log/nginx/access.log"}, "level": "info"},
        "input": {"type": "filestream"},
        "host": {"name": "web-07", "os": {"family": "debian"}},
        "agent": {"type": "filebeat", "version": "8.13.4", "name": "web-07", "id": "a1b2"},
        "ecs": {"version": "8.0.0"},
    }
    event.update(extra)
    return event


class TestWindows:
    """Windows are ACKed with their last sequence number once durable, and every field lands."""

    @pytest.mark.parametrize("level", [0, 3], ids=["plain", "compressed"])
    def test_window_is_acked_with_its_last_sequence_and_stored(self, running: Running, level: int) -> None:
        mark = marker()
        client = LumberjackClient(("127.0.0.1", running.port("beats")), compression_level=level)
        try:
            client.send([filebeat_event(mark, i) for i in range(100)])
            assert client.await_ack(100) == 100
        finally:
            client.close()
        assert client.acks_seen[-1] == 100 and all(seq in (0, 100) for seq in client.acks_seen)
        events = running.store.wait_for(100, field="message", term=mark)
        first = next(e for e in events if e.message == f"{mark} GET /item/7 200")
        assert first.timestamp == (NOW_S + 7) * 10**9 + 7_000_000
        assert (first.host, first.level) == ("web-07", "info")
        assert first.attributes["log"]["file"] == {"path": "/var/log/nginx/access.log"}
        assert first.attributes["agent"]["type"] == "filebeat"
        assert "@metadata" not in first.attributes
        rows = running.kql(
            f'"{mark}" and log.file.path:"/var/log/nginx/access.log" and agent.version:"8.13.4"', count=100
        )
        assert len(rows) == 100
        stage = {"$and": [{"$eq": ["host", "web-07"]}, {"$contains": ["body", f"{mark} GET /item/42 "]}]}
        assert [row[1] for row in running.pipeline(stage)] == [f"{mark} GET /item/42 200"]

    def test_pipelined_windows_on_one_connection_are_acked_in_order(self, running: Running) -> None:
        """Filebeat's `pipelining: 2` sends the next window before the first one's ACK."""
        mark = marker()
        with socket.create_connection(("127.0.0.1", running.port("beats"))) as sock:
            sizes = [10, 3, 25]
            sock.sendall(b"".join(encode_window([filebeat_event(mark, i) for i in range(n)]) for n in sizes))
            acks: list[int] = []
            sock.settimeout(10)
            while [a for a in acks if a] != sizes:
                acks += parse_acks(sock.recv(6))
        assert [a for a in acks if a] == sizes
        assert len(running.store.wait_for(sum(sizes), field="message", term=mark)) == sum(sizes)

    def test_window_written_in_small_pieces(self, running: Running) -> None:
        mark = marker()
        client = LumberjackClient(("127.0.0.1", running.port("beats")))
        try:
            client.send([filebeat_event(mark, i) for i in range(20)], chunk_sizes=[1, 7, 100])
            assert client.await_ack(20) == 20
        finally:
            client.close()
        assert len(running.store.wait_for(20, field="message", term=mark)) == 20

    def test_v1_key_value_frames(self, running: Running) -> None:
        """logstash-forwarder's `1D` frames: `line` is the message."""
        mark = marker()
        with socket.create_connection(("127.0.0.1", running.port("beats"))) as sock:
            sock.sendall(window_frame(1, b"1") + kv_frame(1, {"line": f"{mark} forwarder", "file": "/var/log/x"}))
            sock.settimeout(10)
            data = b""
            while len(data) < 6:
                data += sock.recv(6)
            assert data == b"1A\x00\x00\x00\x01"
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.attributes["file"] == "/var/log/x"


class TestResend:
    """A window is written only when complete: a cut window stores nothing and its resend is stored once."""

    def test_window_cut_mid_way_is_not_stored_and_the_resend_is_stored_once(self, running: Running) -> None:
        mark = marker()
        before = running.counters("beats")["causes"].get("incomplete_window", 0)
        window = [filebeat_event(mark, i) for i in range(30)]
        data = encode_window(window, compression_level=0)
        with socket.create_connection(("127.0.0.1", running.port("beats"))) as sock:
            sock.sendall(data[: len(data) * 2 // 3])
        running.wait_for_cause("beats", "incomplete_window", before + 1)
        client = LumberjackClient(("127.0.0.1", running.port("beats")))
        sentinel = marker()
        try:
            client.send(window)
            assert client.await_ack(30) == 30
            client.send([filebeat_event(sentinel, 0)])
            assert client.await_ack(1) == 1
        finally:
            client.close()
        # The WAL is indexed in order: once the later sentinel is searchable, a duplicate would be too.
        running.store.wait_for(1, field="message", term=sentinel)
        events = running.store.events(field="message", term=mark)
        assert sorted(e.message for e in events) == sorted(e["message"] for e in window)

    def test_each_window_is_acked_once(self, running: Running) -> None:
        """A sender that gets its ACK never sees it twice, and the next window's ACK is its own."""
        mark = marker()
        client = LumberjackClient(("127.0.0.1", running.port("beats")), compression_level=0)
        try:
            for size in (5, 5, 8):
                client.send([filebeat_event(mark, i) for i in range(size)])
                assert client.await_ack(size) == size
            client.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                client.sock.recv(6)
        finally:
            client.close()
        assert [seq for seq in client.acks_seen if seq] == [5, 5, 8]
        assert len(running.store.wait_for(18, field="message", term=mark)) == 18


class TestBadInput:
    """Bad frames end that connection only, counted per cause; windows before them are stored and ACKed."""

    @pytest.mark.parametrize(
        ("cause", "data"),
        [
            ("unsupported_version", b"3W\x00\x00\x00\x01"),
            ("unknown_frame_type", b"2X\x00\x00\x00\x01"),
            ("data_outside_window", json_frame(1, b'{"message":"no window"}')),
            ("malformed_zlib", window_frame(1) + b"2C\x00\x00\x00\x05hello"),
            ("window_too_large", window_frame(10_000_000)),
        ],
    )
    def test_each_cause_is_counted_and_the_daemon_serves_on(self, running: Running, cause: str, data: bytes) -> None:
        before = running.counters("beats")["causes"].get(cause, 0)
        with socket.create_connection(("127.0.0.1", running.port("beats"))) as sock:
            sock.sendall(data)
            assert closed_by_peer(sock)
        running.wait_for_cause("beats", cause, before + 1)
        running.serving()

    def test_a_good_window_before_garbage_is_stored_and_acked(self, running: Running) -> None:
        mark = marker()
        with socket.create_connection(("127.0.0.1", running.port("beats"))) as sock:
            sock.sendall(encode_window([filebeat_event(mark, 0)]) + b"2Z garbage")
            sock.settimeout(10)
            data = b""
            while len(data) < 6:
                piece = sock.recv(6)
                assert piece, "closed before the ACK"
                data += piece
            assert parse_acks(data) == [1]
            assert closed_by_peer(sock)
        running.store.wait_for(1, field="message", term=mark)

    def test_bad_json_in_a_frame_is_stored_raw_and_counted(self, running: Running) -> None:
        mark = marker()
        before = running.counters("beats")["parse_failures"]
        client = LumberjackClient(("127.0.0.1", running.port("beats")), compression_level=0)
        try:
            client.sock.sendall(encode_window([f"{mark} not json {{".encode()], raw=True))
            assert client.await_ack(1) == 1
        finally:
            client.close()
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert "_jsonparsefailure" in event.tags
        assert running.counters("beats")["parse_failures"] == before + 1


def test_a_stalled_sender_and_a_decompression_bomb(tmp_path: Path) -> None:
    """A sender that stops mid-window is closed after beats.idle_timeout_seconds (nothing of the window is
    stored); a compressed frame inflating past beats.max_decompressed_bytes ends its connection."""
    limited = start_running(
        tmp_path / "data",
        "--set",
        "beats.idle_timeout_seconds=1",
        "--set",
        "beats.max_decompressed_bytes=1048576",
    )
    try:
        mark = marker()
        data = encode_window([filebeat_event(mark, i) for i in range(5)], compression_level=0)
        with socket.create_connection(("127.0.0.1", limited.port("beats"))) as sock:
            sock.sendall(data[: len(data) // 2])
            assert closed_by_peer(sock)  # by the idle timeout, not by this client
        limited.wait_for_cause("beats", "incomplete_window")
        assert limited.daemon.events_named("beats_idle_timeout")
        bomb = zlib.compress(json_frame(1, b'{"message":"' + b"x" * (4 << 20) + b'"}'), 9)
        with socket.create_connection(("127.0.0.1", limited.port("beats"))) as sock:
            sock.sendall(window_frame(1) + b"2C" + len(bomb).to_bytes(4, "big") + bomb)
            assert closed_by_peer(sock)
        limited.wait_for_cause("beats", "decompressed_too_large")
        limited.serving()
        assert limited.store.events(field="message", term=mark) == []
    finally:
        limited.daemon.kill()


def test_beats_over_tls(tmp_path: Path) -> None:
    """Filebeat `ssl.certificate_authorities`: the listener speaks TLS when beats.tls_* are set."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    tls = start_running(
        tmp_path / "data",
        "--set",
        f"beats.tls_cert_file={json.dumps(str(cert))}",
        "--set",
        f"beats.tls_key_file={json.dumps(str(key))}",
    )
    try:
        mark = marker()
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", tls.port("beats"))) as raw, context.wrap_socket(raw) as sock:
            sock.sendall(encode_window([filebeat_event(mark, i) for i in range(3)]))
            sock.settimeout(10)
            data = b""
            while not data.endswith(b"2A\x00\x00\x00\x03"):
                data += sock.recv(6)
        assert len(tls.store.wait_for(3, field="message", term=mark)) == 3
    finally:
        tls.daemon.kill()
