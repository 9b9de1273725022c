"""Against a real ClickHouse server or cluster (deploy/clickhouse/): skipped unless LOGTRACED_CLICKHOUSE_URL is set.

`LOGTRACED_CLICKHOUSE_URL=http://localhost:8123 LOGTRACED_CLICKHOUSE_CLUSTER=logs pytest -m clickhouse_server`
runs the store through clickhouse-connect on a fresh database (Replicated + Distributed tables when a
cluster is named).  The failover drill also needs `CLICKHOUSE_DRILL_STOP` / `CLICKHOUSE_DRILL_START`, shell
commands that stop and start one replica (e.g. `docker compose -f deploy/clickhouse/docker-compose.yml stop
ch-s1-r2`).  None of this runs where there is no server; see README "Choosing a backend".
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from logtraced.config import Config, load_config
from logtraced.model import Event, EventColumns
from logtraced.storage.backend import CountRequest, SearchRequest
from logtraced.storage.clickhouse import schema
from logtraced.storage.clickhouse.client import HttpClient
from logtraced.storage.clickhouse.store import ClickHouseStore
from logtraced.storage.clickhouse.writer import ClickHouseWriter
from tests.storage.test_store import EVERYTHING, HOUR, MINE, NOW, STRANGERS

URL = os.environ.get("LOGTRACED_CLICKHOUSE_URL", "")
pytestmark = [
    pytest.mark.clickhouse_server,
    pytest.mark.skipif(not URL.startswith("http"), reason="LOGTRACED_CLICKHOUSE_URL names no ClickHouse server"),
]


@pytest.fixture
def server() -> Iterator[tuple[Config, HttpClient, schema.Target]]:
    database = "t_" + uuid.uuid4().hex[:12]
    config = load_config(None, overrides={"storage.backend": "clickhouse", "clickhouse.database": database})
    client = HttpClient(config)
    target = schema.Target(database, config.clickhouse.cluster)
    schema.migrate(client, target)
    yield config, client, target
    client.command(f"DROP DATABASE `{database}`{target.on_cluster} SYNC")
    client.close()


def window() -> tuple[int, int]:
    return NOW - 2 * 86_400 * 10**9, NOW + 1


def batch(seq: int, n: int) -> list[Event]:
    return [Event(NOW - HOUR + i, f"e{seq}-{i}", org=MINE.org, env=MINE.env, id=(seq << 20) + i) for i in range(n)]


def test_write_read_confine_replay(server: tuple[Config, HttpClient, schema.Target]) -> None:
    _, client, target = server
    writer = ClickHouseWriter(client, target)
    for seq in (1, 2):
        writer.apply(seq, MINE, EventColumns.of_events(batch(seq, 100)))
    writer.commit()
    replayed = ClickHouseWriter(client, target)
    for seq in (1, 2, 3):
        replayed.apply(seq, MINE, EventColumns.of_events(batch(seq, 100)))
    replayed.commit()
    store = ClickHouseStore(client, target)
    page = store.for_tenant(MINE).search(SearchRequest(*window(), EVERYTHING, 10, count_total=True))
    assert page.total == 300
    for stranger in STRANGERS:
        assert store.for_tenant(stranger).search(SearchRequest(*window(), EVERYTHING, 10)).rows == []
    counted = store.for_tenant(MINE).count(CountRequest(*window(), EVERYTHING, HOUR, ("level",)))
    assert sum(sum(series.counts.values()) for series in counted.series) == 300


def test_replica_killed_while_ingesting(server: tuple[Config, HttpClient, schema.Target]) -> None:
    """The drill: stop one replica mid-ingest, start it again; every acknowledged event is there exactly once."""
    stop, start = os.environ.get("CLICKHOUSE_DRILL_STOP"), os.environ.get("CLICKHOUSE_DRILL_START")
    if not stop or not start:
        pytest.skip("CLICKHOUSE_DRILL_STOP/START are not set")
    _, client, target = server
    writer = ClickHouseWriter(client, target)
    acknowledged = 0
    for seq in range(1, 41):
        if seq == 10:
            subprocess.run(stop, shell=True, check=True)
        if seq == 30:
            subprocess.run(start, shell=True, check=True)
        writer.apply(seq, MINE, EventColumns.of_events(batch(seq, 500)))
        while True:
            try:
                writer.commit()
                break
            except Exception:  # the writer process would be restarted; here the same writer retries its staged rows
                time.sleep(1)
        acknowledged += 500
    store = ClickHouseStore(client, target)
    page = store.for_tenant(MINE).search(SearchRequest(*window(), EVERYTHING, 1, count_total=True))
    assert page.total == acknowledged
    unique = client.query(f"SELECT uniqExact(`id`) FROM {target.events}")
    assert int(unique[0][0]) == acknowledged
