"""POST .../logs/api/v2/query_range/json end to end: operators, stages, order, paging, days, errors, time budget."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest

from logtraced.model import Tenant
from logtraced.storage.tantivy.partitions import PartitionLayout, day_of
from logtraced.storage.tantivy.reader import IndexReader
from tests.api.conftest import Key
from tests.api.query_fixtures import (
    DAY_NS,
    HOUR_NS,
    NS,
    QUERY_RANGE,
    QueryApi,
    assert_error,
    launch,
    log,
    marker,
    recent_base,
    stream_lines,
    stream_values,
)
from tests.harness import backend_name, wait_until

REGION = "ap-south-1"


@pytest.fixture(scope="module")
def qapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    yield from launch(tmp_path_factory, "--set", f"query.region={REGION}")


@dataclass(frozen=True)
class Window:
    """One organisation's events and the [start, end) window that holds them all."""

    key: Key
    start: int
    end: int

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, **extra}


def flt(query: dict[str, Any]) -> dict[str, Any]:
    return {"type": "filter", "query": query}


def where(query: dict[str, Any]) -> dict[str, Any]:
    return {"type": "where", "query": query}


# -- operators and stages ---------------------------------------------------------------------------

JSON_LINE = '{"user_id":"u-1","request_id":"r-1","latency":250,"nested":{"k":"v"}}'
LOGFMT_LINE = 'user_id=u-2 request_id=r-2 latency=900 msg="slow call"'
REGEX_LINE = "user u-3 took 1200ms on /checkout"
HOSTILE_LINE = "a" * 64 + "!"
# Short names for the events below, so each table row reads as the set of events it expects.
LINES = {
    "users": "GET /api/v1/users 200 in 12ms",
    "orders": "POST /api/v2/orders 500 timeout",
    "health": "GET /health ok",
    "pay": "payment 404 not found",
    "json": JSON_LINE,
    "logfmt": LOGFMT_LINE,
    "regex": REGEX_LINE,
    "ru": "Ошибка подключения к базе",
    "hostile": HOSTILE_LINE,
    "aaa": "aaaa",
}
ALL = frozenset(LINES)


@pytest.fixture(scope="module")
def shop(qapi: QueryApi) -> Window:
    """Events with every kind of value the operators compare: numbers, numeric strings, paths, JSON bodies."""
    key = qapi.key()
    base = recent_base() - 3600 * NS
    fields: dict[str, dict[str, Any]] = {
        "users": {"service": "api", "level": "info", "status_code": 200, "duration": "12", "path": "/api/v1/users"},
        "orders": {"service": "api", "level": "error", "status_code": 500, "duration": 1500, "path": "/api/v2/orders"},
        "health": {"service": "api", "level": "debug", "status_code": 200, "duration": 1, "path": "/health"},
        "pay": {"service": "payments", "level": "warn", "status_code": "404", "duration": "5000.5", "path": "/pay"},
        "json": {"service": "json-svc", "level": "info"},
        "logfmt": {"service": "logfmt-svc", "level": "warn"},
        "regex": {"service": "regex-svc", "level": "error"},
        "ru": {"service": "ru", "level": "error"},
        "hostile": {"service": "hostile", "level": "info"},
        "aaa": {"service": "hostile", "level": "info"},
    }
    events = [log(base + (10 + i) * NS, LINES[name], **fields[name]) for i, name in enumerate(LINES)]
    qapi.ingest_and_wait(key, events)
    return Window(key, base, base + 100 * NS)


def found(qapi: QueryApi, window: Window, pipeline: list[dict[str, Any]], **params: Any) -> set[str]:
    """Names of the events a pipeline returns (asserting a well-formed 200)."""
    status, body = qapi.query_range(window.key, pipeline, **window.params(**params))
    assert status == 200, body
    by_line = {line: name for name, line in LINES.items()}
    return {by_line[line] for line in stream_lines(body)}


