"""End-to-end tests of the daemon's lifecycle: crash recovery, graceful shutdown, retention."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path

from logtraced.storage.tantivy.partitions import PartitionLayout, day_name
from logtraced.storage.wal import list_segments, read_records
from tests.api.conftest import mint_key
from tests.conftest import Store, events_at_rest
from tests.harness import DaemonProcess, wait_until

NS_PER_DAY = 86_400 * 10**9
# Nothing is committed while the test runs: neither an interval nor a pause in the input passes.
NO_COMMITS = ("--set", "index.commit_interval_ms=60000", "--set", "index.commit_quiet_ms=0")


def _wal_events(data_dir: Path) -> int:
    """Events present in the WAL files (written; survive a process crash)."""
    total = 0
    for _, path in list_segments(data_dir / "wal"):
        total += sum(record.count for _, record in read_records(path.read_bytes()))
    return total


def _lines(run: str, start: int, count: int) -> bytes:
    return b"".join(json.dumps({"message": f"{run} {i}", "i": i}).encode() + b"\n" for i in range(start, start + count))


class TestCrashRecovery:
    """kill -9 at any moment loses nothing written before it and indexes nothing twice."""

    def test_kill_9_while_ingesting(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        run = uuid.uuid4().hex[:10]
        daemon = DaemonProcess(data, "--set", "index.commit_interval_ms=300").start()
        # A: committed to the index before the crash.
        daemon.send_tcp(_lines(run, 0, 2000))
        Store(data).wait_for(2000, field="message", term=run)
        daemon.kill()
        # B: in the WAL but not yet indexed (commits far apart), then C: streaming when the kill lands.
        daemon = DaemonProcess(data, *NO_COMMITS).start()
        daemon.send_tcp(_lines(run, 2000, 3000))
        wait_until(lambda: _wal_events(data) >= 3000)
        stop_sending = threading.Event()

        def stream() -> None:
            i = 5000
            try:
                with socket.create_connection(("127.0.0.1", daemon.tcp_port)) as sock:
                    while not stop_sending.is_set():
                        sock.sendall(_lines(run, i, 100))
                        i += 100
            except OSError:
                pass

        sender = threading.Thread(target=stream)
        sender.start()
        time.sleep(0.3)  # let the stream run so the kill lands mid-ingest
        daemon.kill()
        stop_sending.set()
        sender.join()
        in_wal = _wal_events(data)
        daemon = DaemonProcess(data, "--set", "index.commit_interval_ms=300").start()
        try:
            events = Store(data).wait_for(in_wal, timeout=60, field="message", term=run)
            numbers = [e.attributes["i"] for e in events]
            assert len(numbers) == len(set(numbers)), "an event was indexed twice"
            assert set(range(5000)) <= set(numbers), "an event written before the crash was lost"
            assert len(numbers) == in_wal
        finally:
            daemon.kill()


class TestGracefulShutdown:
    """SIGTERM drains receivers, commits and exits 0 within 10 s."""

    def test_sigterm_commits_and_exits_zero(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        run = uuid.uuid4().hex[:10]
        daemon = DaemonProcess(data, *NO_COMMITS).start()
        with socket.create_connection(("127.0.0.1", daemon.tcp_port)) as sock:
            sock.sendall(_lines(run, 0, 5000))
            sock.sendall(json.dumps({"message": f"{run} partial", "i": -1}).encode())  # no newline, still open
            wait_until(lambda: _wal_events(data) >= 5000)
            started = time.monotonic()
            code = daemon.stop(timeout=15)
        assert code == 0
        assert time.monotonic() - started < 10
        events = events_at_rest(data, run)
        assert len(events) == 5001
        assert daemon.events_named("daemon_stopped")


class TestRetention:
    """Whole days older than the retention period are deleted."""

    def test_expired_day_is_dropped(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        now = time.time_ns()
        old, recent = now - 10 * NS_PER_DAY, now
        daemon = DaemonProcess(data, "--retention-days", "30", "--set", "index.commit_interval_ms=200").start()
        store = Store(data)
        try:
            for ts in (old, recent):
                daemon.send_tcp(json.dumps({"message": "retention probe", "@timestamp": ts}).encode() + b"\n")
            store.wait_for(2, field="message", term="probe")
            assert store.days() == {old // NS_PER_DAY, recent // NS_PER_DAY}
            assert daemon.stop() == 0
        finally:
            daemon.kill()  # a no-op once stopped; a failed step must not leave the daemon running
        daemon = DaemonProcess(data, "--retention-days", "5").start()
        try:
            wait_until(lambda: store.days() == {recent // NS_PER_DAY})
            if store.config.storage.backend == "tantivy":
                # Retention removes a partition's meta.json first, then the rest of its directory.
                old_dir = PartitionLayout(data).root / "default" / day_name(old // NS_PER_DAY)
                wait_until(lambda: not old_dir.exists())
            events = store.events(field="message", term="probe")
            assert [e.timestamp for e in events] == [recent]
        finally:
            daemon.kill()


class TestReload:
    """SIGHUP re-reads the file, applies query/log/tier settings live and keeps flags on top."""

    def test_sighup_applies_query_settings(self, tmp_path: Path) -> None:
        import signal

        data = tmp_path / "data"
        config = tmp_path / "logtraced.toml"
        config.write_text("[query]\nmax_limit = 10\n")
        daemon = DaemonProcess(data, "--config", str(config)).start()
        try:
            headers = {"Authorization": f"Bearer {mint_key(data, 'read:logs', org='default').secret}"}
            status, _, body = daemon.request("POST", "/v1/logs/query", {"limit": 50}, headers)
            assert (status, body["error"]["code"]) == (400, "invalid_limit")
            config.write_text("[query]\nmax_limit = 100\n[tcp]\nport = 1\n[index]\nretention_days = 9\n")
            assert daemon.process is not None
            daemon.process.send_signal(signal.SIGHUP)
            (reloaded,) = wait_until(lambda: daemon.events_named("config_reloaded"))
            assert reloaded["applied"] == ["query"]
            assert reloaded["needs_restart"] == ["index"]  # tcp.port comes from a flag, which still wins
            status, _, body = daemon.request("POST", "/v1/logs/query", {"limit": 50}, headers)
            assert status == 200, body
        finally:
            daemon.kill()


class TestIndexerRestart:
    """If the indexer process dies, the daemon restarts it and nothing written is lost or doubled."""

    def test_killed_indexer_is_restarted(self, tmp_path: Path) -> None:
        import os
        import signal

        data = tmp_path / "data"
        run = uuid.uuid4().hex[:10]
        daemon = DaemonProcess(data, "--set", "index.commit_interval_ms=200").start()
        try:
            daemon.send_tcp(_lines(run, 0, 1000))
            Store(data).wait_for(1000, field="message", term=run)
            indexer_pid = daemon.indexer_pid()
            assert indexer_pid is not None
            os.kill(indexer_pid, signal.SIGKILL)
            [exited] = wait_until(lambda: daemon.events_named("indexer_exited"))
            assert (exited["signal"], exited["exitcode"]) == ("SIGKILL", -9)
            daemon.send_tcp(_lines(run, 1000, 1000))
            events = Store(data).wait_for(2000, timeout=60, field="message", term=run)
            numbers = [event.attributes["i"] for event in events]
            assert sorted(numbers) == list(range(2000))
            assert daemon.indexer_pid() not in (None, indexer_pid)
        finally:
            daemon.kill()
