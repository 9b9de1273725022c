"""Attribute comparisons decided in SQL agree with the reference evaluator on every shape of JSON value.

The events hold the shapes evaluate.py distinguishes: nested objects and literal dotted keys,
arrays (nested too), integers, floats, numeric strings (padded with Unicode spaces), booleans and
their spellings, ё, non-ASCII words, RFC 3339 strings, null and empty containers.  Each query must
compile to an exact condition (only guarded rows verified), and its rows, cursor pages, exact
total and counts per step must be the reference evaluator's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from logtraced.model import Event, Tenant
from logtraced.query.ast import Node
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import CountRequest, SearchRequest
from logtraced.storage.clickhouse.client import ChdbClient
from logtraced.storage.clickhouse.compile_sql import compile_condition
from logtraced.storage.clickhouse.params import Params
from tests.storage.clickhouse.conftest import Backend, apply_wal, make_config, write_wal
from tests.storage.tantivy.test_compile import pipeline

TENANT = Tenant("acme", "production")
BASE_NS = 1_710_496_800_000_000_000
SECOND = 1_000_000_000
WINDOW = (BASE_NS - 3600 * SECOND, BASE_NS + 3600 * SECOND)
ATTRIBUTES: list[dict[str, Any]] = [
    {"http": {"status": 500}, "user": "Ёлка Admin"},
    {"http.status": 500.0, "user": "елка admin"},
    {"http": {"status": "500"}, "http.status": 404},
    {"http": [{"status": 404}, {"status": [500, 503]}], "ok": True},
    {"http": {"status": " 5e2\u00a0"}, "ok": "true", "ratio": 0.25},
    {"http": {"status": [[500]]}, "tags": ["a b", "c"]},
    {"http": {"status": None}, "ok": False, "empty": {}, "list": []},
    {"http": {"status": "2024-03-15T10:00:00.500+01:00"}, "when": "2024-03-15T10:00:00Z"},
    {"http": {"status": "Server Error 500 boom"}, "user": "Müller admin", "big": 18446744073709551615},
    {"status_code": "400.0", "latency": 12.5, "note": 'say "hi"\\ok', "nested": {"a": {"b": None}}},
    {"status_code": 400, "latency": 7, "user": "zed", "nested": {"a": {"b": [None, 0]}}},
    {"a.b": {"c": 1}, "a": {"b.c": 2, "b": {"c": 3}}, "n": "-17"},
    {"user": "ZZ", "n": 9007199254740993, "id": "000123", "ratio": "1e3"},
    {},
]
MESSAGES = {5: "event 5\nsecond line: Ёлка"}
QUERIES: list[Any] = [
    "http.status:500", "http.status:404", "not http.status:500", "http.status:*", "not http.status:*",
    "http.status >= 500", "http.status < 500", "http.status > 2024", "http.status:error", "http.status:\"error 500\"",
    "http.status:\"500 boom\"", "ok:true", "ok:TRUE", "not ok:false", "ok:*", "empty:*", "list:*", "nested:*",
    "nested.a.b:*", "nested.a.b:0", "user:admin", "user:\"елка admin\"", "user:ёлка", "user:müller", "user > m",
    "user <= Z", "status_code:400", "status_code >= 400.0", "latency > 10", "latency:7", "a.b.c:1", "a.b.c:2",
    "a.b.c:3", "a.b.c >= 2", "n < 0", "n:9007199254740992", "n > 9007199254740992", "id:123", "ratio > 100",
    "when > 2024-01-01", "when:*", "tags:c", "tags:\"b c\"", "big > 1e19", "big:18446744073709551615",
    {"$eq": ["http.status", 500]}, {"$eq": ["http.status", "500"]}, {"$eq": ["user", "елка admin"]},
    {"$eq": ["ok", True]}, {"$eq": ["ok", "true"]}, {"$neq": ["http.status", 404]}, {"$eq": ["n", -17]},
    {"$eq": ["id", 123]}, {"$eq": ["ratio", 1000]}, {"$contains": ["user", "min"]}, {"$contains": ["user", "Ел"]},
    {"$contains": ["http.status", "50"]}, {"$contains": ["ratio", "0.2"]}, {"$contains": ["ok", "ru"]},
    {"$notcontains": ["user", "admin"]}, {"$contains": ["note", '"hi"\\']}, {"$contains": ["latency", "x"]},
    {"$gt": ["http.status", "400"]}, {"$lte": ["status_code", 400]},
    {"$gte": ["n", "-20"]},
]  # fmt: skip


@dataclass
class Stored:
    backend: Backend
    events: list[Event]


@pytest.fixture(scope="module")
def stored(chdb_client: ChdbClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    events = [
        Event(BASE_NS + n * SECOND, MESSAGES.get(n, f"event {n}"), level=("error", "info")[n % 2], attributes=fields)
        for n, fields in enumerate(ATTRIBUTES)
    ]
    backend = Backend(chdb_client)
    cfg = make_config(tmp_path_factory.mktemp("attributes"))
    apply_wal(cfg, backend.writer(), write_wal(cfg, [(TENANT, events)])).close()
    view = backend.store.for_tenant(TENANT)
    rows = view.search(SearchRequest(*WINDOW, Pipeline((Filter(parse_kql("*")),)), 100)).rows
    yield Stored(backend, [row.event for row in rows])
    chdb_client.command(f"DROP DATABASE `{backend.target.database}`")


def node_of(query: Any) -> Node:
    return parse_kql(query) if isinstance(query, str) else pipeline(query)


def expected_ids(stored: Stored, node: Node) -> list[int]:
    matcher = Pipeline((Filter(node),)).matcher(stem=None)
    return [event.id for event in stored.events if matcher(event) is not None]  # newest first, as read


def assert_agrees(stored: Stored, node: Node) -> None:
    query = Pipeline((Filter(node),))
    view = stored.backend.store.for_tenant(TENANT)
    expected = expected_ids(stored, node)
    page = view.search(SearchRequest(*WINDOW, query, 100, count_total=True))
    assert [row.event.id for row in page.rows] == expected, node
    assert (page.total, page.total_exact) == (len(expected), True), node
    found: list[int] = []
    after: bytes | None = None
    while True:
        part = view.search(SearchRequest(*WINDOW, query, 2, newest_first=False, after=after))
        found += [row.event.id for row in part.rows]
        if part.cursor is None:
            break
        after = part.cursor
    assert found == expected[::-1], node
    counted = view.count(CountRequest(*WINDOW, query, 3 * SECOND, ("level",)))
    by_level = {series.labels["level"]: sum(series.counts.values()) for series in counted.series}
    levels = {event.id: event.level for event in stored.events}
    judged: dict[str, int] = {}
    for identifier in expected:
        judged[levels[identifier]] = judged.get(levels[identifier], 0) + 1
    assert by_level == judged, node


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_attribute_query_is_exact_and_agrees(stored: Stored, query: Any) -> None:
    node = node_of(query)
    assert compile_condition(node, Params()).exact, node
    assert_agrees(stored, node)


@pytest.mark.parametrize("seed", range(4))
def test_random_combinations(stored: Stored, seed: int) -> None:
    rng = random.Random(seed)
    leaves = [query for query in QUERIES if isinstance(query, str)]
    for _ in range(25):
        left, right = rng.sample(leaves, 2)
        text = f"({left}){rng.choice([' and ', ' or '])}{rng.choice(['', 'not '])}({right})"
        assert_agrees(stored, parse_kql(text))


def test_guarded_rows_alone_are_verified(stored: Stored) -> None:
    """`http.status:500` on this corpus: rows with nested arrays or date-shaped strings are the only guarded ones."""
    condition = compile_condition(parse_kql("http.status:500"), Params())
    assert condition.exact and condition.guard
    view = stored.backend.store.for_tenant(TENANT)
    page = view.search(SearchRequest(*WINDOW, Pipeline((Filter(parse_kql("http.status:500")),)), 100))
    assert page.stats.lines_examined < len(stored.events)


@pytest.mark.parametrize(
    "pattern", ["5.second", "(?s)5.second", "^event 1[0-3]$", "(?i)EVENT [2-5]", "(?m)^second", "line: елка", "Ё"]
)
def test_message_regex_is_exact(stored: Stored, pattern: str) -> None:
    """ClickHouse's `.` matches a newline unless told otherwise; ё and е find each other."""
    for node in (pipeline({"$regex": ["body", pattern]}), pipeline({"$notregex": ["body", pattern]})):
        condition = compile_condition(node, Params())
        assert condition.exact and not condition.guard
        assert_agrees(stored, node)
