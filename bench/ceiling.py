"""What the storage engines alone can index on this machine: the ceilings the ingest benchmarks compare against.

The tantivy ceiling is the best the stack can do here, not the daemon's own settings: plain
in-process `IndexWriter.add_json` + commit of already-normalised, already-encoded documents into a
partition made by `partitions.open_index` (the daemon's schema and settings), tried over a grid of
writer threads and heap sizes; the best median is the ceiling.  Picking the best of nine medians
favours a setting that happened to meet a quiet moment, and this machine's speed drifts between
minutes, so the benchmarks also measure the chosen setting again right before each of their own
runs (`PairedCeiling`) and report the median of those pairs' ratios as well.  The ClickHouse peer
is chdb (the ClickHouse server's engine, in-process) inserting the same events from a prepared
NDJSON file into the table layout of bench/query.py; only the INSERT is timed, as only add_json +
commit is.
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


def normalised(lines: list[bytes], connections: int = 0) -> list[Event]:
    """json_lines frames as the daemon's TCP path normalises them, with the default tenant.

    With `connections`, line i came over connection i % connections, and its event carries that
    sender's address as the stream glue marks it (`attributes.source`, one dict per connection):
    the documents the daemon indexes for lines sent that way (the sender's address is ~10 % of
    their indexing).
    """
    received = time.time_ns()
    senders = [{"address": "127.0.0.1", "port": 50_000 + number} for number in range(connections)]
    events: list[Event] = []
    for position, line in enumerate(lines):
        for event in events_from_frame(line.rstrip(b"\n"), received):
            event.org, event.env = "default", "production"
            if senders:
                event.attributes.setdefault("source", senders[position % connections])
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


def ceiling_documents(events: list[Event]) -> list[str]:
    """The documents the ceiling indexes: the daemon's, without stemming (its default)."""
    return encode_documents(events, stemming=False)


def tantivy_ceiling(documents: list[str], repeat: int, also: list[str] | None = None) -> dict[str, Any]:
    """Every (threads, heap) of the grid `repeat` times; the ceiling is the best median.

    `also`: other events (the same without something the daemon adds) indexed with the best
    setting as many times, reported as `also_events_per_second` to show what that costs.
    """
    grid: dict[tuple[int, int], list[float]] = {}
    for _ in range(repeat):
        for threads in THREADS:
            for heap in HEAPS_MIB:
                grid.setdefault((threads, heap), []).append(tantivy_rate(documents, heap << 20, threads))
    medians = {setting: statistics.median(rates) for setting, rates in grid.items()}
    threads, heap = max(medians, key=lambda setting: medians[setting])
    result: dict[str, Any] = {
        "events_per_second": medians[threads, heap],
        "best": _setting(threads, heap),
        "setting": [threads, heap],
        "medians": {_setting(*setting): rate for setting, rate in medians.items()},
    }
    if also is not None:
        rates = [tantivy_rate(also, heap << 20, threads) for _ in range(repeat)]
        result["also_events_per_second"] = statistics.median(rates)
    return result


class PairedCeiling:
    """The grid's best setting, measured again right before each daemon run it is compared with."""

    def __init__(self, documents: list[str], ceiling: dict[str, Any]) -> None:
        self.documents = documents
        self.threads, self.heap_mib = ceiling["setting"]
        self.rates: list[float] = []

    def measure(self) -> float:
        rate = tantivy_rate(self.documents, self.heap_mib << 20, self.threads)
        self.rates.append(rate)
        return rate

    def summary(self, daemon_rates: list[float]) -> dict[str, Any]:
        """The pairs' ceilings and ratios; `ratio` is the median of each daemon run over the ceiling just before it."""
        ratios = [rate / ceiling for rate, ceiling in zip(daemon_rates, self.rates, strict=True)]
        return {
            "events_per_second": statistics.median(self.rates),
            "runs": self.rates,
            "ratios": ratios,
            "ratio": statistics.median(ratios),
        }


def _setting(threads: int, heap_mib: int) -> str:
    return f"threads={threads} heap={heap_mib}MiB"


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
