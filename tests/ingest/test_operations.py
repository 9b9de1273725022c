"""End-to-end tests of what an operator relies on: TLS, systemd readiness, many connections, UDP drops, quiet logs."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import uuid
from pathlib import Path

from tests.api.conftest import mint_key
from tests.conftest import Store
from tests.harness import DaemonProcess, wait_until


def _marker() -> str:
    return uuid.uuid4().hex[:12]


class TestTls:
    """With a certificate configured, the TCP port speaks TLS (Logstash `ssl_enable`)."""

    def test_events_arrive_over_tls(self, tmp_path: Path) -> None:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        data = tmp_path / "data"
        daemon = DaemonProcess(
            data,
            "--set",
            f"tcp.tls_cert_file={json.dumps(str(cert))}",
            "--set",
            f"tcp.tls_key_file={json.dumps(str(key))}",
            "--set",
            "index.commit_interval_ms=200",
        ).start()
        try:
            marker = _marker()
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            with socket.create_connection(("127.0.0.1", daemon.tcp_port)) as raw:
                with context.wrap_socket(raw) as tls:
                    tls.sendall(json.dumps({"message": f"{marker} over tls"}).encode() + b"\n")
            assert Store(data).wait_for(1, field="message", term=marker)[0].message == f"{marker} over tls"
        finally:
            daemon.kill()


class TestSystemdNotify:
    """Type=notify: READY=1 arrives on $NOTIFY_SOCKET once the listeners are bound, STOPPING=1 at shutdown."""

    def test_ready_and_stopping_are_sent(self, tmp_path: Path) -> None:
        path = str(tmp_path / "notify.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(path)
        listener.settimeout(20)
        try:
            daemon = DaemonProcess(tmp_path / "data", env={"NOTIFY_SOCKET": path}).start()
            assert listener.recv(64) == b"READY=1"
            assert daemon.stop() == 0
            assert listener.recv(64) == b"STOPPING=1"
        finally:
            listener.close()


class TestManyConnections:
    """Thousands of concurrent senders are held open at once and each one's events arrive."""

    def test_1500_concurrent_connections(self, daemon: DaemonProcess, store: Store) -> None:
        run = _marker()
        sockets = [socket.create_connection(("127.0.0.1", daemon.tcp_port)) for _ in range(1500)]
        try:
            for number, sock in enumerate(sockets):
                sock.sendall(json.dumps({"message": f"{run} {number}", "n": number}).encode() + b"\n")
            events = store.wait_for(1500, timeout=60, field="message", term=run)
        finally:
            for sock in sockets:
                sock.close()
        assert {event.attributes["n"] for event in events} == set(range(1500))


class TestUdpDrops:
    """UDP cannot push back: when the backlog is full, datagrams are refused and counted, never silently lost."""

    def test_drops_are_counted_in_health(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        daemon = DaemonProcess(
            data,
            "--set",
            "ingest.queue_max_events=50",
            "--set",
            "index.commit_interval_ms=5000",
            "--set",
            "index.commit_quiet_ms=0",
        ).start()
        try:
            key = _key(data, "read:logs")
            payload = json.dumps({"message": "flood"}).encode()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for _ in range(2000):
                    sock.sendto(payload, ("127.0.0.1", daemon.udp_port))

            def dropped() -> int:
                _, _, body = daemon.request("GET", "/v1/health", headers={"Authorization": f"Bearer {key}"})
                return int(body["counters"]["udp_dropped"])

            assert wait_until(dropped) > 0
            wait_until(lambda: daemon.events_named("udp_dropped_backpressure"))
            assert len(daemon.events_named("udp_dropped_backpressure")) == 1
        finally:
            daemon.kill()


class TestQuietLogs:
    """The daemon's own logs never carry event payloads or key secrets."""

    def test_no_payload_or_secret_in_logs(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        daemon = DaemonProcess(data, "--log-level", "debug", "--set", "index.commit_interval_ms=200").start()
        try:
            secret = _key(data, "write:logs")
            marker = _marker()
            daemon.send_tcp(f"not json {marker}\n".encode())
            status, _, _ = daemon.request(
                "POST",
                "/v1/logs/ingest",
                {"logs": [{"message": f"{marker} http"}]},
                {"Authorization": f"Bearer {secret}"},
            )
            assert status == 202
            daemon.request("POST", "/v1/logs/ingest", {"logs": []}, {"Authorization": f"Bearer {secret}x"})
            Store(data).wait_for(2, field="message", term=marker)
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        text = "\n".join(json.dumps(line) for line in daemon.lines)
        assert marker not in text
        assert secret[8:] not in text


def _key(data: Path, scope: str) -> str:
    return mint_key(data, scope, org="default").secret
