#!/usr/bin/env python3
"""Counts per step over past days, cold and warm, on bench/query.py's 10M-event data set (7 days), read-only.

Per minute and per hour, by level and with no grouping, over the last 1 and 7 days before the data
set's anchor: the web console's histogram and Grafana's logs volume.  For each question a fresh
`TantivyStore(data_dir).for_tenant(...)` answers it once (cold: the first call after opening), then
`--repeat` times the same request (warm: p50), then `--repeat` times a window moved one step
later each time (moving: p50), as a dashboard that refreshes asks: its edge days are new windows.

The tree measured is the one `LOGTRACED_TREE` names (default: this checkout), so a baseline is
main's tree measured by the same script.  `--compare TREE` runs this script on TREE and on this
checkout alternately, `--rounds` times each in fresh processes, and prints the medians of the
rounds side by side, checking that both trees give the same counts.

    python bench/counts.py --data-dir /tmp/bq10m-v2 --json
    git worktree add --detach /tmp/cc-before main
    python bench/counts.py --data-dir /tmp/bq10m-v2 --compare /tmp/cc-before --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

HERE: Final = Path(__file__).resolve().parent
TREE: Final = Path(os.environ.get("LOGTRACED_TREE", str(HERE.parent)))
sys.path.insert(0, str(TREE))  # before the editable install's finder, which Python consults last

from logtraced.model import NS_PER_DAY, Tenant  # noqa: E402
from logtraced.query.ast import MatchAll  # noqa: E402
from logtraced.query.pipeline import Filter, Pipeline  # noqa: E402
from logtraced.storage.backend import CountRequest, TenantView  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402

TENANT: Final = Tenant("default", "production")  # bench/query.py's
MINUTE: Final = 60 * 1_000_000_000
HOUR: Final = 60 * MINUTE
QUESTIONS: Final = [(days, step, by) for days in (1, 7) for step in (MINUTE, HOUR) for by in (("level",), ())]


def name(days: int, step: int, by: tuple[str, ...]) -> str:
    return f"{days}d per {'minute' if step == MINUTE else 'hour'} {'by level' if by else 'total'}"


def digest(view: TenantView, request: CountRequest) -> tuple[float, str]:
    """Milliseconds for one count, and a digest of its answer (the same counts give the same digest)."""
    started = time.perf_counter()
    result = view.count(request)
    elapsed = (time.perf_counter() - started) * 1000
    cells = sorted((tuple(sorted(s.labels.items())), at, n) for s in result.series for at, n in s.counts.items())
    return elapsed, hashlib.sha256(repr(cells).encode()).hexdigest()[:16]


def asked(end: int, days: int, step: int, by: tuple[str, ...], shift: int) -> CountRequest:
    """The count of every event over `days` days before `end`, moved `shift` ns later."""
    return CountRequest(end - days * NS_PER_DAY + shift, end + shift, Pipeline((Filter(MatchAll()),)), step, by)


def measure(data_dir: Path, anchor: int, repeat: int) -> dict[str, dict[str, Any]]:
    """Every question on a store opened for it alone: cold, warm p50, moving p50 (ms), and the answer's digest."""
    results: dict[str, dict[str, Any]] = {}
    end = anchor + 1
    for days, step, by in QUESTIONS:
        view = TantivyStore(data_dir).for_tenant(TENANT)

        cold, answer = digest(view, asked(end, days, step, by, 0))
        warm = [digest(view, asked(end, days, step, by, 0))[0] for _ in range(repeat)]
        moving = [digest(view, asked(end, days, step, by, step * (turn + 1)))[0] for turn in range(repeat)]
        results[name(days, step, by)] = {
            "cold_ms": cold,
            "warm_p50_ms": statistics.median(warm),
            "moving_p50_ms": statistics.median(moving),
            "digest": answer,
        }
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    import logtraced

    meta = json.loads((args.data_dir / "bench-query.json").read_text())
    head = subprocess.run(
        ["git", "-C", str(TREE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "tree": str(Path(logtraced.__file__).parent.parent),
        "commit": head,
        "events": meta["events"],
        "questions": measure(args.data_dir, int(meta["anchor_ns"]), args.repeat),
    }


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """This script on both trees, alternating, each round in fresh processes; medians over the rounds."""
    trees = {"before": str(args.compare), "after": str(HERE.parent)}
    rounds: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    for _ in range(args.rounds):
        for label, tree in trees.items():
            command = [sys.executable, __file__, "--data-dir", str(args.data_dir), "--repeat", str(args.repeat)]
            output = subprocess.run(
                [*command, "--json"], env={**os.environ, "LOGTRACED_TREE": tree}, capture_output=True, check=True
            ).stdout
            rounds[label].append(json.loads(output))
    table: dict[str, Any] = {}
    for question in rounds["after"][0]["questions"]:
        row: dict[str, Any] = {}
        for label, runs in rounds.items():
            for figure in ("cold_ms", "warm_p50_ms", "moving_p50_ms"):
                row[f"{label}_{figure}"] = statistics.median(run["questions"][question][figure] for run in runs)
        digests = {run["questions"][question]["digest"] for runs in rounds.values() for run in runs}
        row["same_counts"] = len(digests) == 1
        table[question] = row
    commits = {label: runs[0]["commit"] for label, runs in rounds.items()}
    return {"rounds": args.rounds, "repeat": args.repeat, "commits": commits, "questions": table}


def show(report: dict[str, Any]) -> None:
    if "commits" not in report:
        print(f"tree {report['tree']} ({report['commit']}), {report['events']:,} events")
        for question, row in report["questions"].items():
            figures = "  ".join(f"{key} {value:8.2f}" for key, value in row.items() if key.endswith("_ms"))
            print(f"  {question:<26} {figures}")
        return
    print(f"machine: {report['machine']}")
    print(f"medians of {report['rounds']} alternating rounds, {report['repeat']} repeats each: {report['commits']}")
    print(f"  {'question':<26} {'cold before/after':>20} {'warm before/after':>20} {'moving before/after':>22}")
    for question, row in report["questions"].items():
        cells = [
            f"{row[f'before_{figure}']:8.1f} /{row[f'after_{figure}']:8.2f}"
            for figure in ("cold_ms", "warm_p50_ms", "moving_p50_ms")
        ]
        same = "" if row["same_counts"] else "  COUNTS DIFFER"
        print(f"  {question:<26} {cells[0]:>20} {cells[1]:>20} {cells[2]:>22}{same}")


def machine() -> dict[str, Any]:
    """Cores, memory and the load when measured: the machine is shared, and figures move with the load."""
    memory = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    return {"nproc": os.cpu_count(), "memory_kib": int(memory.split()[1]), "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bq10m-v2"), help="bench/query.py's data set")
    parser.add_argument("--repeat", type=int, default=15, help="warm and moving runs per question")
    parser.add_argument("--compare", type=Path, help="a tree to measure alternately with this one (the baseline)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds with --compare")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    report = compare(args) if args.compare is not None else run(args)
    report["machine"] = machine()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report)


if __name__ == "__main__":
    main()
