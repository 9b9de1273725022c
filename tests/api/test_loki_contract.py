"""Grafana's Loki data source against the real daemon: its exact requests, checked by its converter's rules.

The URLs are those of reference/grafana-loki.md (Grafana's pkg/tsdb/loki, Logs Drilldown): the
"Save & test" health check, an Explore log query, the logs volume histogram, the label browser,
series, index stats and volume, detected fields and labels, patterns.  Every answer is checked against
what pkg/util/converter/prom.go enforces: stream timestamps as strings of at most 19 digits,
matrix and vector timestamps as numbers and values as strings, `stats.summary` figures.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.api.conftest import Key
from tests.api.query_fixtures import CONFIG, NS, QueryApi, launch, log, marker, recent_base
from tests.query.logql_corpus import API_QUERIES

LOKI = "/loki/api/v1"
SUMMARY = (
    "bytesProcessedPerSecond",
    "linesProcessedPerSecond",
    "totalBytesProcessed",
    "totalLinesProcessed",
    "execTime",
)


Seeded = tuple[Key, list[dict[str, Any]], int]
# Pattern mining reads at most this many of the newest matching lines (the `billing` data set has 50).
PATTERN_EVENTS = 40


@pytest.fixture(scope="module")
def loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    yield from launch(tmp_path_factory, config=CONFIG + f"\n[patterns]\nmax_events = {PATTERN_EVENTS}\n")


@pytest.fixture(scope="module")
def seeded(loki: QueryApi) -> Seeded:
    """90 checkout events over 30 minutes, a third of them errors mentioning a timeout."""
    key = loki.key()
    base = recent_base() - 1800 * NS
    events = []
    for i in range(90):
        error = i % 3 == 0
        message = f'{{"status": {500 if error else 200}, "path": "/pay/{i}", "duration_ms": {i}}}'
        if error:
            message = message[:-1] + ', "note": "timeout"}'
        events.append(
            log(
                base + i * 20 * NS,
                message,
                service="checkout",
                level="error" if error else "info",
                host="h1",
                http={"method": "POST"},
            )
        )
    loki.ingest_and_wait(key, events)
    return key, events, base


@pytest.fixture(scope="module")
def billing(loki: QueryApi) -> Seeded:
    """50 plain-text billing lines over 50 minutes: 30 declined payments (older), then 20 logfmt-ish requests."""
    key = loki.key()
    base = recent_base() - 3000 * NS
    events = [
        log(base + i * 60 * NS, f'payment {i:04x}ab declined: code=51 reason="insufficient funds"', service="billing",
            level="error")
        if i < 30
        else log(base + i * 60 * NS, f"GET /api/orders/{i} took={i}ms status=200", service="billing", level="info")
        for i in range(50)
    ]  # fmt: skip
    loki.ingest_and_wait(key, events)
    return key, events, base


def iso(ns: int) -> str:
    """Drilldown's `toISOString()` spelling."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // NS)) + f".{ns % NS // 1_000_000:03d}Z"


def get(
    loki: QueryApi, key: Key | None, path: str, headers: Mapping[str, str] | None = None, **params: Any
) -> tuple[int, dict[str, str], Any]:
    sent = dict(key.bearer) if key is not None else {}
    sent.update(headers or {})
    query = urlencode(params, doseq=True)
    return loki.daemon.request("GET", f"{LOKI}{path}?{query}" if query else f"{LOKI}{path}", headers=sent)


def check_summary(data: Mapping[str, Any]) -> None:
    summary = data["stats"]["summary"]
    for name in SUMMARY:
        assert isinstance(summary[name], (int, float)) and not isinstance(summary[name], bool), name


def check_streams(data: Mapping[str, Any], *, backward: bool, width: int = 2) -> list[tuple[int, str]]:
    """prom.go's stream rules; returns (ns, line) in answer order after checking the direction."""
    assert data["resultType"] == "streams"
    check_summary(data)
    found = []
    for stream in data["result"]:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in stream["stream"].items())
        stamps = []
        for value in stream["values"]:
            assert len(value) == width
            stamp, line = value[0], value[1]
            assert isinstance(stamp, str) and stamp.isdigit() and len(stamp) <= 19
            assert isinstance(line, str)
            stamps.append(int(stamp))
            found.append((int(stamp), line))
        assert stamps == sorted(stamps, reverse=backward)
    return found


def check_matrix(data: Mapping[str, Any]) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    assert data["resultType"] == "matrix"
    check_summary(data)
    series = {}
    for item in data["result"]:
        times = []
        for stamp, value in item["values"]:
            assert isinstance(stamp, (int, float)) and isinstance(value, str)
            times.append(stamp)
        assert times == sorted(times)
        series[tuple(sorted(item["metric"].items()))] = [(t, float(v)) for t, v in item["values"]]
    return series


