"""GET /metrics: the text format parses with prometheus_client's own parser, and figures move with traffic."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Key, mint_key
from tests.api.query_fixtures import CONFIG, QueryApi, launch, log, marker, recent_base
from tests.harness import backend_name, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# Tiers small enough to reach in a few requests, and masking on, so refusals, overflow and masks are countable.
METRICS_CONFIG = (
    CONFIG
    + """
[auth.tiers.tiny]
ingest_per_hour = 1
query_per_hour = 1

[auth.tiers.spill]
ingest_per_hour = 1
query_per_hour = 100
overflow = true

[masking]
enabled = true
rules = ["email"]
"""
)
LOKI_QUERY = "/loki/api/v1/query_range?query=%7Bservice_name%3D%22m%22%7D"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    yield from launch(tmp_path_factory, config=METRICS_CONFIG)


def scrape(daemon: QueryApi) -> Samples:
    status, headers, text = daemon.daemon.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    sample = (name, tuple(sorted(labels.items())))
    return after[sample] - before.get(sample, 0)


def tiered(daemon: QueryApi, tier: str) -> Key:
    return mint_key(daemon.daemon.data_dir, "write:logs", "read:logs", tier=tier, config_path=daemon.config_path)


def test_metrics_parse_and_move_with_traffic(daemon: QueryApi) -> None:
    before = scrape(daemon)
    for name in ("process_resident_memory_bytes", "logtraced_backlog_events", "logtraced_wal_durable_seq",
                 "logtraced_writer_up", "logtraced_tail_subscribers", "logtraced_backlog_seconds_behind",
                 "logtraced_store_partitions", "logtraced_store_disk_bytes", "logtraced_wal_disk_bytes"):  # fmt: skip
        assert (name, ()) in before, name
    key = daemon.key()
    daemon.ingest_and_wait(key, [log(recent_base() + i, marker(), service="m") for i in range(7)])
    status, _, _ = daemon.daemon.request("GET", LOKI_QUERY, headers=key.bearer)
    assert status == 200
    daemon.daemon.request("GET", "/loki/api/v1/query_range?query=%7B", headers=key.bearer)
    after = scrape(daemon)
    assert moved(before, after, "logtraced_ingest_events_total", protocol="http") == 7
    route = "/loki/api/v1/query_range"
    for status_code in ("200", "400"):
        assert moved(before, after, "logtraced_http_requests_total", route=route, status=status_code) == 1
    assert moved(before, after, "logtraced_http_request_duration_seconds_count", route=route) == 2
    assert after[("logtraced_indexed_events_total", ())] >= 7
    assert after[("logtraced_wal_durable_seq", ())] > before[("logtraced_wal_durable_seq", ())]


def test_wal_and_writer_figures_move_with_ingest(daemon: QueryApi) -> None:
    """fsync and commit histograms count, WAL bytes grow, and a new organisation's day is a new partition."""
    before = scrape(daemon)
    daemon.ingest_and_wait(daemon.key(), [log(recent_base() + i, marker(), service="w") for i in range(50)])
    # Searchable can come before the writer's commit report reaches the daemon (ClickHouse reads
    # see an INSERT at once), so wait for the report rather than scrape once.
    wait_until(lambda: moved(before, scrape(daemon), "logtraced_writer_commit_duration_seconds_count") >= 1)
    after = scrape(daemon)
    assert moved(before, after, "logtraced_wal_written_bytes_total") > 0
    assert moved(before, after, "logtraced_wal_fsync_duration_seconds_count") >= 1
    assert moved(before, after, "logtraced_wal_fsync_duration_seconds_bucket", le="+Inf") >= 1
    assert moved(before, after, "logtraced_wal_fsync_duration_seconds_sum") > 0
    assert moved(before, after, "logtraced_writer_commit_duration_seconds_count") >= 1
    if backend_name() == "tantivy":  # a partition per organisation and day
        assert moved(before, after, "logtraced_store_partitions") == 1
    else:  # ClickHouse partitions the shared events table by day only: today's exists, holding these
        assert after[("logtraced_store_partitions", ())] >= 1
    assert moved(before, after, "logtraced_store_disk_bytes") > 0


