#!/usr/bin/env python3
"""Where a stream protocol's CPU per event goes, in one process: the receiver's decode, then the indexer's work.

bench/ingest_protocols.py times the whole daemon; this splits its figure.  The same seeded events
are written as each shipper writes them (that script's own encoders), then:

* `receive`: the protocol's codec fed 256 KiB reads, the sender's address marked, one WAL record
  encoded per read: what the event loop does per event, but the socket and the fsync.
* `index`: those WAL records through what the writer process does: columns, ids, `encode_columns`,
  `add_json` into a partition made by `open_index` (one writer thread, 128 MiB, as the daemon's
  defaults), a commit every `--commit-every` events, merges waited for.

CPU time per event (`time.process_time`, which counts tantivy's threads too), best of `--repeat`,
protocols interleaved.  On a shared machine even that scatters; for a figure no other load moves,
count instructions of one stage and protocol under callgrind, less those of `--stage none` (the
set-up alone: the events, their wire bytes and the WAL records the index stage reads):

    python bench/micro_protocols.py [--events N] [--repeat K] [--protocol P ...] [--json]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/micro_protocols.py --events 80000 --repeat 1 --protocol syslog --stage index  # or none
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datagen import shipper_events  # noqa: E402
from ingest_protocols import PROTOCOLS  # noqa: E402

from logtraced.config import default_config  # noqa: E402
from logtraced.ingest.codec import StreamCodec  # noqa: E402
from logtraced.ingest.gelf_receiver import GelfCodec  # noqa: E402
from logtraced.ingest.jsonlines import JsonLinesCodec  # noqa: E402
from logtraced.ingest.syslog_receiver import SyslogCodec  # noqa: E402
from logtraced.model import Tenant, record_ids  # noqa: E402
from logtraced.storage import wal  # noqa: E402
from logtraced.storage.tantivy.documents import encode_columns  # noqa: E402
from logtraced.storage.tantivy.partitions import open_index  # noqa: E402

TENANT: Final = Tenant("default", "production")
SOURCE: Final = {"address": "127.0.0.1", "port": 40000}
READ_BYTES: Final = 256 * 1024
CODECS: Final[dict[str, Callable[[], StreamCodec]]] = {
    "json_tcp": lambda: JsonLinesCodec(default_config().tcp.max_line_bytes, default_config().tcp.fields),
    "syslog": lambda: SyslogCodec(default_config().syslog.max_message_bytes, "UTC"),
    "gelf": lambda: GelfCodec(default_config().gelf.max_message_bytes),
}


def receive(name: str, wire: bytes) -> bytes:
    """The WAL records the event loop would write for these bytes, one per read."""
    codec = CODECS[name]()
    records = []
    for seq, start in enumerate(range(0, len(wire), READ_BYTES), start=1):
        decoded = codec.feed(wire[start : start + READ_BYTES])
        decoded.mark_source(SOURCE)
        for event in decoded.events:
            event.org, event.env = TENANT.org, TENANT.env
        records.append(wal.encode_record(seq, TENANT, decoded.events))
    return b"".join(records)


def index(records: list[wal.WalRecord], commit_every: int) -> None:
    """The writer process's path for these records, into a fresh partition."""
    config = default_config().index
    with tempfile.TemporaryDirectory() as directory:
        partition = open_index(Path(directory) / "p", stemming=config.stemming, capitals=config.capitals, create=True)
        assert partition is not None
        writer = partition.writer(config.writer_heap_bytes, config.writer_threads)
        pending = 0
        for record in records:
            columns = record.columns().with_ids(record_ids(record.seq, record.count))
            for document in encode_columns(columns, stemming=config.stemming, capitals=config.capitals):
                writer.add_json(document)
            pending += record.count
            if pending >= commit_every:
                writer.commit()
                pending = 0
        writer.commit()
        writer.wait_merging_threads()


def cpu_us_per_event(run: Callable[..., object], *arguments: object, events: int) -> float:
    started = time.process_time()
    run(*arguments)
    return (time.process_time() - started) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--commit-every", type=int, default=30_000, help="events per commit (~1 s of the daemon's)")
    parser.add_argument("--protocol", action="append", choices=list(CODECS))
    parser.add_argument("--stage", choices=["receive", "index", "both", "none"], default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    events = shipper_events(args.events, args.seed, logstash=True)
    chosen = args.protocol or list(CODECS)
    wires = {name: b"".join(PROTOCOLS[name][1](events).writes) for name in chosen}
    logs = {name: [record for _, record in wal.read_records(receive(name, wires[name]))] for name in chosen}
    figures: dict[str, dict[str, list[float]]] = {name: {"receive": [], "index": []} for name in chosen}
    for _ in range(args.repeat):
        for name in chosen:
            if args.stage in ("receive", "both"):
                figures[name]["receive"].append(cpu_us_per_event(receive, name, wires[name], events=args.events))
            if args.stage in ("index", "both"):
                figures[name]["index"].append(
                    cpu_us_per_event(index, logs[name], args.commit_every, events=args.events)
                )
    result = {
        name: {f"{stage}_cpu_us_per_event": round(min(runs), 2) for stage, runs in stages.items() if runs}
        for name, stages in figures.items()
    }
    if args.json:
        print(json.dumps({"events": args.events, "protocols": result}, indent=2))
        return
    for name, stages in result.items():
        print(f"{name:10} " + "  ".join(f"{stage}: {value:.2f} us" for stage, value in stages.items()))


if __name__ == "__main__":
    main()
