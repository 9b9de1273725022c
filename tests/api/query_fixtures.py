"""Helpers for the query-side end-to-end tests: one daemon per module, keys, ingest-then-wait and the query routes."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from logtraced.auth.services import TEST_CLOCK_VARIABLE
from tests.api.conftest import Clock, Key, mint_key
from tests.harness import DaemonProcess, wait_until

NS = 1_000_000_000
MINUTE_NS = 60 * NS
HOUR_NS = 3600 * NS
DAY_NS = 86_400 * NS
KQL_ROUTE = "/v1/logs/query"
INGEST_ROUTE = "/v1/logs/ingest"
TOKEN_ROUTE = "/api/v4/oauth/access_tokens"
BASE = "/api/v4/organizations/{org}/logs/api"
QUERY_RANGE = BASE + "/v2/query_range/json"
LABELS = BASE + "/v1/labels"
VALUES = BASE + "/v1/label/{name}/values"
SUMMARY_KEYS = {
    "bytesProcessedPerSecond",
    "linesProcessedPerSecond",
    "totalBytesProcessed",
    "totalLinesProcessed",
    "execTime",
}

# Query budgets high enough that polling and paging never meet a rate limit.
CONFIG = """
[index]
commit_interval_ms = 200

[auth.tiers.standard]
ingest_per_hour = 10000
query_per_hour = 2000

