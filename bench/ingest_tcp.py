#!/usr/bin/env python3
"""TCP ingest throughput, end to end until searchable, against the in-process add_json ceiling measured in the same run.

Sends N generated ~300-byte Logstash json_lines events over several TCP connections to a real
daemon, waits until the index counts all of them, and reports events/s, MB/s and the peak RSS
of the daemon (both processes), how soon the first events were searchable and how long
/readyz took to answer while the senders sent.  The ceiling is plain `IndexWriter.add_json` + commit of the
same events (already normalised, each with its connection's address as the daemon keeps it), in
this process, with the daemon's schema and the best writer threads and heap found on this machine
(bench/ceiling.py): what this stack can do with no receiving, no WAL and no Python per-event work.
The same without the senders' addresses is reported beside it, to show what keeping them costs.
Beside it, the ClickHouse engine (chdb) inserting the same events, as a peer.

    python bench/ingest_tcp.py --events 1000000 --connections 4 [--json]
    python bench/ingest_tcp.py --events 300000 --masking --pii-share 0.1   # masking off and on, interleaved

`--masking` repeats every end-to-end run with `--set masking.enabled=true` right after the run
without it, so both see the same machine load; `--pii-share` puts a card number, a phone and an
e-mail address into that share of the messages (the rest is scanned and left as it is).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ceiling import PairedCeiling, ceiling_documents, clickhouse_rate, normalised, tantivy_ceiling  # noqa: E402
from datagen import shipper_events  # noqa: E402

from logtraced.model import Tenant  # noqa: E402
from logtraced.query.ast import MatchAll  # noqa: E402
from logtraced.query.pipeline import Filter, Pipeline  # noqa: E402
from logtraced.storage.backend import SearchRequest  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402
from tests.harness import DaemonProcess  # noqa: E402

MASKING_ON = ["--set", "masking.enabled=true"]
PII = " paid with card 4111 1111 1111 1111, phone +7 (912) 345-67-89, mail ivan.petrov@example.ru"


def generate(count: int, seed: int, pii_share: float = 0.0) -> list[bytes]:
    """Logstash json_lines events of about 300 bytes, spread over the last hour; `pii_share` of them with PII."""
    events = shipper_events(count, seed, logstash=True)
    every = round(1 / pii_share) if pii_share > 0 else 0
    for position in range(0, count, every) if every else ():
        events[position]["message"] += PII
    return [json.dumps(event, separators=(",", ":")).encode() + b"\n" for event in events]


def stored_events(store: TantivyStore, tenant: Tenant) -> int:
    """How many events of the tenant are searchable (counted by the index, no documents read)."""
    store.refresh()
    everything = Pipeline((Filter(MatchAll()),))
    return store.for_tenant(tenant).search(SearchRequest(0, 2**62, everything, 1, count_total=True)).total


def rss_bytes(pids: list[int], field: str = "VmRSS") -> int:
    """Resident memory of the processes; `RssAnon` is heap only, `VmRSS` adds mapped index files."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def daemon_pids(daemon: DaemonProcess) -> list[int]:
    from tests.harness import _children

    assert daemon.process is not None
    return [daemon.process.pid, *_children(daemon.process.pid)]


