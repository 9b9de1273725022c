"""ClickHouse refusing connections while the daemon ingests, then back: health says so, nothing lost, nothing twice.

The daemon runs on `backend = "clickhouse"` with a server URL (clickhouse-connect over HTTP).  No
ClickHouse server can run here, so the server is the embedded engine behind a small HTTP endpoint
(`chdb_http.py`), and between the daemon and it a gate: a loopback port that forwards while open
and refuses connections while closed, as a server that went down does.  The test reads past the
gate, straight from the endpoint.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logtraced.config import load_config
from logtraced.model import Tenant
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import LogStore, SearchRequest
from logtraced.storage.backends import open_store
from logtraced.storage.clickhouse.client import ClickHouseError
from tests.api.conftest import mint_key
from tests.harness import DaemonProcess, pump, wait_until

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = Tenant("default", "production")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Gate:
    """A loopback port forwarding to `upstream` while open; while closed nothing listens, so connecting is refused."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.open_sockets: list[socket.socket] = []

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every forwarded connection, as a server going down does."""
        if self.listener is not None:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self.listener.close()
            self.listener = None
        for sock in self.open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.open_sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.open_sockets += [client, server]
            threading.Thread(target=pump, args=(client, server), daemon=True).start()
            threading.Thread(target=pump, args=(server, client), daemon=True).start()


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[int]:
    """The embedded engine behind ClickHouse's HTTP interface, in its own process (it owns the directory)."""
    port = free_port()
    command = [sys.executable, "-m", "tests.storage.clickhouse.chdb_http", str(tmp_path / "server"), str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None and process.stdout.readline().startswith(b"ready"), "the endpoint did not start"
    yield port
    process.kill()
    process.wait(10)
    process.stdout.close()


def _lines(run: str, start: int, count: int) -> bytes:
    return b"".join(json.dumps({"message": f"{run} {i}", "i": i}).encode() + b"\n" for i in range(start, start + count))


def _numbers(store: LogStore, run: str) -> list[int]:
    request = SearchRequest(0, 2**62, Pipeline((Filter(parse_kql(run)),)), 100_000)
    return [row.event.attributes["i"] for row in store.for_tenant(DEFAULT).search(request).rows]


def _schema_created(store: LogStore) -> bool:
    """The daemon's writer process creates the tables once it starts."""
    try:
        store.for_tenant(DEFAULT).label_names(0, 1)
    except ClickHouseError:
        return False
    return True


def _health(daemon: DaemonProcess, secret: str) -> dict[str, Any]:
    _, _, body = daemon.request("GET", "/v1/health", headers={"Authorization": f"Bearer {secret}"})
    report: dict[str, Any] = body
    return report


def test_clickhouse_away_while_ingesting_then_back(tmp_path: Path, endpoint: int) -> None:
    gate = Gate(endpoint)
    gate.open()
    data = tmp_path / "data"
    secret = mint_key(data, "read:logs", org="default").secret
    url = f"http://127.0.0.1:{gate.port}"
    daemon = DaemonProcess(
        data, "--set", "storage.backend=clickhouse", "--set", f"clickhouse.url={url}",
        "--set", "index.commit_interval_ms=200",
    ).start()  # fmt: skip
    overrides = {"data_dir": str(tmp_path / "reader"), "clickhouse.url": f"http://127.0.0.1:{endpoint}"}
    reader = open_store(load_config(None, overrides={**overrides, "storage.backend": "clickhouse"}))
    run = uuid.uuid4().hex[:10]
    try:
        daemon.send_tcp(_lines(run, 0, 1000))
        wait_until(lambda: _schema_created(reader) and len(_numbers(reader, run)) == 1000)
        gate.close()
        daemon.send_tcp(_lines(run, 1000, 1000))
        away = wait_until(lambda: (report := _health(daemon, secret))["status"] != "healthy" and report)
        assert any("indexer" in reason for reason in away["reasons"]), away
        assert len(_numbers(reader, run)) == 1000, "stored while ClickHouse refused connections?"
        gate.open()
        wait_until(lambda: len(_numbers(reader, run)) >= 2000, timeout=60)
        numbers = _numbers(reader, run)
        assert sorted(numbers) == list(range(2000)), "an event was lost or stored twice"
        wait_until(lambda: not any("failure" in reason for reason in _health(daemon, secret).get("reasons", [])))
    finally:
        daemon.kill()
        gate.close()
        reader.close()