[auth.tiers.unlimited]
ingest_per_hour = 1000000
query_per_hour = 1000000
"""


def marker() -> str:
    """A word no other test sends."""
    return "q" + uuid.uuid4().hex[:12]


def recent_base() -> int:
    """A whole second a few minutes ago: every test's events sit after it, inside the KQL default 24 h."""
    return (time.time_ns() // NS - 600) * NS


def log(timestamp: int, message: str, **fields: Any) -> dict[str, Any]:
    """One event as /v1/logs/ingest takes it, with a timestamp in ns the test controls."""
    return {"timestamp": timestamp, "message": message, **fields}


class QueryApi:
    """A daemon under test with the query routes as methods; every call returns (status, body)."""

    def __init__(self, daemon: DaemonProcess, config_path: Path, clock: Clock) -> None:
        self.daemon = daemon
        self.config_path = config_path
        self.clock = clock

    # -- keys and tokens ------------------------------------------------------------------------
    def key(self, *scopes: str, org: str | None = None, environment: str = "production") -> Key:
        """A key of an unlimited tier, in a fresh organisation unless one is named."""
        return mint_key(
            self.daemon.data_dir,
            *(scopes or ("write:logs", "read:logs")),
            org=org,
            environment=environment,
            tier="unlimited",
            config_path=self.config_path,
        )

    def token(self, key: Key) -> str:
        status, _, body = self.daemon.request("POST", TOKEN_ROUTE, body={"refresh_token": key.secret})
        assert status == 200, body
        token: str = body["access_token"]
        return token

    # -- ingest ---------------------------------------------------------------------------------
    def ingest(self, key: Key, events: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(events), 5000):
            batch = list(events[start : start + 5000])
            status, _, body = self.daemon.request("POST", INGEST_ROUTE, body={"logs": batch}, headers=key.bearer)
            assert status == 202, body

    def ingest_and_wait(self, key: Key, events: Sequence[Mapping[str, Any]], *, batch: str | None = None) -> str:
        """Ingest events tagged with a batch word, then poll the KQL route until all of them are searchable."""
        batch = batch or marker()
        tagged = [{**event, "batch": batch} for event in events]
        self.ingest(key, tagged)
        self.wait_for_batch(key, batch, len(tagged), tagged)
        return batch

    def wait_for_batch(self, key: Key, batch: str, count: int, events: Sequence[Mapping[str, Any]]) -> None:
        stamps = [int(event["timestamp"]) for event in events]
        body = {"filter": f"batch:{batch}", "from": min(stamps), "to": max(stamps), "limit": 1}

        def searchable() -> bool:
            status, found = self.kql(key, body)
            assert status == 200, found
            return bool(found["total"] >= count)

        wait_until(searchable, timeout=30)

    # -- the query routes -----------------------------------------------------------------------
    def kql(self, key: Key | None, body: Any = None, *, raw: bytes | None = None) -> tuple[int, Any]:
        headers = key.bearer if key is not None else {}
        status, _, found = self.daemon.request("POST", KQL_ROUTE, body=body, raw=raw, headers=headers)
        return status, found

    def kql_all(self, key: Key, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every page of a KQL query, following next_cursor until it is null."""
        logs: list[dict[str, Any]] = []
        request = dict(body)
        for _ in range(10_000):
            status, page = self.kql(key, request)
            assert status == 200, page
            logs.extend(page["logs"])
            if page["next_cursor"] is None:
                return logs
            request = {**body, "cursor": page["next_cursor"]}
        raise AssertionError("next_cursor never became null")

    def query_range(
        self,
        key: Key | None,
        pipeline: Any,
        *,
        org: str | None = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> tuple[int, Any]:
        path = QUERY_RANGE.format(org=org if org is not None else key.org if key else "none")
        return self._call("POST", path, key, params, body={"pipeline": pipeline}, raw=raw, headers=headers)

    def labels(self, key: Key, *, org: str | None = None, **params: Any) -> tuple[int, Any]:
        return self._call("GET", LABELS.format(org=org or key.org), key, params)

    def values(self, key: Key, name: str, *, org: str | None = None, **params: Any) -> tuple[int, Any]:
        return self._call("GET", VALUES.format(org=org or key.org, name=quote(name, safe="")), key, params)

    def _call(
        self,
        method: str,
        path: str,
        key: Key | None,
        params: Mapping[str, Any],
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = {"X-LAST9-API-TOKEN": f"Bearer {key.secret}"} if key is not None else {}
        sent.update(headers or {})
        query = urlencode({name: value for name, value in params.items() if value is not None})
        status, _, found = self.daemon.request(
            method, f"{path}?{query}" if query else path, body=body, raw=raw, headers=sent
        )
        return status, found

    # -- real curl -------------------------------------------------------------------------------
    def curl(self, command: str) -> tuple[int, Any]:
        """Run a documented curl command line with bash, as a reader would paste it; returns status and body."""
        assert command.startswith("curl ")
        options = "curl --silent --show-error --write-out '\\n%{http_code}' "
        done = subprocess.run(
            ["bash", "-c", options + command[len("curl ") :]], capture_output=True, text=True, timeout=30, check=True
        )
        body, _, status = done.stdout.rpartition("\n")
        return int(status), json.loads(body)


def launch(tmp_path_factory: pytest.TempPathFactory, *args: str, config: str = CONFIG) -> Iterator[QueryApi]:
    """Start a daemon for one test module (extra `serve` flags in `args`); kill it when the module is done."""
    root = tmp_path_factory.mktemp("query")
    config_path = root / "logtraced.toml"
    config_path.write_text(config)
    clock = Clock(root / "clock-offset")
    daemon = DaemonProcess(
        root / "data", "--config", str(config_path), *args, env={TEST_CLOCK_VARIABLE: str(clock.path)}
    ).start()
    try:
        yield QueryApi(daemon, config_path, clock)
    finally:
        daemon.kill()


def messages(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [entry["message"] for entry in logs]


def stream_lines(body: Mapping[str, Any]) -> list[str]:
    """Every line of a query_range answer, stream after stream."""
    result = body["data"]["result"] or []
    return [line for stream in result for _, line in stream["values"]]


def stream_values(body: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(timestamp ns, line) of every value, in answer order; the timestamp is checked to be a ns string."""
    found = []
    for stream in body["data"]["result"] or []:
        for stamp, line in stream["values"]:
            assert isinstance(stamp, str) and stamp.isdigit()
            found.append((int(stamp), line))
    return found


def assert_error(status: int, body: Any, expected_status: int, code: str | None = None) -> str:
    """The one error envelope; returns the message for further checks."""
    assert status == expected_status, body
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message