def end_to_end(lines: list[bytes], connections: int, data: Path, extra: list[str]) -> dict[str, float]:
    daemon = DaemonProcess(data, *extra).start()
    try:
        pids = daemon_pids(daemon)
        shares = [b"".join(lines[i::connections]) for i in range(connections)]
        total_bytes = sum(map(len, shares))
        peak_rss = [rss_bytes(pids), rss_bytes(pids, "RssAnon")]
        done, sent_all = threading.Event(), threading.Event()

        probes: list[float] = []

        def sample() -> None:
            while not done.is_set():
                peak_rss[0] = max(peak_rss[0], rss_bytes(pids))
                peak_rss[1] = max(peak_rss[1], rss_bytes(pids, "RssAnon"))
                time.sleep(0.2)

        def probe() -> None:
            """What another client meets meanwhile: /readyz's latency while the senders send."""
            while not sent_all.is_set():
                asked = time.perf_counter()
                try:
                    urllib.request.urlopen(daemon.url("/readyz"), timeout=30).read()
                except urllib.error.HTTPError:
                    pass  # 503 while the backlog is full is an answer too
                probes.append(time.perf_counter() - asked)
                time.sleep(0.05)

        def send(payload: bytes) -> None:
            with socket.create_connection(("127.0.0.1", daemon.tcp_port)) as sock:
                view = memoryview(payload)
                for start in range(0, len(view), 1 << 20):
                    sock.sendall(view[start : start + (1 << 20)])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        store = TantivyStore(data)
        tenant = Tenant("default", "production")
        started = time.perf_counter()
        senders = [threading.Thread(target=send, args=(share,)) for share in shares]
        prober = threading.Thread(target=probe, daemon=True)
        for thread in [*senders, prober]:
            thread.start()
        first_searchable = None
        while any(sender.is_alive() for sender in senders):
            if first_searchable is None and stored_events(store, tenant):
                first_searchable = time.perf_counter() - started
            time.sleep(0.05)
        sent = time.perf_counter() - started
        sent_all.set()
        while True:
            count = stored_events(store, tenant)
            if first_searchable is None and count:
                first_searchable = time.perf_counter() - started
            if count >= len(lines):
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        done.set()
        return {
            "events_per_second": len(lines) / elapsed,
            "megabytes_per_second": total_bytes / elapsed / 1e6,
            "send_seconds": sent,
            "first_searchable_seconds": first_searchable or 0.0,
            "readyz_during_send_p50_ms": statistics.median(probes) * 1000 if probes else 0.0,
            "readyz_during_send_max_ms": max(probes) * 1000 if probes else 0.0,
            "searchable_seconds": elapsed,
            "peak_rss_mib": peak_rss[0] / 2**20,
            "peak_rss_anon_mib": peak_rss[1] / 2**20,
            "rss_after_mib": rss_bytes(pids) / 2**20,
        }
    finally:
        daemon.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians are reported")
    parser.add_argument(
        "--ceiling-events", type=int, default=1_000_000, help="events used for the in-process ceiling (a prefix)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-clickhouse", dest="clickhouse", action="store_false", help="skip the chdb peer")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--daemon-arg", action="append", default=[], help="extra `serve` argument, repeatable")
    parser.add_argument("--masking", action="store_true", help="also run each repeat with [masking] enabled")
    parser.add_argument("--pii-share", type=float, default=0.0, help="share of messages carrying PII (e.g. 0.1)")
    args = parser.parse_args()
    lines = generate(args.events, args.seed, args.pii_share)
    prefix = normalised(lines[: args.ceiling_events], args.connections)
    documents = ceiling_documents(prefix)
    ceiling = tantivy_ceiling(documents, args.repeat, also=ceiling_documents(normalised(lines[: args.ceiling_events])))
    peer = clickhouse_rate(prefix, args.repeat) if args.clickhouse else None
    paired = PairedCeiling(documents, ceiling)
    runs, masked_runs = [], []
    for _ in range(args.repeat):
        paired.measure()
        with tempfile.TemporaryDirectory() as directory:
            runs.append(end_to_end(lines, args.connections, Path(directory) / "data", args.daemon_arg))
        if args.masking:
            with tempfile.TemporaryDirectory() as directory:
                extra = [*args.daemon_arg, *MASKING_ON]
                masked_runs.append(end_to_end(lines, args.connections, Path(directory) / "data", extra))
    ceiling_rate = ceiling["events_per_second"]
    rate = statistics.median(run["events_per_second"] for run in runs)
    result = {
        "events": args.events,
        "connections": args.connections,
        "average_event_bytes": sum(map(len, lines)) / len(lines),
        "ceiling_add_json_events_per_second": ceiling_rate,
        "ceiling_without_sender_address_events_per_second": ceiling["also_events_per_second"],
        "end_to_end_events_per_second": rate,
        "ratio_to_ceiling": rate / ceiling_rate,
        "paired_ceiling": paired.summary([run["events_per_second"] for run in runs]),
        "megabytes_per_second": statistics.median(run["megabytes_per_second"] for run in runs),
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
        "peak_rss_anon_mib": max(run["peak_rss_anon_mib"] for run in runs),
        "first_searchable_seconds": statistics.median(run["first_searchable_seconds"] for run in runs),
        "readyz_during_send_p50_ms": statistics.median(run["readyz_during_send_p50_ms"] for run in runs),
        "readyz_during_send_max_ms": max(run["readyz_during_send_max_ms"] for run in runs),
        "runs": runs,
        "ceiling": ceiling,
        "clickhouse_insert": peer,
    }
    if masked_runs:
        masked_rate = statistics.median(run["events_per_second"] for run in masked_runs)
        result.update(
            pii_share=args.pii_share,
            masking_events_per_second=masked_rate,
            masking_overhead=1 - masked_rate / rate,
            masked_runs=masked_runs,
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"events={args.events} conns={args.connections} avg_bytes={result['average_event_bytes']:.0f}\n"
            f"ceiling add_json: {ceiling_rate:,.0f} ev/s ({ceiling['best']}, median of {args.repeat}); "
            f"without the senders' addresses {ceiling['also_events_per_second']:,.0f} ev/s\n"
            f"end-to-end until searchable: {rate:,.0f} ev/s, {result['megabytes_per_second']:.1f} MB/s "
            f"= {result['ratio_to_ceiling']:.2f} of ceiling; {result['paired_ceiling']['ratio']:.2f} of the best "
            f"setting measured again before each run "
            f"(median {result['paired_ceiling']['events_per_second']:,.0f} ev/s)\n"
            f"first events searchable after {result['first_searchable_seconds']:.2f} s; /readyz while sending: "
            f"p50 {result['readyz_during_send_p50_ms']:.1f} ms, max {result['readyz_during_send_max_ms']:.0f} ms\n"
            f"peak daemon RSS: {result['peak_rss_mib']:.0f} MiB "
            f"(anonymous {result['peak_rss_anon_mib']:.0f} MiB; the rest is mapped index files)"
        )
        if peer is not None:
            print(f"clickhouse (chdb) INSERT of the same events: {peer['events_per_second']:,.0f} ev/s")
        if masked_runs:
            print(
                f"with masking on: {result['masking_events_per_second']:,.0f} ev/s, "
                f"overhead {result['masking_overhead']:.1%} (PII in {args.pii_share:.0%} of messages)"
            )


if __name__ == "__main__":
    main()
