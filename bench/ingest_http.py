#!/usr/bin/env python3
"""HTTP ingest throughput, end to end until searchable, against TCP ingest of the same events in the same run.

Generates N seeded ~300-byte events, sends them to a real daemon as `POST /v1/logs/ingest`
batches of 5 000 with an enterprise key from several concurrent aiohttp clients, waits until
the index counts every event, and reports events/s end to end, the acknowledged send rate,
p50/p99 request latency and the daemon's peak RSS (daemon + indexer).  The baseline sends the
same events as json_lines over TCP to a fresh daemon: the cost of the HTTP path (auth, JSON
batch decoding, validation, fsync before the answer) is the difference.  The ceiling is the
in-process tantivy `add_json` of the same events with the best writer settings found on this
machine, and the ClickHouse engine (chdb) inserting them is the peer (bench/ceiling.py).

The same events are also sent, each dialect to a fresh daemon, as the shippers' dialects in
5 000-event requests: Elasticsearch `_bulk` NDJSON (as Fluent Bit writes it), Loki snappy
protobuf (as Promtail writes it: labels service/host/level, the other fields as structured
metadata) and OTLP protobuf (one resource per service and host, as an SDK batches); each is
reported as a ratio of `/v1/logs/ingest`'s events/s.

    python bench/ingest_http.py --events 1000000 --clients 4 [--repeat K] [--gzip] [--dialect es ...] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gzip
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import cramjam  # noqa: E402
from ceiling import PairedCeiling, ceiling_documents, clickhouse_rate, normalised, tantivy_ceiling  # noqa: E402
from datagen import shipper_events  # noqa: E402
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: E402

from logtraced.auth.db import Database  # noqa: E402
from logtraced.auth.keys import KeyStore  # noqa: E402
from logtraced.ingest.proto import push_pb2  # noqa: E402
from logtraced.model import Tenant  # noqa: E402
from logtraced.query.ast import MatchAll  # noqa: E402
from logtraced.query.pipeline import Filter, Pipeline  # noqa: E402
from logtraced.storage.backend import SearchRequest  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402
from tests.harness import DaemonProcess  # noqa: E402

BATCH_EVENTS = 5000
ORG = "bench"
TENANT = Tenant(ORG, "production")


def generate(count: int, seed: int) -> list[dict[str, Any]]:
    """LogTrace-style events of about 300 bytes, spread over the last hour."""
    return shipper_events(count, seed, logstash=False)


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def ingest_body(batch: list[dict[str, Any]]) -> bytes:
    return compact({"logs": batch})


def bulk_body(batch: list[dict[str, Any]]) -> bytes:
    """Fluent Bit `es` output's NDJSON: a create action, then the document, per event."""
    action = compact({"create": {"_index": "bench"}}) + b"\n"
    return b"".join(action + compact(event) + b"\n" for event in batch)


def _ns(timestamp: str) -> int:
    moment = datetime.datetime.fromisoformat(timestamp)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def loki_body(batch: list[dict[str, Any]]) -> bytes:
    """Promtail's snappy protobuf PushRequest: one stream per label set, the other fields as structured metadata."""
    request = push_pb2.PushRequest()
    streams: dict[str, Any] = {}
    for event in batch:
        labels = f'{{service_name="{event["service"]}", host="{event["host"]}", level="{event["level"].lower()}"}}'
        stream = streams.get(labels)
        if stream is None:
            stream = streams[labels] = request.streams.add(labels=labels)
        entry = stream.entries.add(line=event["message"])
        entry.timestamp.seconds, entry.timestamp.nanos = divmod(_ns(event["timestamp"]), 1_000_000_000)
        for name, value in (
            ("http_status", str(event["http"]["status"])),
            ("http_method", event["http"]["method"]),
            ("trace_id", event["trace_id"]),
        ):
            entry.structuredMetadata.add(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


_SEVERITY_NUMBERS = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17, "FATAL": 21}


