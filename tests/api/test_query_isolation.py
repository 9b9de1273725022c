"""Tenant isolation under hostile queries: no filter, pipeline, label or header reaches another tenant's events.

Organisation A writes with a production key and a staging key, organisation B with its own key.
Whatever A-staging and B send, they see their own events only, on every query route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import Key
from tests.api.query_fixtures import (
    HOUR_NS,
    NS,
    QueryApi,
    assert_error,
    launch,
    log,
    messages,
    recent_base,
    stream_lines,
)


@pytest.fixture(scope="module")
def qapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    yield from launch(tmp_path_factory)


@dataclass(frozen=True)
class Tenants:
    a_prod: Key
    a_staging: Key
    b_prod: Key
    start: int
    end: int
    lines: dict[str, set[str]]  # who -> the lines that tenant wrote

    def window(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end}

    def of(self, key: Key) -> set[str]:
        return self.lines[{self.a_prod: "a_prod", self.a_staging: "a_staging", self.b_prod: "b_prod"}[key]]


SPOOF_LINE = '{"env": "staging", "org": "%s", "service": "svc-b", "level": "debug"}'


@pytest.fixture(scope="module")
def tenants(qapi: QueryApi) -> Tenants:
    a_prod = qapi.key()
    a_staging = qapi.key(org=a_prod.org, environment="staging")
    b_prod = qapi.key()
    base = recent_base() - HOUR_NS
    lines: dict[str, set[str]] = {}
    for offset, (who, key, service) in enumerate(
        [("a_prod", a_prod, "svc-a-prod"), ("a_staging", a_staging, "svc-a-staging"), ("b_prod", b_prod, "svc-b")]
    ):
        written = [f"{who} secret {i}" for i in range(3)]
        events = [
            log(base + (offset * 10 + i) * NS, line, service=service, level="error", tenant=who, org=who)
            for i, line in enumerate(written)
        ]
        events.append(log(base + (offset * 10 + 5) * NS, f"{who} routed", service=service, index=f"Pt_{who}"))
        written.append(f"{who} routed")
        if who == "a_prod":
            spoof = SPOOF_LINE % b_prod.org
            events.append(log(base + 9 * NS, spoof, service=service, level="info"))
            written.append(spoof)
        qapi.ingest_and_wait(key, events)
        lines[who] = set(written)
    return Tenants(a_prod, a_staging, b_prod, base, base + 60 * NS, lines)


def readers(tenants: Tenants) -> list[Key]:
    return [tenants.a_prod, tenants.a_staging, tenants.b_prod]


HOSTILE_KQL = [
    "",
    "*",
    "env:production",
    "env:staging",
    "org:{a}",
    "org:{b}",
    "org:*",
    "env:*",
    "* or env:*",
    "not env:staging",
    "not env:production",
    "env:production or org:{a} or org:{b}",
    "not org:{a}",
    "secret",
    "tenant:a_prod",
    "service:svc-a-prod",
    "index:Pt_a_prod",
    "index:*",
]

HOSTILE_PIPELINES: list[dict[str, Any]] = [
    {"$neq": ["env", "staging"]},
    {"$neq": ["env", "production"]},
    {"$eq": ["env", "production"]},
    {"$regex": ["org", ".*"]},
    {"$regex": ["env", ".*"]},
    {"$eq": ["org", "{a}"]},
    {"$not": [{"$eq": ["org", "{b}"]}]},
    {"$or": [{"$eq": ["env", "production"]}, {"$neq": ["env", "production"]}]},
    {"$contains": ["body", "secret"]},
    {"$eq": ["tenant", "a_prod"]},
    {"$eq": ["attributes.org", "a_prod"]},
    {"$eq": ["index", "Pt_a_prod"]},
]


def fill(template: Any, tenants: Tenants) -> Any:
    """Put the organisations' real names into a KQL string or pipeline query."""
    text = json.dumps(template).replace("{a}", tenants.a_prod.org).replace("{b}", tenants.b_prod.org)
    return json.loads(text)