def test_save_and_test_health_check(loki: QueryApi, seeded: Seeded) -> None:
    key = seeded[0]
    status, _, body = get(loki, key, "/query", direction="backward", query="vector(1)+vector(1)", time="4000000000")
    assert status == 200, body
    assert body["status"] == "success" and body["data"]["resultType"] == "vector"
    [sample] = body["data"]["result"]
    assert sample["metric"] == {} and sample["value"] == [4000000000, "2"]


def test_explore_log_query_backward_and_forward(loki: QueryApi, seeded: Seeded) -> None:
    key, events, base = seeded
    window = {"start": base, "end": base + 1800 * NS, "step": "2000ms", "query": '{service_name="checkout"}'}
    status, _, body = get(
        loki, key, "/query_range", {"X-Query-Tags": "Source=logsample"}, direction="backward", limit=1000, **window
    )
    assert status == 200, body
    found = check_streams(body["data"], backward=True)
    assert sorted(found) == sorted((e["timestamp"], e["message"]) for e in events)
    status, _, body = get(loki, key, "/query_range", direction="forward", limit=10, **window)
    found = check_streams(body["data"], backward=False)  # each stream oldest first
    assert sorted(stamp for stamp, _ in found) == sorted(e["timestamp"] for e in events)[:10]


def test_end_is_exclusive_and_times_take_every_loki_spelling(loki: QueryApi, seeded: Seeded) -> None:
    key, events, base = seeded
    last = events[-1]["timestamp"]
    query = '{service_name="checkout"}'
    _, _, body = get(loki, key, "/query_range", query=query, start=base, end=last)
    assert last not in [stamp for stamp, _ in check_streams(body["data"], backward=True)]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base // NS)) + f".{base % NS:09d}Z"
    for start in (str(base), iso, f"{base // NS}.{base % NS:09d}"):
        _, _, body = get(loki, key, "/query_range", query=query, start=start, end=base + NS, direction="forward")
        assert [stamp for stamp, _ in check_streams(body["data"], backward=False)] == [base], start


def test_logql_stages_run_on_every_row(loki: QueryApi, seeded: Seeded) -> None:
    key, events, base = seeded
    window = {"start": base, "end": base + 1800 * NS, "limit": 1000}
    _, _, body = get(
        loki,
        key,
        "/query_range",
        query='{service_name="checkout"} | json | status >= 500 | line_format "{{.status}} {{.path}}"',
        **window,
    )
    found = check_streams(body["data"], backward=True)
    assert len(found) == 30 and all(line.startswith("500 /pay/") for _, line in found)
    assert all(stream["stream"]["status"] == "500" for stream in body["data"]["result"])


