"""Fixtures for the listeners' end-to-end tests: one real daemon per test module, a key to search and ask health."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Key, mint_key
from tests.conftest import FAST_COMMIT, Store
from tests.harness import DaemonProcess, wait_until


def marker() -> str:
    return uuid.uuid4().hex[:12]


def closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Read until the daemon closes the connection (a reset counts as closed too)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


@dataclass
class Running:
    """A daemon under test, a reader of its store and an API key of its default tenant."""

    daemon: DaemonProcess
    store: Store
    key: Key

    def port(self, listener: str) -> int:
        return self.daemon.ports[listener]

    def counters(self, listener: str) -> dict[str, Any]:
        """The listener's entry of `protocols` in /v1/health."""
        counters: dict[str, Any] = self.daemon.protocol_counters(self.key.secret)[listener]
        return counters

    def wait_for_cause(self, listener: str, cause: str, count: int = 1, *, key: str = "causes") -> dict[str, Any]:
        """Poll /v1/health until the listener has counted `cause` at least `count` times."""
        found: dict[str, Any] = wait_until(
            lambda: self.counters(listener)[key].get(cause, 0) >= count and self.counters(listener)
        )
        return found

    def kql(self, query: str, *, key: Key | None = None, count: int = 1) -> list[dict[str, Any]]:
        """POST /v1/logs/query over the last week, polled until `count` events match (the daemon's reader
        refreshes on the indexer's commit message, a moment after the commit the test's own reader sees)."""
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            nonlocal found
            status, _, body = self.daemon.request(
                "POST",
                "/v1/logs/query",
                {"filter": query, "from": "-7d", "limit": max(count, 100)},
                headers=(key or self.key).bearer,
            )
            assert status == 200, body
            found = body["logs"]
            return len(found) >= count

        wait_until(enough)
        return found

    def pipeline(self, query: dict[str, Any], *, key: Key | None = None, count: int = 1) -> list[list[str]]:
        """The JSON pipeline API's rows `[ns, message]` for one filter stage over the last week, polled likewise."""
        key = key or self.key
        found: list[list[str]] = []

        def enough() -> bool:
            nonlocal found
            end = time.time_ns() + 60 * 10**9
            start = end - 8 * 86_400 * 10**9
            status, _, body = self.daemon.request(
                "POST",
                f"/api/v4/organizations/{key.org}/logs/api/v2/query_range/json?start={start}&end={end}&limit=1000",
                {"pipeline": [{"type": "filter", "query": query}]},
                headers={"X-LAST9-API-TOKEN": f"Bearer {key.secret}"},
            )
            assert status == 200, body
            found = [value for stream in body["data"]["result"] or [] for value in stream["values"]]
            return len(found) >= count

        wait_until(enough)
        return found

    def serving(self) -> None:
        """The daemon is up and a plain JSON line still gets stored (one sender's bad input hurt nobody else)."""
        assert self.daemon.process is not None and self.daemon.process.poll() is None
        text = f"{marker()} still serving"
        self.daemon.send_tcp(f'{{"message": "{text}"}}\n'.encode())
        self.store.wait_for(1, field="message", term=text)


def start_running(data_dir: Path, *flags: str) -> Running:
    daemon = DaemonProcess(data_dir, *FAST_COMMIT, *flags).start()
    try:
        key = mint_key(daemon.data_dir, "write:logs", "read:logs", org="default", environment="production")
    except BaseException:
        daemon.kill()
        raise
    return Running(daemon, Store(data_dir), key)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One daemon shared by a test module (each test tells its events apart with a marker)."""
    started = start_running(tmp_path_factory.mktemp("protocols") / "data")
    yield started
    started.daemon.kill()
