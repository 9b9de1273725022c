#!/usr/bin/env python3
"""Searches of one busy day as the daemon writes it: windows at its start, at its end, and whole.

A day of bench/query.py's events (one UTC day, in time order) goes through a real WAL and the
writer process's code (`WalApplier` + `TantivyWriter`, the default writer settings), committing
every `--commit-every` events as a busy daemon commits once a second, so the partition has the
segments and merges live ingest gives it (bench/query.py builds its days in bulk instead).
Then the newest 100 rows of four queries (no filter, a label every event has, a rare word, a
common label) over the
day's first 15 minutes, its last 15 minutes and the whole day, p50 of `--repeat` runs.

Baseline in the same run: tantivy itself ranking the same query's hits by timestamp over the
window (`Searcher.search` ordered by the timestamp fast field, 100 hits, no rows read): what a
search that ranks every hit pays before reading a row.

    python bench/windows.py [--events N] [--commit-every N] [--data-dir DIR] [--repeat K] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec
import tantivy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from query import TENANT, generate_segment  # noqa: E402

from logtraced.config import Config, load_config  # noqa: E402
from logtraced.model import NS_PER_DAY  # noqa: E402
from logtraced.query.kql import parse_kql  # noqa: E402
from logtraced.query.pipeline import Filter, Pipeline  # noqa: E402
from logtraced.storage.backend import SearchRequest  # noqa: E402
from logtraced.storage.tantivy import schema  # noqa: E402
from logtraced.storage.tantivy.partitions import Partition, PartitionLayout, open_index  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402
from logtraced.storage.tantivy.writer import TantivyWriter  # noqa: E402
from logtraced.storage.wal import WalWriter  # noqa: E402
from logtraced.storage.writer import WalApplier  # noqa: E402

DAY: Final = 20_000  # 2024-10-04: any past day
MINUTE: Final = 60 * 10**9
RECORD_EVENTS: Final = 1_000  # events per WAL record, as a busy listener batches them
QUERIES: Final = {
    "no filter": "",
    "label every event has": f"env:{TENANT.env}",
    "rare word": "fatal",
    "common label": "level:error",
}
WINDOWS: Final = {
    "first 15 min": (DAY * NS_PER_DAY, DAY * NS_PER_DAY + 15 * MINUTE),
    "last 15 min": ((DAY + 1) * NS_PER_DAY - 15 * MINUTE, (DAY + 1) * NS_PER_DAY),
    "whole day": (DAY * NS_PER_DAY, (DAY + 1) * NS_PER_DAY),
}
PAGE: Final = 100


def config(data_dir: Path) -> Config:
    return load_config(None, overrides={"data_dir": str(data_dir), "index": {"retention_days": 100_000}})


def build(cfg: Config, events: int, commit_every: int) -> float:
    """Write the day through the WAL and the writer, committing every `commit_every` events; seconds taken."""
    day = generate_segment(7, 0, DAY * NS_PER_DAY, (DAY + 1) * NS_PER_DAY - 1, events, TENANT.org)
    day.sort(key=lambda event: event.timestamp)
    wal = WalWriter(cfg.data_path / "wal", cfg.wal.segment_bytes)
    applier = WalApplier(cfg, TantivyWriter(cfg))
    started = time.perf_counter()
    for first in range(0, events, RECORD_EVENTS):
        wal.append(TENANT, day[first : first + RECORD_EVENTS])
        if (first + RECORD_EVENTS) % commit_every < RECORD_EVENTS:
            wal.sync()
            applier.apply_until(wal.written_seq, float("inf"))
            applier.commit()
    wal.sync()
    applier.apply_until(wal.written_seq, float("inf"))
    applier.commit()
    applier.close()
    wal.close()
    return time.perf_counter() - started


def p50_ms(run: Callable[[], object], repeat: int) -> float:
    run()  # warm: the first call opens the partition
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def tantivy_ranking(cfg: Config, kql: str, start_ns: int, end_ns: int) -> Callable[[], object]:
    """The baseline: tantivy ranks the window's hits by timestamp, newest 100 (no rows read)."""
    index = _partition(cfg)
    query: Any = tantivy.Query.all_query() if not kql else index.parse_query(_tantivy_syntax(kql))
    window = tantivy.Query.range_query(index.schema, schema.TIMESTAMP, tantivy.FieldType.Integer, start_ns, end_ns - 1)
    both = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, window)])
    searcher = index.searcher()
    order = tantivy.Order.Desc
    return lambda: searcher.search(both, PAGE, count=False, order_by_field=schema.TIMESTAMP, order=order)


def _partition(cfg: Config) -> tantivy.Index:
    index = open_index(PartitionLayout(cfg.data_path).path(Partition(TENANT.org, DAY)), stemming=False, create=False)
    assert index is not None, "the day was not written"
    return index


def _tantivy_syntax(kql: str) -> str:
    """The benchmark's KQL in tantivy's own query syntax (a word, or `field:value`)."""
    return kql if ":" in kql else f"{schema.MESSAGE}:{kql}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--events", type=int, default=1_400_000, help="events in the day (bench/query.py's 10M set: ~1.43M)"
    )
    parser.add_argument(
        "--commit-every", type=int, default=50_000, help="events between commits (~1 s of a busy daemon)"
    )
    parser.add_argument("--data-dir", type=Path, help="keep the day here and reuse it on the next run")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scratch = None if args.data_dir else tempfile.TemporaryDirectory()
    data_dir = args.data_dir or Path(scratch.name)  # type: ignore[union-attr]
    cfg = config(data_dir)
    built = None if (data_dir / "index").exists() else build(cfg, args.events, args.commit_every)
    view = TantivyStore(cfg.data_path).for_tenant(TENANT)
    searcher = _partition(cfg).searcher()
    result: dict[str, Any] = {
        "events": searcher.num_docs,
        "segments": searcher.num_segments,
        "build_seconds": built,
        "commit_every": args.commit_every,
        "p50_ms": {},
    }
    for name, kql in QUERIES.items():
        pipeline = Pipeline((Filter(parse_kql(kql)),))
        for label, (start_ns, end_ns) in WINDOWS.items():
            request = SearchRequest(start_ns, end_ns, pipeline, PAGE)
            result["p50_ms"][f"{name}, {label}"] = {
                "logtraced": round(p50_ms(lambda request=request: view.search(request), args.repeat), 3),
                "tantivy ranking": round(p50_ms(tantivy_ranking(cfg, kql, start_ns, end_ns), args.repeat), 3),
            }
    if args.json:
        print(msgspec.json.encode(result).decode())
        return
    print(f"{result['events']} events in {result['segments']} segments (built in {built or 0:.1f} s)")
    for key, figures in result["p50_ms"].items():
        print(
            f"{key:32s} logtraced {figures['logtraced']:8.2f} ms   tantivy ranking {figures['tantivy ranking']:8.2f} ms"
        )


if __name__ == "__main__":
    main()