def test_logs_volume_histogram(loki: QueryApi, seeded: Seeded) -> None:
    key, events, base = seeded
    start, end = base - 60 * NS, base + 1860 * NS
    query = (
        'sum by (level, detected_level) (count_over_time({service_name="checkout"} |= "timeout" | drop __error__[1m]))'
    )
    status, _, body = get(
        loki,
        key,
        "/query_range",
        {"X-Query-Tags": "Source=logvolhist"},
        query=query,
        start=start,
        end=end,
        step="60000ms",
    )
    assert status == 200, body
    series = check_matrix(body["data"])
    assert list(series) == [(("level", "error"),)]
    expected: dict[int, int] = {}
    for event in events:
        if "timeout" in event["message"]:
            # Loki's window of step t is (t - 1m, t]: an event belongs to the first step at or after it.
            step = start + -(-(event["timestamp"] - start) // (60 * NS)) * 60 * NS
            expected[step] = expected.get(step, 0) + 1
    assert series[(("level", "error"),)] == [
        (t / NS if t % NS else t // NS, float(n)) for t, n in sorted(expected.items())
    ]


def test_metric_queries_that_read_samples(loki: QueryApi, seeded: Seeded) -> None:
    key, events, base = seeded
    window = {"start": base + 1800 * NS, "end": base + 1800 * NS, "step": "60s"}
    _, _, body = get(
        loki,
        key,
        "/query_range",
        query='sum by (level) (count_over_time({service_name="checkout"} | json | status >= 500 [1h]))',
        **window,
    )
    assert check_matrix(body["data"]) == {(("level", "error"),): [((base + 1800 * NS) // NS, 30.0)]}
    _, _, body = get(
        loki,
        key,
        "/query",
        query='sum by (service_name) (sum_over_time({service_name="checkout"} | json | unwrap duration_ms [1h]))',
        time=base + 1800 * NS,
    )
    [sample] = body["data"]["result"]
    assert sample["metric"] == {"service_name": "checkout"} and sample["value"][1] == str(sum(range(90)))


def test_every_corpus_query_answers(loki: QueryApi, seeded: Seeded) -> None:
    key, _, base = seeded
    for query in API_QUERIES:
        status, _, body = get(loki, key, "/query_range", query=query, start=base, end=base + 1800 * NS, step="60s")
        assert status == 200, (query, body)
        if body["data"]["resultType"] == "streams":
            check_streams(body["data"], backward=True)
        else:
            check_matrix(body["data"])


def test_categorize_labels(loki: QueryApi, seeded: Seeded) -> None:
    key, _, base = seeded
    flags = {"X-Loki-Response-Encoding-Flags": "categorize-labels"}
    _, _, body = get(
        loki, key, "/query_range", flags, query='{service_name="checkout"} | json', start=base, end=base + 1800 * NS
    )
    data = body["data"]
    assert data["encodingFlags"] == ["categorize-labels"]
    check_streams(data, backward=True, width=3)
    stream = data["result"][0]
    assert set(stream["stream"]) <= {"service_name", "level", "host", "env", "index"}
    extra = stream["values"][0][2]
    assert extra["structuredMetadata"] == {"batch": extra["structuredMetadata"]["batch"], "http_method": "POST"}
    assert {"status", "path", "duration_ms"} <= set(extra["parsed"])


def test_label_browser_and_series(loki: QueryApi, seeded: Seeded) -> None:
    key, _, base = seeded
    window = {"start": base, "end": base + 1800 * NS}
    _, _, body = get(loki, key, "/labels", **window)
    assert body == {"status": "success", "data": ["detected_level", "env", "host", "level", "service", "service_name"]}
    _, _, body = get(loki, key, "/label/service_name/values", **window)
    assert body["data"] == ["checkout"]
    _, _, body = get(loki, key, "/label/level/values", query='{service_name="checkout"}', **window)
    assert body["data"] == ["error", "info"]
    expected = [
        {"service_name": "checkout", "level": level, "host": "h1", "env": "production"} for level in ("error", "info")
    ]
    _, _, body = get(loki, key, "/series", **{"match[]": '{service_name="checkout"}'}, **window)
    assert sorted(body["data"], key=lambda s: s["level"]) == expected
    form = urlencode({"match[]": '{service_name="checkout"}', **window}).encode()
    status, _, body = loki.daemon.request(
        "POST", f"{LOKI}/series", raw=form, headers={**key.bearer, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200 and sorted(body["data"], key=lambda s: s["level"]) == expected


def test_stats_volume_and_detected(loki: QueryApi, seeded: Seeded) -> None:
    key, events, base = seeded
    window = {"start": base, "end": base + 1800 * NS}
    _, _, stats = get(loki, key, "/index/stats", query='{service_name="checkout"}', **window)
    assert stats["streams"] == 2 and stats["entries"] == 90 and stats["chunks"] >= 2 and stats["bytes"] > 0
    iso = {
        name: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(value // NS + (1 if name == "end" else 0)))
        for name, value in window.items()
    }
    _, _, body = get(loki, key, "/index/volume", query='{service_name=~".+"}', limit=5000, **iso)
    assert body["data"]["resultType"] == "vector"
    assert [(s["metric"], s["value"][1]) for s in body["data"]["result"]] == [({"service_name": "checkout"}, "90")]
    _, _, body = get(loki, key, "/index/volume_range", query='{service_name=~".+"}', step="600s", **iso)
    assert sum(float(v) for s in check_matrix(body["data"]).values() for _, v in s) == 90
    _, _, body = get(loki, key, "/detected_labels", query='{service_name="checkout"}', **iso)
    assert {"label": "level", "cardinality": 2} in body["detectedLabels"]
    _, _, body = get(loki, key, "/detected_fields", query='{service_name="checkout"}', **iso)
    fields = {field["label"]: field for field in body["fields"]}
    assert fields["status"]["type"] == "int" and fields["status"]["parsers"] == ["json"]
    assert fields["status"]["cardinality"] == 2 and fields["http_method"]["parsers"] is None
    _, _, body = get(loki, key, "/detected_field/status/values", query='{service_name="checkout"}', **iso)
    assert body["values"] == ["200", "500"]


def test_errors_and_auth_as_grafana_reads_them(loki: QueryApi, seeded: Seeded) -> None:
    key, _, base = seeded
    status, _, body = get(loki, key, "/query_range", query='{service_name="checkout"')
    assert status == 400 and body["status"] == "error" and body["errorType"] == "bad_data"
    assert "position 24" in body["message"] and body["error"] == body["message"]
    status, _, body = get(loki, None, "/labels")
    assert status == 401 and body["status"] == "error" and body["message"]
    basic = {"Authorization": "Basic " + base64.b64encode(f"grafana:{key.secret}".encode()).decode()}
    status, _, body = get(loki, None, "/labels", basic, start=base, end=base + 1800 * NS)
    assert status == 200 and "service_name" in body["data"]
    status, _, _ = get(loki, key, "/labels", {"X-Scope-OrgID": key.org})
    assert status == 200
    status, _, body = get(loki, key, "/labels", {"X-Scope-OrgID": "someone-else"})
    assert status == 403 and body["status"] == "error"
    status, _, body = loki.daemon.request("GET", "/loki/api/v2alpha/tail", headers=key.bearer)
    assert status == 404
    _, _, body = get(loki, key, "/status/buildinfo")
    assert set(body) == {"version", "revision", "branch", "buildDate", "buildUser", "goVersion"}


def test_another_tenant_sees_nothing(loki: QueryApi, seeded: Seeded) -> None:
    _, _, base = seeded
    other = loki.key()
    loki.ingest_and_wait(other, [log(base, "mine " + marker(), service="other")])
    window = {"start": base, "end": base + 1800 * NS}
    _, _, body = get(loki, other, "/query_range", query='{service_name=~".+"}', **window)
    assert {s["stream"]["service_name"] for s in body["data"]["result"]} == {"other"}
    _, _, body = get(loki, other, "/label/service_name/values", **window)
    assert body["data"] == ["other"]
    _, _, body = get(loki, other, "/query_range", query='sum(count_over_time({service_name="checkout"}[1h]))', **window)
    assert body["data"]["result"] == []


def test_drilldown_patterns(loki: QueryApi, billing: Seeded) -> None:
    """`marshal.WriteQueryPatternsResponseJSON`'s shape, from the newest `patterns.max_events` lines only."""
    key, _, base = billing
    window = {"start": iso(base), "end": iso(base + 3000 * NS), "step": "600s"}
    status, _, body = get(loki, key, "/patterns", query='{service_name="billing"}', **window)
    assert status == 200, body
    assert body["status"] == "success"
    found = {}
    for item in body["data"]:
        assert set(item) == {"pattern", "level", "samples"} and "<_>" in item["pattern"]
        stamps = [stamp for stamp, _ in item["samples"]]
        assert stamps == sorted(stamps) and all(base // NS - 600 < stamp < base // NS + 3000 for stamp in stamps)
        assert all(isinstance(stamp, int) and isinstance(count, int) for stamp, count in item["samples"])
        found[item["level"]] = (item["pattern"], sum(count for _, count in item["samples"]))
    assert found == {
        "error": ("payment <_> declined: code=<_> reason=<_>", PATTERN_EVENTS - 20),
        "info": ("GET <_> took=<_> status=<_>", 20),
    }
    other = loki.key()
    _, _, body = get(loki, other, "/patterns", query='{service_name="billing"}', **window)
    assert body == {"status": "success", "data": []}
    status, _, body = get(loki, key, "/patterns", query='{service_name="billing"', **window)
    assert status == 400 and body["status"] == "error"


def test_detected_fields_of_logfmt_lines(loki: QueryApi, billing: Seeded) -> None:
    key, _, base = billing
    window = {"query": '{service_name="billing"}', "start": iso(base), "end": iso(base + 3000 * NS)}
    _, _, body = get(loki, key, "/detected_fields", **window)
    fields = {field["label"]: field for field in body["fields"]}
    assert {name: (fields[name]["type"], fields[name]["parsers"]) for name in ("code", "reason", "took", "status")} == {
        "code": ("int", ["logfmt"]),
        "reason": ("string", ["logfmt"]),
        "took": ("duration", ["logfmt"]),
        "status": ("int", ["logfmt"]),
    }
    assert fields["took"]["cardinality"] == 20 and fields["code"]["jsonPath"] is None
    assert "payment" not in fields and "declined:" not in fields
    _, _, body = get(loki, key, "/detected_field/reason/values", **window)
    assert body == {"values": ["insufficient funds"], "limit": 1000}
    _, _, body = get(loki, key, "/detected_field/took/values", **window)
    assert body["values"] == sorted(f"{i}ms" for i in range(30, 50))