OPERATORS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("$eq keyword", {"$eq": ["service", "api"]}, {"users", "orders", "health"}),
    ("$eq number to string", {"$eq": ["status_code", "200"]}, {"users", "health"}),
    ("$eq number to numeric string", {"$eq": ["status_code", 404]}, {"pay"}),
    ("$neq", {"$neq": ["level", "debug"]}, ALL - {"health"}),
    ("$neq missing field matches", {"$neq": ["path", "/health"]}, ALL - {"health"}),
    ("$contains substring", {"$contains": ["body", "time"]}, {"orders"}),
    ("$contains Cyrillic", {"$contains": ["body", "подключ"]}, {"ru"}),
    ("$notcontains", {"$notcontains": ["body", "GET"]}, ALL - {"users", "health"}),
    ("$regex unanchored", {"$regex": ["path", "/api/v[0-9]+"]}, {"users", "orders"}),
    ("$regex case-sensitive", {"$regex": ["body", "ошибка"]}, set()),
    ("$regex with flag", {"$regex": ["body", "(?i)ошибка"]}, {"ru"}),
    ("$notregex", {"$notregex": ["path", "health"]}, ALL - {"health"}),
    ("$gt numbers as strings", {"$gt": ["status_code", "400"]}, {"orders", "pay"}),
    ("$lt", {"$lt": ["status_code", "500"]}, {"users", "health", "pay"}),
    ("$gte", {"$gte": ["duration", "1000"]}, {"orders", "pay"}),
    ("$lte", {"$lte": ["duration", "5000"]}, {"users", "orders", "health"}),
    ("$gte float string", {"$gte": ["duration", "5000.5"]}, {"pay"}),
    ("$and", {"$and": [{"$eq": ["service", "api"]}, {"$gt": ["status_code", "300"]}]}, {"orders"}),
    ("$or", {"$or": [{"$eq": ["level", "debug"]}, {"$eq": ["service", "payments"]}]}, {"health", "pay"}),
    ("$not of $and", {"$not": [{"$and": [{"$eq": ["service", "api"]}]}]}, ALL - {"users", "orders", "health"}),
    (
        "$not of $or",
        {"$not": [{"$or": [{"$eq": ["level", "info"]}, {"$eq": ["level", "debug"]}]}]},
        {"orders", "pay", "logfmt", "regex", "ru"},
    ),
    (
        "nested $and in $or in $and",
        {
            "$and": [
                {
                    "$or": [
                        {"$and": [{"$eq": ["service", "api"]}, {"$gt": ["status_code", "300"]}]},
                        {"$lt": ["duration", "2"]},
                    ]
                },
                {"$not": [{"$eq": ["level", "debug"]}]},
            ]
        },
        {"orders"},
    ),
    (
        "two operators in one object are ANDed",
        {"$eq": ["service", "api"], "$contains": ["body", "GET"]},
        {"users", "health"},
    ),
    ("body and message are one field", {"$eq": ["message", "GET /health ok"]}, {"health"}),
    ("level compared case-insensitively", {"$eq": ["level", "ERROR"]}, {"orders", "regex", "ru"}),
]


class TestOperators:
    """Every operator of the document and their nesting, on numbers, numeric strings, keywords and text."""

    @pytest.mark.parametrize(("name", "query", "expected"), OPERATORS, ids=[row[0] for row in OPERATORS])
    def test_operator(self, qapi: QueryApi, shop: Window, name: str, query: dict[str, Any], expected: set[str]) -> None:
        assert found(qapi, shop, [flt(query)]) == expected

    @pytest.mark.parametrize("field", ["body", "message"])
    def test_body_and_message_answer_alike(self, qapi: QueryApi, shop: Window, field: str) -> None:
        assert found(qapi, shop, [flt({"$contains": [field, "timeout"]})]) == {"orders"}

    def test_where_after_filter(self, qapi: QueryApi, shop: Window) -> None:
        pipeline = [flt({"$eq": ["service", "api"]}), where({"$not": [{"$contains": ["body", "GET"]}]})]
        assert found(qapi, shop, pipeline) == {"orders"}

    def test_hostile_nested_quantifier_finishes_fast(self, qapi: QueryApi, shop: Window) -> None:
        """RE2 is linear: `(a+)+$` against 64 a's and a `!` neither hangs nor matches it."""
        started = time.monotonic()
        assert found(qapi, shop, [flt({"$regex": ["body", "(a+)+$"]})]) == {"aaa"}
        assert found(qapi, shop, [flt({"$regex": ["body", "(a|aa)+(a+)+b"]})]) == set()
        assert time.monotonic() - started < 2.0


