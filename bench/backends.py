#!/usr/bin/env python3
"""Tantivy vs ClickHouse-embedded (chdb) behind the same LogStore: ingest until searchable, questions, bytes on disk.

Both backends get the same seeded events through the same path the daemon uses: a real WAL
(records of `--batch` events) applied by the writer loop (`WalApplier`) into each backend's
`StoreWriter`, committed; "ingest until searchable" is the time from the first record applied to
the store counting every event.  Then every question (the bench/query.py set: labels, free text,
phrase, substrings, regexes, label names and values, plus step counts) is asked through
`store.for_tenant(...)` on both, newest 100 rows; answers are compared row for row (ids) and a
mismatch is printed loudly.  Bytes on disk: the Tantivy partitions vs the chdb directory, right
after the last commit (ClickHouse merges parts in the background; merged-away parts linger a while).

    python bench/backends.py --events 1000000 --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from logtraced.config import Config, load_config  # noqa: E402
from logtraced.model import Event, Tenant  # noqa: E402
from logtraced.query.kql import parse_kql  # noqa: E402
from logtraced.query.pipeline import Filter, Pipeline, parse_pipeline  # noqa: E402
from logtraced.storage.backend import CountRequest, LogStore, SearchRequest, StoreWriter  # noqa: E402
from logtraced.storage.clickhouse import schema  # noqa: E402
from logtraced.storage.clickhouse.client import ChdbClient  # noqa: E402
from logtraced.storage.clickhouse.store import ClickHouseStore  # noqa: E402
from logtraced.storage.clickhouse.writer import ClickHouseWriter  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402
from logtraced.storage.tantivy.writer import TantivyWriter  # noqa: E402
from logtraced.storage.wal import WalWriter  # noqa: E402
from logtraced.storage.writer import WalApplier  # noqa: E402

TENANT = Tenant("default", "production")
NS = 1_000_000_000
SERVICES = ["api-gateway", "auth", "billing", "checkout", "inventory", "notification", "search", "user-service"]
LEVELS, LEVEL_WEIGHTS = ["debug", "info", "warn", "error", "trace"], [10, 70, 10, 8, 2]
STATUSES = [200] * 16 + [201, 204, 301, 400, 401, 403, 404, 404, 409, 429, 500, 502, 503]
WORDS = (
    "the request to for from user service completed processing started with in on at and of by after handler worker"
    " job queue cache session token response payload batch record item event stream message client server upstream"
    " запрос ответ ошибка сервер пользователь соединение обработка завершена успешно кэш база данных очередь"
    " ok done ready idle busy slow fast read write update delete insert select create fetch load save timeout error"
    " failed connection refused reset broken closed unavailable denied expired invalid missing unknown retrying"
).split()
RARE = "zq7xkw"
TEMPLATES: list[Callable[[random.Random], str]] = [
    lambda r: f"request completed in {r.randint(1, 900)}ms status={r.choice(STATUSES)}",
    lambda r: f"connection refused by upstream 10.0.{r.randint(0, 9)}.{r.randint(1, 254)}:5432",
    lambda r: f"upstream timeout after {r.randint(1000, 30000)}ms on attempt {r.randint(1, 5)}",
    lambda r: f"error while reading response: connection reset by peer after {r.randint(1, 999)}ms",
    lambda r: f"user u-{r.randint(1, 500_000)} logged in from 192.168.{r.randint(0, 255)}.{r.randint(1, 254)}",
    lambda r: f"order {r.randint(10_000_000, 99_999_999)} created for user u-{r.randint(1, 500_000)}",
    lambda r: f"Ошибка подключения к базе данных: таймаут {r.randint(1, 60)} с",
    lambda r: f"slow query took {r.randint(500, 20000)}ms rows={r.randint(0, 100000)}",
]


def generate(seed: int, count: int, start_ns: int, end_ns: int) -> Iterator[Event]:
    """The events in time order, made one at a time: 10M events held at once would take some 8 GB."""
    rng = random.Random(seed)
    stamps = sorted(rng.randrange(start_ns, end_ns) for _ in range(count))
    for stamp in stamps:
        message = rng.choice(TEMPLATES)(rng) + " " + " ".join(rng.choices(WORDS, k=rng.randint(3, 9)))
        if rng.random() < 1e-4:
            message += f" session {rng.getrandbits(16):04x}{RARE}{rng.getrandbits(8):02x} expired"
        attributes = {
            "http": {"method": rng.choice(["GET", "POST", "PUT"]), "status": rng.choice(STATUSES)},
            "duration_ms": round(rng.random() * 2000, 2),
            "user_id": f"u-{rng.randint(1, 500_000)}",
            "trace_id": f"{rng.getrandbits(64):016x}",
        }
        yield Event(stamp, message, rng.choices(LEVELS, LEVEL_WEIGHTS)[0], rng.choice(SERVICES),
                    f"node-{rng.randint(1, 40):02d}", TENANT.env, TENANT.org, "", [], attributes)  # fmt: skip


def write_wal(directory: Path, segment_bytes: int, events: Iterator[Event], batch: int) -> tuple[int, int]:
    """Append the events in records of `batch`; the last sequence number and the events' JSON bytes."""
    wal = WalWriter(directory, segment_bytes)
    raw_bytes = 0
    while records := list(itertools.islice(events, batch)):
        raw_bytes += sum(len(msgspec.json.encode(event)) for event in records)
        wal.append(TENANT, records)
    wal.sync()
    seq = wal.written_seq
    wal.close()
    return seq, raw_bytes


