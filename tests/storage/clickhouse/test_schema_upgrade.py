"""Schema version 2 (the message trigram index): `migrate` upgrades a version 1 table in place, refused before."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from logtraced.model import Event, Tenant
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import SearchRequest
from logtraced.storage.clickhouse import schema
from logtraced.storage.clickhouse.client import ChdbClient
from logtraced.storage.clickhouse.store import ClickHouseStore
from logtraced.storage.clickhouse.writer import ClickHouseWriter
from tests.storage.clickhouse.conftest import apply_wal, make_config, write_wal
from tests.storage.tantivy.test_compile import pipeline

TENANT = Tenant("acme", "production")
BASE_NS = 1_710_496_800_000_000_000
RARE = "zq7xkw"
# Enough rows for many granules, so the index has granules to skip.
COUNT = 40_000
GRANULE = 1024


@pytest.fixture
def version_one(chdb_client: ChdbClient, tmp_path: Path) -> Iterator[schema.Target]:
    """A database as logtraced 1 left it (no trigram index), holding events in several parts."""
    target = schema.Target("t_" + uuid.uuid4().hex[:12])
    for statement in schema.create_statements(target):
        chdb_client.command(statement.replace("index_granularity = 8192", f"index_granularity = {GRANULE}"))
    chdb_client.command(f"INSERT INTO {target.versions} (`version`) VALUES (1)")
    rare = f" token a{RARE}b"
    events = [Event(BASE_NS + n, f"request {n} done" + (rare if n == 31_337 else "")) for n in range(COUNT)]
    cfg = make_config(tmp_path)
    apply_wal(cfg, ClickHouseWriter(chdb_client, target), write_wal(cfg, [(TENANT, events)])).close()
    yield target
    chdb_client.command(f"DROP DATABASE `{target.database}`")


def indexes(client: ChdbClient, target: schema.Target) -> list[str]:
    sql = "SELECT name FROM system.data_skipping_indices WHERE database = {db:String} AND table = {t:String}"
    sql += " ORDER BY name"
    return [str(row[0]) for row in client.query(sql, {"db": target.database, "t": schema.EVENTS})]


def test_migrate_adds_and_materialises_the_trigram_index(chdb_client: ChdbClient, version_one: schema.Target) -> None:
    with pytest.raises(schema.SchemaMismatch, match="version 1, this logtraced runs on 2: .*run `logtraced migrate`"):
        schema.check(schema.installed_version(chdb_client, version_one), create_if_absent=True)
    assert indexes(chdb_client, version_one) == ["words_text"]
    assert schema.migrate(chdb_client, version_one) == (1, 2)
    assert indexes(chdb_client, version_one) == [schema.MESSAGE_NGRAMS, "words_text"]
    schema.check(schema.installed_version(chdb_client, version_one), create_if_absent=False)
    # Existing parts hold the index (MATERIALIZE ran before migrate returned): granules lacking a trigram are skipped.
    sql = f"EXPLAIN indexes = 1 SELECT count() FROM {version_one.events} WHERE `message` LIKE {{needle:String}}"
    plan = "\n".join(str(row[0]) for row in chdb_client.query(sql, {"needle": f"%{RARE}%"}))
    skipped = plan[plan.index(schema.MESSAGE_NGRAMS) :]
    granules = [line for line in skipped.splitlines() if "Granules:" in line][0]
    selected, total = (int(part) for part in granules.split("Granules:")[1].split("/"))
    assert selected <= 2 < total, plan
    store = ClickHouseStore(chdb_client, version_one)
    found = store.for_tenant(TENANT).search(
        SearchRequest(BASE_NS, BASE_NS + COUNT, Pipeline((Filter(pipeline({"$contains": ["body", RARE]})),)), 10,
                      count_total=True)
    )  # fmt: skip
    assert [row.event.message for row in found.rows] == [f"request 31337 done token a{RARE}b"]
    assert (found.total, found.total_exact) == (1, True)
    assert schema.migrate(chdb_client, version_one) == (2, 2)
