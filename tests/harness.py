"""Runs the real daemon as a child process on ephemeral ports, for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

READY_TIMEOUT_SECONDS = 30.0
# Every listener section beside tcp/udp/http (which have flags): bound to loopback on a free port,
# so daemons started side by side never clash on a protocol's standard port.
PROTOCOL_SECTIONS = ("forward", "beats", "syslog", "gelf")


def loopback_any_port_flags() -> list[str]:
    flags: list[str] = []
    for section in PROTOCOL_SECTIONS:
        flags += ["--set", f"{section}.host=127.0.0.1", "--set", f"{section}.port=0"]
    return flags


BACKEND_VARIABLE = "TEST_STORAGE_BACKEND"  # not LOGTRACED_*: that prefix is configuration


def backend_args() -> list[str]:
    """`TEST_STORAGE_BACKEND=clickhouse` runs every daemon of the suite on embedded ClickHouse instead of Tantivy."""
    backend = backend_name()
    return [] if backend == "tantivy" else ["--set", f"storage.backend={backend}"]


def backend_name() -> str:
    """The backend this run of the suite stores events in."""
    return os.environ.get(BACKEND_VARIABLE, "tantivy")


def backend_environment() -> dict[str, str]:
    """The same choice for CLI subcommands, which take configuration from the environment (no `--set`)."""
    backend = backend_name()
    return {} if backend == "tantivy" else {"LOGTRACED_STORAGE_BACKEND": backend}


class DaemonProcess:
    """`logtraced serve` in a temporary data directory; ports are read from its `daemon_ready` log line.

    `ports` maps every listener's name (`tcp`, `forward`, `syslog_udp`, ...) to its bound port.
    """

    def __init__(self, data_dir: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.lines: list[dict[str, Any]] = []
        self.tcp_port = self.udp_port = self.http_port = 0
        self.ports: dict[str, int] = {}
        self._ready = threading.Event()

    def start(self) -> DaemonProcess:
        command = [
            sys.executable,
            "-m",
            "logtraced",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--tcp-host",
            "127.0.0.1",
            "--tcp-port",
            "0",
            "--udp-host",
            "127.0.0.1",
            "--udp-port",
            "0",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--log-format",
            "json",
            *backend_args(),
            *loopback_any_port_flags(),
            *self.extra_args,
        ]
        environment = {**os.environ, **self.env}
        self.lines = []
        self._ready.clear()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment)
        self._reader = threading.Thread(target=self._read_logs, daemon=True)
        self._reader.start()
        if not self._ready.wait(READY_TIMEOUT_SECONDS):
            self.kill()
            raise RuntimeError(f"daemon did not become ready; log: {self.lines[-20:]}")
        return self

    def _read_logs(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        with self.process.stderr as stream:
            self._collect(stream)

    def _collect(self, stream: Any) -> None:
        for raw in stream:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": "unparsed", "text": raw.decode(errors="replace")}
            self.lines.append(line)
            if line.get("event") == "daemon_ready":
                self.ports = {key[: -len("_port")]: value for key, value in line.items() if key.endswith("_port")}
                self.tcp_port = line.get("tcp_port") or 0
                self.udp_port = line.get("udp_port") or 0
                self.http_port = line.get("http_port") or 0
                self._ready.set()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        """SIGKILL the daemon and its indexer child: the crash case."""
        if self.process is None or self.process.poll() is not None:
            return
        for child in _children(self.process.pid):
            os.kill(child, signal.SIGKILL)
        self.process.kill()
        self.process.wait(10)
        self._reader.join(10)

    def indexer_pid(self, timeout: float = 10.0) -> int | None:
        """The indexer child, found by the title it gives itself once started (the resource tracker is a child too)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in _children(self.process.pid):
                try:
                    if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"logtraced: indexer"):
                        return pid
                except OSError:
                    continue
            time.sleep(0.02)
        return None

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    # --- HTTP helpers -------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        request = urllib.request.Request(self.url(path), data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
                return response.status, dict(response.headers), _json_or_text(payload)
        except urllib.error.HTTPError as error:
            payload = error.read()
            return error.code, dict(error.headers), _json_or_text(payload)

    # --- sending ------------------------------------------------------------------------------
    def send_tcp(self, payload: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self.tcp_port)) as sock:
            sock.sendall(payload)

    def send_udp(self, payload: bytes, listener: str = "udp") -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, ("127.0.0.1", self.ports[listener]))

    def send_stream(self, listener: str, payload: bytes) -> None:
        """Write `payload` on one connection to a stream listener (`tcp`, `syslog`, `gelf`, ...) and close it."""
        with socket.create_connection(("127.0.0.1", self.ports[listener])) as sock:
            sock.sendall(payload)

    def protocol_counters(self, key: str) -> dict[str, Any]:
        """Every listener's counters from /v1/health (`key` is an API key's secret)."""
        status, _, body = self.request("GET", "/v1/health", headers={"Authorization": f"Bearer {key}"})
        assert status in (200, 503), body
        protocols: dict[str, Any] = body["protocols"]
        return protocols


def _json_or_text(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")


def _children(pid: int) -> list[int]:
    """Direct children via /proc (the indexer process), so a crash test kills the whole daemon."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy `source` to `sink` until either end closes, then shut both: one direction of a test's TCP relay."""
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; fail with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
        value = predicate()
    return value
