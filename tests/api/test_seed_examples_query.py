"""The query examples of both API documents, run verbatim with the real curl against the real daemon.

Only the host, `{org}`, the token and the time window are replaced; every other byte of each
command is the document's.  No region is configured: the examples' `region=ap-south-1` is
answered as a default installation answers it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import Key
from tests.api.query_fixtures import (
    CONFIG,
    DAY_NS,
    HOUR_NS,
    NS,
    SUMMARY_KEYS,
    QueryApi,
    assert_error,
    launch,
    log,
    recent_base,
)

# Events routed to the physical index of the document's example (an operator's routing rule).
ROUTING = """
[[routing]]
field = "cluster"
equals = "prod-k8s"
index = "Pt_prod_k8s"
"""

# -- the documents' commands, copied verbatim ----------------------------------------------------

LOGTRACE_QUERY = (
    "curl -X POST https://api.logtrace.io/v1/logs/query"
    ' -H "Authorization: Bearer lt_live_8f3a9c2d1e4b5f6a7c8d9e0f1a2b3c4d"'
    ' -H "Content-Type: application/json"'
    """ -d '{"filter":"service:payment-gateway AND level:ERROR","from":"-24h","limit":50}'"""
)

BASIC_SERVICE_QUERY = """curl -X POST 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v2/query_range/json?start=1743500000000000000&end=1743510000000000000&limit=100&direction=backward&region=ap-south-1' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>' \\
-H 'Content-Type: application/json' \\
-d '{
"pipeline": [
{
"type": "filter",
"query": {
"$and": [
{ "$eq": ["service", "api-gateway"] }
]
}
}
]
}'"""  # noqa: E501

MULTIPLE_CONDITIONS = """curl -X POST 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v2/query_range/json?start=1743500000000000000&end=1743510000000000000&limit=100' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>' \\
-H 'Content-Type: application/json' \\
-d '{
"pipeline": [
{
"type": "filter",
"query": {
"$and": [
{ "$eq": ["service", "payment-service"] },
{ "$eq": ["level", "error"] }
]
}
}
]
}'"""  # noqa: E501

TEXT_SEARCH = """curl -X POST 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v2/query_range/json?start=1743500000000000000&end=1743510000000000000&limit=50' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>' \\
-H 'Content-Type: application/json' \\
-d '{
"pipeline": [
{
"type": "filter",
"query": {
"$and": [
{ "$eq": ["service", "api-gateway"] },
{ "$contains": ["body", "timeout"] }
]
}
}
]
}'"""  # noqa: E501

REGEX = """curl -X POST 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v2/query_range/json?start=1743500000000000000&end=1743510000000000000&limit=100' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>' \\
-H 'Content-Type: application/json' \\
-d '{
"pipeline": [
{
"type": "filter",
"query": {
"$and": [
{ "$eq": ["service", "api-gateway"] },
{ "$regex": ["body", "error.*timeout|connection.*refused"] }
]
}
}
]
}'"""  # noqa: E501

OR_WITH_WHERE = """curl -X POST 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v2/query_range/json?start=1743500000000000000&end=1743510000000000000&limit=100' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>' \\
-H 'Content-Type: application/json' \\
-d '{
"pipeline": [
{
"type": "filter",
"query": {
"$and": [
{ "$eq": ["service", "api-gateway"] }
]
}
},
{
"type": "where",
"query": {
"$or": [
{ "$eq": ["level", "error"] },
{ "$eq": ["level", "fatal"] }
]
}
}
]
}'"""  # noqa: E501

LABELS = """curl -X GET 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v1/labels?start=1743000000000000000&end=1743600000000000000' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>'"""  # noqa: E501

LABEL_VALUES = """curl -X GET 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v1/label/service/values?start=1743000000000000000&end=1743600000000000000' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>'"""  # noqa: E501

