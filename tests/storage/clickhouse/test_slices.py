"""Pages read through time slices are exactly the pages of one statement over the whole window.

The first slice is sized to hold a handful of events here (SLICE_EVENTS lowered), so every page
crosses many slices, including empty ones (a gap in the events) and slices whose edges fall
beside runs of equal timestamps.  The judge is the reference matcher over every stored event,
ordered by (timestamp, id): cursor chains, offsets (including ones that skip whole slices), both
orders, and exact, guarded and verified queries alike.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logtraced.model import Event, Tenant
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline, parse_pipeline
from logtraced.storage.backend import SearchRequest
from logtraced.storage.clickhouse import schema, search
from logtraced.storage.clickhouse.client import ChdbClient
from logtraced.storage.clickhouse.schema import COLUMNS, Target
from logtraced.storage.clickhouse.search import event_from_row
from logtraced.storage.clickhouse.writer import ClickHouseWriter
from tests.storage.clickhouse.conftest import Backend, apply_wal, make_config, write_wal

TENANT = Tenant("acme", "production")
OTHER = Tenant("acme", "staging")
BASE_NS = 1_710_496_800_000_000_000
SECOND = 1_000_000_000
GRANULE = 256
WINDOW = (BASE_NS, BASE_NS + 3 * 86_400 * SECOND)  # three day partitions
MESSAGES = ["connection refused by upstream", "refused connection", "request done", "timeout after 30s"]
QUERIES: dict[str, Pipeline] = {
    "everything": Pipeline((Filter(parse_kql("")),)),
    "exact label": Pipeline((Filter(parse_kql("level:error")),)),
    "guarded attribute": Pipeline((Filter(parse_kql("http.status:500")),)),
    "verified phrase": Pipeline((Filter(parse_kql('"connection refused"')),)),
    "verified regex": parse_pipeline({"pipeline": [{"type": "filter", "query": {"$regex": ["user", "^u-1"]}}]}),
}


def _events(rng: random.Random) -> list[Event]:
    """Bursts of equal timestamps, a day-long gap, values of every kind the attribute guard looks at."""
    stamps: list[int] = []
    for burst in range(60):
        at = WINDOW[0] + burst * 1_800 * SECOND + (86_400 * SECOND if burst >= 30 else 0)
        stamps += [at + rng.choice([0, 0, 1, SECOND])] * rng.randint(1, 9)
    statuses: list[Any] = [500, "500", 200, [500], None, 500.0]
    return [
        Event(
            stamp, rng.choice(MESSAGES), rng.choice(["info", "error"]),
            attributes={"http": {"status": rng.choice(statuses)}, "user": f"u-{rng.randint(1, 30)}"},
        )
        for stamp in stamps
    ]  # fmt: skip


@pytest.fixture(scope="module")
def stored(chdb_client: ChdbClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    backend = Backend(chdb_client)
    rng = random.Random(13)
    cfg = make_config(tmp_path_factory.mktemp("slices"))
    through = write_wal(cfg, [(TENANT, _events(rng)), (OTHER, _events(rng))])
    apply_wal(cfg, backend.writer(), through).close()
    yield backend
    chdb_client.command(f"DROP DATABASE `{backend.target.database}`")


@pytest.fixture(autouse=True)
def narrow_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "SLICE_EVENTS", 3)


def _expected(client: ChdbClient, target: Target, pipeline: Pipeline, newest_first: bool) -> list[int]:
    """Ids the reference matcher accepts among the tenant's events, in page order."""
    columns = ", ".join(f"`{name}`" for name in COLUMNS)
    rows = client.query(
        f"SELECT {columns} FROM {target.events} WHERE `org` = {{org:String}} AND `env` = {{env:String}}",
        {"org": TENANT.org, "env": TENANT.env},
    )
    matcher = pipeline.matcher()
    events = sorted((event_from_row(row) for row in rows), key=lambda event: (event.timestamp, event.id))
    ids = [event.id for event in events if matcher(event) is not None]
    return ids[::-1] if newest_first else ids


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest", "oldest"])
@pytest.mark.parametrize("name", QUERIES)
def test_cursor_pages_concatenate_to_the_whole_window(stored: Backend, name: str, newest_first: bool) -> None:
    pipeline = QUERIES[name]
    expected = _expected(stored.client, stored.target, pipeline, newest_first)
    assert len(expected) > 20, "the events must give every query several pages"
    tenant = stored.store.for_tenant(TENANT)
    seen: list[int] = []
    after: bytes | None = None
    while True:
        page = tenant.search(SearchRequest(*WINDOW, pipeline, 7, newest_first, after=after, count_total=True))
        seen += [row.event.id for row in page.rows]
        assert (page.total, page.total_exact) == (len(expected), True)
        if not page.more:
            break
        assert page.cursor is not None
        after = page.cursor
    assert seen == expected


