#!/usr/bin/env python3
"""Reading events with and without a field projection, alternating in one run on a bench/query.py data set.

Pattern mining and insights read only message, level and timestamp (`analysis.reports.MINED_FIELDS`);
this reads the newest N events of the data set's window in pages through `TenantView.search`,
once with every field and once with that projection, for an exact query (every event) and a
verified one (`$contains`), and reports events/s (medians of `--repeat`).

    python bench/projection.py --data-dir /tmp/bq1m --events 1000000 --read 20000 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logtraced.analysis.reports import MINED_FIELDS  # noqa: E402
from logtraced.model import NS_PER_DAY  # noqa: E402
from logtraced.query.ast import MatchAll  # noqa: E402
from logtraced.query.pipeline import Filter, Pipeline, parse_pipeline  # noqa: E402
from logtraced.storage.backend import SearchRequest, TenantView  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402

PAGE = 1000


def read(
    view: TenantView, window: tuple[int, int], pipeline: Pipeline, count: int, fields: frozenset[str] | None
) -> float:
    """Seconds to read the newest `count` matching events, page by page."""
    started = time.perf_counter()
    after, got = None, 0
    while got < count:
        page = view.search(SearchRequest(*window, pipeline, min(PAGE, count - got), after=after, fields=fields))
        got += len(page.rows)
        if not page.more:
            break
        after = page.cursor
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--read", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from query import META_FILE, TENANT

    meta = json.loads((args.data_dir / META_FILE).read_text())
    window = (meta["anchor_ns"] - args.days * NS_PER_DAY, meta["anchor_ns"] + 1)
    view = TantivyStore(args.data_dir).for_tenant(TENANT)
    queries = {
        "every event": Pipeline((Filter(MatchAll()),)),
        "$contains connect": parse_pipeline(
            {"pipeline": [{"type": "filter", "query": {"$contains": ["message", "connect"]}}]}
        ),
    }
    result: dict[str, dict[str, float]] = {}
    for name, pipeline in queries.items():
        samples: dict[str, list[float]] = {"all fields": [], "message, level, timestamp": []}
        read(view, window, pipeline, args.read, None)  # warm-up
        for _ in range(args.repeat):
            samples["all fields"].append(read(view, window, pipeline, args.read, None))
            samples["message, level, timestamp"].append(read(view, window, pipeline, args.read, MINED_FIELDS))
        result[name] = {label: args.read / statistics.median(values) for label, values in samples.items()}
    if args.json:
        print(json.dumps({"read": args.read, "repeat": args.repeat, "events_per_second": result}, indent=2))
        return
    for name, rates in result.items():
        print(f"{name}: " + ", ".join(f"{label} {rate:,.0f} ev/s" for label, rate in rates.items()))


if __name__ == "__main__":
    main()