class TestParseStages:
    """`parse` extracts labels a later `where` tests, and they appear in the stream labels."""

    def streams(self, qapi: QueryApi, shop: Window, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        status, body = qapi.query_range(shop.key, pipeline, **shop.params())
        assert status == 200, body
        return body["data"]["result"] or []

    def test_json_with_null_and_aliased_labels(self, qapi: QueryApi, shop: Window) -> None:
        pipeline = [
            flt({"$eq": ["service", "json-svc"]}),
            {
                "type": "parse",
                "parser": "json",
                "field": "body",
                "labels": {"user_id": None, "lat": "latency", "inner": "nested.k"},
            },
            where({"$gte": ["lat", "250"]}),
        ]
        (stream,) = self.streams(qapi, shop, pipeline)
        assert stream["stream"] == {
            "service": "json-svc",
            "level": "info",
            "env": "production",
            "user_id": "u-1",
            "lat": "250",
            "inner": "v",
        }
        assert [line for _, line in stream["values"]] == [JSON_LINE]
        assert self.streams(qapi, shop, [*pipeline[:2], where({"$gt": ["lat", "250"]})]) == []

    def test_json_without_labels_takes_every_key(self, qapi: QueryApi, shop: Window) -> None:
        pipeline = [flt({"$eq": ["service", "json-svc"]}), {"type": "parse", "parser": "json"}]
        (stream,) = self.streams(qapi, shop, pipeline)
        labels = stream["stream"]
        assert (labels["user_id"], labels["request_id"], labels["latency"], labels["nested_k"]) == (
            "u-1",
            "r-1",
            "250",
            "v",
        )

    def test_logfmt(self, qapi: QueryApi, shop: Window) -> None:
        pipeline = [{"type": "parse", "parser": "logfmt", "field": "body"}, where({"$gt": ["latency", "500"]})]
        (stream,) = self.streams(qapi, shop, pipeline)
        assert stream["stream"]["msg"] == "slow call" and stream["stream"]["user_id"] == "u-2"
        assert [line for _, line in stream["values"]] == [LOGFMT_LINE]

    def test_regexp_named_groups(self, qapi: QueryApi, shop: Window) -> None:
        parse = {
            "type": "parse",
            "parser": "regexp",
            "field": "body",
            "pattern": r"user (?P<user>\S+) took (?P<ms>\d+)ms",
        }
        (stream,) = self.streams(qapi, shop, [parse, where({"$gte": ["ms", "1000"]})])
        assert (stream["stream"]["user"], stream["stream"]["ms"]) == ("u-3", "1200")
        assert [line for _, line in stream["values"]] == [REGEX_LINE]
        assert self.streams(qapi, shop, [parse, where({"$gt": ["ms", "5000"]})]) == []

    def test_where_on_parsed_label_over_every_event(self, qapi: QueryApi, shop: Window) -> None:
        """Events the parser cannot read have no such label: `$eq` skips them, `$neq` keeps them."""
        parse = {"type": "parse", "parser": "json"}
        assert found(qapi, shop, [parse, where({"$eq": ["request_id", "r-1"]})]) == {"json"}
        assert found(qapi, shop, [parse, where({"$neq": ["request_id", "r-1"]})]) == ALL - {"json"}

    def test_null_result_when_nothing_matches(self, qapi: QueryApi, shop: Window) -> None:
        status, body = qapi.query_range(shop.key, [flt({"$eq": ["service", "nobody"]})], **shop.params())
        assert status == 200
        assert body["data"]["result"] is None
        assert body["data"]["resultType"] == "streams"


class TestAggregate:
    """A final aggregate stage answers a matrix of counts per step, grouped by labels."""

    def test_count_by_level(self, qapi: QueryApi, shop: Window) -> None:
        pipeline = [flt({"$neq": ["service", "nobody"]}), {"type": "aggregate", "function": "count", "by": ["level"]}]
        status, body = qapi.query_range(shop.key, pipeline, **shop.params(step="5s"))
        assert status == 200, body
        assert body["data"]["resultType"] == "matrix"
        first, second = shop.start / NS + 10, shop.start / NS + 15
        counts = {entry["metric"]["level"]: entry["values"] for entry in body["data"]["result"]}
        assert counts == {
            "info": [[first, "2"], [second, "2"]],
            "error": [[first, "1"], [second, "2"]],
            "debug": [[first, "1"]],
            "warn": [[first, "1"], [second, "1"]],
        }


# -- order and paging ---------------------------------------------------------------------------------

DISTINCT = 250
SAME = 300
OLDER = 100


@dataclass(frozen=True)
class Paged:
    window: Window
    expected_desc: list[str]  # every line, newest first; lines at the shared timestamp in no given order
    same_ts: int


@pytest.fixture(scope="module")
def paged(qapi: QueryApi) -> Paged:
    """Distinct timestamps, then a run of identical ones long enough to cross the executor's first read, then older."""
    key = qapi.key()
    base = recent_base() - 2 * HOUR_NS
    same_ts = base + 1000 * NS
    newer = [log(same_ts + (i + 1) * NS, f"newer {i:03d}", service="pager") for i in range(DISTINCT)]
    same = [log(same_ts, f"same {i:03d}", service="pager") for i in range(SAME)]
    older = [log(base + i * NS, f"older {i:03d}", service="pager") for i in range(OLDER)]
    batch = marker()
    # Separate requests, so equal timestamps are spread over several segments.
    for chunk in (newer, same[:100], same[100:200], same[200:], older):
        qapi.ingest(key, [{**event, "batch": batch} for event in chunk])
    everything = newer + same + older
    qapi.wait_for_batch(key, batch, len(everything), everything)
    expected = [event["message"] for event in sorted(everything, key=lambda e: -e["timestamp"])]
    return Paged(Window(key, base, same_ts + (DISTINCT + 1) * NS), expected, same_ts)


def all_pages(qapi: QueryApi, window: Window, limit: int, **params: Any) -> list[list[tuple[int, str]]]:
    pages = []
    offset = 0
    while True:
        status, body = qapi.query_range(window.key, [], **window.params(limit=limit, offset=offset, **params))
        assert status == 200, body
        page = stream_values(body)
        if not page:
            return pages
        pages.append(page)
        offset += limit


class TestOrderAndPaging:
    """Order by timestamp (then a stable tie-breaker); offsets and limits page without repeats or gaps."""

    @pytest.mark.parametrize(("direction", "descending"), [("backward", True), ("forward", False), (None, True)])
    def test_direction(self, qapi: QueryApi, paged: Paged, direction: str | None, descending: bool) -> None:
        status, body = qapi.query_range(paged.window.key, [], **paged.window.params(limit=10_000, direction=direction))
        assert status == 200
        values = stream_values(body)
        stamps = [stamp for stamp, _ in values]
        assert stamps == sorted(stamps, reverse=descending)
        assert sorted(line for _, line in values) == sorted(paged.expected_desc)

    def test_limit(self, qapi: QueryApi, paged: Paged) -> None:
        status, body = qapi.query_range(paged.window.key, [], **paged.window.params(limit=7))
        assert [line for _, line in stream_values(body)] == paged.expected_desc[:7]
        status, body = qapi.query_range(paged.window.key, [], **paged.window.params(limit=7, direction="forward"))
        assert [line for _, line in stream_values(body)] == paged.expected_desc[::-1][:7]

    def test_default_limit_is_100(self, qapi: QueryApi, paged: Paged) -> None:
        status, body = qapi.query_range(paged.window.key, [], **paged.window.params())
        assert len(stream_values(body)) == 100

    @pytest.mark.parametrize("direction", ["backward", "forward"])
    @pytest.mark.parametrize("limit", [3, 100, 256])
    def test_offset_pages_visit_every_event_once(
        self, qapi: QueryApi, paged: Paged, direction: str, limit: int
    ) -> None:
        pages = all_pages(qapi, paged.window, limit, direction=direction)
        lines = [line for page in pages for _, line in page]
        assert len(lines) == len(set(lines)) == len(paged.expected_desc)
        stamps = [stamp for page in pages for stamp, _ in page]
        assert stamps == sorted(stamps, reverse=direction == "backward")

    def test_offset_beyond_the_end_is_empty(self, qapi: QueryApi, paged: Paged) -> None:
        status, body = qapi.query_range(paged.window.key, [], **paged.window.params(offset=10_000))
        assert (status, body["data"]["result"]) == (200, None)

    def test_same_order_on_every_request(self, qapi: QueryApi, paged: Paged) -> None:
        """The tie-breaker is stable: equal timestamps come back in the same order each time."""
        params = paged.window.params(limit=SAME, start=paged.same_ts, end=paged.same_ts + 1)
        first = qapi.query_range(paged.window.key, [], **params)[1]
        second = qapi.query_range(paged.window.key, [], **params)[1]
        assert stream_values(first) == stream_values(second)
        assert len(stream_values(first)) == SAME

    def test_pages_stable_while_newer_events_arrive(self, qapi: QueryApi) -> None:
        """Page 1, then events newer than the page's end arrive, then page 2 with the same end."""
        key = qapi.key()
        base = recent_base() - HOUR_NS
        first = [log(base + i * NS, f"first {i:02d}") for i in range(30)]
        qapi.ingest_and_wait(key, first)
        window = Window(key, base, base + 30 * NS)
        page1 = stream_values(qapi.query_range(key, [], **window.params(limit=10))[1])
        later = [log(base + 30 * NS + i * NS // 10, f"later {i:02d}") for i in range(20)]
        qapi.ingest_and_wait(key, later)
        page2 = stream_values(qapi.query_range(key, [], **window.params(limit=10, offset=10))[1])
        page3 = stream_values(qapi.query_range(key, [], **window.params(limit=10, offset=20))[1])
        lines = [line for _, line in page1 + page2 + page3]
        assert lines == [f"first {i:02d}" for i in reversed(range(30))]


@pytest.fixture(scope="class")
def days(qapi: QueryApi) -> tuple[Window, int]:
    """Five events each: the last seconds of day 0, the first seconds of days 1 and 2 (all in the past)."""
    key = qapi.key()
    midnight = (day_of(recent_base()) - 2) * DAY_NS  # day 1 starts here
    events = [
        log(midnight + offset + i * NS, f"day{day} event {i}", service="days")
        for day, offset in enumerate((-5 * NS, 0, DAY_NS))
        for i in range(5)
    ]
    qapi.ingest_and_wait(key, events)
    return Window(key, midnight - DAY_NS, midnight + 2 * DAY_NS), midnight


class TestDays:
    """Events on three UTC days: a window opens the days it overlaps and reads across them in order."""

    def test_one_day_window_reads_that_day_only(self, qapi: QueryApi, days: tuple[Window, int]) -> None:
        window, midnight = days
        status, body = qapi.query_range(window.key, [], start=midnight, end=midnight + DAY_NS, limit=1000)
        assert status == 200
        assert sorted(stream_lines(body)) == [f"day1 event {i}" for i in range(5)]

    def test_window_crossing_midnight(self, qapi: QueryApi, days: tuple[Window, int]) -> None:
        window, midnight = days
        params = {"start": midnight - 2 * NS, "end": midnight + 2 * NS, "direction": "forward", "limit": 100}
        status, body = qapi.query_range(window.key, [], **params)
        assert stream_lines(body) == ["day0 event 3", "day0 event 4", "day1 event 0", "day1 event 1"]

    @pytest.mark.parametrize("direction", ["backward", "forward"])
    def test_pages_across_days(self, qapi: QueryApi, days: tuple[Window, int], direction: str) -> None:
        window, _ = days
        pages = all_pages(qapi, window, 4, direction=direction)
        stamps = [stamp for page in pages for stamp, _ in page]
        assert stamps == sorted(stamps, reverse=direction == "backward")
        assert len({line for page in pages for _, line in page}) == len(stamps) == 15

    @pytest.mark.skipif(
        backend_name() != "tantivy",
        reason="Tantivy's own day-partitions; ClickHouse prunes its day partitions itself (PARTITION BY day)",
    )
    def test_reader_opens_only_overlapping_days(self, qapi: QueryApi, days: tuple[Window, int]) -> None:
        window, midnight = days
        reader = IndexReader(PartitionLayout(qapi.daemon.data_dir))
        tenant = Tenant(window.key.org, "production")
        assert len(reader.partitions(tenant, window.start, window.end)) >= 2
        (only,) = reader.partitions(tenant, midnight + HOUR_NS, midnight + 2 * HOUR_NS)
        assert only.day == day_of(midnight)


@pytest.fixture(scope="class")
def routed(qapi: QueryApi) -> Window:
    key = qapi.key()
    base = recent_base() - 2 * HOUR_NS
    events = [log(base + i * NS, f"routed {i}", index="Pt_orders") for i in range(3)]
    events += [log(base + (10 + i) * NS, f"default {i}") for i in range(3)]
    qapi.ingest_and_wait(key, events)
    return Window(key, base, base + 20 * NS)


class TestPhysicalIndex:
    """`index=physical_index:<name>` reads the events routed to that index; a name never routed to is 404."""

    def test_reads_only_the_index(self, qapi: QueryApi, routed: Window) -> None:
        status, body = qapi.query_range(routed.key, [], **routed.params(index="physical_index:Pt_orders"))
        assert status == 200
        assert stream_lines(body) == ["routed 2", "routed 1", "routed 0"]
        assert {stream["stream"]["index"] for stream in body["data"]["result"]} == {"Pt_orders"}

    def test_known_index_empty_in_the_window(self, qapi: QueryApi, routed: Window) -> None:
        params = {"start": routed.start + 10 * NS, "end": routed.end, "index": "physical_index:Pt_orders"}
        status, body = qapi.query_range(routed.key, [], **params)
        assert (status, body["data"]["result"]) == (200, None)
        earlier = {"start": routed.start - DAY_NS, "end": routed.start - HOUR_NS, "index": "physical_index:Pt_orders"}
        status, body = qapi.query_range(routed.key, [], **earlier)
        assert (status, body["data"]["result"]) == (200, None)

    @pytest.mark.parametrize("name", ["Pt_order", "pt_orders", "Pt_orders ", "*"])
    def test_unknown_names(self, qapi: QueryApi, routed: Window, name: str) -> None:
        status, body = qapi.query_range(routed.key, [], **routed.params(index=f"physical_index:{name}"))
        assert_error(status, body, 404, "index_not_found")


# -- errors -------------------------------------------------------------------------------------------

BASIC = [flt({"$eq": ["service", "api"]})]


def bad_params(**changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"start": 1, "end": 2 * 10**18}
    params.update(changes)
    return {name: value for name, value in params.items() if value is not None}


PARAMETER_ERRORS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("missing start", bad_params(start=None), 400, "missing_parameter", "start"),
    ("missing end", bad_params(end=None), 400, "missing_parameter", "end"),
    ("empty start", bad_params(start=""), 400, "missing_parameter", "start"),
    ("start not a time", bad_params(start="yesterday"), 400, "invalid_parameter", "start"),
    ("start after end", bad_params(start=3 * 10**18), 400, "invalid_parameter", "before"),
    ("bad direction", bad_params(direction="sideways"), 400, "invalid_parameter", "direction"),
    ("limit zero", bad_params(limit=0), 400, "invalid_limit", "limit"),
    ("limit not a number", bad_params(limit="ten"), 400, "invalid_parameter", "limit"),
    ("limit too large", bad_params(limit=10_001), 400, "invalid_limit", "10000"),
    ("negative limit", bad_params(limit=-5), 400, "invalid_parameter", "limit"),
    ("negative offset", bad_params(offset=-1), 400, "invalid_parameter", "offset"),
    ("offset not a number", bad_params(offset="x"), 400, "invalid_parameter", "offset"),
    ("region mismatch", bad_params(region="us-east-1"), 400, "invalid_region", REGION),
    ("unknown physical index", bad_params(index="physical_index:nope"), 404, "index_not_found", "nope"),
    ("rehydration index", bad_params(index="rehydration_index:Rh_prod_archive"), 404, "index_not_found", "Rh_prod"),
    ("index without kind", bad_params(index="Pt_prod_k8s"), 400, "invalid_parameter", "physical_index"),
]

PIPELINE_ERRORS: list[tuple[str, Any, str, list[str]]] = [
    ("unknown stage", [{"type": "map", "query": {}}], "invalid_pipeline", ["stage 0", "map"]),
    ("stage without type", [{"query": {"$eq": ["a", "b"]}}], "invalid_pipeline", ["stage 0"]),
    ("unknown operator", [flt({"$like": ["body", "x"]})], "invalid_pipeline", ["stage 0 (filter)", "$like"]),
    (
        "operator with 3 args",
        [flt({"$eq": ["service", "api"]}), where({"$eq": ["level", "error", "warn"]})],
        "invalid_pipeline",
        ["stage 1 (where)", "$eq", "2", "3"],
    ),
    ("operator with 1 arg", [flt({"$contains": ["body"]})], "invalid_pipeline", ["$contains", "1"]),
    ("lookbehind regex", [flt({"$regex": ["body", "(?<=x)y"]})], "invalid_regex", ["stage 0 (filter)", "$regex"]),
    ("unclosed group", [flt({"$notregex": ["body", "(ab"]})], "invalid_regex", ["$notregex", "(ab"]),
    ("range on a word", [flt({"$gt": ["status_code", "high"]})], "invalid_pipeline", ["$gt", "high"]),
    ("$or of nothing", [flt({"$or": []})], "invalid_pipeline", ["$or"]),
    ("empty query", [flt({})], "invalid_pipeline", ["stage 0"]),
    ("unknown parser", [{"type": "parse", "parser": "xml"}], "invalid_pipeline", ["xml"]),
    ("regexp without groups", [{"type": "parse", "parser": "regexp", "pattern": "a+"}], "invalid_pipeline", ["named"]),
    ("pipeline not a list", {"stage": 1}, "invalid_pipeline", ["pipeline"]),
]


class TestErrors:
    """Every refusal is `{"error": {"code", "message"}}` with the right status, and the message says what to fix."""

    @pytest.mark.parametrize(
        ("name", "params", "status", "code", "mentions"), PARAMETER_ERRORS, ids=[row[0] for row in PARAMETER_ERRORS]
    )
    def test_parameters(
        self, qapi: QueryApi, shop: Window, name: str, params: dict[str, Any], status: int, code: str, mentions: str
    ) -> None:
        got, body = qapi.query_range(shop.key, BASIC, **params)
        assert mentions in assert_error(got, body, status, code)

    @pytest.mark.parametrize(
        ("name", "pipeline", "code", "mentions"), PIPELINE_ERRORS, ids=[row[0] for row in PIPELINE_ERRORS]
    )
    def test_pipelines(
        self, qapi: QueryApi, shop: Window, name: str, pipeline: Any, code: str, mentions: list[str]
    ) -> None:
        got, body = qapi.query_range(shop.key, pipeline, **shop.params())
        message = assert_error(got, body, 400, code)
        for word in mentions:
            assert word in message, message

    @pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b'{"pipeline": "x"}', b'{"stages": []}'])
    def test_bodies(self, qapi: QueryApi, shop: Window, raw: bytes) -> None:
        got, body = qapi.query_range(shop.key, None, raw=raw, **shop.params())
        assert_error(got, body, 400, "invalid_pipeline")

    def test_body_nested_too_deeply(self, qapi: QueryApi, shop: Window) -> None:
        raw = b'{"pipeline": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
        got, body = qapi.query_range(shop.key, None, raw=raw, **shop.params())
        assert "deeper" in assert_error(got, body, 400, "invalid_pipeline")

    def test_operators_nested_too_deeply(self, qapi: QueryApi, shop: Window) -> None:
        query = b'{"$and": [' * 1_000 + b'{"$eq": ["service", "x"]}' + b"]}" * 1_000
        raw = b'{"pipeline": [{"type": "filter", "query": ' + query + b"}]}"
        got, body = qapi.query_range(shop.key, None, raw=raw, **shop.params())
        assert "deeper" in assert_error(got, body, 400, "invalid_pipeline")
        assert qapi.query_range(shop.key, BASIC, **shop.params())[0] == 200  # and the daemon serves on

    def test_wrong_organisation(self, qapi: QueryApi, shop: Window) -> None:
        got, body = qapi.query_range(shop.key, BASIC, org="someone-else", **shop.params())
        assert_error(got, body, 403, "forbidden_organization")

    def test_missing_token(self, qapi: QueryApi, shop: Window) -> None:
        got, body = qapi.query_range(None, BASIC, org=shop.key.org, **shop.params())
        assert "X-LAST9-API-TOKEN" in assert_error(got, body, 401, "missing_credentials")

    def test_unknown_token(self, qapi: QueryApi, shop: Window) -> None:
        headers = {"X-LAST9-API-TOKEN": "Bearer lt_live_" + "0" * 32}
        got, body = qapi.query_range(None, BASIC, org=shop.key.org, headers=headers, **shop.params())
        assert_error(got, body, 401, "invalid_api_key")

    def test_key_without_read_scope(self, qapi: QueryApi, shop: Window) -> None:
        writer = qapi.key("write:logs", org=shop.key.org)
        got, body = qapi.query_range(writer, BASIC, **shop.params())
        assert_error(got, body, 403, "insufficient_scope")

    def test_expired_token(self, qapi: QueryApi, shop: Window) -> None:
        token = qapi.token(shop.key)
        headers = {"X-LAST9-API-TOKEN": f"Bearer {token}"}
        try:
            qapi.clock.set(86_400 + 5)
            got, body = qapi.query_range(None, BASIC, org=shop.key.org, headers=headers, **shop.params())
        finally:
            qapi.clock.set(0.0)
        assert assert_error(got, body, 401) == "Authorization token is expired"
        got, body = qapi.query_range(None, BASIC, org=shop.key.org, headers=headers, **shop.params())
        assert got == 200, body

    def test_authorization_header_works_too(self, qapi: QueryApi, shop: Window) -> None:
        headers = {"Authorization": f"Bearer {shop.key.secret}"}
        path = QUERY_RANGE.format(org=shop.key.org) + f"?start={shop.start}&end={shop.end}"
        got, _, body = qapi.daemon.request("POST", path, body={"pipeline": BASIC}, headers=headers)
        assert got == 200 and len(stream_lines(body)) == 3

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", QUERY_RANGE, 405),
            ("DELETE", QUERY_RANGE, 405),
            ("POST", "/api/v4/organizations/{org}/logs/api/v3/query_range/json", 404),
            ("GET", "/api/v4/organizations/{org}/logs/api/v1/labelz", 404),
            ("PUT", "/v1/logs/query", 405),
            ("GET", "/v1/logs/search", 404),
        ],
    )
    def test_unknown_routes_and_methods(
        self, qapi: QueryApi, shop: Window, method: str, path: str, status: int
    ) -> None:
        got, _, body = qapi.daemon.request(method, path.format(org=shop.key.org), headers=shop.key.bearer)
        assert_error(got, body, status, {404: "not_found", 405: "method_not_allowed"}[status])


