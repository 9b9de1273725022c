"""GET /v1/health: figures, and the healthy / degraded / unhealthy status when the indexer dies or restarts."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, Key, marker, mint_key
from tests.harness import DaemonProcess, wait_until


def health(daemon: DaemonProcess, key: Key) -> tuple[int, Any]:
    status, _, body = daemon.request("GET", "/v1/health", headers=key.bearer)
    return status, body


class TestFigures:
    """A healthy daemon reports its workers, rates, backlog, storage and indexer."""

    def test_document(self, api: Api, writer: Key) -> None:
        word = marker()
        assert api.ingest(writer, {"logs": [{"message": f"{word} {i}"} for i in range(10)]})[0] == 202
        api.store.wait_for(10, tenant=writer.tenant, field="message", term=word)
        status, body = health(api.daemon, writer)
        assert status == 200
        assert body["status"] == "healthy" and "reasons" not in body
        assert body["workers"] == 3  # the ingest loop and the two configured index writer threads
        assert body["ingestion_rps"] >= 0 and body["uptime_seconds"] > 0
        assert body["queue_depth"] == body["wal_lag"]["events"] >= 0
        assert set(body["wal_lag"]) == {"records", "events", "bytes"}
        assert body["storage"]["writable"] is True and body["storage"]["free_bytes"] > 0
        assert body["storage"]["data_dir"] == str(api.daemon.data_dir.resolve())
        indexer = body["indexer"]
        assert indexer["alive"] is True and indexer["restarts"] == 0
        assert indexer["last_commit_ms"] >= 0 and indexer["seconds_since_commit"] >= 0
        assert body["counters"]["events_accepted"] >= 10 and body["counters"]["events_indexed"] >= 10

    def test_needs_a_key(self, api: Api) -> None:
        assert api.request("GET", "/v1/health")[0] == 401


@pytest.fixture
def lone_daemon(tmp_path: Path) -> Iterator[tuple[DaemonProcess, Key]]:
    """A daemon of its own, for tests that break it."""
    data = tmp_path / "data"
    key = mint_key(data, "read:logs", "write:logs")
    daemon = DaemonProcess(data, "--set", "index.commit_interval_ms=200").start()
    yield daemon, key
    daemon.kill()


class TestIndexerFailure:
    """Without its indexer the daemon is unhealthy (503); after the restart it is degraded for a while."""

    def test_killed_indexer(self, lone_daemon: tuple[DaemonProcess, Key]) -> None:
        daemon, key = lone_daemon
        indexer = daemon.indexer_pid()
        assert indexer is not None
        os.kill(indexer, signal.SIGKILL)
        status, body = wait_until(lambda: _status_is(health(daemon, key), 503), timeout=5.0, interval=0.02)
        assert body["status"] == "unhealthy" and body["indexer"]["alive"] is False
        assert any("indexer process is not running" in reason for reason in body["reasons"])
        status, body = wait_until(lambda: _status_is(health(daemon, key), 200), timeout=10.0)
        assert body["status"] == "degraded" and body["indexer"]["restarts"] == 1
        assert any("restarted" in reason for reason in body["reasons"])
        word = marker()
        assert daemon.request("POST", "/v1/logs/ingest", {"logs": [{"message": word}]}, headers=key.bearer)[0] == 202


def _status_is(answer: tuple[int, Any], status: int) -> tuple[int, Any] | None:
    return answer if answer[0] == status else None
