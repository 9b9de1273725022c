"""Hourly rate limits through HTTP: headers on every answer, 429 with Retry-After, reset at the top of the UTC hour."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, Key, marker


def ingest_one(api: Api, key: Key, word: str = "x") -> tuple[int, dict[str, str], Any]:
    return api.ingest(key, {"logs": [{"message": word}]})


class TestHeaders:
    """Every answer on a rate-limited route says where the budget stands."""

    def test_success_carries_the_budget(self, api: Api, writer: Key) -> None:
        status, headers, _ = ingest_one(api, writer)
        assert status == 202
        assert headers["X-RateLimit-Limit"] == "10000"
        assert headers["X-RateLimit-Remaining"] == "9999"
        assert int(headers["X-RateLimit-Reset"]) % 3600 == 0

    def test_refused_batch_still_carries_and_spends_the_budget(self, api: Api, writer: Key) -> None:
        status, headers, _ = api.ingest(writer, {"logs": [{"level": "info"}]})
        assert status == 400
        assert headers["X-RateLimit-Remaining"] == "9999"
        assert ingest_one(api, writer)[1]["X-RateLimit-Remaining"] == "9998"

    def test_routes_without_a_limit_have_no_headers(self, api: Api, writer: Key) -> None:
        _, headers, _ = api.request("GET", "/v1/health", key=writer)
        assert "X-RateLimit-Limit" not in headers


class TestHourWindows:
    """A standard key is refused past its budget until the next UTC hour."""

    def test_budget_runs_out_and_resets_at_the_top_of_the_hour(self, api: Api) -> None:
        key = api.create_key("write:logs", tier="tiny")
        boundary = api.clock.move_to_seconds_before_next_hour(20)
        assert [ingest_one(api, key)[1]["X-RateLimit-Remaining"] for _ in range(3)] == ["2", "1", "0"]
        status, headers, body = ingest_one(api, key)
        assert status == 429
        assert body["error"]["code"] == "rate_limited"
        assert headers["X-RateLimit-Reset"] == str(boundary)
        assert 15 <= int(headers["Retry-After"]) <= 21
        api.clock.set(api.clock.offset + 25)
        status, headers, _ = ingest_one(api, key)
        assert status == 202
        assert headers["X-RateLimit-Remaining"] == "2"
        assert headers["X-RateLimit-Reset"] == str(boundary + 3600)

    def test_refusals_do_not_spend_the_next_hour(self, api: Api) -> None:
        key = api.create_key("write:logs", tier="tiny")
        api.clock.move_to_seconds_before_next_hour(30)
        for _ in range(3):
            ingest_one(api, key)
        assert [ingest_one(api, key)[0] for _ in range(5)] == [429] * 5
        api.clock.set(api.clock.offset + 40)
        assert [ingest_one(api, key)[0] for _ in range(4)] == [202, 202, 202, 429]


class TestEnterpriseOverflow:
    """An enterprise key past its hourly budget is still accepted, flagged as overflow, and nothing is dropped."""

    def test_over_budget_batches_are_queued_not_refused(self, api: Api) -> None:
        key = api.create_key("write:logs", "read:logs", tier="tiny_overflow")
        word = marker()
        answers = [api.ingest(key, {"logs": [{"message": f"{word} {i}"}]}) for i in range(4)]
        assert [status for status, _, _ in answers] == [202] * 4
        assert [body["overflow"] for _, _, body in answers] == [False, False, True, True]
        assert [headers["X-RateLimit-Remaining"] for _, headers, _ in answers] == ["1", "0", "0", "0"]
        assert len(api.store.wait_for(4, tenant=key.tenant, field="message", term=word)) == 4
        usage = api.request("GET", "/v1/usage", key=key)[2]
        assert usage["totals"]["overflow_events"] == 2