# The cut budget: well under each backend's slow queries (below), well over its quick ones.  Tantivy
# answers the quick ones from its index in about a millisecond; embedded ClickHouse takes two
# statements through the relay (about 40 ms measured on 2 shared cores), its slow ones over a second.
BUDGET: Final = {"tantivy": "0.05", "clickhouse": "0.3"}
SLOW_EVENTS: Final = {"tantivy": 20_000, "clickhouse": 60_000}


@pytest.fixture(scope="class")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryApi, Window]]:
    """A daemon whose query budget is cut (to 0.05 s on Tantivy) by a config reload once its events are searchable.

    Waiting for them goes through the query route, which a budget that small could itself refuse on
    a busy machine; SIGHUP applies `query.timeout_seconds` live, as operators change it.
    """
    for qapi in launch(tmp_path_factory):
        key = qapi.key()
        base = recent_base() - HOUR_NS
        events = [
            log(base + i * 1000, f"request {i} served by worker {i % 7}") for i in range(SLOW_EVENTS[backend_name()])
        ]
        qapi.ingest_and_wait(key, events)
        with qapi.config_path.open("a") as config:
            config.write(f"\n[query]\ntimeout_seconds = {BUDGET[backend_name()]}\n")
        assert qapi.daemon.process is not None
        qapi.daemon.process.send_signal(signal.SIGHUP)
        wait_until(lambda daemon=qapi.daemon: daemon.events_named("config_reloaded"))
        yield qapi, Window(key, base, base + HOUR_NS)


