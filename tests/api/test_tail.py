"""Live tail against the real daemon: SSE and Loki's WebSocket, order, drops, replay, tenants, the subscriber cap."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.api.conftest import Key
from tests.api.query_fixtures import CONFIG, QueryApi, launch, log, marker, recent_base
from tests.harness import wait_until

MAX_SUBSCRIBERS = 3
QUEUE_EVENTS = 5


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryApi]:
    config = CONFIG + f"\n[tail]\nmax_subscribers = {MAX_SUBSCRIBERS}\nqueue_events = {QUEUE_EVENTS}\n"
    yield from launch(tmp_path_factory, config=config)


def subscribers(daemon: QueryApi) -> float:
    _, _, text = daemon.daemon.request("GET", "/metrics")
    line = next(line for line in text.splitlines() if line.startswith("logtraced_tail_subscribers "))
    return float(line.split()[1])


@pytest.fixture
async def session(daemon: QueryApi) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{daemon.daemon.http_port}") as client:
        yield client
    wait_until(lambda: subscribers(daemon) == 0)


async def sse_events(response: aiohttp.ClientResponse, count: int) -> list[tuple[str, Any]]:
    """The next `count` SSE events as (name, decoded data), keepalive comments skipped."""
    found: list[tuple[str, Any]] = []
    name = "message"
    while len(found) < count:
        raw = await asyncio.wait_for(response.content.readline(), 20)
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            found.append((name, json.loads(line[len("data: ") :])))
            name = "message"
    return found


def send(daemon: QueryApi, key: Key, service: str, messages: list[str]) -> None:
    base = recent_base()
    daemon.ingest(key, [log(base + i, text, service=service) for i, text in enumerate(messages)])


async def test_sse_sees_new_events_once_in_order_and_never_another_tenants(
    daemon: QueryApi, session: aiohttp.ClientSession
) -> None:
    mine, theirs = daemon.key(), daemon.key()
    service = marker()
    query = urlencode({"filter": f"service:{service}"})
    async with session.get(f"/v1/logs/tail?{query}", headers=mine.bearer) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        send(daemon, theirs, service, ["theirs 1", "theirs 2"])
        send(daemon, mine, service, ["a", "b", "c"])
        send(daemon, mine, "not-" + service, ["filtered out"])
        send(daemon, mine, service, ["d", "e"])
        events = await sse_events(response, 5)
    assert [data["message"] for _, data in events] == ["a", "b", "c", "d", "e"]
    assert {name for name, _ in events} == {"message"}
    assert {data["org"] for _, data in events} == {mine.org}
    assert set(events[0][1]) >= {"timestamp", "timestamp_ns", "message", "level", "service", "attributes"}


async def test_a_slow_subscriber_is_told_what_it_dropped(daemon: QueryApi, session: aiohttp.ClientSession) -> None:
    key, service = daemon.key(), marker()
    async with session.get(f"/v1/logs/tail?{urlencode({'filter': f'service:{service}'})}", headers=key.bearer) as r:
        send(daemon, key, service, [f"burst {i}" for i in range(20)])  # one batch: 5 fit the queue
        events = await sse_events(r, QUEUE_EVENTS + 1)
    assert events[0] == ("dropped", {"dropped": 20 - QUEUE_EVENTS})
    assert [data["message"] for _, data in events[1:]] == [f"burst {i}" for i in range(QUEUE_EVENTS)]


async def test_replay_then_follow_without_repeats(daemon: QueryApi, session: aiohttp.ClientSession) -> None:
    key, service = daemon.key(), marker()
    base = recent_base()
    daemon.ingest_and_wait(key, [log(base + i, f"old {i}", service=service) for i in range(2)])
    query = urlencode({"filter": f"service:{service}", "from": "-1h"})
    async with session.get(f"/v1/logs/tail?{query}", headers=key.bearer) as response:
        replayed = await sse_events(response, 2)
        send(daemon, key, service, ["new"])
        live = await sse_events(response, 1)
    assert [data["message"] for _, data in replayed + live] == ["old 0", "old 1", "new"]


async def test_subscribers_are_capped(daemon: QueryApi, session: aiohttp.ClientSession) -> None:
    key = daemon.key()
    opened = [await session.get("/v1/logs/tail", headers=key.bearer) for _ in range(MAX_SUBSCRIBERS)]
    try:
        assert [response.status for response in opened] == [200] * MAX_SUBSCRIBERS
        async with session.get("/v1/logs/tail", headers=key.bearer) as refused:
            assert refused.status == 429
            body = await refused.json()
            assert body["error"]["code"] == "too_many_tail_subscribers" and refused.headers["Retry-After"]
    finally:
        for response in opened:
            response.close()


async def test_tail_needs_read_scope(daemon: QueryApi, session: aiohttp.ClientSession) -> None:
    writer_only = daemon.key("write:logs")
    async with session.get("/v1/logs/tail", headers=writer_only.bearer) as response:
        assert response.status == 403
    async with session.get("/loki/api/v1/tail?query=%7Ba%3D%22b%22%7D") as response:
        assert response.status == 401 and (await response.json())["status"] == "error"


async def test_loki_websocket_replays_the_last_hour_without_start(
    daemon: QueryApi, session: aiohttp.ClientSession
) -> None:
    """Grafana sends only `query`; Loki's tail then starts with up to `limit` (100) lines of the last hour."""
    key, service = daemon.key(), marker()
    daemon.ingest_and_wait(key, [log(recent_base() + i, f"recent {i}", service=service) for i in range(3)])
    query = urlencode({"query": f'{{service_name="{service}"}}'})
    async with session.ws_connect(f"/loki/api/v1/tail?{query}", headers=key.bearer) as socket:
        first = json.loads((await socket.receive(timeout=20)).data)
    assert [line for stream in first["streams"] for _, line in stream["values"]] == [f"recent {i}" for i in range(3)]


