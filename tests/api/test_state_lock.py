"""The CLI holding the state database's write lock does not stall HTTP: keys are checked from memory, off the lock."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.api.conftest import Api, Key

LOCK_SECONDS = 3.0
# Generous on a noisy shared machine: without the database threads every request here took the busy timeout (5 s).
STALL_BOUND_SECONDS = 1.0


@contextmanager
def write_lock(api: Api) -> Iterator[None]:
    """What `logtraced keys create` does while it writes: BEGIN IMMEDIATE on the state file, from another process."""
    connection = sqlite3.connect(api.daemon.data_dir / "state.sqlite3", isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("COMMIT")
    finally:
        connection.close()


def timed_ingest(api: Api, key: Key, word: str) -> tuple[int, float]:
    started = time.monotonic()
    status = api.ingest(key, {"logs": [{"message": word}]})[0]
    return status, time.monotonic() - started


class TestWriteLockHeldElsewhere:
    """Ingest keeps answering while the lock is held; what the CLI did under it takes effect once it commits."""

    def test_ingest_does_not_wait_for_the_lock_and_cli_changes_follow(self, api: Api, writer: Key) -> None:
        assert api.ingest(writer, {"logs": [{"message": "before"}]})[0] == 202
        cli = [sys.executable, "-m", "logtraced", "keys", "create", "--org", writer.org, "--environment"]
        cli += ["production", "--scope", "write:logs", "--json", "--data-dir", str(api.daemon.data_dir)]
        cli += ["--config", str(api.config_path)]
        answers: list[tuple[int, float]] = []
        with write_lock(api):
            locked_at = time.monotonic()
            creating = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            while time.monotonic() - locked_at < LOCK_SECONDS:
                answers.append(timed_ingest(api, writer, "during"))
            assert creating.poll() is None, "the CLI should still be waiting for the lock"
        out, err = creating.communicate(timeout=30)
        assert creating.returncode == 0, err
        assert len(answers) >= 3
        assert {status for status, _ in answers} == {202}
        assert max(seconds for _, seconds in answers) < STALL_BOUND_SECONDS, answers
        created = json.loads(out)
        new = Key(created["secret"], created["id"], writer.org, "production")
        assert api.ingest(new, {"logs": [{"message": "new key"}]})[0] == 202
        assert api.cli("keys", "revoke", new.id).returncode == 0
        status, _, body = api.ingest(new, {"logs": [{"message": "revoked"}]})
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        assert api.ingest(writer, {"logs": [{"message": "after"}]})[0] == 202

    def test_usage_flushed_under_the_lock_is_not_lost(self, api: Api, writer: Key) -> None:
        with write_lock(api):
            locked_at = time.monotonic()
            sent = 0
            while time.monotonic() - locked_at < LOCK_SECONDS:
                assert api.ingest(writer, {"logs": [{"message": "counted"}]})[0] == 202
                sent += 1
        _, _, report = api.request("GET", "/v1/usage", key=writer)
        assert report["totals"]["requests"] == sent
