"""The writer killed with SIGKILL at the worst moments of a commit, then restarted: exact counts, no duplicates.

Each run is a child process (chdb opens one directory per process, and a kill must kill the
engine too).  The kill is placed deterministically by wrapping the client's `insert`: after the
first day's INSERT of a two-day commit (mid-batch), or after every INSERT was acknowledged but
before the WAL segments were deleted.  The restarted writer replays the whole WAL.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from logtraced.model import NS_PER_DAY, Event
from tests.storage.clickhouse.conftest import make_config, write_wal
from tests.storage.test_store import MINE, NOW

RECORDS = 20
PER_RECORD = 50

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from logtraced.storage.backends import open_writer
    from logtraced.storage.writer import WalApplier
    from tests.storage.clickhouse.conftest import make_config

    cfg = make_config(__import__("pathlib").Path(sys.argv[1]))
    kill_after_inserts = int(sys.argv[2])
    writer = open_writer(cfg)
    insert = writer.client.insert
    done = []

    def insert_then_maybe_die(*args, **kwargs):
        insert(*args, **kwargs)
        done.append(1)
        if len(done) == kill_after_inserts:
            os.kill(os.getpid(), signal.SIGKILL)

    writer.client.insert = insert_then_maybe_die
    applier = WalApplier(cfg, writer)
    applier.apply_until(int(sys.argv[3]), float("inf"))
    applier.commit()
    rows = writer.client.query("SELECT count(), uniqExact(id) FROM `logtraced`.`events`")
    print(rows[0][0], rows[0][1])
    applier.close()
    """
)


def run_writer(data_dir: Path, kill_after_inserts: int, through: int) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[3]
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(data_dir), str(kill_after_inserts), str(through)],
        capture_output=True, text=True, timeout=120, cwd=root,
    )  # fmt: skip


def two_day_wal(data_dir: Path) -> int:
    """Records alternating between today and yesterday, so one commit is two INSERTs."""
    batches = [
        (MINE, [Event(NOW - (seq % 2) * NS_PER_DAY - n, f"r{seq} e{n}") for n in range(PER_RECORD)])
        for seq in range(RECORDS)
    ]
    return write_wal(make_config(data_dir), batches)


@pytest.mark.parametrize(("kill_after_inserts", "moment"), [(1, "mid-batch"), (2, "acknowledged, WAL kept")])
def test_kill_9_during_commit_then_restart(tmp_path: Path, kill_after_inserts: int, moment: str) -> None:
    through = two_day_wal(tmp_path)
    killed = run_writer(tmp_path, kill_after_inserts, through)
    assert killed.returncode == -9, (moment, killed.stderr[-2000:])
    restarted = run_writer(tmp_path, 0, through)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    stored, unique = map(int, restarted.stdout.split())
    assert (stored, unique) == (RECORDS * PER_RECORD, RECORDS * PER_RECORD)
