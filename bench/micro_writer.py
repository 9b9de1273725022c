#!/usr/bin/env python3
"""Micro-benchmark of the writer process's own Python per event: WAL record in, `add_json` texts out.

Seeded ~300-byte Logstash events are normalised, stamped and written as WAL records of
`--per-record` events; each record then goes through what the writer does before tantivy:
`WalRecord.columns`, ids, the retention check, the day check and `encode_columns`.  The
texts go to a no-op instead of `add_json`, so the figure is the Python around tantivy.
Baselines in the same run: decoding the records into Events and nothing else (the floor
for any writer that reads canonical events), and decoding plus splitting the same documents
as text (what the writer did when the WAL held finished documents).  CPU time per event
(`time.process_time`, best of `--repeat`), so other work on a shared machine counts less.

    python bench/micro_writer.py [--events N] [--per-record R] [--repeat K] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datagen import shipper_events  # noqa: E402

from logtraced.events import events_from_frame  # noqa: E402
from logtraced.model import Event, Tenant, record_ids, retention_start_ns  # noqa: E402
from logtraced.storage import wal  # noqa: E402
from logtraced.storage.tantivy.documents import encode_columns, encode_documents  # noqa: E402
from logtraced.storage.tantivy.partitions import day_of  # noqa: E402

TENANT: Final = Tenant("default", "production")
RETENTION_DAYS: Final = 30


def records(count: int, per_record: int, seed: int) -> list[wal.WalRecord]:
    """The events as the daemon writes them: normalised, stamped with the tenant, one record per batch."""
    received = time.time_ns()
    events: list[Event] = []
    for shipped in shipper_events(count, seed, logstash=True):
        events.extend(events_from_frame(json.dumps(shipped).encode(), received))
    for event in events:
        event.org, event.env = TENANT.org, TENANT.env
    data = b"".join(
        wal.encode_record(seq, TENANT, events[start : start + per_record])
        for seq, start in enumerate(range(0, len(events), per_record), start=1)
    )
    return [record for _, record in wal.read_records(data)]


def writer_path(record: wal.WalRecord, sink: Callable[[str], object], stemming: bool) -> None:
    """What `WalApplier._apply` and `TantivyWriter.apply` run for a record within retention and one day."""
    columns = record.columns()
    events = columns.with_ids(record_ids(record.seq, len(columns)))
    if min(events.timestamp) < retention_start_ns(time.time_ns(), RETENTION_DAYS):
        raise AssertionError("generated events are within retention")
    if day_of(min(events.timestamp)) != day_of(max(events.timestamp)):
        raise AssertionError("a record spans two days: run the benchmark away from midnight UTC")
    for document in encode_columns(events, stemming=stemming):
        sink(document)


def cpu_ns_per_event(run: Callable[[], None], events: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best / events * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-record", type=int, default=200, help="events per WAL record (a TCP read's worth)")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    batch = records(args.events, args.per_record, args.seed)
    texts = ["\n".join(encode_documents(record.events(), stemming=False)).encode() for record in batch]
    sink: list[str] = []

    def writer(stemming: bool) -> Callable[[], None]:
        def run() -> None:
            sink.clear()
            for record in batch:
                writer_path(record, sink.append, stemming)

        return run

    def decode_only() -> None:
        for record in batch:
            record.events()

    def documents_in_the_wal() -> None:
        sink.clear()
        for text in texts:
            for document in text.decode().split("\n"):
                sink.append(document)

    result = {
        "events": args.events,
        "per_record": args.per_record,
        "average_event_bytes": sum(len(record.payload) for record in batch) / args.events,
        "writer_cpu_ns_per_event": cpu_ns_per_event(writer(False), args.events, args.repeat),
        "writer_stemming_cpu_ns_per_event": cpu_ns_per_event(writer(True), args.events, args.repeat),
        "baseline_decode_events_cpu_ns_per_event": cpu_ns_per_event(decode_only, args.events, args.repeat),
        "baseline_documents_in_wal_cpu_ns_per_event": cpu_ns_per_event(documents_in_the_wal, args.events, args.repeat),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value:,.0f}")


if __name__ == "__main__":
    main()
