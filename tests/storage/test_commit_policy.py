"""When the writer commits: an interval after the first applied record, or as soon as the input pauses."""

from __future__ import annotations

import json
import math
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from logtraced.model import Event, Tenant
from logtraced.storage.tantivy.writer import TantivyWriter
from logtraced.storage.wal import WalWriter
from logtraced.storage.writer import WalApplier
from tests.api.conftest import Key, mint_key
from tests.conftest import Store
from tests.harness import DaemonProcess, backend_name
from tests.storage.test_store import config

TENANT = Tenant("acme", "production")


class _Fed:
    """A real WAL and a real Tantivy writer, fed one record at a time as the writer process feeds them."""

    def __init__(self, data_dir: Path, **index: int) -> None:
        self.config = config(data_dir, **index)
        self.wal = WalWriter(self.config.data_path / "wal", self.config.wal.segment_bytes)
        self.applier = WalApplier(self.config, TantivyWriter(self.config))

    def arrive(self, message: str) -> None:
        self.wal.append(TENANT, [Event(time.time_ns(), message, org=TENANT.org, env=TENANT.env)])
        self.wal.sync()
        self.applier.note_arrival()
        self.applier.apply_until(self.wal.written_seq, math.inf)

    def close(self) -> None:
        self.applier.close()
        self.wal.close()


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[_Fed]:
    fed = _Fed(tmp_path, commit_interval_ms=1000, commit_quiet_ms=100)
    yield fed
    fed.close()


class TestCommitAt:
    def test_nothing_applied_nothing_due(self, fed: _Fed) -> None:
        assert fed.applier.commit_at(caught_up=True) == math.inf
        assert not fed.applier.commit_due(caught_up=True)

    def test_a_pause_commits_before_the_interval(self, fed: _Fed) -> None:
        fed.arrive("first")
        applier = fed.applier
        assert applier.dirty_since is not None
        assert applier.commit_at(caught_up=True) == pytest.approx(applier.arrived_at + 0.1)
        assert applier.commit_at(caught_up=True) < applier.deadline() == applier.dirty_since + 1.0

    def test_behind_the_wal_waits_for_the_interval(self, fed: _Fed) -> None:
        fed.arrive("first")
        assert fed.applier.commit_at(caught_up=False) == fed.applier.deadline()

    def test_new_arrivals_push_the_pause_back(self, fed: _Fed) -> None:
        fed.arrive("first")
        earlier = fed.applier.commit_at(caught_up=True)
        time.sleep(0.01)
        fed.arrive("second")
        assert fed.applier.commit_at(caught_up=True) > earlier

    def test_pause_commits_stay_a_quarter_interval_apart(self, fed: _Fed) -> None:
        fed.arrive("first")
        fed.applier.commit()
        fed.arrive("second")
        applier = fed.applier
        due = applier.commit_at(caught_up=True)
        assert due >= applier.committed_at + 0.25
        assert due == pytest.approx(max(applier.arrived_at + 0.1, applier.committed_at + 0.25))

    def test_off_commits_only_every_interval(self, tmp_path: Path) -> None:
        fed = _Fed(tmp_path, commit_interval_ms=1000, commit_quiet_ms=0)
        try:
            fed.arrive("first")
            assert fed.applier.commit_at(caught_up=True) == fed.applier.deadline()
        finally:
            fed.close()

    def test_a_backend_may_refuse_pause_commits(self, fed: _Fed, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(TantivyWriter, "commits_on_pause", False)
        fed.arrive("first")
        assert fed.applier.commit_at(caught_up=True) == fed.applier.deadline()


def _line(run: str, i: int) -> bytes:
    return json.dumps({"message": f"{run} {i}"}).encode() + b"\n"


def _commits(daemon: DaemonProcess) -> float:
    _, _, text = daemon.request("GET", "/metrics")
    for line in str(text).splitlines():
        if line.startswith("logtraced_writer_commit_duration_seconds_count"):
            return float(line.split()[-1])
    return 0.0


def _acknowledged(daemon: DaemonProcess, key: Key, run: str) -> None:
    """One event, sent over HTTP: the 202 says it is in the fsynced WAL."""
    answer = daemon.request("POST", "/v1/logs/ingest", {"logs": [{"message": run}]}, headers=key.bearer)
    assert answer[0] == 202


@pytest.mark.skipif(backend_name() != "tantivy", reason="ClickHouse commits once an interval: each commit is an INSERT")
class TestDaemon:
    """The real daemon with commits a minute apart: a pause alone makes events searchable."""

    def test_a_lone_event_is_searchable_long_before_the_interval(self, tmp_path: Path) -> None:
        run, data = uuid.uuid4().hex[:10], tmp_path / "data"
        key = mint_key(data, "write:logs", org="default")
        daemon = DaemonProcess(data, "--set", "index.commit_interval_ms=60000").start()
        try:
            _acknowledged(daemon, key, run)
            assert Store(data).wait_for(1, timeout=10, field="message", term=run)
        finally:
            daemon.kill()

    def test_without_pause_commits_the_interval_holds(self, tmp_path: Path) -> None:
        run, data = uuid.uuid4().hex[:10], tmp_path / "data"
        key = mint_key(data, "write:logs", org="default")
        flags = ("--set", "index.commit_interval_ms=60000", "--set", "index.commit_quiet_ms=0")
        daemon = DaemonProcess(data, *flags).start()
        try:
            _acknowledged(daemon, key, run)
            time.sleep(1.5)
            assert not Store(data).events(field="message", term=run)
        finally:
            daemon.kill()

    def test_a_trickle_commits_at_most_four_times_a_second(self, tmp_path: Path) -> None:
        run = uuid.uuid4().hex[:10]
        daemon = DaemonProcess(tmp_path / "data", "--set", "index.commit_interval_ms=1000").start()
        try:
            before = _commits(daemon)
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", daemon.tcp_port)) as sock:
                for i in range(20):  # one event every 150 ms: each alone would be a pause
                    sock.sendall(_line(run, i))
                    time.sleep(0.15)
            Store(daemon.data_dir).wait_for(20, field="message", term=run)
            elapsed = time.monotonic() - started
            assert _commits(daemon) - before <= 4 * elapsed + 1
        finally:
            daemon.kill()
