"""Indexer behind or disk short: standard keys are told to wait, enterprise keys overflow to the WAL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logtraced.ingest.pipeline import STORAGE_RESERVE_BYTES
from tests.api.conftest import Key, marker, mint_key
from tests.conftest import Store
from tests.harness import DaemonProcess

QUEUE_MAX_EVENTS = 50
# Commits far enough apart that the backlog is still full while the test sends its next requests.
SLOW_COMMITS = (
    "--set",
    f"ingest.queue_max_events={QUEUE_MAX_EVENTS}",
    "--set",
    "index.commit_interval_ms=4000",
    "--set",
    "index.commit_quiet_ms=0",
)
TMPFS_BYTES = STORAGE_RESERVE_BYTES + 16 * 1024 * 1024


def ingest(daemon: DaemonProcess, key: Key, message: str, count: int = 1) -> tuple[int, dict[str, str], Any]:
    body = {"logs": [{"message": f"{message} {i}"} for i in range(count)]}
    return daemon.request("POST", "/v1/logs/ingest", body, headers=key.bearer)


class TestIndexerBehind:
    """A full backlog is 429 for a standard key and an accepted, flagged overflow for an enterprise key."""

    def test_standard_waits_enterprise_overflows_nothing_is_lost(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        standard = mint_key(data, "write:logs", "read:logs")
        enterprise = mint_key(data, "write:logs", "read:logs", tier="enterprise")
        daemon = DaemonProcess(data, *SLOW_COMMITS).start()
        try:
            word = marker()
            assert ingest(daemon, standard, word, QUEUE_MAX_EVENTS + 10)[0] == 202
            status, headers, body = ingest(daemon, standard, word)
            assert (status, body["error"]["code"], headers["Retry-After"]) == (429, "ingest_backpressure", "1")
            status, _, body = ingest(daemon, enterprise, word, 5)
            assert (status, body["overflow"]) == (202, True)
            health = daemon.request("GET", "/v1/health", headers=standard.bearer)[2]
            assert health["status"] == "degraded" and health["queue_depth"] >= QUEUE_MAX_EVENTS
            assert any("backlog is full" in reason for reason in health["reasons"])
            store = Store(data)
            store.wait_for(QUEUE_MAX_EVENTS + 10, tenant=standard.tenant, field="message", term=word)
            store.wait_for(5, tenant=enterprise.tenant, field="message", term=word)
            assert ingest(daemon, standard, word)[0] == 202
            usage = daemon.request("GET", "/v1/usage", headers=enterprise.bearer)[2]
            assert usage["totals"]["overflow_events"] == 5
        finally:
            daemon.kill()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs just above the ingest reserve; skipped where mounting is not allowed (not root, containers)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


class TestDiskShort:
    """Below the free-space reserve ingest is 503 and health unhealthy; freeing space recovers both."""

    def test_reserve(self, small_disk: Path) -> None:
        data = small_disk / "data"
        key = mint_key(data, "write:logs")
        daemon = DaemonProcess(data, "--set", "wal.segment_bytes=1048576").start()
        filler = small_disk / "filler"
        try:
            assert ingest(daemon, key, marker())[0] == 202
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            filler.write_bytes(b"\0" * (free - STORAGE_RESERVE_BYTES // 2))
            status, headers, body = ingest(daemon, key, marker())
            assert (status, body["error"]["code"]) == (503, "storage_unavailable")
            assert int(headers["Retry-After"]) > 1
            status, _, health = daemon.request("GET", "/v1/health", headers=key.bearer)
            assert (status, health["status"]) == (503, "unhealthy")
            assert health["storage"]["free_bytes"] < STORAGE_RESERVE_BYTES
            filler.unlink()
            assert ingest(daemon, key, marker())[0] == 202
        finally:
            daemon.kill()
