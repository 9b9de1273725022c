"""POST /v1/logs/patterns and /v1/logs/insights, and `logtraced patterns` / `query --tz`, against the real daemon."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import Api, Key, marker, mint_key, run_cli
from tests.harness import DaemonProcess

HOUR_NS = 3600 * 10**9


def _word() -> str:
    """A marker of letters only: a token holding a digit would be a variable of every pattern."""
    return "".join(chr(ord("a") + int(digit, 16)) for digit in marker()[1:])


def _at(ns: int) -> str:
    seconds, nanos = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def _event(word: str, message: str, level: str, ns: int, **fields: Any) -> dict[str, Any]:
    return {"message": f"{message} {word}", "level": level, "@timestamp": _at(ns), **fields}


def _send(api: Api, key: Key, events: list[dict[str, Any]]) -> None:
    for first in range(0, len(events), 1000):
        status, _, body = api.ingest(key, {"logs": events[first : first + 1000]})
        assert status == 202, body


def _wait_stored(api: Api, key: Key, word: str, count: int) -> None:
    api.store.wait_for(count, tenant=key.tenant, field="message", term=word, start_ns=0)


def _patterns(api: Api, key: Key, body: dict[str, Any]) -> dict[str, Any]:
    status, _, answer = api.request("POST", "/v1/logs/patterns", key=key, body=body)
    assert status == 200, answer
    result: dict[str, Any] = answer
    return result


class TestPatterns:
    def test_russian_and_english_messages_cluster_with_counts_levels_and_series(self, api: Api, writer: Key) -> None:
        word, now = _word(), time.time_ns()
        events = [_event(word, f"user {n} logged in from 10.0.0.{n}", "info", now - n * 10**9) for n in range(1, 13)]
        events += [
            _event(word, f"Ошибка оплаты заказа {9000 + n}: таймаут {n} с", "error", now - n * 10**9) for n in range(7)
        ]
        events += [_event(word, f"Пользователь {n} вошёл в систему", "info", now - n * 10**9) for n in range(4)]
        _send(api, writer, events)
        _wait_stored(api, writer, word, len(events))

        answer = _patterns(api, writer, {"filter": word, "from": "-1h", "limit": 10})
        assert answer["events_considered"] == 23 and answer["sampled"] is False
        found = {(item["pattern"], item["count"], item["level"]) for item in answer["patterns"]}
        assert found == {
            (f"user <_> logged in from <_> {word}", 12, "info"),
            (f"Ошибка оплаты заказа <_> таймаут <_> с {word}", 7, "error"),
            (f"Пользователь <_> вошёл в систему {word}", 4, "info"),
        }
        assert [item["count"] for item in answer["patterns"]] == [12, 7, 4]
        top = answer["patterns"][0]
        assert top["sample"].startswith("user ") and top["sample"].endswith(word)
        assert sum(count for _, count in top["series"]) == 12
        assert top["first_seen"] < top["last_seen"] and top["last_seen"].endswith("Z")

    def test_filter_limit_and_sampling(self, api: Api, writer: Key) -> None:
        word, now = _word(), time.time_ns()
        events = [_event(word, f"job {n} finished cleanly", "info", now - n * 10**9) for n in range(5)]
        events += [_event(word, f"job {n} failed: disk full", "error", now - n * 10**9) for n in range(3)]
        _send(api, writer, events)
        _wait_stored(api, writer, word, 8)
        only_errors = _patterns(api, writer, {"filter": f"{word} and level:error"})
        assert [(item["pattern"], item["count"]) for item in only_errors["patterns"]] == [
            (f"job <_> failed: disk full {word}", 3)
        ]
        limited = _patterns(api, writer, {"filter": word, "limit": 1})
        assert [item["count"] for item in limited["patterns"]] == [5] and limited["events_considered"] == 8

    def test_another_tenant_sees_nothing(self, api: Api, writer: Key) -> None:
        word = _word()
        _send(api, writer, [_event(word, "private thing happened", "info", time.time_ns())])
        _wait_stored(api, writer, word, 1)
        stranger = api.create_key("read:logs")
        answer = _patterns(api, stranger, {"filter": word})
        assert answer == {"patterns": [], "events_considered": 0, "sampled": False}

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"limit": 0}, "invalid_limit"),
            ({"step": "soon"}, "invalid_duration"),
            ({"filter": "a:("}, None),
            ({"unknown": 1}, None),
        ],
    )
    def test_bad_requests_are_400(self, api: Api, writer: Key, body: dict[str, Any], code: str | None) -> None:
        status, _, answer = api.request("POST", "/v1/logs/patterns", key=writer, body=body)
        assert status == 400, answer
        if code is not None:
            assert code in json.dumps(answer)

    def test_needs_read_scope(self, api: Api) -> None:
        write_only = api.create_key("write:logs")
        status, _, _ = api.request("POST", "/v1/logs/patterns", key=write_only, body={})
        assert status == 403


class TestInsights:
    def test_new_and_rising_against_the_baseline_errors_first(self, api: Api, writer: Key) -> None:
        word, now = _word(), time.time_ns()
        baseline_start = now - 25 * HOUR_NS
        # Over the 24 h baseline: 24 steady messages and 12 of the one that will rise.
        events = [_event(word, f"heartbeat {n} ok", "info", baseline_start + n * HOUR_NS + 10**9) for n in range(24)]
        events += [
            _event(word, f"slow query {n} ms", "warn", baseline_start + n * 2 * HOUR_NS + 10**9) for n in range(12)
        ]
        # The last hour: one heartbeat (steady), 30 slow queries (rising), two new patterns.
        recent = [now - (n + 1) * 60 * 10**9 for n in range(30)]
        events.append(_event(word, "heartbeat 99 ok", "info", recent[0]))
        events += [_event(word, f"slow query {n} ms", "warn", stamp) for n, stamp in enumerate(recent)]
        events += [_event(word, f"cache warmed in {n} s", "info", stamp) for n, stamp in enumerate(recent[:5])]
        events += [_event(word, f"payment {n} declined by bank", "error", stamp) for n, stamp in enumerate(recent[:2])]
        _send(api, writer, events)
        _wait_stored(api, writer, word, len(events))

        status, _, answer = api.request(
            "POST", "/v1/logs/insights", key=writer, body={"filter": word, "window": "1h", "baseline": "24h"}
        )
        assert status == 200, answer
        assert answer["new"] == [
            {
                "pattern": f"payment <_> declined by bank {word}",
                "count": 2,
                "level": "error",
                "sample": f"payment 0 declined by bank {word}",
            },
            {
                "pattern": f"cache warmed in <_> s {word}",
                "count": 5,
                "level": "info",
                "sample": f"cache warmed in 0 s {word}",
            },
        ]
        (rising,) = answer["rising"]
        assert rising["pattern"] == f"slow query <_> ms {word}"
        assert (rising["count"], rising["baseline_count"], rising["level"]) == (30, 12, "warn")
        assert rising["ratio"] == pytest.approx((30 / 1) / (12 / 24))
        # Every event was read: nothing is an estimate.
        assert answer["sampled"] is False and answer["baseline_share"] == 1.0
        assert (answer["window_events"], answer["baseline_events"]) == (38, 36)

    def test_bad_durations_are_400(self, api: Api, writer: Key) -> None:
        for body in ({"window": "0s"}, {"baseline": "yesterday"}, {"window": "-1h"}):
            status, _, answer = api.request("POST", "/v1/logs/insights", key=writer, body=body)
            assert status == 400 and "invalid_duration" in json.dumps(answer), answer


@pytest.fixture(scope="module")
def sampling_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("sampling")
    daemon = DaemonProcess(root / "data", "--set", "index.commit_interval_ms=200", "--set", "patterns.max_events=5")
    yield daemon.start()
    daemon.kill()


class TestBoundedWork:
    def test_only_the_newest_max_events_are_considered(self, sampling_daemon: DaemonProcess) -> None:
        key = mint_key(sampling_daemon.data_dir, "write:logs", "read:logs")
        word, now = _word(), time.time_ns()
        old = [_event(word, f"old shape {n}", "info", now - (100 + n) * 10**9) for n in range(6)]
        new = [_event(word, f"new shape {n}", "info", now - (1 + n) * 10**9) for n in range(5)]
        status, _, _ = sampling_daemon.request("POST", "/v1/logs/ingest", body={"logs": old + new}, headers=key.bearer)
        assert status == 202
        from tests.conftest import Store

        Store(sampling_daemon.data_dir).wait_for(11, tenant=key.tenant, field="message", term=word)
        status, _, answer = sampling_daemon.request(
            "POST", "/v1/logs/patterns", body={"filter": word}, headers=key.bearer
        )
        assert status == 200
        assert answer["sampled"] is True and answer["events_considered"] == 5
        assert [(item["pattern"], item["count"]) for item in answer["patterns"]] == [(f"new shape <_> {word}", 5)]


# The insights baseline below reads 10 events of each of its 24 slices: the newest of each hour.
SAMPLE_PER_SLICE = 10


@pytest.fixture(scope="module")
def baseline_sampling_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("baseline")
    daemon = DaemonProcess(
        root / "data",
        "--set",
        "index.commit_interval_ms=200",
        "--set",
        f"patterns.baseline_events={24 * SAMPLE_PER_SLICE}",
    )
    yield daemon.start()
    daemon.kill()


class TestSampledBaseline:
    """A baseline larger than its sample: what the sample misses is still never reported new."""

    def _insights(self, daemon: DaemonProcess, events: list[dict[str, Any]], word: str) -> dict[str, Any]:
        key = mint_key(daemon.data_dir, "write:logs", "read:logs")
        status, _, body = daemon.request("POST", "/v1/logs/ingest", body={"logs": events}, headers=key.bearer)
        assert status == 202, body
        from tests.conftest import Store

        Store(daemon.data_dir).wait_for(len(events), tenant=key.tenant, field="message", term=word, start_ns=0)
        status, _, answer = daemon.request(
            "POST", "/v1/logs/insights", body={"filter": word, "window": "1h", "baseline": "24h"}, headers=key.bearer
        )
        assert status == 200, answer
        result: dict[str, Any] = answer
        return result

    def test_a_pattern_once_in_the_baseline_outside_the_sample_is_not_new(
        self, baseline_sampling_daemon: DaemonProcess
    ) -> None:
        word, now = _word(), time.time_ns()
        hours = [now - (25 - hour) * HOUR_NS for hour in range(24)]
        minute = 60 * 10**9
        # Each baseline hour ends with 12 steady events (minutes 30 to 52): the sample reads those.
        events = [
            _event(word, f"heartbeat {n} ok", "info", start + (30 + 2 * n) * minute)
            for start in hours
            for n in range(12)
        ]
        # Once, early in one hour, outside the sample; and words of the new pattern in another order.
        events.append(_event(word, "disk 7 nearly full on node", "warn", hours[5] + 10 * minute))
        events.append(_event(word, "bank 7 declined by payment", "info", hours[9] + 10 * minute))
        recent = [now - (n + 1) * minute for n in range(3)]
        events += [_event(word, f"heartbeat {n} ok", "info", stamp) for n, stamp in enumerate(recent[:1])]
        events += [_event(word, f"disk {n} nearly full on node", "warn", stamp) for n, stamp in enumerate(recent)]
        events += [_event(word, f"payment {n} declined by bank", "error", stamp) for n, stamp in enumerate(recent[:2])]

        answer = self._insights(baseline_sampling_daemon, events, word)
        assert answer["sampled"] is True and answer["baseline_events"] == 24 * SAMPLE_PER_SLICE
        assert [(item["pattern"], item["count"]) for item in answer["new"]] == [
            (f"payment <_> declined by bank {word}", 2)
        ]
        # Found once in the whole baseline, counted exactly there: 3 an hour against 1 a day.
        (rising,) = answer["rising"]
        assert rising["pattern"] == f"disk <_> nearly full on node {word}"
        assert (rising["count"], rising["baseline_count"]) == (3, 1)
        assert rising["ratio"] == pytest.approx(3 / (1 / 24))

    def test_a_pattern_that_triples_is_rising_by_about_three(self, baseline_sampling_daemon: DaemonProcess) -> None:
        word, now = _word(), time.time_ns()
        minute = 60 * 10**9
        # 30 events an hour, one every two minutes; every third is the one that will triple.
        events = []
        for hour in range(24):
            start = now - (25 - hour) * HOUR_NS
            for n in range(30):
                message = f"queue {n} backlog grew" if n % 3 == 0 else f"heartbeat {n} ok"
                events.append(_event(word, message, "warn" if n % 3 == 0 else "info", start + (2 * n + 1) * minute))
        recent = [now - HOUR_NS + (2 * n + 1) * minute for n in range(30)]
        events += [_event(word, f"queue {n} backlog grew", "warn", stamp) for n, stamp in enumerate(recent)]
        events += [_event(word, f"heartbeat {n} ok", "info", stamp) for n, stamp in enumerate(recent[:20])]

        answer = self._insights(baseline_sampling_daemon, events, word)
        assert answer["sampled"] is True and answer["new"] == []
        assert 0 < answer["baseline_share"] < 0.5
        (rising,) = answer["rising"]
        assert rising["pattern"] == f"queue <_> backlog grew {word}" and rising["count"] == 30
        # 30 an hour against 10: an estimate from the sample, about right.
        assert 2.5 <= rising["ratio"] <= 3.5
        assert 240 * 0.8 <= rising["baseline_count"] <= 240 * 1.2


class TestCommandLine:
    def test_patterns_and_query_in_a_time_zone(self, api: Api) -> None:
        org = "org-" + marker()
        key = api.create_key("write:logs", "read:logs", org=org)
        word = _word()
        stamp = 1_700_000_000 * 10**9 + 5  # 2023-11-14T22:13:20Z, 01:13:20 in Moscow the next day
        _send(api, key, [_event(word, f"disk {n} full", "warn", stamp + n) for n in range(3)])
        _wait_stored(api, key, word, 3)
        window = ("--from", "2023-11-14T00:00:00Z", "--to", "2023-11-16T00:00:00Z", "--org", org)
        done = api.cli("patterns", word, *window, "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert [(item["pattern"], item["count"], item["level"]) for item in report["patterns"]] == [
            (f"disk <_> full {word}", 3, "warn")
        ]
        text = api.cli("patterns", word, *window)
        assert text.stdout.split() == ["3", "warn", "disk", "<_>", "full", word]
        moscow = api.cli("query", word, *window, "--limit", "1", "--tz", "Europe/Moscow")
        assert moscow.returncode == 0, moscow.stderr
        assert json.loads(moscow.stdout)["timestamp"] == "2023-11-15T01:13:20.000000007+03:00"
        utc = api.cli("query", word, *window, "--limit", "1")
        assert json.loads(utc.stdout)["timestamp"] == "2023-11-14T22:13:20.000000007Z"
        unknown = run_cli(api.daemon.data_dir, api.config_path, "query", word, "--tz", "Mars/Olympus")
        assert unknown.returncode == 1 and "unknown time zone" in unknown.stderr