def ingest(config: Config, writer: StoreWriter, store: LogStore, through: int, window: tuple[int, int], total: int
           ) -> float:  # fmt: skip
    """Seconds from the first record applied until a search counts every event."""
    started = time.perf_counter()
    applier = WalApplier(config, writer)
    while applier.tailer.last_seq < through:
        applier.apply_until(through, time.monotonic() + config.index.commit_interval_ms / 1000)
        applier.commit()
    store.refresh()
    everything = Pipeline((Filter(parse_kql("")),))
    page = store.for_tenant(TENANT).search(SearchRequest(*window, everything, 1, count_total=True))
    assert page.total == total, (page.total, total)
    return time.perf_counter() - started


def questions(window: tuple[int, int]) -> dict[str, Callable[[LogStore], list[Any]]]:
    def search(node_text: str | dict[str, Any]) -> Callable[[LogStore], list[Any]]:
        if isinstance(node_text, str):
            pipeline = Pipeline((Filter(parse_kql(node_text)),))
        else:
            pipeline = parse_pipeline({"pipeline": [{"type": "filter", "query": node_text}]})
        return lambda store: [r.event.id for r in store.for_tenant(TENANT).search(
            SearchRequest(*window, pipeline, 100)).rows]  # fmt: skip

    def count(text: str, by: tuple[str, ...]) -> Callable[[LogStore], list[Any]]:
        pipeline = Pipeline((Filter(parse_kql(text)),))
        return lambda store: sorted(
            (tuple(s.labels.values()), sorted(s.counts.items()))
            for s in store.for_tenant(TENANT).count(CountRequest(*window, pipeline, 60 * NS, by)).series
        )

    return {
        "a label service=X, level=error": search("service:checkout and level:error"),
        "b term (free text)": search("timeout"),
        "c phrase": search('"connection refused"'),
        "d $contains (common)": search({"$contains": ["message", "connect"]}),
        "e $regex alternation": search({"$regex": ["message", "error.*timeout|connection.*refused"]}),
        "f1 label names": lambda store: store.for_tenant(TENANT).label_names(*window),
        "f2 label values (service)": lambda store: store.for_tenant(TENANT).label_values("service", *window, 1000),
        "g rare $contains": search({"$contains": ["message", RARE]}),
        "i attribute http.status:500": search("http.status:500"),
        "j count per minute by level": count("", ("level",)),
        "k count per minute, term, by service": count("timeout", ("service",)),
    }


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    answer = run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, answer


def disk_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="events per WAL record")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    now = time.time_ns()
    window = (now - 2 * 86_400 * NS, now)
    root = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    try:
        segment_bytes = load_config(None).wal.segment_bytes
        events = generate(args.seed, args.events, *window)
        through, raw_bytes = write_wal(root / "wal", segment_bytes, events, args.batch)
        run(args, through, raw_bytes, window, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # about 450 MiB per million events: never leave it behind


def run(args: argparse.Namespace, through: int, raw_bytes: int, window: tuple[int, int], root: Path) -> None:
    """Ingest `root/wal` into both backends under `root`, ask every question of both, print the figures."""
    results: dict[str, Any] = {"events": args.events, "raw_json_bytes": raw_bytes, "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version()}, "backends": {}}  # fmt: skip
    stores: dict[str, LogStore] = {}
    for name in ("tantivy", "clickhouse"):
        config = load_config(None, overrides={"data_dir": str(root / name), "storage.backend": name,
                                              "index.writer_heap_bytes": 256 << 20})  # fmt: skip
        shutil.copytree(root / "wal", config.data_path / "wal")  # each writer trims its own copy
        writer: StoreWriter
        if name == "tantivy":
            writer, store = TantivyWriter(config), TantivyStore(config.data_path)
        else:
            client = ChdbClient(config.data_path / "clickhouse")
            target = schema.Target("logtraced")
            schema.migrate(client, target)
            writer, store = ClickHouseWriter(client, target), ClickHouseStore(client, target)
        seconds = ingest(config, writer, store, through, window, args.events)
        stores[name] = store
        on_disk = disk_bytes(config.data_path / ("index" if name == "tantivy" else "clickhouse"))
        results["backends"][name] = {"ingest_seconds": round(seconds, 2),
                                     "events_per_second": round(args.events / seconds),
                                     "bytes_on_disk": on_disk, "questions_ms": {}}  # fmt: skip
    mismatches = []
    for label, question in questions(window).items():
        answers = {}
        for name, store in stores.items():
            millis, answers[name] = timed(lambda s=store, q=question: q(s), args.repeat)
            results["backends"][name]["questions_ms"][label] = round(millis, 2)
        if answers["tantivy"] != answers["clickhouse"]:
            mismatches.append(label)
            print(f"MISMATCH on {label}", file=sys.stderr)
    results["mismatches"] = mismatches
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.events} events ({raw_bytes / args.events:.0f} JSON bytes each)")
    for label in questions(window):
        row = [results["backends"][name]["questions_ms"][label] for name in stores]
        print(f"{label:40s} " + "  ".join(f"{value:10.2f} ms" for value in row))


if __name__ == "__main__":
    main()
