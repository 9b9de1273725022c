"""ClickHouse refusing connections while the writer commits, then back: nothing lost, nothing stored twice.

There is no ClickHouse server on this machine, so the drill has two halves.  A real refused
connection: clickhouse-connect pointed at a port nobody listens on must surface as
`ClickHouseUnavailable` (what makes the writer process fail and be restarted, with the WAL kept).
Then the write path through that failure: the embedded engine stores the rows, and its client
refuses INSERTs (as a server that went away would) for a while; the writer is restarted as the
daemon restarts its process, and replays the WAL.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from logtraced.config import load_config
from logtraced.model import NS_PER_DAY, Event
from logtraced.storage.clickhouse.client import ChdbClient, ClickHouseUnavailable, HttpClient, Params, Rows, Settings
from logtraced.storage.clickhouse.writer import ClickHouseWriter
from logtraced.storage.wal import list_segments
from logtraced.storage.writer import WalApplier
from tests.storage.clickhouse.conftest import Backend, make_config, write_wal
from tests.storage.test_store import MINE, NOW

RECORDS = 12
PER_RECORD = 40


def refusing_port() -> int:
    """A loopback port that was free a moment ago and has no listener: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_is_unavailable(tmp_path: Path) -> None:
    config = load_config(
        None, overrides={"data_dir": str(tmp_path), "clickhouse.url": f"http://127.0.0.1:{refusing_port()}"}
    )
    with pytest.raises(ClickHouseUnavailable):
        HttpClient(config)


class RefusingInserts:
    """The engine's client, with INSERTs refused after `accepted` more of them while `down` (a server going away)."""

    def __init__(self, client: ChdbClient, accepted: int) -> None:
        self.client = client
        self.accepted = accepted
        self.down = True
        self.refused = 0

    def query(self, sql: str, params: Params | None = None, settings: Settings | None = None) -> Rows:
        return self.client.query(sql, params, settings)

    def command(self, sql: str, params: Params | None = None) -> None:
        self.client.command(sql, params)

    def insert(self, table: str, rows: bytes, settings: Settings) -> None:
        if self.down and self.accepted == 0:
            self.refused += 1
            raise ClickHouseUnavailable("[Errno 111] Connection refused")
        self.accepted -= 1
        self.client.insert(table, rows, settings)

    def close(self) -> None:
        """The engine belongs to the session."""


def two_day_wal(data_dir: Path) -> int:
    """Records alternating between today and yesterday, so one commit is two INSERTs."""
    batches = [
        (MINE, [Event(NOW - (seq % 2) * NS_PER_DAY - n, f"r{seq} e{n}") for n in range(PER_RECORD)])
        for seq in range(RECORDS)
    ]
    return write_wal(make_config(data_dir), batches)


@pytest.mark.parametrize("accepted", [0, 1], ids=["refused from the start", "refused after one day's INSERT"])
def test_refused_then_back_loses_nothing_and_stores_nothing_twice(
    backend: Backend, tmp_path: Path, accepted: int
) -> None:
    config = make_config(tmp_path)
    through = two_day_wal(tmp_path)
    flaky = RefusingInserts(backend.client, accepted)
    applier = WalApplier(config, ClickHouseWriter(flaky, backend.target))
    applier.apply_until(through, float("inf"))
    for _ in range(3):  # commits keep failing while ClickHouse is away; the WAL is kept
        with pytest.raises(ClickHouseUnavailable):
            applier.commit()
    assert flaky.refused == 3
    assert list_segments(tmp_path / "wal"), "a WAL segment was deleted before ClickHouse held its events"
    applier.close()
    flaky.down = False
    # The writer process died on the error; the daemon starts a new one, which replays the WAL.
    restarted = WalApplier(config, ClickHouseWriter(flaky, backend.target))
    restarted.apply_until(through, float("inf"))
    restarted.commit()
    restarted.close()
    stored, unique = backend.client.query(f"SELECT count(), uniqExact(`id`) FROM {backend.target.events}")[0]
    assert (stored, unique) == (RECORDS * PER_RECORD, RECORDS * PER_RECORD)
    assert restarted.tailer.last_seq == through