async def test_loki_websocket_frames_replay_and_drops(daemon: QueryApi, session: aiohttp.ClientSession) -> None:
    key, other, service = daemon.key(), daemon.key(), marker()
    base = recent_base()
    daemon.ingest_and_wait(key, [log(base, "before", service=service, level="info")])
    query = urlencode({"query": f'{{service_name="{service}"}} |= "e"', "start": str(base), "limit": 10})
    async with session.ws_connect(f"/loki/api/v1/tail?{query}", headers=key.bearer) as socket:
        first = json.loads((await socket.receive(timeout=20)).data)
        assert first["streams"] == [
            {
                "stream": {"service_name": service, "level": "info", "env": "production"},
                "values": [[str(base), "before"]],
            }
        ]
        send(daemon, other, service, ["theirs"])
        send(daemon, key, service, ["e1", "no match", "e2"])
        frame = json.loads((await socket.receive(timeout=20)).data)
        values = [value for stream in frame["streams"] for value in stream["values"]]
        assert [line for _, line in values] == ["e1", "e2"] and "dropped_entries" not in frame
        send(daemon, key, service, [f"e{i}" for i in range(20)])
        frame = json.loads((await socket.receive(timeout=20)).data)
        # The first dropped entries are named, up to one queue's worth (the memory bound holds for drops too).
        assert [int(entry["timestamp"]) % 100 for entry in frame["dropped_entries"]] == list(range(5, 10))
        assert all(entry["timestamp"].isdigit() and service in entry["labels"] for entry in frame["dropped_entries"])
        assert sum(len(stream["values"]) for stream in frame["streams"]) == QUEUE_EVENTS


def test_cli_tail_replays_then_follows(daemon: QueryApi) -> None:
    """`logtraced tail KQL --from -1h` as an operator types it, the key from $LOGTRACE_API_KEY."""
    key, service = daemon.key(), marker()
    daemon.ingest_and_wait(key, [log(recent_base() + i, f"old {i}", service=service, level="warn") for i in range(2)])
    command = [sys.executable, "-m", "logtraced", "tail", f"service:{service}", "--from=-1h"]
    command += ["--url", daemon.daemon.url("")]
    tail = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "LOGTRACE_API_KEY": key.secret}
    )
    watchdog = threading.Timer(60, tail.kill)  # a hung stream fails the test instead of the run
    watchdog.start()
    try:
        assert tail.stdout is not None
        lines = [tail.stdout.readline(), tail.stdout.readline()]
        send(daemon, key, service, ["new"])
        lines.append(tail.stdout.readline())
    finally:
        watchdog.cancel()
        tail.kill()
        tail.communicate()
    assert [line.split()[1:] for line in lines] == [
        ["warn", service, "old", "0"],
        ["warn", service, "old", "1"],
        ["-", service, "new"],
    ]
