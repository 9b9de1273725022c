"""POST /v1/logs/query end to end: KQL semantics, time windows, totals, cursor paging and errors."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from logtraced.storage.tantivy.partitions import day_of
from tests.api.conftest import Key
from tests.api.query_fixtures import (
    DAY_NS,
    HOUR_NS,
    MINUTE_NS,
    NS,
    QueryApi,
    assert_error,
    launch,
    log,
    marker,
    messages,
    recent_base,
)
from tests.harness import backend_name


@pytest.fixture(scope="module")
def qapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    yield from launch(tmp_path_factory)


LINES = {
    "db": "Connection timeout on db-primary-03",
    "refused": "Connection refused by upstream",
    "paid": "Payment captured for order 42",
    "ru": "Ошибка подключения к базе данных",
    "cache": "runtime warning: cache miss",
    "login": "user login ok",
    "lock": "timeout waiting for lock",
}
ALL = frozenset(LINES)
FIELDS: dict[str, dict[str, Any]] = {
    "db": {"service": "payment-gateway", "level": "ERROR", "status_code": 504, "duration_ms": 30000},
    "refused": {"service": "payment-gateway", "level": "error", "status_code": 502, "duration_ms": 12},
    "paid": {"service": "payment-gateway", "level": "info", "status_code": 200, "duration_ms": 85},
    "ru": {"service": "billing", "level": "error"},
    "cache": {"service": "cache", "level": "warn", "status_code": 200, "duration_ms": 3},
    "login": {"service": "auth", "level": "info", "host": "web-1", "status_code": 200},
    "lock": {"service": "billing", "level": "warn", "user": {"name": "alice"}},
}


@dataclass(frozen=True)
class Shop:
    key: Key
    stamps: dict[str, int]  # event name -> timestamp ns, one minute apart in LINES order


@pytest.fixture(scope="module")
def shop(qapi: QueryApi) -> Shop:
    key = qapi.key()
    base = recent_base() - 2 * HOUR_NS
    stamps = {name: base + i * MINUTE_NS for i, name in enumerate(LINES)}
    qapi.ingest_and_wait(key, [log(stamps[name], LINES[name], **FIELDS[name]) for name in LINES])
    return Shop(key, stamps)


def search(qapi: QueryApi, shop: Shop, body: dict[str, Any]) -> dict[str, Any]:
    status, found = qapi.kql(shop.key, {"from": "-3h", **body})
    assert status == 200, found
    return found


def names(found: dict[str, Any]) -> set[str]:
    by_line = {line: name for name, line in LINES.items()}
    return {by_line[line] for line in messages(found["logs"])}


FILTERS: list[tuple[str, set[str]]] = [
    ("", set(ALL)),
    ("*", set(ALL)),
    ("timeout", {"db", "lock"}),
    ("TIMEOUT", {"db", "lock"}),
    ("connection refused", {"refused"}),
    ('"refused by"', {"refused"}),
    ('"by refused"', set()),
    ("message:captured", {"paid"}),
    ("service:payment-gateway", {"db", "refused", "paid"}),
    ("service:payment-*", {"db", "refused", "paid"}),
    ("service:*gateway", {"db", "refused", "paid"}),
    ("db-primary-*", {"db"}),
    ("time*", {"db", "lock"}),
    ("*time", {"cache"}),
    ("status_code >= 500", {"db", "refused"}),
    ("status_code:200", {"paid", "cache", "login"}),
    ("duration_ms < 50", {"refused", "cache"}),
    ("duration_ms > 50 and duration_ms <= 30000", {"db", "paid"}),
    ("level:ERROR", {"db", "refused", "ru"}),
    ("level:error", {"db", "refused", "ru"}),
    ("level:Error", {"db", "refused", "ru"}),
    ("ошибка", {"ru"}),
    ("ОШИБКА", {"ru"}),
    ("message:Ошибка", {"ru"}),
    ("user.name:alice", {"lock"}),
    ("host:*", {"login"}),
    ("service:(billing or cache)", {"ru", "cache", "lock"}),
    ("level:info or level:warn and service:cache", {"paid", "login", "cache"}),
    ("(level:info or level:warn) and service:cache", {"cache"}),
    ("not level:error and service:payment-gateway", {"paid"}),
    ("NOT service:billing", ALL - {"ru", "lock"}),
    ("not (service:billing or level:info)", {"db", "refused", "cache"}),
    ("timeout or refused and not lock", {"db", "lock", "refused"}),
]


class TestFilters:
    """Free text, phrases, fields, wildcards, ranges, precedence (not > and > or), case and Cyrillic."""

    @pytest.mark.parametrize(("kql", "expected"), FILTERS, ids=[row[0] or "empty" for row in FILTERS])
    def test_filter(self, qapi: QueryApi, shop: Shop, kql: str, expected: set[str]) -> None:
        assert names(search(qapi, shop, {"filter": kql})) == expected

    def test_newest_first_with_the_public_event_shape(self, qapi: QueryApi, shop: Shop) -> None:
        found = search(qapi, shop, {"filter": "service:payment-gateway"})
        assert messages(found["logs"]) == [LINES["paid"], LINES["refused"], LINES["db"]]
        first = found["logs"][2]
        assert first["timestamp_ns"] == shop.stamps["db"]
        assert first["timestamp"] == iso(shop.stamps["db"]).replace("Z", ".000000000Z")
        assert (first["level"], first["env"], first["org"]) == ("error", "production", shop.key.org)
        assert first["attributes"]["status_code"] == 504

    @pytest.mark.parametrize(
        "bounds",
        [
            pytest.param(lambda s: (f'"{iso(s["paid"])}"', f'"{iso(s["cache"])}"'), id="iso"),
            pytest.param(lambda s: (s["paid"] // NS, s["cache"] // NS), id="epoch-seconds"),
            pytest.param(lambda s: (s["paid"], s["cache"]), id="epoch-ns"),
        ],
    )
    def test_timestamp_ranges(self, qapi: QueryApi, shop: Shop, bounds: Any) -> None:
        low, high = bounds(shop.stamps)
        kql = f"@timestamp >= {low} and timestamp <= {high}"
        assert names(search(qapi, shop, {"filter": kql})) == {"paid", "ru", "cache"}
        assert names(search(qapi, shop, {"filter": f"@timestamp > {low} and @timestamp < {high}"})) == {"ru"}


def iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // NS, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TestWindows:
    """`from`/`to` take relative values, ISO-8601 and epoch numbers; `to` is inclusive."""

    @pytest.mark.parametrize(
        "window",
        [
            pytest.param(lambda s: (iso(s["paid"]), iso(s["cache"])), id="iso"),
            pytest.param(lambda s: (s["paid"] // NS, s["cache"] // NS), id="epoch-seconds-int"),
            pytest.param(lambda s: (str(s["paid"] // NS), str(s["cache"] // NS)), id="epoch-seconds-string"),
            pytest.param(lambda s: (s["paid"] // 10**6, s["cache"] // 10**6), id="epoch-ms"),
            pytest.param(lambda s: (s["paid"], s["cache"]), id="epoch-ns"),
            pytest.param(lambda s: (s["paid"] / NS, s["cache"] / NS), id="epoch-float"),
        ],
    )
    def test_absolute(self, qapi: QueryApi, shop: Shop, window: Any) -> None:
        start, end = window(shop.stamps)
        found = search(qapi, shop, {"from": start, "to": end})
        assert names(found) == {"paid", "ru", "cache"}
        assert (found["from"], found["to"]) == (shop.stamps["paid"], shop.stamps["cache"])

    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [("-3h", "now", ALL), ("now-3h", None, ALL), ("-1m", None, frozenset()), (None, None, ALL), ("-3h", "-3h", ())],
    )
    def test_relative(self, qapi: QueryApi, shop: Shop, start: str | None, end: str | None, expected: Any) -> None:
        body = {name: value for name, value in (("from", start), ("to", end)) if value is not None}
        status, found = qapi.kql(shop.key, body)
        assert status == 200, found
        assert names(found) == set(expected)


class TestTotalsAndCursor:
    """total/total_relation and next_cursor paging: every event once, in order, until the cursor is null."""

    def test_exact_total_with_cursor(self, qapi: QueryApi, shop: Shop) -> None:
        found = search(qapi, shop, {"filter": "service:payment-gateway", "limit": 1})
        assert (found["count"], found["total"], found["total_relation"]) == (1, 3, "eq")
        assert found["next_cursor"] is not None
        logs = qapi.kql_all(shop.key, {"filter": "service:payment-gateway", "from": "-3h", "limit": 1})
        assert messages(logs) == [LINES["paid"], LINES["refused"], LINES["db"]]

    def test_verified_total_is_a_lower_bound(self, qapi: QueryApi, shop: Shop) -> None:
        """Tantivy stops verifying once the page is full; ClickHouse verifies every candidate (up to 100 000)."""
        found = search(qapi, shop, {"filter": "time*", "limit": 1})
        if backend_name() == "clickhouse":
            assert (found["count"], found["total_relation"], found["total"]) == (1, "eq", 2)
        else:
            assert (found["count"], found["total_relation"]) == (1, "gte")
            assert found["total"] >= 2
        assert found["next_cursor"] is not None
        assert messages(qapi.kql_all(shop.key, {"filter": "time*", "from": "-3h", "limit": 1})) == [
            LINES["lock"],
            LINES["db"],
        ]

    def test_last_page_has_null_cursor(self, qapi: QueryApi, shop: Shop) -> None:
        found = search(qapi, shop, {"filter": "service:payment-gateway", "limit": 3})
        assert (found["count"], found["next_cursor"]) == (3, None)

    def test_default_limit_is_100(self, qapi: QueryApi) -> None:
        key = qapi.key()
        base = recent_base() - HOUR_NS
        qapi.ingest_and_wait(key, [log(base + i * NS, f"line {i}") for i in range(120)])
        status, found = qapi.kql(key, {"from": "-2h"})
        assert (status, found["count"], found["total"]) == (200, 100, 120)

    def test_equal_timestamps_across_pages(self, qapi: QueryApi) -> None:
        """Many events at one instant, cut by every page: the cursor's tie-breaker visits each exactly once."""
        key = qapi.key()
        base = recent_base() - HOUR_NS
        same = [log(base, f"same {i:03d}") for i in range(300)]
        around = [log(base + (i + 1) * NS, f"after {i}") for i in range(250)] + [
            log(base - (i + 1) * NS, f"before {i}") for i in range(20)
        ]
        batch = marker()
        for chunk in (around[:130], same[:150], around[130:], same[150:]):
            qapi.ingest(key, [{**event, "batch": batch} for event in chunk])
        qapi.wait_for_batch(key, batch, 570, same + around)
        for limit in (7, 100, 299):
            logs = qapi.kql_all(key, {"filter": f"batch:{batch}", "from": "-2h", "limit": limit})
            stamps = [entry["timestamp_ns"] for entry in logs]
            assert stamps == sorted(stamps, reverse=True)
            assert sorted(messages(logs)) == sorted(event["message"] for event in same + around)

    def test_cursor_survives_new_events(self, qapi: QueryApi) -> None:
        """The cursor keeps its window: events arriving between pages do not shift or repeat rows."""
        key = qapi.key()
        base = recent_base() - HOUR_NS
        qapi.ingest_and_wait(key, [log(base + i * NS, f"old {i:02d}") for i in range(20)])
        body = {"from": base, "to": base + 19 * NS, "limit": 8}
        first = qapi.kql(key, body)[1]
        qapi.ingest_and_wait(key, [log(base + 19 * NS + i * NS // 10, f"new {i}") for i in range(1, 9)])
        rest = qapi.kql_all(key, {**body, "cursor": first["next_cursor"]})
        assert messages(first["logs"]) + messages(rest) == [f"old {i:02d}" for i in reversed(range(20))]

    def test_days_total_and_paging(self, qapi: QueryApi) -> None:
        """Events on three UTC days: the total counts all of them however small the page."""
        key = qapi.key()
        midnight = (day_of(recent_base()) - 2) * DAY_NS
        events = [
            log(midnight + day * DAY_NS + i * HOUR_NS, f"day {day} hour {i}") for day in (-1, 0, 1) for i in range(5)
        ]
        qapi.ingest_and_wait(key, events)
        body = {"from": midnight - DAY_NS, "to": midnight + 2 * DAY_NS - 1, "limit": 2}
        found = qapi.kql(key, body)[1]
        assert (found["total"], found["total_relation"]) == (15, "eq")
        logs = qapi.kql_all(key, body)
        assert [entry["timestamp_ns"] for entry in logs] == sorted((e["timestamp"] for e in events), reverse=True)
        one_day = qapi.kql(key, {"from": midnight, "to": midnight + DAY_NS - 1, "limit": 100})[1]
        assert (one_day["total"], sorted(messages(one_day["logs"]))) == (5, [f"day 0 hour {i}" for i in range(5)])


class TestErrors:
    """Refusals in the one envelope, with a code a client can branch on."""

    def test_invalid_cursors(self, qapi: QueryApi, shop: Shop) -> None:
        for cursor in ("garbage!!", "AAAA", "x", "ÿÿ"):
            status, found = qapi.kql(shop.key, {"cursor": cursor})
            assert_error(status, found, 400, "invalid_cursor")

    @pytest.mark.parametrize(
        "fields",
        [
            pytest.param((1, 10**18, 0, 0, 2**64 - 1), id="end-beyond-i64"),
            pytest.param((1, 2**64 - 1, 2**64 - 1, 0, 2**63), id="timestamp-beyond-i64"),
            pytest.param((1, -(2**63), -(2**63), -(2**63), 2**63 - 1), id="lowest-i64"),
            pytest.param((1, 10**18, 0, 10**18 + 1, 2 * 10**18), id="timestamp-before-window"),
            pytest.param((1, 10**18, 0, 0, 10**18), id="timestamp-at-window-end"),
            pytest.param((2, 10**18, 0, 0, 2 * 10**18), id="other-version"),
            pytest.param((1, 10**18, 0, 0), id="missing-digest"),
            pytest.param((1, "x", 0, 0, 2 * 10**18), id="text-timestamp"),
        ],
    )
    def test_edited_cursors(self, qapi: QueryApi, shop: Shop, fields: tuple[Any, ...]) -> None:
        """A client can edit a cursor: out-of-range or inconsistent numbers are refused, never a 500."""
        digest = hashlib.sha256(b"").hexdigest()[:16]
        raw = msgspec.msgpack.encode([*fields, digest] if len(fields) == 5 else list(fields))
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        status, found = qapi.kql(shop.key, {"cursor": cursor})
        assert_error(status, found, 400, "invalid_cursor")

    def test_cursor_of_another_filter(self, qapi: QueryApi, shop: Shop) -> None:
        cursor = search(qapi, shop, {"filter": "service:payment-gateway", "limit": 1})["next_cursor"]
        status, found = qapi.kql(shop.key, {"filter": "service:billing", "cursor": cursor})
        assert "filter" in assert_error(status, found, 400, "invalid_cursor")

    @pytest.mark.parametrize(
        ("kql", "position"),
        [
            ("service:(a or", 13),
            ('message:"abc', 12),
            ("a:b:c", 3),
            ("(timeout", 8),
            ("status >= ", 10),
            ("x:{y}", 2),
            ("* < 5", 4),
        ],
    )
    def test_syntax_error_names_the_position(self, qapi: QueryApi, shop: Shop, kql: str, position: int) -> None:
        status, found = qapi.kql(shop.key, {"filter": kql})
        assert f"position {position}" in assert_error(status, found, 400, "invalid_query")

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"from": "yesterday"}, "invalid_time"),
            ({"to": "2024-13-45"}, "invalid_time"),
            ({"from": "now", "to": "-1h"}, "invalid_time"),
            ({"limit": 0}, "invalid_limit"),
            ({"limit": 10_001}, "invalid_limit"),
            ({"limit": -1}, "invalid_limit"),
            ({"limit": "50"}, "invalid_request"),
            ({"filter": 5}, "invalid_request"),
            ({"query": "x"}, "invalid_request"),
            ({"filter": "@timestamp:not-a-time"}, "invalid_query"),
        ],
    )
    def test_bad_bodies(self, qapi: QueryApi, shop: Shop, body: dict[str, Any], code: str) -> None:
        status, found = qapi.kql(shop.key, body)
        assert_error(status, found, 400, code)

    def test_malformed_json(self, qapi: QueryApi, shop: Shop) -> None:
        status, found = qapi.kql(shop.key, raw=b'{"filter": ')
        assert_error(status, found, 400, "malformed_json")

    def test_credentials(self, qapi: QueryApi, shop: Shop) -> None:
        assert_error(*qapi.kql(None, {}), 401, "missing_credentials")
        assert_error(*qapi.kql(qapi.key("write:logs"), {}), 403, "insufficient_scope")
        status, _, found = qapi.daemon.request(
            "POST", "/v1/logs/query", body={}, headers={**shop.key.bearer, "X-LogTrace-Environment": "staging"}
        )
        assert_error(status, found, 403, "cross_environment")

    def test_expired_token(self, qapi: QueryApi, shop: Shop) -> None:
        token = qapi.token(shop.key)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            qapi.clock.set(86_400 + 5)
            status, _, found = qapi.daemon.request("POST", "/v1/logs/query", body={}, headers=headers)
        finally:
            qapi.clock.set(0.0)
        assert assert_error(status, found, 401) == "Authorization token is expired"
