#!/usr/bin/env python3
"""Latency of the Loki queries Grafana sends most, on bench/query.py's generated data set (10M events, 7 days).

The logs volume histogram (`sum by (level, detected_level) (count_over_time({service_name="X"} |
drop __error__[1m]))`, step 60 s, over 24 hours) and the same with a line filter, plus a
`count_over_time` by stream over 24 hours, each run through the Loki API's executor
(`logql_exec.run_metric`) on `TantivyStore(data_dir).for_tenant(tenant)` as the daemon runs it.
The baseline in the same run is the reference evaluator (`logql_eval`) over the same events read
through paged searches, which is what answering without the backend's aggregation costs; its
answer is compared with the aggregation's, point for point.

    python bench/loki_volume.py --data-dir /tmp/bq10m --json   # reuses (or builds) bench/query.py's data set
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import TENANT, build, load_meta, machine, measure  # noqa: E402

from logtraced.api.logql_exec import read_events, run_metric  # noqa: E402
from logtraced.query.logql import parse_logql  # noqa: E402
from logtraced.query.logql_ast import MetricExpr  # noqa: E402
from logtraced.query.logql_eval import evaluate_metric, samples_of, step_points  # noqa: E402
from logtraced.storage.backend import NO_DEADLINE, Stats  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402

NS = 1_000_000_000
HOUR_NS = 3600 * NS
QUERIES = {
    "logs volume, 24 h": 'sum by (level, detected_level) (count_over_time({service_name="checkout"} | drop __error__[1m]))',  # noqa: E501
    "logs volume with a line filter, 24 h": 'sum by (level, detected_level) (count_over_time({service_name="checkout"} |= "timeout" | drop __error__[1m]))',  # noqa: E501
    "count_over_time by stream, 24 h": 'count_over_time({service_name=~"checkout|billing"}[1m])',
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument(
        "--baseline-repeat", type=int, default=3, help="timed runs of the document-reading baseline (0: skip it)"
    )
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--writer-heap-mib", type=int, default=1024)
    parser.add_argument("--writer-threads", type=int, default=2)
    args = parser.parse_args()
    args.skip_sqlite, args.skip_clickhouse, args.trigram = True, True, False
    temporary = tempfile.TemporaryDirectory(prefix="bench-loki-") if args.data_dir is None else None
    data_dir = Path(temporary.name) if temporary is not None else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    meta = build(data_dir, args, load_meta(data_dir, args))
    view = TantivyStore(data_dir).for_tenant(TENANT)
    end = meta["anchor_ns"] // NS * NS
    steps = step_points(end - 24 * HOUR_NS, end, 60 * NS)
    results: dict[str, Any] = {}
    for title, text in QUERIES.items():
        expr = parse_logql(text)
        assert not hasattr(expr, "stages")

        def aggregated(expr: MetricExpr = expr) -> list[Any]:
            answer = run_metric(view, expr, steps, NO_DEADLINE)
            assert answer.counted
            return [(s.labels, s.points) for s in answer.series]

        def reading(expr: MetricExpr = expr) -> list[Any]:
            def source(aggregation: Any) -> Any:
                low, high = steps[0] - aggregation.range_ns + 1, steps[-1] + 1
                events = read_events(view, aggregation.pipeline, low, high, NO_DEADLINE, Stats())
                return samples_of(aggregation, events)

            return [(s.labels, s.points) for s in evaluate_metric(expr, steps, source)]

        fast = measure(aggregated, args.repeat, args.budget)
        print(f"{title}: aggregation p50 {fast.p50_ms:.1f} ms", file=sys.stderr)
        slow = measure(reading, args.baseline_repeat, args.budget) if args.baseline_repeat else None
        points = sum(len(points) for _, points in fast.answer)
        results[title] = {
            "query": text,
            "aggregation_p50_ms": round(fast.p50_ms, 1),
            "aggregation_p99_ms": round(fast.p99_ms, 1),
            "runs": fast.runs,
            "reading_documents_p50_ms": round(slow.p50_ms, 1) if slow else None,
            "reading_runs": slow.runs if slow else 0,
            "series": len(fast.answer),
            "points": points,
            "events_counted": int(sum(value for _, pts in fast.answer for _, value in pts)),
            "same_answer": fast.answer == slow.answer if slow else None,
        }
    report = {"events": args.events, "days": args.days, "machine": machine(), "measured_at": time.strftime("%F"),
              "results": results}  # fmt: skip
    if temporary is not None:
        temporary.cleanup()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for title, row in results.items():
            print(
                f"{title}: p50 {row['aggregation_p50_ms']} ms (reading documents: {row['reading_documents_p50_ms']} ms)"
            )


if __name__ == "__main__":
    main()
