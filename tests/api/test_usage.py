"""GET /v1/usage: per key per UTC hour, confined to the caller's organisation."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, Key


def usage(api: Api, key: Key, query: str = "") -> tuple[int, Any]:
    status, _, body = api.request("GET", "/v1/usage" + query, key=key)
    return status, body


class TestReport:
    """Rows count requests, events, bytes, rejections and overflow per key and hour."""

    def test_counts_of_one_key(self, api: Api, writer: Key) -> None:
        body = {"logs": [{"message": "a"}, {"message": "b"}]}
        assert api.ingest(writer, body)[0] == 202
        assert api.ingest(writer, {"logs": [{"level": "info"}]})[0] == 400
        status, report = usage(api, writer)
        assert status == 200
        assert report["org"] == writer.org
        (row,) = report["usage"]
        assert row["key_id"] == writer.id
        assert (row["requests"], row["events"], row["rejections"], row["overflow_events"]) == (2, 2, 1, 0)
        assert row["bytes"] > 0
        assert row["hour"].endswith(":00:00Z") and row["hour_epoch"] % 3600 == 0

    def test_ingest_and_query_requests_and_429s_apart(self, api: Api) -> None:
        key = api.create_key("write:logs", "read:logs", tier="tiny")
        api.clock.move_to_seconds_before_next_hour(60)
        statuses = [api.ingest(key, {"logs": [{"message": "x"}]})[0] for _ in range(4)]
        statuses += [api.request("POST", "/v1/logs/query", key=key, body={})[0] for _ in range(3)]
        assert statuses == [202, 202, 202, 429, 200, 200, 429]
        (row,) = usage(api, key)[1]["usage"]
        assert (row["ingest_requests"], row["query_requests"], row["throttled"]) == (4, 3, 2)
        assert (row["requests"], row["rejections"], row["events"]) == (7, 2, 3)

    def test_hours_are_separate_rows_across_a_boundary(self, api: Api, writer: Key) -> None:
        boundary = api.clock.move_to_seconds_before_next_hour(10)
        assert api.ingest(writer, {"logs": [{"message": "before"}]})[0] == 202
        api.clock.set(api.clock.offset + 20)
        assert api.ingest(writer, {"logs": [{"message": "after"}, {"message": "again"}]})[0] == 202
        status, report = usage(api, writer, f"?from={boundary - 3600}&to=now")
        assert status == 200
        rows = [(row["hour_epoch"], row["events"]) for row in report["usage"]]
        assert rows == [(boundary - 3600, 1), (boundary, 2)]
        status, report = usage(api, writer, f"?from={boundary}")
        assert [row["hour_epoch"] for row in report["usage"]] == [boundary]

    def test_relative_and_iso_times(self, api: Api, writer: Key) -> None:
        assert api.ingest(writer, {"logs": [{"message": "x"}]})[0] == 202
        assert len(usage(api, writer, "?from=-2h")[1]["usage"]) == 1
        assert usage(api, writer, "?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z")[1]["usage"] == []

    def test_bad_times(self, api: Api, writer: Key) -> None:
        for query in ("?from=yesterday", "?from=nan", "?from=10&to=5", "?from=0"):
            status, body = usage(api, writer, query)
            assert (status, body["error"]["code"]) == (400, "invalid_parameter"), query


class TestConfinement:
    """A key sees its organisation only; only an admin key sees other keys."""

    def test_other_organisations_are_invisible(self, api: Api, writer: Key) -> None:
        other = api.create_key("write:logs", "admin")
        assert api.ingest(other, {"logs": [{"message": "x"}]})[0] == 202
        status, report = usage(api, writer, f"?key_id={other.id}")
        assert (status, report["error"]["code"]) == (403, "insufficient_scope")
        status, report = usage(api, other, f"?key_id={writer.id}")
        assert (status, report["usage"]) == (200, [])

    def test_admin_sees_every_key_of_its_organisation(self, api: Api) -> None:
        first = api.create_key("write:logs")
        second = api.create_key("write:logs", org=first.org)
        admin = api.create_key("admin", org=first.org)
        for key in (first, second, second):
            assert api.ingest(key, {"logs": [{"message": "x"}]})[0] == 202
        report = usage(api, admin)[1]
        assert {row["key_id"]: row["requests"] for row in report["usage"]} == {first.id: 1, second.id: 2}
        assert report["totals"]["requests"] == 3
        only = usage(api, admin, f"?key_id={second.id}")[1]
        assert [row["key_id"] for row in only["usage"]] == [second.id]

    def test_non_admin_sees_only_itself(self, api: Api) -> None:
        first = api.create_key("write:logs")
        second = api.create_key("write:logs", org=first.org)
        assert api.ingest(second, {"logs": [{"message": "x"}]})[0] == 202
        assert usage(api, first)[1]["usage"] == []