class TestKql:
    """/v1/logs/query returns the caller's own tenant's events, whatever the filter says."""

    @pytest.mark.parametrize("kql", HOSTILE_KQL)
    @pytest.mark.parametrize("who", ["a_prod", "a_staging", "b_prod"])
    def test_hostile_filter(self, qapi: QueryApi, tenants: Tenants, who: str, kql: str) -> None:
        key: Key = getattr(tenants, who)
        body = {"filter": fill(kql, tenants), "from": tenants.start, "to": tenants.end, "limit": 1000}
        status, found = qapi.kql(key, body)
        assert status == 200, found
        assert set(messages(found["logs"])) <= tenants.of(key)
        assert {(entry["org"], entry["env"]) for entry in found["logs"]} <= {(key.org, key.environment)}
        if kql in ("", "*", "secret"):
            assert len(found["logs"]) >= 3

    def test_cursor_of_another_tenant_reads_only_own_events(self, qapi: QueryApi, tenants: Tenants) -> None:
        body = {"from": tenants.start, "to": tenants.end, "limit": 1}
        cursor = qapi.kql(tenants.a_prod, body)[1]["next_cursor"]
        for key in (tenants.a_staging, tenants.b_prod):
            logs = qapi.kql_all(key, {**body, "cursor": cursor})
            assert set(messages(logs)) <= tenants.of(key)


class TestQueryRange:
    """query_range returns own events only, whatever the pipeline says."""

    @pytest.mark.parametrize("query", HOSTILE_PIPELINES, ids=[json.dumps(q) for q in HOSTILE_PIPELINES])
    @pytest.mark.parametrize("who", ["a_prod", "a_staging", "b_prod"])
    def test_hostile_pipeline(self, qapi: QueryApi, tenants: Tenants, who: str, query: dict[str, Any]) -> None:
        key: Key = getattr(tenants, who)
        pipeline = [{"type": "filter", "query": fill(query, tenants)}]
        status, body = qapi.query_range(key, pipeline, **tenants.window(), limit=1000)
        assert status == 200, body
        assert set(stream_lines(body)) <= tenants.of(key)
        for stream in body["data"]["result"] or []:
            assert stream["stream"]["env"] == key.environment

    @pytest.mark.parametrize("who", ["a_prod", "a_staging", "b_prod"])
    def test_parse_then_where_on_tenancy_fields(self, qapi: QueryApi, tenants: Tenants, who: str) -> None:
        key: Key = getattr(tenants, who)
        pipeline = [
            {"type": "parse", "parser": "json"},
            {"type": "where", "query": {"$or": [{"$eq": ["env", "staging"]}, {"$eq": ["org", tenants.b_prod.org]}]}},
        ]
        status, body = qapi.query_range(key, pipeline, **tenants.window(), limit=1000)
        assert status == 200, body
        assert set(stream_lines(body)) <= tenants.of(key)

    def test_parsed_labels_cannot_pose_as_tenancy_labels(self, qapi: QueryApi, tenants: Tenants) -> None:
        """A log line claiming another environment, organisation and service keeps its own stream labels."""
        key = tenants.a_prod
        pipeline = [{"type": "filter", "query": {"$contains": ["body", "svc-b"]}}, {"type": "parse", "parser": "json"}]
        status, body = qapi.query_range(key, pipeline, **tenants.window())
        assert status == 200, body
        (stream,) = body["data"]["result"]
        assert stream["stream"] == {
            "service": "svc-a-prod",
            "level": "info",
            "env": "production",
            "env_extracted": "staging",
            "org_extracted": tenants.b_prod.org,
            "service_extracted": "svc-b",
            "level_extracted": "debug",
        }

    def test_other_tenants_physical_index_is_not_found(self, qapi: QueryApi, tenants: Tenants) -> None:
        assert qapi.query_range(tenants.a_prod, [], **tenants.window(), index="physical_index:Pt_a_prod")[0] == 200
        for key in (tenants.a_staging, tenants.b_prod):
            status, body = qapi.query_range(key, [], **tenants.window(), index="physical_index:Pt_a_prod")
            assert_error(status, body, 404, "index_not_found")

    def test_another_organisation_in_the_path(self, qapi: QueryApi, tenants: Tenants) -> None:
        status, body = qapi.query_range(tenants.b_prod, [], org=tenants.a_prod.org, **tenants.window())
        assert_error(status, body, 403, "forbidden_organization")
        status, body = qapi.labels(tenants.b_prod, org=tenants.a_prod.org, **tenants.window())
        assert_error(status, body, 403, "forbidden_organization")
        status, body = qapi.values(tenants.b_prod, "service", org=tenants.a_prod.org, **tenants.window())
        assert_error(status, body, 403, "forbidden_organization")

    def test_access_token_is_confined_like_its_key(self, qapi: QueryApi, tenants: Tenants) -> None:
        token = qapi.token(tenants.a_staging)
        headers = {"X-LAST9-API-TOKEN": f"Bearer {token}"}
        status, body = qapi.query_range(
            None,
            [{"type": "filter", "query": {"$eq": ["env", "production"]}}],
            org=tenants.a_prod.org,
            headers=headers,
            **tenants.window(),
        )
        assert status == 200 and stream_lines(body) == []
        status, body = qapi.query_range(None, [], org=tenants.a_prod.org, headers=headers, **tenants.window())
        assert set(stream_lines(body)) == tenants.of(tenants.a_staging)


