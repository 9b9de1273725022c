#!/usr/bin/env python3
"""Patterns and insights read from a real store: p50 of `patterns_report` and `insights_report`, as the API runs them.

The data set is the last 25 hours of the 10M-event set's density (10 000 000 events over 7 days is
59 524 events per hour): seeded messages from bench/patterns.py's ~40 families, written by the
daemon's own Tantivy writer into day-partitions.  Only the newest 25 hours matter to a 1 h window
with a 24 h baseline: the window is read up to `patterns.max_events` (100 000) events, the baseline
as a sample of `patterns.baseline_events` (6 000) plus a word lookup per pattern the sample calls
new, so the figures stand for the 10M set as long as the density is the same; the older six days
would only add partitions outside the window.  In the last hour, two families are new and one is
three times as frequent, so the answer can be checked, and it is.

Also timed: patterns of the newest 100 000 events of the last 2 hours, read through the store
(the pattern API's bounded work), against a plain search reading the same events (the floor).

    python bench/insights.py [--events-per-hour 59524] [--repeat 5] [--baseline-events 6000] [--data-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from patterns import families  # noqa: E402

from logtraced.analysis.reports import InsightsReport, insights_report, patterns_report  # noqa: E402
from logtraced.analysis.sampling import newest_events  # noqa: E402
from logtraced.config import Config, IndexConfig, PatternsConfig  # noqa: E402
from logtraced.model import Event, EventColumns, Tenant, record_ids  # noqa: E402
from logtraced.query.ast import MatchAll  # noqa: E402
from logtraced.query.pipeline import Filter, Pipeline  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402
from logtraced.storage.tantivy.writer import TantivyWriter  # noqa: E402

HOUR_NS = 3600 * 1_000_000_000
TENANT = Tenant("default", "production")
BATCH = 1000  # events per WAL record, as an ingest batch would be
HOURS = 25
MAX_EVENTS = 100_000
NEW_IN_WINDOW = (
    ("error", lambda r: f"payment provider sbp-{r.randrange(3)} returned 502 for order {r.randrange(10**6)}"),
    ("error", lambda r: f"Ошибка проверки подписи вебхука {r.randrange(10**6)}: неверный ключ"),
)
RISING_FAMILY = 3  # "POST /api/v1/payments 500 ..." triples in the last hour


def generate(anchor_ns: int, per_hour: int, seed: int) -> list[Event]:
    """Events of the 25 hours before `anchor_ns`, oldest first; the last hour has the new and rising families."""
    rng = random.Random(seed)
    makers = families()
    weights = [1.0 / (rank + 1) for rank in range(len(makers))]
    events = []
    for hour in range(HOURS):
        start = anchor_ns - (HOURS - hour) * HOUR_NS
        last = hour == HOURS - 1
        chosen = rng.choices(range(len(makers)), weights=weights, k=per_hour)
        if last:
            chosen += [RISING_FAMILY] * (2 * chosen.count(RISING_FAMILY))
        stamps = sorted(start + rng.randrange(HOUR_NS) for _ in chosen)
        for stamp, family in zip(stamps, chosen, strict=True):
            level, make = makers[family]
            events.append(Event(stamp, make(rng), level, "shop", "node-1", TENANT.env, TENANT.org))
        if last:
            for level, make in NEW_IN_WINDOW:
                events.extend(
                    Event(start + rng.randrange(HOUR_NS), make(rng), level, "shop", "node-1", TENANT.env, TENANT.org)
                    for _ in range(50)
                )
    return events


def build(data_dir: Path, events: list[Event]) -> float:
    """Writes the events with the daemon's writer (one record per batch); returns the seconds it took."""
    config = Config(data_dir=str(data_dir), index=IndexConfig(writer_heap_bytes=256 * 1024 * 1024, retention_days=3650))
    writer = TantivyWriter(config)
    began = time.perf_counter()
    for seq, first in enumerate(range(0, len(events), BATCH), start=1):
        columns = EventColumns.of_events(events[first : first + BATCH])
        writer.apply(seq, TENANT, columns.with_ids(record_ids(seq, len(columns.timestamp))))
    writer.commit()
    writer.close()
    return time.perf_counter() - began


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - began)
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-hour", type=int, default=59_524, help="10M over 7 days by default")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--baseline-events", type=int, default=PatternsConfig().baseline_events, help="the baseline's sample"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, help="build here (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    anchor = (time.time_ns() // HOUR_NS) * HOUR_NS
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch)
        began = time.perf_counter()
        events = generate(anchor, args.events_per_hour, args.seed)
        generated = time.perf_counter() - began
        built = build(data_dir, events)
        view = TantivyStore(data_dir).for_tenant(TENANT)
        everything = Pipeline((Filter(MatchAll()),))

        def insights() -> InsightsReport:
            return insights_report(
                view,
                everything,
                anchor,
                HOUR_NS,
                24 * HOUR_NS,
                limit=50,
                max_events=MAX_EVENTS,
                baseline_events=args.baseline_events,
            )

        def patterns() -> object:
            return patterns_report(view, everything, anchor - 2 * HOUR_NS, anchor, limit=50, max_events=MAX_EVENTS)

        def read_only() -> object:
            return newest_events(view, everything, anchor - 2 * HOUR_NS, anchor, MAX_EVENTS)

        answer = insights()
        report = patterns_report(view, everything, anchor - 2 * HOUR_NS, anchor, limit=50, max_events=MAX_EVENTS)
        insight_times = timed(insights, args.repeat)
        pattern_times = timed(patterns, args.repeat)
        read_times = timed(read_only, args.repeat)
    new = [item.pattern for item in answer.new]
    rising = [(item.pattern, item.ratio) for item in answer.rising]
    result = {
        "events": len(events),
        "events_per_hour": args.events_per_hour,
        "generate_s": round(generated, 1),
        "build_s": round(built, 1),
        "insights_p50_s": round(statistics.median(insight_times), 3),
        "insights_runs_s": [round(value, 3) for value in insight_times],
        "patterns_100k_p50_s": round(statistics.median(pattern_times), 3),
        "patterns_events_considered": report.events_considered,
        "patterns_sampled": report.sampled,
        "read_100k_p50_s": round(statistics.median(read_times), 3),
        "insights_window_events": answer.window_events,
        "insights_baseline_events": answer.baseline_events,
        "insights_baseline_share": answer.baseline_share,
        "insights_sampled": answer.sampled,
        "new": new,
        "rising": rising,
    }
    expected_new = {
        "payment provider <_> returned <_> for order <_>",
        "Ошибка проверки подписи вебхука <_> неверный ключ",
    }
    result["answer_checked"] = set(new) == expected_new and any(pattern.startswith("POST ") for pattern, _ in rising)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(
            f"{len(events):,} events ({args.events_per_hour:,}/h over {HOURS} h), built in {built:.0f} s\n"
            f"insights 1h vs 24h: p50 {result['insights_p50_s']} s; patterns of the newest "
            f"{report.events_considered:,}: p50 {result['patterns_100k_p50_s']} s (reading them alone "
            f"{result['read_100k_p50_s']} s)\nnew: {new}\nrising: {rising}\nanswer checked: {result['answer_checked']}"
        )
    return 0 if result["answer_checked"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