def otlp_body(batch: list[dict[str, Any]]) -> bytes:
    """An SDK's ExportLogsServiceRequest: one resource per service and host, the other fields as attributes."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    scopes: dict[tuple[str, str], Any] = {}
    for event in batch:
        key = (event["service"], event["host"])
        scope = scopes.get(key)
        if scope is None:
            resource_logs = request.resource_logs.add()
            for name, value in (("service.name", key[0]), ("host.name", key[1])):
                resource_logs.resource.attributes.add(key=name).value.string_value = value
            scope = scopes[key] = resource_logs.scope_logs.add()
            scope.scope.name = "bench"
        record = scope.log_records.add(time_unix_nano=_ns(event["timestamp"]))
        record.severity_number = _SEVERITY_NUMBERS[event["level"]]  # type: ignore[assignment]
        record.severity_text = event["level"]
        record.body.string_value = event["message"]
        record.attributes.add(key="http.status").value.int_value = event["http"]["status"]
        record.attributes.add(key="http.method").value.string_value = event["http"]["method"]
        record.attributes.add(key="trace_id").value.string_value = event["trace_id"]
    return request.SerializeToString()


# name -> (route, Content-Type, success status, body builder, whether --gzip applies)
DIALECTS: dict[str, tuple[str, str, int, Callable[[list[dict[str, Any]]], bytes], bool]] = {
    "ingest": ("/v1/logs/ingest", "application/json", 202, ingest_body, True),
    "es": ("/_bulk", "application/x-ndjson", 200, bulk_body, True),
    "loki": ("/loki/api/v1/push", "application/x-protobuf", 204, loki_body, False),  # snappy already
    "otlp": ("/v1/logs", "application/x-protobuf", 200, otlp_body, True),
}


def http_bodies(events: list[dict[str, Any]], dialect: str, compress: bool) -> list[bytes]:
    """Bodies of BATCH_EVENTS events in `dialect`, encoded (and gzipped) before the clock starts."""
    build, gzips = DIALECTS[dialect][3], DIALECTS[dialect][4]
    bodies = []
    for start in range(0, len(events), BATCH_EVENTS):
        body = build(events[start : start + BATCH_EVENTS])
        bodies.append(gzip.compress(body, 1) if compress and gzips else body)
    return bodies


def mint_enterprise_key(data: Path) -> str:
    """A key with overflow, so backpressure never refuses the benchmark's batches."""
    with Database.open(data) as db:
        _, secret = KeyStore(db).create(ORG, "production", ["write:logs"], "enterprise", "bench")
    return secret


class RssSampler:
    """Peak resident memory of the daemon and its indexer, sampled every 0.2 s in a thread."""

    def __init__(self, daemon: DaemonProcess) -> None:
        from tests.harness import _children

        assert daemon.process is not None
        self.pids = [daemon.process.pid, *_children(daemon.process.pid)]
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def current(self) -> int:
        total = 0
        for pid in self.pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.2)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.peak, self.current())


async def send_http(
    port: int, secret: str, bodies: list[bytes], clients: int, compress: bool, dialect: str
) -> list[float]:
    """Every body POSTed by `clients` workers sharing one queue; returns each request's latency in seconds."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    route, content_type, ok, _, gzips = DIALECTS[dialect]
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": content_type}
    if compress and gzips:
        headers["Content-Encoding"] = "gzip"
    latencies: list[float] = []
    url = f"http://127.0.0.1:{port}{route}"

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            while True:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == ok:
                        latencies.append(time.perf_counter() - started)
                        break
                    if response.status not in (429, 503):
                        raise RuntimeError(f"ingest answered {response.status}: {await response.text()}")
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(worker(session) for _ in range(clients)))
    return latencies


def tcp_shares(events: list[dict[str, Any]], connections: int) -> list[bytes]:
    """The baseline's payloads: the events as json_lines, one share per socket, encoded before the clock starts."""
    lines = [json.dumps(event, separators=(",", ":")).encode() + b"\n" for event in events]
    return [b"".join(lines[i::connections]) for i in range(connections)]


