"""End-to-end tests of the TCP and UDP receivers against the real daemon: shipper shapes, real clients, load."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from pathlib import Path

import logstash  # python-logstash, the PyPI Logstash handler
import pytest

from tests.conftest import Store
from tests.harness import DaemonProcess, wait_until


def _unique() -> str:
    return uuid.uuid4().hex[:12]


def _recent_iso(ns: int) -> str:
    """An ISO-8601 timestamp with nanoseconds for `ns` (recent, so retention keeps it)."""
    seconds, fraction = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


RECENT_NS = (time.time_ns() // 10**9 - 3600) * 10**9 + 123456789
RECENT_S = RECENT_NS // 10**9


class TestShipperShapes:
    """Each shipper's wire shape round-trips into the store with its fields."""

    def test_logstash_json_lines_with_ecs_host(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        line = {
            "@timestamp": _recent_iso(RECENT_NS),
            "@version": "1",
            "message": f"Connection timeout on db-primary-03 {marker}",
            "host": {"name": "web-07", "ip": ["10.0.0.7"]},
            "log": {"level": "ERROR"},
            "service": {"name": "payment-gateway"},
            "tags": ["beats"],
            "http": {"status": 504},
        }
        daemon.send_tcp(json.dumps(line).encode() + b"\n")
        (event,) = store.wait_for(1, field="message", term=marker)
        assert event.timestamp == RECENT_NS
        assert (event.level, event.host, event.service) == ("error", "web-07", "payment-gateway")
        assert event.attributes["http"] == {"status": 504}
        assert event.tags == ["beats"]
        assert (event.org, event.env) == ("default", "production")

    def test_logstash_json_codec_back_to_back_objects(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        payload = b"".join(
            json.dumps({"@timestamp": _recent_iso(RECENT_NS), "message": f"{marker} n{i}", "host": "h"}).encode()
            for i in range(50)
        )
        daemon.send_tcp(payload)
        events = store.wait_for(50, field="message", term=marker)
        assert sorted(e.message for e in events) == sorted(f"{marker} n{i}" for i in range(50))

    def test_fluent_bit_json_lines_with_epoch_float_date(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        lines = [
            json.dumps({"date": RECENT_S + 0.123456, "log": f"{marker} from fluent", "level": "warning"}),
            json.dumps({"date": RECENT_S + 1.5, "log": f"{marker} second"}),
        ]
        daemon.send_tcp(("\r\n".join(lines) + "\r\n").encode())
        events = {e.message: e for e in store.wait_for(2, field="message", term=marker)}
        first = events[f"{marker} from fluent"]
        assert first.timestamp == RECENT_S * 10**9 + 123456000
        assert first.level == "warn"
        assert events[f"{marker} second"].timestamp == (RECENT_S + 1) * 10**9 + 500000000

    def test_fluent_bit_json_array_format(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        daemon.send_tcp(
            json.dumps(
                [{"date": RECENT_S, "log": f"{marker} a"}, {"date": RECENT_S + 1, "log": f"{marker} b"}]
            ).encode()
        )
        assert len(store.wait_for(2, field="message", term=marker)) == 2

    def test_plain_application_ndjson(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        record = {
            "ts": RECENT_S * 1000 + 123,
            "msg": f"{marker} user signed in",
            "levelname": "INFO",
            "app": "auth",
            "user_id": 42,
        }
        daemon.send_tcp(json.dumps(record).encode() + b"\n")
        (event,) = store.wait_for(1, field="message", term=marker)
        assert (event.timestamp, event.level, event.service) == (RECENT_S * 10**9 + 123_000_000, "info", "auth")
        assert event.attributes["user_id"] == 42

    def test_partial_last_line_is_flushed_when_the_sender_closes(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        daemon.send_tcp(json.dumps({"message": f"{marker} no newline"}).encode())
        assert store.wait_for(1, field="message", term=marker)[0].message == f"{marker} no newline"

    def test_udp_datagram_and_multi_line_datagram(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        daemon.send_udp(json.dumps({"message": f"{marker} one", "@timestamp": _recent_iso(RECENT_NS)}).encode())
        daemon.send_udp(b"\n".join(json.dumps({"message": f"{marker} many {i}"}).encode() for i in range(3)))
        assert len(store.wait_for(4, field="message", term=marker)) == 4


class TestPythonLogstashHandler:
    """The python-logstash handler (TCP and UDP) arrives with its fields."""

    @pytest.mark.parametrize("transport", ["tcp", "udp"])
    def test_handler_events_arrive(self, daemon: DaemonProcess, store: Store, transport: str) -> None:
        marker = _unique()
        logger = logging.getLogger(f"lt-{transport}-{marker}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler: logging.Handler
        if transport == "tcp":
            handler = logstash.TCPLogstashHandler("127.0.0.1", daemon.tcp_port, version=1)
        else:
            handler = logstash.LogstashHandler("127.0.0.1", daemon.udp_port, version=1)
        logger.addHandler(handler)
        try:
            logger.error("payment failed %s", marker, extra={"order_id": 1234})
            logger.info("second line %s", marker)
        finally:
            handler.close()
            logger.removeHandler(handler)
        events = {e.level: e for e in store.wait_for(2, field="message", term=marker)}
        assert events["error"].message == f"payment failed {marker}"
        assert events["error"].attributes["order_id"] == 1234
        assert events["error"].attributes["logger_name"] == f"lt-{transport}-{marker}"


class TestConcurrentLoad:
    """Many concurrent senders: every event arrives exactly once."""

    def test_100_clients_times_1000_events(self, daemon: DaemonProcess, store: Store) -> None:
        clients, per_client = 100, 1000
        run = _unique()

        def send(client: int) -> None:
            lines = b"".join(
                json.dumps({"message": f"{run} c{client} e{i}", "client": client, "seq": i}).encode() + b"\n"
                for i in range(per_client)
            )
            with socket.create_connection(("127.0.0.1", daemon.tcp_port)) as sock:
                for start in range(0, len(lines), 16384):
                    sock.sendall(lines[start : start + 16384])

        threads = [threading.Thread(target=send, args=(c,)) for c in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = store.wait_for(clients * per_client, timeout=120, field="message", term=run)
        keys = [(e.attributes["client"], e.attributes["seq"]) for e in events]
        assert len(keys) == clients * per_client
        assert len(set(keys)) == clients * per_client


class TestBadInput:
    """Bad input is stored or counted, the daemon stays up and keeps serving everyone else."""

    def _alive_and_serving(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        daemon.send_tcp(json.dumps({"message": f"{marker} still serving"}).encode() + b"\n")
        store.wait_for(1, field="message", term=marker)
        assert daemon.process is not None and daemon.process.poll() is None

    def test_binary_garbage_and_invalid_utf8_are_stored_raw(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        daemon.send_tcp(b"\x00\xff\xfe garbage " + marker.encode() + b" \xc3\x28\n")
        (event,) = store.wait_for(1, field="message", term=marker)
        assert "_jsonparsefailure" in event.tags
        self._alive_and_serving(daemon, store)

    def test_50_mib_line_without_newline_is_truncated_and_connection_stays_up(
        self, daemon: DaemonProcess, store: Store
    ) -> None:
        marker = _unique()
        with socket.create_connection(("127.0.0.1", daemon.tcp_port)) as sock:
            sock.sendall(b'{"message":"' + marker.encode() + b" ")
            chunk = b"x" * (1 << 20)
            for _ in range(50):
                sock.sendall(chunk)
            sock.sendall(b'"}\n' + json.dumps({"message": f"{marker} after"}).encode() + b"\n")
        events = store.wait_for(2, field="message", term=marker)
        truncated = [e for e in events if "_truncated" in e.tags]
        assert len(truncated) == 1
        assert len(truncated[0].message.encode()) <= 1024 * 1024
        assert any(e.message == f"{marker} after" for e in events)
        wait_until(lambda: daemon.events_named("tcp_line_truncated"))
        self._alive_and_serving(daemon, store)

    def test_deeply_nested_json_does_not_crash(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        nested = b"[" * 10_000 + b"]" * 10_000
        daemon.send_tcp(b'{"message":"' + marker.encode() + b'","deep":' + nested + b"}\n")
        (event,) = store.wait_for(1, field="message", term=marker)
        assert event.message
        self._alive_and_serving(daemon, store)

    def test_integer_beyond_64_bits_keeps_its_batch(self, daemon: DaemonProcess, store: Store) -> None:
        """JSON allows any integer; the WAL's msgpack holds 64 bits, so a larger one is stored as a float."""
        marker = _unique()
        daemon.send_tcp(
            f'{{"message":"{marker} big","n":18446744073709551616}}\n{{"message":"{marker} small","n":1}}\n'.encode()
        )
        events = store.wait_for(2, field="message", term=marker)
        assert sorted((event.message, event.attributes["n"]) for event in events) == [
            (f"{marker} big", 18446744073709551616.0),
            (f"{marker} small", 1),
        ]
        assert not daemon.events_named("tcp_connection_reset")
        self._alive_and_serving(daemon, store)

    def test_json_array_and_number_instead_of_object(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        daemon.send_tcp(b"12345\n" + f'["{marker} in array"]\n'.encode())
        events = store.wait_for(1, field="message", term=marker)
        assert "_notobject" in events[0].tags
        self._alive_and_serving(daemon, store)

    def test_silent_client_and_reset_mid_line(self, daemon: DaemonProcess, store: Store) -> None:
        silent = socket.create_connection(("127.0.0.1", daemon.tcp_port))
        try:
            resetter = socket.create_connection(("127.0.0.1", daemon.tcp_port))
            resetter.sendall(b'{"message":"half a li')
            resetter.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            resetter.close()
            self._alive_and_serving(daemon, store)
        finally:
            silent.close()

    def test_one_warning_per_cause_not_per_event(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        daemon.send_tcp(b"".join(f"not json {marker} {i}\n".encode() for i in range(500)))
        store.wait_for(500, field="message", term=marker)
        assert len(daemon.events_named("tcp_json_parse_failure")) == 1


class TestBackpressure:
    """When the indexer is behind, TCP stops reading instead of dropping: everything arrives."""

    def test_small_queue_loses_nothing(self, tmp_path: object) -> None:
        from pathlib import Path

        data = Path(str(tmp_path)) / "data"
        daemon = DaemonProcess(
            data, "--set", "ingest.queue_max_events=2000", "--set", "index.commit_interval_ms=300"
        ).start()
        try:
            run = _unique()
            lines = b"".join(json.dumps({"message": f"{run} {i}", "i": i}).encode() + b"\n" for i in range(30_000))
            started = time.monotonic()
            daemon.send_tcp(lines)
            store = Store(data)
            events = store.wait_for(30_000, timeout=120, field="message", term=run)
            assert len({e.attributes["i"] for e in events}) == 30_000
            assert time.monotonic() - started < 120
            assert daemon.events_named("tcp_backpressure")
        finally:
            daemon.kill()


class TestSenderShapesAsTheyArrive:
    """Senders that put the message in their own place, and a listener told where a custom app puts its fields."""

    def test_python_logstash_default_version_0_arrives_with_its_message(
        self, daemon: DaemonProcess, store: Store
    ) -> None:
        marker = _unique()
        logger = logging.getLogger(f"v0-{marker}")
        logger.propagate = False
        handler = logstash.TCPLogstashHandler("127.0.0.1", daemon.tcp_port)  # version=0, @message and @fields
        logger.addHandler(handler)
        logger.warning("version zero %s", marker, extra={"order": 17})
        handler.close()
        (event,) = store.wait_for(1, field="message", term=marker)
        assert event.message == f"version zero {marker}"
        assert event.level == "warn"
        assert event.attributes["order"] == 17 and "@fields" not in event.attributes
        assert event.attributes["source"]["address"] == "127.0.0.1"

    def test_syslog_ng_format_json(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        line = {"PROGRAM": "sshd", "PRIORITY": "err", "MESSAGE": f"denied {marker}", "HOST": "bastion",
                "ISODATE": _recent_iso(RECENT_NS).replace("Z", "+00:00")}  # fmt: skip
        daemon.send_tcp(json.dumps(line).encode() + b"\n")
        (event,) = store.wait_for(1, field="message", term=marker)
        assert (event.service, event.level, event.host, event.timestamp) == ("sshd", "error", "bastion", RECENT_NS)

    def test_an_event_with_no_message_is_tagged_and_counted(self, daemon: DaemonProcess, store: Store) -> None:
        marker = _unique()
        daemon.send_tcp(json.dumps({"payload": marker}).encode() + b"\n")
        (event,) = store.wait_for(1, field="payload", term=marker)
        assert (event.message, event.tags) == ("", ["_nomessage"])
        wait_until(lambda: daemon.events_named("tcp_no_message"))


def test_a_listener_told_where_a_custom_app_puts_its_fields(tmp_path: Path) -> None:
    mapping = ('--set=tcp.fields.message=["payload.text"]', '--set=tcp.fields.level=["sev"]',
               '--set=tcp.fields.timestamp=["at"]', '--set=tcp.fields.service=["meta.app"]')  # fmt: skip
    daemon = DaemonProcess(tmp_path / "data", "--set", "index.commit_interval_ms=200", *mapping).start()
    try:
        marker = _unique()
        line = {"payload": {"text": f"custom {marker}", "id": 1}, "sev": "WARNING", "at": RECENT_S,
                "meta": {"app": "billing"}, "message": "not the message"}  # fmt: skip
        daemon.send_tcp(json.dumps(line).encode() + b"\n")
        (event,) = Store(tmp_path / "data").wait_for(1, field="message", term=marker)
        assert (event.message, event.level, event.service) == (f"custom {marker}", "warn", "billing")
        assert event.timestamp == RECENT_S * 10**9
        assert event.attributes["payload"] == {"id": 1} and event.attributes["message"] == "not the message"
    finally:
        daemon.kill()