PHYSICAL_INDEX = """curl -X POST 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v2/query_range/json?start=1743500000000000000&end=1743510000000000000&limit=100&index=physical_index:Pt_prod_k8s' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>' \\
-H 'Content-Type: application/json' \\
-d '{
"pipeline": [
{
"type": "filter",
"query": {
"$and": [
{ "$eq": ["service", "api-gateway"] }
]
}
}
]
}'"""  # noqa: E501

REHYDRATION_INDEX = """curl -X POST 'https://app.last9.io/api/v4/organizations/{org}/logs/api/v2/query_range/json?start=1743500000000000000&end=1743510000000000000&limit=100&index=rehydration_index:Rh_prod_archive' \\
-H 'X-LAST9-API-TOKEN: Bearer <ACCESS_TOKEN>' \\
-H 'Content-Type: application/json' \\
-d '{
"pipeline": [
{
"type": "filter",
"query": {
"$and": [
{ "$eq": ["service", "api-gateway"] }
]
}
}
]
}'"""  # noqa: E501

DOC_QUERY_WINDOW = ("start=1743500000000000000", "end=1743510000000000000")
DOC_LABELS_WINDOW = ("start=1743000000000000000", "end=1743600000000000000")


@dataclass(frozen=True)
class Seeded:
    """The organisation the query_range examples run against, and where its events sit in time."""

    key: Key
    token: str
    start: int  # the window replacing the document's 1743500000000000000 .. 1743510000000000000
    end: int


def at(seeded: Seeded, seconds: int) -> str:
    """The ns string a value carries for an event `seconds` after the window start."""
    return str(seeded.start + seconds * NS)


def stream(level: str, *values: list[str], index: str | None = None, service: str = "api-gateway") -> dict[str, Any]:
    labels = {"service": service, "level": level, "env": "production"}
    if index is not None:
        labels["index"] = index
    return {"stream": labels, "values": list(values)}


@pytest.fixture(scope="module")
def qapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    yield from launch(tmp_path_factory, config=ROUTING + CONFIG)


@pytest.fixture(scope="module")
def seeded(qapi: QueryApi) -> Seeded:
    """The document's response, replayed: three api-gateway errors 10 s apart, and neighbours of every kind."""
    key = qapi.key()
    start = recent_base() - 10_000 * NS
    events = [
        log(start + 5000 * NS, "Connection timeout after 30s", service="api-gateway", level="error"),
        log(start + 4990 * NS, "Request failed: upstream unavailable", service="api-gateway", level="error"),
        log(start + 4980 * NS, "Error processing request", service="api-gateway", level="error"),
        log(start + 4000 * NS, "connection refused by db-primary", service="api-gateway", level="fatal"),
        log(start + 3500 * NS, "routed request timeout", service="api-gateway", level="ERROR", cluster="prod-k8s"),
        log(start + 3000 * NS, "GET /health served", service="api-gateway", level="info"),
        log(start + 2000 * NS, "error while waiting: timeout reached", service="api-gateway", level="warn"),
        log(start + 4500 * NS, "card declined", service="payment-service", level="error"),
        log(start + 4400 * NS, "payment accepted", service="payment-service", level="info"),
        log(start + 4300 * NS, "timeout talking to ldap", service="user-service", level="error"),
        log(start - 1 * NS, "too early: error then timeout", service="api-gateway", level="error"),
        log(start + 10_000 * NS, "too late: error then timeout", service="api-gateway", level="error"),
    ]
    qapi.ingest_and_wait(key, events)
    return Seeded(key, qapi.token(key), start, start + 10_000 * NS)


def adapt(qapi: QueryApi, seeded: Seeded, command: str) -> str:
    """The document's command with our host, organisation, token and window."""
    query_start, query_end = DOC_QUERY_WINDOW
    labels_start, labels_end = DOC_LABELS_WINDOW
    return (
        command.replace("https://app.last9.io", f"http://127.0.0.1:{qapi.daemon.http_port}")
        .replace("{org}", seeded.key.org)
        .replace("<ACCESS_TOKEN>", seeded.token)
        .replace(query_start, f"start={seeded.start}")
        .replace(query_end, f"end={seeded.end}")
        .replace(labels_start, f"start={seeded.start - 50 * HOUR_NS}")
        .replace(labels_end, f"end={seeded.end + 50 * HOUR_NS}")
    )