def send_tcp(port: int, shares: list[bytes]) -> None:
    """The baseline: each share over its own socket, all at once."""

    def send(payload: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(payload)

    senders = [threading.Thread(target=send, args=(share,)) for share in shares]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()


def stored_events(store: TantivyStore, tenant: Tenant) -> int:
    """How many events of the tenant are searchable (counted by the index, no documents read)."""
    store.refresh()
    everything = Pipeline((Filter(MatchAll()),))
    return store.for_tenant(tenant).search(SearchRequest(0, 2**62, everything, 1, count_total=True)).total


def wait_searchable(data: Path, tenant: Tenant, count: int) -> None:
    store = TantivyStore(data)
    while True:
        if stored_events(store, tenant) >= count:
            return
        time.sleep(0.05)


def timed_run(
    data: Path, extra: list[str], send: Callable[[DaemonProcess], Any], tenant: Tenant, count: int
) -> dict[str, Any]:
    """Start a daemon, send with `send`, wait until searchable; seconds and peak RSS of that run."""
    daemon = DaemonProcess(data, *extra).start()
    try:
        sampler = RssSampler(daemon)
        started = time.perf_counter()
        sent = send(daemon)
        acked = time.perf_counter() - started
        wait_searchable(data, tenant, count)
        elapsed = time.perf_counter() - started
        return {"sent": sent, "ack_seconds": acked, "searchable_seconds": elapsed, "peak_rss": sampler.stop()}
    finally:
        daemon.kill()


def http_run(
    events: list[dict[str, Any]], bodies: list[bytes], args: argparse.Namespace, dialect: str = "ingest"
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "data"
        secret = mint_enterprise_key(data)

        def send(daemon: DaemonProcess) -> list[float]:
            return asyncio.run(send_http(daemon.http_port, secret, bodies, args.clients, args.gzip, dialect))

        run = timed_run(data, args.daemon_arg, send, TENANT, len(events))
    latencies = sorted(run["sent"])
    return {
        "events_per_second": len(events) / run["searchable_seconds"],
        "acked_events_per_second": len(events) / run["ack_seconds"],
        "searchable_seconds": run["searchable_seconds"],
        "latency_p50_ms": statistics.median(latencies) * 1000,
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "requests": len(latencies),
        "peak_rss_mib": run["peak_rss"] / 2**20,
        "average_body_bytes": sum(map(len, bodies)) / len(bodies),
    }


def interleaved_round(
    events: list[dict[str, Any]],
    bodies: list[bytes],
    dialect_bodies: dict[str, list[bytes]],
    args: argparse.Namespace,
    paired: PairedCeiling,
) -> dict[str, dict[str, Any]]:
    """One round: the ceiling's best setting, `/v1/logs/ingest`, then each dialect, back to back, so a round's ratios
    share the machine's load."""
    paired.measure()
    round_ = {"ingest": http_run(events, bodies, args)}
    for dialect, its_bodies in dialect_bodies.items():
        round_[dialect] = http_run(events, its_bodies, args, dialect)
    return round_


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median events/s (its own latencies and RSS), and every round's events/s."""
    ordered = sorted(runs, key=lambda run: run["events_per_second"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs"] = [round(run["events_per_second"]) for run in runs]
    return chosen


def tcp_run(events: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    shares = tcp_shares(events, args.clients)
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "data"
        run = timed_run(
            data,
            args.daemon_arg,
            lambda daemon: send_tcp(daemon.tcp_port, shares),
            Tenant("default", "production"),
            len(events),
        )
    return {"events_per_second": len(events) / run["searchable_seconds"], "peak_rss_mib": run["peak_rss"] / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (and TCP connections)")
    parser.add_argument("--gzip", action="store_true", help="send gzip-compressed bodies")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the TCP baseline run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of ingest + every dialect, interleaved; medians are reported"
    )
    parser.add_argument("--ceiling-events", type=int, default=1_000_000, help="events for the ceiling (a prefix)")
    parser.add_argument("--ceiling-repeat", type=int, default=1, help="runs of each ceiling setting")
    parser.add_argument("--no-clickhouse", dest="clickhouse", action="store_false", help="skip the chdb peer")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--daemon-arg", action="append", default=[], help="extra `serve` argument, repeatable")
    parser.add_argument(
        "--dialect",
        action="append",
        choices=[name for name in DIALECTS if name != "ingest"],
        help="shipper dialects to compare with /v1/logs/ingest (repeatable; default: all)",
    )
    args = parser.parse_args()
    events = generate(args.events, args.seed)
    bodies = http_bodies(events, "ingest", args.gzip)
    dialects = args.dialect or [name for name in DIALECTS if name != "ingest"]
    dialect_bodies = {dialect: http_bodies(events, dialect, args.gzip) for dialect in dialects}
    prefix = normalised([compact(event) for event in events[: args.ceiling_events]])
    documents = ceiling_documents(prefix)
    ceiling = tantivy_ceiling(documents, args.ceiling_repeat)
    paired = PairedCeiling(documents, ceiling)
    rounds = [interleaved_round(events, bodies, dialect_bodies, args, paired) for _ in range(args.repeat)]
    result: dict[str, Any] = {
        "events": args.events,
        "clients": args.clients,
        "batch_events": BATCH_EVENTS,
        "gzip": args.gzip,
        "rounds": args.repeat,
        "average_body_bytes": sum(map(len, bodies)) / len(bodies),
        "http": median_run([round_["ingest"] for round_ in rounds]),
        "dialects": {},
    }
    for dialect in dialects:
        run = median_run([round_[dialect] for round_ in rounds])
        ratios = [round_[dialect]["events_per_second"] / round_["ingest"]["events_per_second"] for round_ in rounds]
        run["ratio_to_ingest"] = statistics.median(ratios)
        run["round_ratios"] = ratios
        result["dialects"][dialect] = run
    result["ceiling"] = ceiling
    result["http_to_ceiling_ratio"] = result["http"]["events_per_second"] / result["ceiling"]["events_per_second"]
    result["paired_ceiling"] = paired.summary([round_["ingest"]["events_per_second"] for round_ in rounds])
    if args.clickhouse:
        result["clickhouse_insert"] = clickhouse_rate(prefix, args.ceiling_repeat)
    if args.baseline:
        result["tcp_baseline"] = tcp_run(events, args)
        result["http_to_tcp_ratio"] = result["http"]["events_per_second"] / result["tcp_baseline"]["events_per_second"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    http = result["http"]
    print(
        f"events={args.events} clients={args.clients} batch={BATCH_EVENTS} gzip={args.gzip}\n"
        f"HTTP end-to-end until searchable: {http['events_per_second']:,.0f} ev/s "
        f"(acknowledged: {http['acked_events_per_second']:,.0f} ev/s)\n"
        f"request latency: p50 {http['latency_p50_ms']:.0f} ms, p99 {http['latency_p99_ms']:.0f} ms "
        f"over {http['requests']} requests\n"
        f"peak daemon RSS: {http['peak_rss_mib']:.0f} MiB\n"
        f"ceiling add_json: {result['ceiling']['events_per_second']:,.0f} ev/s ({result['ceiling']['best']}); "
        f"HTTP = {result['http_to_ceiling_ratio']:.2f} of it; {result['paired_ceiling']['ratio']:.2f} of the best "
        f"setting measured again before each round (median {result['paired_ceiling']['events_per_second']:,.0f} ev/s)"
    )
    if "clickhouse_insert" in result:
        print(
            f"clickhouse (chdb) INSERT of the same events: {result['clickhouse_insert']['events_per_second']:,.0f} ev/s"
        )
    for dialect, run in result["dialects"].items():
        print(
            f"{DIALECTS[dialect][0]} ({dialect}): {run['events_per_second']:,.0f} ev/s until searchable "
            f"= {run['ratio_to_ingest']:.2f} of /v1/logs/ingest; p50 {run['latency_p50_ms']:.0f} ms, "
            f"body {run['average_body_bytes'] / 1e6:.2f} MB"
        )
    if args.baseline:
        tcp = result["tcp_baseline"]
        print(
            f"TCP json_lines baseline: {tcp['events_per_second']:,.0f} ev/s, peak RSS {tcp['peak_rss_mib']:.0f} MiB "
            f"(HTTP = {result['http_to_tcp_ratio']:.2f} of TCP)"
        )


if __name__ == "__main__":
    main()
