"""Schema upgrades in place, refused before `migrate`: version 2 (the message trigram index), version 3 (the label
rollup, backfilled from the events already stored)."""

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
    runs_on = f"version 1, this logtraced runs on {schema.SCHEMA_VERSION}: .*run `logtraced migrate`"
    with pytest.raises(schema.SchemaMismatch, match=runs_on):
        schema.check(schema.installed_version(chdb_client, version_one), create_if_absent=True)
    assert indexes(chdb_client, version_one) == ["words_text"]
    assert schema.migrate(chdb_client, version_one) == (1, schema.SCHEMA_VERSION)
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
    assert schema.migrate(chdb_client, version_one) == (schema.SCHEMA_VERSION, schema.SCHEMA_VERSION)


@pytest.fixture
def version_two(chdb_client: ChdbClient, tmp_path: Path) -> Iterator[tuple[schema.Target, list[Event]]]:
    """A database as logtraced 2 left it (no label rollup), holding events of two tenants over three days."""
    target = schema.Target("t_" + uuid.uuid4().hex[:12])
    for statement in [*schema.create_statements(target), *schema.MIGRATIONS[2](target)]:
        chdb_client.command(statement)
    chdb_client.command(f"INSERT INTO {target.versions} (`version`) VALUES (1), (2)")
    mine = [Event(BASE_NS + n * 3_600_000_000_000 + n, f"m{n}", service=f"svc-{n % 7}", host=f"h{n % 3}",
                  tags=[f"t{n % 5}"]) for n in range(72)]  # fmt: skip
    theirs = [Event(BASE_NS + n, "theirs", service="leak", tags=["leak"]) for n in range(10)]
    cfg = make_config(tmp_path)
    batches = [(TENANT, mine), (Tenant("globex", "production"), theirs)]
    apply_wal(cfg, ClickHouseWriter(chdb_client, target), write_wal(cfg, batches)).close()
    yield target, mine
    chdb_client.command(f"DROP DATABASE `{target.database}`")


def test_migrate_creates_the_label_rollup_and_backfills_it(
    chdb_client: ChdbClient, version_two: tuple[schema.Target, list[Event]], tmp_path: Path
) -> None:
    target, mine = version_two
    tables = "SELECT count() FROM system.tables WHERE database = {db:String} AND name LIKE 'label_rollup%'"
    assert chdb_client.query(tables, {"db": target.database}) == [[0]]
    assert schema.migrate(chdb_client, target) == (2, schema.SCHEMA_VERSION)
    assert chdb_client.query(tables, {"db": target.database}) == [[2]]  # the rollup and its view
    # Whole minutes only: the answer comes from the backfilled rollup, not from the events' edges.
    start, end = BASE_NS - 60_000_000_000, BASE_NS + 4 * 86_400_000_000_000
    assert start % schema.NS_PER_BUCKET == 0
    backfilled = chdb_client.query(f"SELECT DISTINCT `value` FROM {target.rollup} WHERE `name` = 'service' ORDER BY 1")
    assert backfilled == [["leak"]] + [[f"svc-{n}"] for n in range(7)]
    view = ClickHouseStore(chdb_client, target).for_tenant(TENANT)
    assert view.label_values("service", start, end, 100) == [f"svc-{n}" for n in range(7)]
    assert view.label_values("tags", start, end, 100) == [f"t{n}" for n in range(5)]
    assert view.label_names(start, end) == ["service", "env", "host"]
    # The view runs from now on: a later insert is rolled up too.
    cfg = make_config(tmp_path)
    later = Event(BASE_NS + 3 * 86_400_000_000_000, "later", service="svc-late")
    apply_wal(cfg, ClickHouseWriter(chdb_client, target), write_wal(cfg, [(TENANT, [later])])).close()
    assert view.label_values("service", start, end, 100) == [f"svc-{n}" for n in range(7)] + ["svc-late"]
    assert schema.migrate(chdb_client, target) == (schema.SCHEMA_VERSION, schema.SCHEMA_VERSION)
