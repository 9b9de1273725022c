"""What the storage engines alone can index on this machine: the ceilings the ingest benchmarks compare against.

The tantivy ceiling is the best the stack can do here, not the daemon's own settings: plain
in-process `IndexWriter.add_json` + commit of already-normalised, already-encoded documents into a
partition made by `partitions.open_index` (the daemon's schema and settings), tried over a grid of
writer threads and heap sizes; the best median is the ceiling.  The ClickHouse peer is chdb (the
ClickHouse server's engine, in-process) inserting the same events from a prepared NDJSON file into
the table layout of bench/query.py; only the INSERT is timed, as only add_json + commit is.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import msgspec

from logtraced.events import events_from_frame
from logtraced.model import Event
from logtraced.storage.tantivy.documents import encode_documents
from logtraced.storage.tantivy.partitions import open_index

THREADS: Final = (1, 2, 4)
HEAPS_MIB: Final = (128, 256, 1024)


def normalised(lines: list[bytes]) -> list[Event]:
    """json_lines frames as the daemon's TCP path normalises them, with the default tenant."""
    received = time.time_ns()
    events: list[Event] = []
    for line in lines:
        for event in events_from_frame(line.rstrip(b"\n"), received):
            event.org, event.env = "default", "production"
            events.append(event)
    return events


def tantivy_rate(documents: list[str], heap_bytes: int, threads: int) -> float:
    """Events/s of add_json + commit into a fresh partition."""
    with tempfile.TemporaryDirectory() as directory:
        index = open_index(Path(directory) / "day", stemming=False, create=True)
        assert index is not None
        writer = index.writer(heap_bytes, threads)
        started = time.perf_counter()
        add = writer.add_json
        for document in documents:
            add(document)
        writer.commit()
        elapsed = time.perf_counter() - started
        writer.wait_merging_threads()
    return len(documents) / elapsed


def tantivy_ceiling(events: list[Event], repeat: int) -> dict[str, Any]:
    """Every (threads, heap) of the grid `repeat` times; the ceiling is the best median."""
    documents = encode_documents(events, stemming=False)
    grid: dict[str, list[float]] = {}
    for _ in range(repeat):
        for threads in THREADS:
            for heap in HEAPS_MIB:
                rate = tantivy_rate(documents, heap << 20, threads)
                grid.setdefault(f"threads={threads} heap={heap}MiB", []).append(rate)
    medians = {setting: statistics.median(rates) for setting, rates in grid.items()}
    best = max(medians, key=lambda setting: medians[setting])
    return {"events_per_second": medians[best], "best": best, "medians": medians}


def clickhouse_rate(events: list[Event], repeat: int) -> dict[str, Any]:
    """Events/s of chdb INSERTs of the same events into bench/query.py's ClickHouse table (median of runs)."""
    from query import CLICKHOUSE_INPUT, CLICKHOUSE_TABLE, clickhouse_connect  # bench/query.py

    encode = msgspec.json.encode
    rows = b"\n".join(
        encode(
            {
                "ts": e.timestamp, "id": position, "message": e.message, "level": e.level, "service": e.service,
                "host": e.host, "env": e.env, "org": e.org, "idx": e.index, "tags": e.tags, "attributes": e.attributes,
            }
        )
        for position, e in enumerate(events)
    )  # fmt: skip
    rates = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as directory:
            scratch = Path(directory) / "events.ndjson"
            scratch.write_bytes(rows)
            session = clickhouse_connect(Path(directory) / "clickhouse")
            session.query(CLICKHOUSE_TABLE)
            started = time.perf_counter()
            session.query(
                "INSERT INTO logs SELECT fromUnixTimestamp64Nano(ts), id, message, level, service, host, env, org,"
                f" idx, tags, attributes FROM file('{scratch}', JSONEachRow, '{CLICKHOUSE_INPUT}')"
            )
            rates.append(len(events) / (time.perf_counter() - started))
            session.close()
    return {"events_per_second": statistics.median(rates), "runs": rates}