def run(qapi: QueryApi, seeded: Seeded, command: str) -> tuple[int, Any]:
    return qapi.curl(adapt(qapi, seeded, command))


def assert_streams(status: int, body: Any, expected: list[dict[str, Any]] | None) -> None:
    """The document's success shape, with exactly these streams (None: nothing matched)."""
    assert status == 200, body
    assert body["status"] == "success"
    assert set(body) == {"status", "data"}
    data = body["data"]
    assert set(data) == {"resultType", "result", "stats"}
    assert data["resultType"] == "streams"
    assert data["result"] == expected
    summary = data["stats"]["summary"]
    assert set(data["stats"]) == {"summary"} and set(summary) == SUMMARY_KEYS
    assert all(isinstance(value, int | float) and value >= 0 for value in summary.values())
    if expected is None:
        return
    lines = sum(len(entry["values"]) for entry in expected)
    assert summary["totalLinesProcessed"] >= lines
    assert summary["totalBytesProcessed"] >= sum(len(line) for entry in expected for _, line in entry["values"])


class TestLogTraceQueryExample:
    """`POST /v1/logs/query` with the document's body: errors of payment-gateway in the last 24 h."""

    def test_example_body_verbatim(self, qapi: QueryApi) -> None:
        key = qapi.key()
        now = recent_base()
        qapi.ingest_and_wait(
            key,
            [
                log(now - HOUR_NS, "Connection timeout on db-primary-03", level="ERROR", service="payment-gateway"),
                log(now - 2 * HOUR_NS, "Retry budget exhausted", level="error", service="payment-gateway"),
                log(now - 3 * HOUR_NS, "Payment captured", level="INFO", service="payment-gateway"),
                log(now - 4 * HOUR_NS, "Connection timeout", level="ERROR", service="payment-gateway-canary"),
                log(now - 25 * HOUR_NS, "Yesterday's error", level="ERROR", service="payment-gateway"),
            ],
        )
        command = LOGTRACE_QUERY.replace("https://api.logtrace.io", f"http://127.0.0.1:{qapi.daemon.http_port}")
        status, body = qapi.curl(command.replace("lt_live_8f3a9c2d1e4b5f6a7c8d9e0f1a2b3c4d", key.secret))
        assert status == 200, body
        assert set(body) == {"logs", "count", "total", "total_relation", "took_ms", "next_cursor", "from", "to"}
        assert [entry["message"] for entry in body["logs"]] == [
            "Connection timeout on db-primary-03",
            "Retry budget exhausted",
        ]
        assert (body["count"], body["total"], body["total_relation"], body["next_cursor"]) == (2, 2, "eq", None)
        first = body["logs"][0]
        assert (first["level"], first["service"], first["env"], first["org"]) == (
            "error",
            "payment-gateway",
            "production",
            key.org,
        )
        assert first["timestamp_ns"] == now - HOUR_NS
        assert body["to"] - body["from"] == DAY_NS


