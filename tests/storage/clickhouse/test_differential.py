"""The same events in the Tantivy and the ClickHouse backends answer every query of the corpora identically.

Each query runs on both stores and through the reference evaluator (the judge): the rows (by id, in
order, newest first and forward, with offsets and cursors) and the counts per step must be equal.
The queries are the Tantivy compiler's KQL and pipeline corpora, pipelines with parse stages, and
seeded random combinations of the corpus leaves.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from logtraced.model import Event, Tenant
from logtraced.query.ast import MatchAll, Node
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline, parse_pipeline
from logtraced.storage.backend import CountRequest, LogStore, SearchRequest
from logtraced.storage.clickhouse.client import ChdbClient
from logtraced.storage.tantivy.store import TantivyStore
from logtraced.storage.tantivy.writer import TantivyWriter
from tests.storage.clickhouse.conftest import Backend, apply_wal, make_config, write_wal
from tests.storage.tantivy.test_compile import (
    BASE_NS,
    EVENTS,
    KQL_CASES,
    PIPELINE_CASES,
    SECOND,
    pipeline,
    random_kql,
    random_pipeline,
)

TENANT = Tenant("acme", "production")
WINDOW = (BASE_NS - 3600 * SECOND, BASE_NS + 3600 * SECOND)
STEP_NS = 3 * SECOND
# Events sharing event 0's nanosecond, in a second WAL record: paging must not split or repeat them.
TIES = [Event(BASE_NS, f"tie {n} timeout", level=("error", "info")[n % 2], service="api") for n in range(6)]
PARSED: list[dict[str, object]] = [
    {"pipeline": [{"type": "parse", "parser": "regexp", "pattern": r"(?P<first>\w+)"},
                  {"type": "where", "query": {"$eq": ["first", "Error"]}}]},
    {"pipeline": [{"type": "filter", "query": {"$contains": ["body", "o"]}},
                  {"type": "parse", "parser": "logfmt", "field": "body"},
                  {"type": "where", "query": {"$neq": ["payload", "x"]}}]},
    {"pipeline": [{"type": "parse", "parser": "json", "field": "body"},
                  {"type": "where", "query": {"$regex": ["body", "(?i)tie [0-2]"]}}]},
]  # fmt: skip


@dataclass
class Pair:
    tantivy: LogStore
    clickhouse: LogStore
    events: list[Event]  # as stored (ids assigned by the writer)


@pytest.fixture(scope="module")
def pair(chdb_client: ChdbClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    batches = [(TENANT, list(EVENTS.values())), (TENANT, TIES)]
    tantivy_cfg = make_config(tmp_path_factory.mktemp("tantivy"))
    apply_wal(tantivy_cfg, TantivyWriter(tantivy_cfg), write_wal(tantivy_cfg, copy.deepcopy(batches))).close()
    backend = Backend(chdb_client)
    clickhouse_cfg = make_config(tmp_path_factory.mktemp("clickhouse"))
    apply_wal(clickhouse_cfg, backend.writer(), write_wal(clickhouse_cfg, copy.deepcopy(batches))).close()
    tantivy = TantivyStore(tantivy_cfg.data_path)
    stored = tantivy.for_tenant(TENANT).search(SearchRequest(*WINDOW, Pipeline((Filter(MatchAll()),)), 1000)).rows
    yield Pair(tantivy, backend.store, [row.event for row in stored])
    chdb_client.command(f"DROP DATABASE `{backend.target.database}`")


def judged(pair: Pair, query: Pipeline) -> list[int]:
    """Ids the reference semantics accept, newest first."""
    matcher = query.matcher(stem=None)
    accepted = [event for event in pair.events if matcher(event) is not None]
    return [event.id for event in sorted(accepted, key=lambda e: (e.timestamp, e.id), reverse=True)]


def ids(store: LogStore, request: SearchRequest) -> list[int]:
    return [row.event.id for row in store.for_tenant(TENANT).search(request).rows]


def paged(store: LogStore, query: Pipeline, *, newest_first: bool, limit: int = 3) -> list[int]:
    found: list[int] = []
    after: bytes | None = None
    while True:
        page = store.for_tenant(TENANT).search(SearchRequest(*WINDOW, query, limit, newest_first, after=after))
        found += [row.event.id for row in page.rows]
        if page.cursor is None:
            return found
        after = page.cursor


def counts(store: LogStore, query: Pipeline, by: tuple[str, ...]) -> dict[tuple[str, ...], dict[int, int]]:
    result = store.for_tenant(TENANT).count(CountRequest(*WINDOW, query, STEP_NS, by))
    return {tuple(series.labels[name] for name in by): series.counts for series in result.series}


def judged_counts(pair: Pair, query: Pipeline, by: tuple[str, ...]) -> dict[tuple[str, ...], dict[int, int]]:
    matcher = query.matcher(stem=None)
    found: dict[tuple[str, ...], dict[int, int]] = {}
    for event in pair.events:
        labels = matcher(event)
        if labels is None:
            continue
        key = tuple(str(getattr(event, name)) for name in by)
        step = WINDOW[0] + (event.timestamp - WINDOW[0]) // STEP_NS * STEP_NS
        found.setdefault(key, {})
        found[key][step] = found[key].get(step, 0) + 1
    return found


def assert_same(pair: Pair, query: Pipeline) -> None:
    expected = judged(pair, query)
    for store in (pair.tantivy, pair.clickhouse):
        assert ids(store, SearchRequest(*WINDOW, query, 1000)) == expected
        assert ids(store, SearchRequest(*WINDOW, query, 3, offset=2)) == expected[2:5]
        assert paged(store, query, newest_first=True) == expected
        assert paged(store, query, newest_first=False) == expected[::-1]
        if not any(stage for stage in query.stages if not isinstance(stage, Filter)):
            assert counts(store, query, ("level",)) == judged_counts(pair, query, ("level",))
    assert counts(pair.clickhouse, query, ("service", "level")) == counts(pair.tantivy, query, ("service", "level"))
    first = pair.clickhouse.for_tenant(TENANT).search(SearchRequest(*WINDOW, query, 2, count_total=True))
    second = pair.clickhouse.for_tenant(TENANT).search(
        SearchRequest(*WINDOW, query, 2, after=first.cursor, count_total=True)
    )
    assert (first.total, first.total_exact) == (len(expected), True)
    assert second.total == len(expected) or first.cursor is None


def filtered(node: Node) -> Pipeline:
    return Pipeline((Filter(node),))


@pytest.mark.parametrize("query", [query for query, _ in KQL_CASES])
def test_kql_corpus(pair: Pair, query: str) -> None:
    assert_same(pair, filtered(parse_kql(query)))


@pytest.mark.parametrize("query", [query for query, _ in PIPELINE_CASES], ids=str)
def test_pipeline_corpus(pair: Pair, query: dict[str, object]) -> None:
    assert_same(pair, filtered(pipeline(query)))


@pytest.mark.parametrize("body", PARSED, ids=str)
def test_pipelines_with_parse_stages(pair: Pair, body: dict[str, object]) -> None:
    assert_same(pair, parse_pipeline(body))


@pytest.mark.parametrize("seed", range(8))
def test_random_queries(pair: Pair, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        node = parse_kql(random_kql(rng)) if rng.random() < 0.7 else random_pipeline(rng)
        assert_same(pair, filtered(node))


@pytest.mark.parametrize("name", ["service", "level", "host", "index", "tags", "http.status", "status_code", "user_id"])
def test_label_values_agree(pair: Pair, name: str) -> None:
    theirs = pair.tantivy.for_tenant(TENANT).label_values(name, *WINDOW, 100)
    assert pair.clickhouse.for_tenant(TENANT).label_values(name, *WINDOW, 100) == theirs


def test_label_names_and_indexes_agree(pair: Pair) -> None:
    for store in (pair.tantivy, pair.clickhouse):
        view = store.for_tenant(TENANT)
        assert view.label_names(*WINDOW) == ["service", "level", "env", "host", "index"]
        assert (view.has_index("audit"), view.has_index("nope")) == (True, False)


def test_stored_events_come_back_as_sent(pair: Pair, tmp_path: Path) -> None:
    """ClickHouse keeps the attributes' JSON text, so even RFC 3339 strings come back untouched."""
    rows = pair.clickhouse.for_tenant(TENANT).search(SearchRequest(*WINDOW, filtered(MatchAll()), 1000)).rows
    by_message = {row.event.message: row.event.attributes for row in rows}
    for event in EVENTS.values():
        assert by_message[event.message] == event.attributes