def test_backlog_seconds_behind_while_the_indexer_is_stopped(daemon: QueryApi) -> None:
    pid = daemon.daemon.indexer_pid()
    assert pid is not None
    key = daemon.key()
    os.kill(pid, signal.SIGSTOP)
    try:
        daemon.ingest(key, [log(recent_base(), marker(), service="late")])
        wait_until(lambda: scrape(daemon)[("logtraced_backlog_seconds_behind", ())] > 0)
        assert scrape(daemon)[("logtraced_backlog_events", ())] >= 1
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: scrape(daemon)[("logtraced_backlog_seconds_behind", ())] == 0)


def test_masked_values_per_rule(daemon: QueryApi) -> None:
    before = scrape(daemon)
    daemon.ingest(daemon.key(), [log(recent_base(), f"mail ivan@example.ru and olga@example.ru {marker()}")])
    after = scrape(daemon)
    assert moved(before, after, "logtraced_masked_values_total", rule="email") == 2
    assert moved(before, after, "logtraced_masked_values_total", rule="card") == 0


def test_rate_limit_refusals_and_overflow_per_tier(daemon: QueryApi) -> None:
    before = scrape(daemon)
    tiny, spill = tiered(daemon, "tiny"), tiered(daemon, "spill")
    statuses = [daemon.daemon.request("GET", LOKI_QUERY, headers=tiny.bearer)[0] for _ in range(2)]
    assert statuses == [200, 429]
    for key, expected in ((tiny, 202), (tiny, 429), (spill, 202), (spill, 202)):
        status, _, body = daemon.daemon.request(
            "POST", "/v1/logs/ingest", body={"logs": [log(recent_base(), "x"), log(recent_base(), "y")]},
            headers=key.bearer,
        )  # fmt: skip
        assert status == expected, body
    after = scrape(daemon)
    assert moved(before, after, "logtraced_rate_limited_total", tier="tiny", kind="query") == 1
    assert moved(before, after, "logtraced_rate_limited_total", tier="tiny", kind="ingest") == 1
    assert moved(before, after, "logtraced_overflow_events_total", tier="spill") == 2


def test_query_timeouts_are_counted(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A budget of a microsecond is past before the store reads its first event, so the search cancels itself."""
    for hasty in launch(tmp_path_factory, config=CONFIG + "\n[query]\ntimeout_seconds = 0.000001\n"):
        key = hasty.key()
        hasty.ingest(key, [log(recent_base(), "slow", service="m")])
        wait_until(lambda daemon=hasty: scrape(daemon)[("logtraced_indexed_events_total", ())] >= 1)
        before = scrape(hasty)
        assert hasty.daemon.request("GET", LOKI_QUERY, headers=key.bearer)[0] == 504
        assert moved(before, scrape(hasty), "logtraced_query_timeouts_total") == 1


def test_metrics_can_require_an_admin_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    for locked in launch(tmp_path_factory, config=CONFIG + "\n[metrics]\nrequire_key = true\n"):
        status, _, _ = locked.daemon.request("GET", "/metrics")
        assert status == 401
        reader = locked.key("read:logs")
        assert locked.daemon.request("GET", "/metrics", headers=reader.bearer)[0] == 403
        admin = locked.key("admin")
        assert locked.daemon.request("GET", "/metrics", headers=admin.bearer)[0] == 200


def test_garbage_collections_stay_rare_while_ingesting(daemon: QueryApi) -> None:
    """20 000 events in 5 000-event batches: with CPython's default thresholds, dozens of young collections."""
    key = daemon.key()
    before = scrape(daemon)
    batches = [[log(recent_base() + i, f"gc {i}", service="gc", tags=["a"]) for i in range(5000)] for _ in range(4)]
    for batch in batches:
        daemon.ingest(key, batch)
    after = scrape(daemon)
    young = moved(before, after, "python_gc_collections_total", generation="0")
    assert 0 <= young < 10