class TestLabels:
    """Labels and label values list own values only, the tenancy labels included."""

    @pytest.mark.parametrize("who", ["a_prod", "a_staging", "b_prod"])
    def test_values(self, qapi: QueryApi, tenants: Tenants, who: str) -> None:
        key: Key = getattr(tenants, who)
        service = {"a_prod": "svc-a-prod", "a_staging": "svc-a-staging", "b_prod": "svc-b"}[who]
        expected = {
            "service": [service],
            "env": [key.environment],
            "index": [f"Pt_{who}"],
            "tenant": [who],
        }
        for name, values in expected.items():
            status, body = qapi.values(key, name, **tenants.window())
            assert (status, body) == (200, {"status": "success", "data": values}), name
        status, body = qapi.values(key, "org", **tenants.window())
        others = {tenants.a_prod.org, tenants.b_prod.org} - {key.org}
        assert status == 200 and not others & set(body["data"]), body

    def test_labels_of_an_empty_tenant(self, qapi: QueryApi, tenants: Tenants) -> None:
        empty = qapi.key(org=tenants.b_prod.org, environment="development")
        assert qapi.labels(empty, **tenants.window()) == (200, {"status": "success", "data": []})
        assert qapi.values(empty, "service", **tenants.window()) == (200, {"status": "success", "data": []})


class TestEnvironmentOverrides:
    """Naming another environment in a header or parameter is refused, never obeyed."""

    def test_query_range_parameter_and_header(self, qapi: QueryApi, tenants: Tenants) -> None:
        key = tenants.a_staging
        status, body = qapi.query_range(key, [], **tenants.window(), env="production")
        assert_error(status, body, 403, "cross_environment")
        headers = {"X-LogTrace-Environment": "production"}
        status, body = qapi.query_range(key, [], headers=headers, **tenants.window())
        assert_error(status, body, 403, "cross_environment")
        status, body = qapi.labels(key, **tenants.window(), env="production")
        assert_error(status, body, 403, "cross_environment")
        status, body = qapi.values(key, "env", **tenants.window(), env="production")
        assert_error(status, body, 403, "cross_environment")

    def test_kql_header(self, qapi: QueryApi, tenants: Tenants) -> None:
        headers = {**tenants.b_prod.bearer, "X-LogTrace-Environment": "staging"}
        status, _, body = qapi.daemon.request("POST", "/v1/logs/query", body={}, headers=headers)
        assert_error(status, body, 403, "cross_environment")

    def test_events_naming_another_environment_are_refused(self, qapi: QueryApi, tenants: Tenants) -> None:
        event = log(tenants.start + 30 * NS, "staging writes as production", env="production")
        status, _, body = qapi.daemon.request(
            "POST", "/v1/logs/ingest", body={"logs": [event]}, headers=tenants.a_staging.bearer
        )
        assert_error(status, body, 403, "cross_environment")
        status, found = qapi.kql(tenants.a_prod, {"filter": "staging writes", "from": tenants.start, "to": tenants.end})
        assert (status, found["logs"]) == (200, [])