@pytest.mark.parametrize("offset", [0, 5, 11, 40, 130, 10_000])
@pytest.mark.parametrize("name", QUERIES)
def test_offsets_skip_across_slices(stored: Backend, name: str, offset: int) -> None:
    pipeline = QUERIES[name]
    expected = _expected(stored.client, stored.target, pipeline, True)
    page = stored.store.for_tenant(TENANT).search(SearchRequest(*WINDOW, pipeline, 9, offset=offset))
    assert [row.event.id for row in page.rows] == expected[offset : offset + 9]
    assert page.more == (len(expected) > offset + 9)


def test_a_cursor_inside_a_run_of_equal_timestamps(stored: Backend) -> None:
    """A page ending inside a run of equal timestamps resumes inside it: the run is never split or repeated."""
    pipeline = QUERIES["everything"]
    expected = _expected(stored.client, stored.target, pipeline, True)
    tenant = stored.store.for_tenant(TENANT)
    first = tenant.search(SearchRequest(*WINDOW, pipeline, 1))
    second = tenant.search(SearchRequest(*WINDOW, pipeline, 1, after=first.cursor))
    assert [first.rows[0].event.id, second.rows[0].event.id] == expected[:2]
    assert first.rows[0].event.timestamp == second.rows[0].event.timestamp  # the newest burst holds several events


def test_the_primary_key_confines_a_slice_to_its_granules(chdb_client: ChdbClient, tmp_path: Path) -> None:
    """Why slices need no skip index: the table is ordered by (org, env, timestamp, id), so a slice's time
    range selects only its own granules through the primary key (and the parts' timestamp min/max)."""
    target = Target("t_slices_pk")
    for statement in schema.create_statements(target):
        chdb_client.command(statement.replace("index_granularity = 8192", f"index_granularity = {GRANULE}"))
    try:
        events = [Event(BASE_NS + n * SECOND, f"request {n}") for n in range(40 * GRANULE)]
        cfg = make_config(tmp_path)
        apply_wal(cfg, ClickHouseWriter(chdb_client, target), write_wal(cfg, [(TENANT, events)])).close()
        newest = BASE_NS + 40 * GRANULE * SECOND
        sql = (
            f"EXPLAIN indexes = 1 SELECT `id` FROM {target.events} WHERE `org` = {{org:String}} "
            "AND `env` = {env:String} AND `timestamp` >= {low:Int64} AND `timestamp` < {high:Int64} "
            "ORDER BY `timestamp` DESC, `id` DESC LIMIT 10"
        )
        bounds = {"org": TENANT.org, "env": TENANT.env, "low": newest - GRANULE * SECOND, "high": newest}
        plan = "\n".join(str(row[0]) for row in chdb_client.query(sql, bounds))
        keyed = plan[plan.index("PrimaryKey") :]
        granules = [line for line in keyed.splitlines() if "Granules:" in line][0]
        selected, total = (int(part) for part in granules.split("Granules:")[1].split("/"))
        assert selected <= 2 < total, plan
    finally:
        chdb_client.command(f"DROP DATABASE `{target.database}`")
