"""GET .../logs/api/v1/labels and .../v1/label/{name}/values end to end: windows, attribute labels, errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.api.conftest import Key
from tests.api.query_fixtures import (
    LABELS,
    NS,
    QueryApi,
    assert_error,
    launch,
    log,
    recent_base,
)


@pytest.fixture(scope="module")
def qapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    yield from launch(tmp_path_factory)


@dataclass(frozen=True)
class Labelled:
    key: Key
    t0: int

    def window(self, start_s: float, end_s: float) -> dict[str, int]:
        """A window in seconds after t0."""
        return {"start": self.t0 + int(start_s * NS), "end": self.t0 + int(end_s * NS)}


@pytest.fixture(scope="module")
def labelled(qapi: QueryApi) -> Labelled:
    """Each event adds labels at its own time, so windows select which labels exist."""
    key = qapi.key()
    t0 = recent_base() - 3600 * NS
    events = [
        log(t0, "one", service="api", level="info"),
        log(t0 + 10 * NS, "two", service="web", level="WARNING", host="node-1"),
        log(t0 + 100 * NS, "three", service="db", index="Pt_x"),
        log(t0 + 200 * NS, "four", namespace="prod", k8s={"pod": "p-1"}, code=7, ratio=0.5),
    ]
    qapi.ingest_and_wait(key, events)
    return Labelled(key, t0)


class TestLabels:
    """The canonical labels that carry a value inside the window, in a fixed order."""

    @pytest.mark.parametrize(
        ("start_s", "end_s", "expected"),
        [
            (0, 5, ["service", "level", "env"]),
            (0, 50, ["service", "level", "env", "host"]),
            (100, 101, ["service", "env", "index"]),
            (200, 201, ["env"]),
            (-10, 0, []),
            (201, 300, []),
            (0, 300, ["service", "level", "env", "host", "index"]),
        ],
    )
    def test_window(self, qapi: QueryApi, labelled: Labelled, start_s: int, end_s: int, expected: list[str]) -> None:
        status, body = qapi.labels(labelled.key, **labelled.window(start_s, end_s))
        assert (status, body) == (200, {"status": "success", "data": expected})

    def test_times_as_seconds_and_rfc3339(self, qapi: QueryApi, labelled: Labelled) -> None:
        start = dt.datetime.fromtimestamp(labelled.t0 // NS, dt.UTC).isoformat().replace("+00:00", "Z")
        status, body = qapi.labels(labelled.key, start=start, end=labelled.t0 // NS + 5)
        assert (status, body["data"]) == (200, ["service", "level", "env"])


class TestValues:
    """Distinct values, sorted, of a canonical label or an attribute path, inside the window."""

    @pytest.mark.parametrize(
        ("name", "start_s", "end_s", "expected"),
        [
            ("service", 0, 300, ["api", "db", "web"]),
            ("service", 0, 1, ["api"]),
            ("service", 100, 100.001, ["db"]),
            ("service", -1, 0, []),
            ("level", 0, 300, ["info", "warn"]),
            ("host", 0, 300, ["node-1"]),
            ("env", 0, 300, ["production"]),
            ("index", 0, 300, ["Pt_x"]),
            ("namespace", 0, 300, ["prod"]),
            ("k8s.pod", 0, 300, ["p-1"]),
            ("code", 0, 300, ["7"]),
            ("ratio", 0, 300, ["0.5"]),
            ("nothing", 0, 300, []),
        ],
    )
    def test_values(
        self, qapi: QueryApi, labelled: Labelled, name: str, start_s: float, end_s: float, expected: list[str]
    ) -> None:
        status, body = qapi.values(labelled.key, name, **labelled.window(start_s, end_s))
        assert (status, body) == (200, {"status": "success", "data": expected})

    def test_plain_authorization_header(self, qapi: QueryApi, labelled: Labelled) -> None:
        window = labelled.window(0, 300)
        path = f"{LABELS.format(org=labelled.key.org)}?start={window['start']}&end={window['end']}"
        status, _, body = qapi.daemon.request("GET", path, headers=labelled.key.bearer)
        assert (status, body["status"]) == (200, "success")


class TestErrors:
    """The query_range family's error envelope, on both discovery routes."""

    @pytest.mark.parametrize("route", ["labels", "values"])
    @pytest.mark.parametrize(
        ("params", "code", "mentions"),
        [
            ({"end": 10**18}, "missing_parameter", "start"),
            ({"start": 1}, "missing_parameter", "end"),
            ({}, "missing_parameter", "start"),
            ({"start": "soon", "end": 10**18}, "invalid_parameter", "start"),
            ({"start": 10**18, "end": 10**18}, "invalid_parameter", "before"),
        ],
    )
    def test_windows(
        self, qapi: QueryApi, labelled: Labelled, route: str, params: dict[str, object], code: str, mentions: str
    ) -> None:
        if route == "labels":
            status, body = qapi.labels(labelled.key, **params)
        else:
            status, body = qapi.values(labelled.key, "service", **params)
        assert mentions in assert_error(status, body, 400, code)

    def test_label_name_too_long(self, qapi: QueryApi, labelled: Labelled) -> None:
        status, body = qapi.values(labelled.key, "x" * 257, **labelled.window(0, 300))
        assert_error(status, body, 400, "invalid_label")

    def test_credentials(self, qapi: QueryApi, labelled: Labelled) -> None:
        window = labelled.window(0, 300)
        assert_error(*qapi.labels(labelled.key, org="elsewhere", **window), 403, "forbidden_organization")
        assert_error(*qapi.labels(qapi.key("write:logs"), **window), 403, "insufficient_scope")
        unknown = Key("lt_live_" + "0" * 32, "none", labelled.key.org, "production")
        assert_error(*qapi.values(unknown, "service", **window), 401, "invalid_api_key")
        path = f"{LABELS.format(org=labelled.key.org)}?start={window['start']}&end={window['end']}"
        status, _, body = qapi.daemon.request("GET", path)
        assert_error(status, body, 401, "missing_credentials")

    def test_expired_token(self, qapi: QueryApi, labelled: Labelled) -> None:
        token = qapi.token(labelled.key)
        window = labelled.window(0, 300)
        path = f"{LABELS.format(org=labelled.key.org)}?start={window['start']}&end={window['end']}"
        try:
            qapi.clock.set(86_400 + 5)
            status, _, body = qapi.daemon.request("GET", path, headers={"X-LAST9-API-TOKEN": f"Bearer {token}"})
        finally:
            qapi.clock.set(0.0)
        assert assert_error(status, body, 401) == "Authorization token is expired"

    def test_wrong_method(self, qapi: QueryApi, labelled: Labelled) -> None:
        status, _, body = qapi.daemon.request("POST", LABELS.format(org=labelled.key.org), headers=labelled.key.bearer)
        assert_error(status, body, 405, "method_not_allowed")