# Queries that must read every event of the window and match none, on each backend.  Tantivy has no
# index for a regex anchored on digits, nor a term for "no words"; ClickHouse answers both inside
# the engine in milliseconds, so its slow one is verified in Python event by event: a phrase whose
# words are in every message but never in that order (over more events, for a wide margin).
SLOW_PIPELINE: dict[str, list[dict[str, Any]]] = {
    "tantivy": [flt({"$regex": ["body", "^[0-9]+$"]})],
    "clickhouse": [flt({"$kql": '"served request"'})],
}
SLOW_KQL: dict[str, str] = {"tantivy": "not message:*", "clickhouse": '"served request"'}


class TestTimeBudget:
    """A query past query.timeout_seconds is abandoned with 504, and the daemon keeps answering."""

    def test_unnarrowable_pattern_times_out(self, slow: tuple[QueryApi, Window]) -> None:
        qapi, window = slow
        pipeline = SLOW_PIPELINE[backend_name()]
        got, body = qapi.query_range(window.key, pipeline, **window.params())
        assert f"{BUDGET[backend_name()]} s" in assert_error(got, body, 504, "query_timeout")
        got, body = qapi.query_range(window.key, [flt({"$eq": ["service", "none"]})], **window.params(limit=5))
        assert (got, body.get("data", {}).get("result")) == (200, None), body  # answered without reading events

    def test_kql_route_has_the_same_budget(self, slow: tuple[QueryApi, Window]) -> None:
        """The backend's slow query (`not message:*` on Tantivy) must look at every event and matches none."""
        qapi, window = slow
        got, body = qapi.kql(window.key, {"filter": SLOW_KQL[backend_name()], "from": window.start, "to": window.end})
        assert_error(got, body, 504, "query_timeout")
        got, body = qapi.kql(window.key, {"filter": "worker", "from": window.start, "to": window.end, "limit": 3})
        assert (got, body.get("count"), body.get("total")) == (200, 3, SLOW_EVENTS[backend_name()]), body
