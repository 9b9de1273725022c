#!/usr/bin/env python3
"""Embedded ClickHouse label discovery: the per-minute rollup (schema 3) against the events-table scan it replaced.

One chdb database at schema version 2 receives `--events` events over two days in `--parts`
INSERTs (timed: no view yet); `migrate` takes it to version 3 (timed: the view, and the backfill
of the rollup from those events); the same number of events over the next two days is inserted
again in as many INSERTs (timed: every INSERT now feeds the view).  Then, over the second two days
(a window whose ends fall inside minutes, so both edges are read from the events), label names and
a label's values are asked through the store, and the statements schema 2 ran (a scan of the
window) are asked as the baseline, on the same data; answers are compared.  The events are made
inside ClickHouse from `numbers()`, the labels of bench/backends.py (8 services, 5 levels, 40
hosts) picked by a hash of the position, so every run makes the same events.

    python bench/label_rollup.py --events 10000000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logtraced.model import NS_PER_DAY, Tenant  # noqa: E402
from logtraced.storage.clickhouse import schema  # noqa: E402
from logtraced.storage.clickhouse.client import ChdbClient  # noqa: E402
from logtraced.storage.clickhouse.store import ClickHouseStore  # noqa: E402

TENANT = Tenant("default", "production")
START_NS = 20_423 * NS_PER_DAY  # 2025-12-01T00:00:00Z
SPAN_NS = 2 * NS_PER_DAY
SERVICES = ["api-gateway", "auth", "billing", "checkout", "inventory", "notification", "search", "user-service"]
LEVELS = ["debug", "info", "warn", "error", "trace"]
WHERE = "`org` = {org:String} AND `env` = {env:String} AND `timestamp` >= {start:Int64} AND `timestamp` < {end:Int64}"


def insert_events(client: ChdbClient, target: schema.Target, first_ns: int, count: int, parts: int) -> float:
    """`count` events evenly over [first_ns, first_ns + SPAN_NS) in `parts` INSERTs; returns the seconds taken."""
    per = count // parts
    started = time.perf_counter()
    for part in range(parts):
        client.command(
            f"INSERT INTO {target.events} (`timestamp`, `id`, `org`, `env`, `level`, `service`, `host`, `index`, "
            "`tags`, `message`, `attributes`, `words`) "
            f"SELECT {first_ns} + toInt64(number) * {SPAN_NS // count}, toInt64(number) + {first_ns}, "
            f"{{org:String}}, {{env:String}}, {LEVELS}[cityHash64(number, 1) % 5 + 1], "
            f"{SERVICES}[cityHash64(number, 2) % 8 + 1], "
            "concat('node-', leftPad(toString(cityHash64(number, 3) % 40 + 1), 2, '0')), "
            "'', [], 'request done', '{}', ['request', 'done'] "
            f"FROM numbers({part * per}, {per})",
            {"org": TENANT.org, "env": TENANT.env},
        )
    return time.perf_counter() - started


def scan_names(client: ChdbClient, target: schema.Target, start_ns: int, end_ns: int) -> list[str]:
    """Schema 2's label names: one pass over the window's label columns."""
    present = ", ".join(f"countIf(`{name}` != '') > 0" for name in schema.LABEL_COLUMNS)
    rows = client.query(f"SELECT {present} FROM {target.events} WHERE {WHERE}", window(start_ns, end_ns))
    return [name for name, found in zip(schema.LABEL_COLUMNS, rows[0], strict=True) if found]


def scan_values(client: ChdbClient, target: schema.Target, start_ns: int, end_ns: int) -> list[str]:
    """Schema 2's values of `service`: DISTINCT over the window."""
    sql = (
        f"SELECT DISTINCT `service` AS value FROM {target.events} WHERE {WHERE} AND value != '' "
        "ORDER BY value LIMIT 1000"
    )
    return [str(row[0]) for row in client.query(sql, window(start_ns, end_ns))]


def window(start_ns: int, end_ns: int) -> dict[str, str | int | float]:
    return {"org": TENANT.org, "env": TENANT.env, "start": start_ns, "end": end_ns}


def timed(question: Callable[[], list[str]], repeat: int) -> tuple[float, list[str]]:
    times, answer = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = question()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events per two days (inserted twice)")
    parser.add_argument("--parts", type=int, default=100, help="INSERTs per two days")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-label-rollup-"))
    try:
        results = run(ChdbClient(root), args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        print(f"{name:40s} {value}")


def run(client: ChdbClient, args: argparse.Namespace) -> dict[str, Any]:
    target = schema.Target("logtraced")
    for statement in [*schema.create_statements(target), *schema.MIGRATIONS[2](target)]:
        client.command(statement)
    client.command(f"INSERT INTO {target.versions} (`version`) VALUES (1), (2)")
    results: dict[str, Any] = {"events": args.events, "parts": args.parts, "cpus": os.cpu_count()}
    results["insert_seconds_without_view"] = round(insert_events(client, target, START_NS, args.events, args.parts), 2)
    started = time.perf_counter()
    schema.migrate(client, target)
    results["upgrade_seconds"] = round(time.perf_counter() - started, 2)
    later = START_NS + SPAN_NS
    results["insert_seconds_with_view"] = round(insert_events(client, target, later, args.events, args.parts), 2)
    results["rollup_rows"] = client.query(f"SELECT count() FROM {target.rollup}")[0][0]
    client.command(f"OPTIMIZE TABLE {target.events} FINAL")  # bytes of settled tables, not of parts merged away
    client.command(f"OPTIMIZE TABLE {target.rollup} FINAL")
    sizes = "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active"
    for table in (schema.EVENTS, schema.ROLLUP):
        results[f"{table}_bytes"] = client.query(sizes, {"db": target.database, "t": table})[0][0]
    start_ns, end_ns = later + 17 * 10**9 + 5, later + SPAN_NS - 7  # both ends inside a minute
    view = ClickHouseStore(client, target).for_tenant(TENANT)
    questions: dict[str, Callable[[], list[str]]] = {
        "names_scan_ms": lambda: scan_names(client, target, start_ns, end_ns),
        "names_rollup_ms": lambda: view.label_names(start_ns, end_ns),
        "values_scan_ms": lambda: scan_values(client, target, start_ns, end_ns),
        "values_rollup_ms": lambda: view.label_values("service", start_ns, end_ns, 1000),
    }
    answers = {}
    for name, question in questions.items():
        results[name], answers[name] = timed(question, args.repeat)
    results["answers_agree"] = (answers["names_scan_ms"], answers["values_scan_ms"]) == (
        answers["names_rollup_ms"],
        answers["values_rollup_ms"],
    )
    return results


if __name__ == "__main__":
    main()