class TestQueryRangeExamples:
    """Each query_range curl of the document, answered in the document's shape."""

    def test_basic_service_query(self, qapi: QueryApi, seeded: Seeded) -> None:
        """Backward, region ap-south-1 on a node with no region set: api-gateway only, newest first, by labels."""
        status, body = run(qapi, seeded, BASIC_SERVICE_QUERY)
        assert_streams(
            status,
            body,
            [
                stream(
                    "error",
                    [at(seeded, 5000), "Connection timeout after 30s"],
                    [at(seeded, 4990), "Request failed: upstream unavailable"],
                    [at(seeded, 4980), "Error processing request"],
                ),
                stream("fatal", [at(seeded, 4000), "connection refused by db-primary"]),
                stream("error", [at(seeded, 3500), "routed request timeout"], index="Pt_prod_k8s"),
                stream("info", [at(seeded, 3000), "GET /health served"]),
                stream("warn", [at(seeded, 2000), "error while waiting: timeout reached"]),
            ],
        )

    def test_multiple_conditions(self, qapi: QueryApi, seeded: Seeded) -> None:
        status, body = run(qapi, seeded, MULTIPLE_CONDITIONS)
        assert_streams(status, body, [stream("error", [at(seeded, 4500), "card declined"], service="payment-service")])

    def test_text_search(self, qapi: QueryApi, seeded: Seeded) -> None:
        """`$contains` body timeout, on api-gateway only, inside the window (its edges excluded)."""
        status, body = run(qapi, seeded, TEXT_SEARCH)
        assert_streams(
            status,
            body,
            [
                stream("error", [at(seeded, 5000), "Connection timeout after 30s"]),
                stream("error", [at(seeded, 3500), "routed request timeout"], index="Pt_prod_k8s"),
                stream("warn", [at(seeded, 2000), "error while waiting: timeout reached"]),
            ],
        )

    def test_regex_pattern_matching(self, qapi: QueryApi, seeded: Seeded) -> None:
        """Unanchored and case-sensitive: `Connection timeout` and `Error processing` do not match."""
        status, body = run(qapi, seeded, REGEX)
        assert_streams(
            status,
            body,
            [
                stream("fatal", [at(seeded, 4000), "connection refused by db-primary"]),
                stream("warn", [at(seeded, 2000), "error while waiting: timeout reached"]),
            ],
        )

    def test_or_conditions_with_where_stage(self, qapi: QueryApi, seeded: Seeded) -> None:
        status, body = run(qapi, seeded, OR_WITH_WHERE)
        assert_streams(
            status,
            body,
            [
                stream(
                    "error",
                    [at(seeded, 5000), "Connection timeout after 30s"],
                    [at(seeded, 4990), "Request failed: upstream unavailable"],
                    [at(seeded, 4980), "Error processing request"],
                ),
                stream("fatal", [at(seeded, 4000), "connection refused by db-primary"]),
                stream("error", [at(seeded, 3500), "routed request timeout"], index="Pt_prod_k8s"),
            ],
        )

    def test_physical_index(self, qapi: QueryApi, seeded: Seeded) -> None:
        """Only the event the routing rule sent to Pt_prod_k8s."""
        status, body = run(qapi, seeded, PHYSICAL_INDEX)
        assert_streams(
            status, body, [stream("error", [at(seeded, 3500), "routed request timeout"], index="Pt_prod_k8s")]
        )

    def test_rehydration_index_is_not_found(self, qapi: QueryApi, seeded: Seeded) -> None:
        status, body = run(qapi, seeded, REHYDRATION_INDEX)
        message = assert_error(status, body, 404, "index_not_found")
        assert "Rh_prod_archive" in message

    def test_example_window_itself_is_empty(self, qapi: QueryApi, seeded: Seeded) -> None:
        """Unadapted, the document's window holds none of our events: `result` is null, stats are zero."""
        command = BASIC_SERVICE_QUERY.replace("https://app.last9.io", f"http://127.0.0.1:{qapi.daemon.http_port}")
        status, body = qapi.curl(command.replace("{org}", seeded.key.org).replace("<ACCESS_TOKEN>", seeded.token))
        assert_streams(status, body, None)
        summary = body["data"]["stats"]["summary"]
        assert (summary["totalLinesProcessed"], summary["totalBytesProcessed"]) == (0, 0)


class TestLabelExamples:
    """Labels and label values, in the document's `{"status", "data": [...]}` shape."""

    def test_labels(self, qapi: QueryApi, seeded: Seeded) -> None:
        status, body = run(qapi, seeded, LABELS)
        assert status == 200, body
        assert body == {"status": "success", "data": ["service", "level", "env", "index"]}

    def test_label_values(self, qapi: QueryApi, seeded: Seeded) -> None:
        status, body = run(qapi, seeded, LABEL_VALUES)
        assert status == 200, body
        assert body == {"status": "success", "data": ["api-gateway", "payment-service", "user-service"]}
