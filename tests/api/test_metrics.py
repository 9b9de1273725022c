"""GET /metrics: the text format parses with prometheus_client's own parser, and figures move with traffic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.query_fixtures import CONFIG, QueryApi, launch, log, marker, recent_base


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    yield from launch(tmp_path_factory)


def scrape(daemon: QueryApi) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, text = daemon.daemon.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_move_with_traffic(daemon: QueryApi) -> None:
    before = scrape(daemon)
    for name in ("process_resident_memory_bytes", "logtraced_backlog_events", "logtraced_wal_durable_seq",
                 "logtraced_writer_up", "logtraced_tail_subscribers"):  # fmt: skip
        assert (name, ()) in before, name
    key = daemon.key()
    daemon.ingest_and_wait(key, [log(recent_base() + i, marker(), service="m") for i in range(7)])
    status, _, _ = daemon.daemon.request(
        "GET", "/loki/api/v1/query_range?query=%7Bservice_name%3D%22m%22%7D", headers=key.bearer
    )
    assert status == 200
    daemon.daemon.request("GET", "/loki/api/v1/query_range?query=%7B", headers=key.bearer)
    after = scrape(daemon)
    events = ("logtraced_ingest_events_total", (("protocol", "http"),))
    assert after[events] - before.get(events, 0) == 7
    route = "/loki/api/v1/query_range"
    for status_code in ("200", "400"):
        sample = ("logtraced_http_requests_total", (("route", route), ("status", status_code)))
        assert after[sample] - before.get(sample, 0) == 1
    latency = ("logtraced_http_request_duration_seconds_count", (("route", route),))
    assert after[latency] - before.get(latency, 0) == 2
    assert after[("logtraced_indexed_events_total", ())] >= 7
    assert after[("logtraced_wal_durable_seq", ())] > before[("logtraced_wal_durable_seq", ())]


def test_metrics_can_require_an_admin_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    for locked in launch(tmp_path_factory, config=CONFIG + "\n[metrics]\nrequire_key = true\n"):
        status, _, _ = locked.daemon.request("GET", "/metrics")
        assert status == 401
        reader = locked.key("read:logs")
        assert locked.daemon.request("GET", "/metrics", headers=reader.bearer)[0] == 403
        admin = locked.key("admin")
        assert locked.daemon.request("GET", "/metrics", headers=admin.bearer)[0] == 200
