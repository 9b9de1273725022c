#!/usr/bin/env python3
"""Query latency on N generated events: logtraced's executor against SQLite FTS5, both built in the same run.

The logtraced store is written directly, without a daemon: per UTC day one Tantivy index opened
with `partitions.open_index`, fed `encode_documents` output (ids as the writer gives them) through
`add_json` and committed, so the store reads exactly what the daemon would have written; every
logtraced question goes through `TantivyStore(data_dir).for_tenant(tenant)`, as the APIs do.  The
baseline is the usual embedded alternative: one SQLite table of the same events (B-tree indexes on
service, level and timestamp), a contentless FTS5 `unicode61` table over the message for words and
phrases, and optionally a contentless FTS5 `trigram` table (case-sensitive) for substrings and for
narrowing regexes by hand.  Rows go into SQLite in timestamp order, so rowid order is time order:
the layout of an append-only log table, which lets FTS5 stream its matches newest first.

The second baseline is ClickHouse's engine in-process (chdb), with the table layout ClickHouse log
systems use: a MergeTree partitioned by day, `ORDER BY (service, timestamp)`, LowCardinality label
columns, a JSON column for attributes, and two skip indexes on the message (a token bloom filter on
the lowercased message for words, an n-gram bloom filter for substrings and regex literals).  Each
day is inserted in one statement and the table is merged to one part per day (`OPTIMIZE ... FINAL`)
before measuring.

Every question is asked for the newest 100 rows in the last `--days` days; each engine's answer is
compared (rows and timestamps) and a mismatch is printed loudly.  The SQLite queries carry no
tenant condition (a single-tenant table), while logtraced confines every search to its tenant.

    python bench/query.py --events 200000                       # small run to check the set-up
    python bench/query.py --data-dir /tmp/bq --json             # 10M events, kept for reuse
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402
import tantivy  # noqa: E402

from logtraced.model import NS_PER_DAY, Event, Tenant, event_id  # noqa: E402
from logtraced.query.ast import MatchAll  # noqa: E402
from logtraced.query.gosyntax import NS_PER_SECOND  # noqa: E402
from logtraced.query.kql import parse_kql  # noqa: E402
from logtraced.query.pipeline import Filter, Pipeline, parse_pipeline  # noqa: E402
from logtraced.storage.backend import CountRequest, SearchRequest, TenantView  # noqa: E402
from logtraced.storage.tantivy import schema  # noqa: E402
from logtraced.storage.tantivy.documents import encode_documents  # noqa: E402
from logtraced.storage.tantivy.partitions import Partition, PartitionLayout, open_index  # noqa: E402
from logtraced.storage.tantivy.reader import IndexReader  # noqa: E402
from logtraced.storage.tantivy.schema import LABEL_FIELDS  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402

try:
    import re2 as regex_engine

    REGEX_ENGINE = "re2"
except ImportError:  # pragma: no cover - re2 is a dependency of the package, but the bench may run without it
    import re as regex_engine  # type: ignore[no-redef]

    REGEX_ENGINE = "re"

META_FILE = "bench-query.json"
META_VERSION = 1
LIMIT = 100
TENANT = Tenant("default", "production")
WAL_BATCH = 1000  # events per WAL sequence number, as a batch of ingest would be
MARKER_RATE = 1e-4  # one event in 10 000 carries each rare marker
RARE_SUBSTRING = "zq7xkw"
RARE_REGEX = r"ERR-\d{5}-FATAL"
COUNT_SPAN_NS = NS_PER_DAY  # (i): counts over the last 24 hours
COUNT_STEP_NS = 60 * NS_PER_SECOND  # per minute, by level
SQL_COLUMN = {"index": "idx"}  # `index` is an SQL keyword

SERVICES = ["api-gateway", "auth", "billing", "checkout", "inventory", "notification", "search", "user-service"]
HOSTS = [f"node-{number:02d}" for number in range(1, 41)]
LEVELS = ["debug", "info", "warn", "error", "trace"]
LEVEL_WEIGHTS = [10, 70, 10, 8, 2]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
STATUSES = [200] * 16 + [201, 204, 301, 400, 401, 403, 404, 404, 409, 429, 500, 502, 503]
# Filler words, most frequent first (drawn with Zipf weights); about a fifth are Russian.
WORDS = (
    "the request to for from user service completed processing started with in on at and of by after"
    " handler worker job queue cache session token response payload batch record item event stream"
    " message client server upstream downstream backend database query transaction commit rollback"
    " lock index shard replica primary node cluster pool thread task scheduler timer retry attempt"
    " запрос ответ ошибка сервер пользователь соединение обработка завершена успешно кэш база данных"
    " очередь задача повтор попытка сессия клиент сообщение запись"
    " ok done ready idle busy slow fast read write update delete insert select create fetch load save"
    " send receive publish subscribe validate parse encode decode compress flush sync open close"
    " start stop pause resume warning notice debug trace info state status config metrics health"
    " latency throughput memory disk cpu network socket port address header body cookie auth login"
    " logout signup password email order cart payment invoice refund shipment stock price discount"
    " timeout error failed connection refused reset broken closed unavailable denied expired invalid"
    " missing unknown retrying reconnect connect connected disconnected dropped skipped"
).split()
_CUM_WEIGHTS = list(itertools.accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(len(WORDS))))


def _template(rng: random.Random) -> str:
    """The head of a message: common log shapes with ids and numbers in them."""
    pick = rng.random()
    if pick < 0.20:
        return f"request completed in {rng.randint(1, 900)}ms status={rng.choice(STATUSES)}"
    if pick < 0.28:
        address = f"10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}:{rng.choice((5432, 6379, 8080, 9092))}"
        return f"connection refused by upstream {address}"
    if pick < 0.36:
        return f"upstream timeout after {rng.randint(1000, 30000)}ms on attempt {rng.randint(1, 5)}"
    if pick < 0.42:
        return f"error while reading response: connection reset by peer after {rng.randint(1, 999)}ms"
    if pick < 0.47:
        return f"failed to connect to database: timeout waiting for pool slot {rng.randint(1, 64)}"
    if pick < 0.57:
        return f"user u-{rng.randint(1, 500_000)} logged in from 192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if pick < 0.67:
        return f"order {rng.randint(10_000_000, 99_999_999)} created for user u-{rng.randint(1, 500_000)}"
    if pick < 0.72:
        return f"cache miss for key product:{rng.randint(1, 2_000_000)}"
    if pick < 0.78:
        return f"Ошибка подключения к базе данных: таймаут {rng.randint(1, 60)} с"
    if pick < 0.83:
        return f"Пользователь u-{rng.randint(1, 500_000)} вошёл в систему"
    if pick < 0.88:
        return f"disconnected from broker kafka-{rng.randint(1, 6)}, reconnecting in {rng.randint(1, 30)}s"
    if pick < 0.93:
        return f"slow query took {rng.randint(500, 20000)}ms rows={rng.randint(0, 100000)}"
    return f"retrying request attempt {rng.randint(1, 5)} of 5"


def generate_segment(seed: int, segment: int, low_ns: int, high_ns: int, count: int, org: str) -> list[Event]:
    """`count` events with timestamps in [low_ns, high_ns), oldest first, from a segment-specific seed."""
    rng = random.Random(f"{seed}:{segment}")
    stamps = sorted(rng.randrange(low_ns, high_ns) for _ in range(count))
    choices, randint, rand = rng.choices, rng.randint, rng.random
    levels = rng.choices(LEVELS, LEVEL_WEIGHTS, k=count)
    services = rng.choices(SERVICES, k=count)
    hosts = rng.choices(HOSTS, k=count)
    events = []
    for position in range(count):
        message = _template(rng) + " " + " ".join(choices(WORDS, cum_weights=_CUM_WEIGHTS, k=randint(3, 9)))
        if rand() < MARKER_RATE:
            message += f" session {rng.getrandbits(16):04x}{RARE_SUBSTRING}{rng.getrandbits(8):02x} expired"
        if rand() < MARKER_RATE:
            message += f" code ERR-{rng.randrange(100_000):05d}-FATAL raised"
        attributes = {
            "http": {"method": rng.choice(METHODS), "status": rng.choice(STATUSES)},
            "duration_ms": round(rand() * 2000, 2),
            "user_id": f"u-{randint(1, 500_000)}",
            "trace_id": f"{rng.getrandbits(64):016x}",
        }
        events.append(
            Event(
                stamps[position],
                message,
                levels[position],
                services[position],
                hosts[position],
                TENANT.env,
                org,
                "",
                [],
                attributes,
            )
        )
    return events


@dataclasses.dataclass(frozen=True)
class Segment:
    """The part of the window inside one UTC day, and how many events it gets."""

    index: int
    day: int
    low_ns: int
    high_ns: int
    count: int


def segments(anchor_ns: int, days: int, events: int) -> list[Segment]:
    """Split [anchor - days, anchor) at UTC midnights; events shared by duration (largest remainder)."""
    start = anchor_ns - days * NS_PER_DAY
    bounds = []
    low = start
    while low < anchor_ns:
        high = min((low // NS_PER_DAY + 1) * NS_PER_DAY, anchor_ns)
        bounds.append((low, high))
        low = high
    span = anchor_ns - start
    exact = [events * (high - low) / span for low, high in bounds]
    counts = [int(value) for value in exact]
    for position in sorted(range(len(bounds)), key=lambda i: counts[i] - exact[i])[: events - sum(counts)]:
        counts[position] += 1
    return [Segment(i, low // NS_PER_DAY, low, high, counts[i]) for i, (low, high) in enumerate(bounds)]


# -- building -----------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def directory_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


class TantivyBuilder:
    """One index per day-partition, one writer each, one commit each: what the indexer leaves on disk."""

    def __init__(self, data_dir: Path, heap_bytes: int, threads: int) -> None:
        self.layout = PartitionLayout(data_dir)
        self.heap_bytes = heap_bytes
        self.threads = threads
        self.seconds = 0.0
        self.wal_seq = 0

    def add_day(self, day: int, events: Sequence[Event]) -> float:
        started = time.perf_counter()
        index = open_index(self.layout.path(Partition(TENANT.org, day)), stemming=False, create=True)
        assert index is not None
        writer = index.writer(self.heap_bytes, self.threads)
        add = writer.add_json
        for first in range(0, len(events), WAL_BATCH):
            self.wal_seq += 1
            batch = events[first : first + WAL_BATCH]
            for position, event in enumerate(batch):
                event.id = event_id(self.wal_seq, position)
            for document in encode_documents(batch, stemming=False):
                add(document)
        writer.commit()
        writer.wait_merging_threads()
        elapsed = time.perf_counter() - started
        self.seconds += elapsed
        return elapsed


SQL_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, message TEXT NOT NULL, level TEXT NOT NULL,
    service TEXT NOT NULL, host TEXT NOT NULL, env TEXT NOT NULL, org TEXT NOT NULL, idx TEXT NOT NULL,
    tags TEXT NOT NULL, attributes TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
    message, content='', tokenize='unicode61 remove_diacritics 0'
);
"""
SQL_TRIGRAM_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS tri.events_tri USING fts5(
    message, content='', tokenize='trigram case_sensitive 1'
);
"""
SQL_INDEXES = """
CREATE INDEX IF NOT EXISTS events_service ON events(service);
CREATE INDEX IF NOT EXISTS events_level ON events(level);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
"""


def sqlite_connect(directory: Path, *, trigram: bool) -> sqlite3.Connection:
    connection = sqlite3.connect(directory / "events.db", isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA cache_size = -1048576")  # 1 GiB of page cache, as tantivy gets its mmap
    connection.execute("PRAGMA mmap_size = 2147418112")
    connection.execute("PRAGMA temp_store = MEMORY")
    connection.execute("PRAGMA case_sensitive_like = ON")  # $contains is case-sensitive
    if trigram:
        connection.execute("ATTACH DATABASE ? AS tri", (str(directory / "trigram.db"),))
        connection.execute("PRAGMA tri.cache_size = -1048576")
        connection.execute("PRAGMA tri.mmap_size = 2147418112")
    cache: dict[str, Any] = {}

    def regexp(pattern: str, text: str | None) -> bool:
        compiled = cache.get(pattern)
        if compiled is None:
            compiled = cache[pattern] = regex_engine.compile(pattern)
        return text is not None and compiled.search(text) is not None

    connection.create_function("regexp", 2, regexp, deterministic=True)
    return connection


def _messages(ids: range, events: Sequence[Event]) -> Iterator[tuple[int, str]]:
    return zip(ids, (event.message for event in events), strict=True)


class SqliteBuilder:
    """Bulk load: one transaction per day, B-tree indexes and FTS optimisation once at the end."""

    def __init__(self, directory: Path, *, trigram: bool, fts: bool = True) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.trigram = trigram
        self.fts = fts
        self.connection = sqlite_connect(directory, trigram=trigram)
        for pragma in ("journal_mode = OFF", "synchronous = OFF"):
            self.connection.execute(f"PRAGMA main.{pragma}")
            if trigram:
                self.connection.execute(f"PRAGMA tri.{pragma}")
        self.connection.executescript(SQL_SCHEMA)
        if trigram:
            self.connection.executescript(SQL_TRIGRAM_SCHEMA)
        self.seconds = {"rows": 0.0, "fts": 0.0, "trigram": 0.0, "indexes": 0.0, "optimize": 0.0}
        self.next_id = 1 + (self.connection.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def add_day(self, events: Sequence[Event], *, rows: bool) -> float:
        encode = msgspec.json.encode
        first = self.next_id
        ids = range(first, first + len(events))
        self.next_id += len(events)
        spent = 0.0
        execute = self.connection.executemany
        if rows:
            started = time.perf_counter()
            self.connection.execute("BEGIN")
            execute(
                "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    (
                        i,
                        e.timestamp,
                        e.message,
                        e.level,
                        e.service,
                        e.host,
                        e.env,
                        e.org,
                        e.index,
                        encode(e.tags).decode(),
                        encode(e.attributes).decode(),
                    )
                    for i, e in zip(ids, events, strict=True)
                ),
            )
            fts_seconds = 0.0
            if self.fts:
                middle = time.perf_counter()
                execute("INSERT INTO events_fts(rowid, message) VALUES (?,?)", _messages(ids, events))
                fts_seconds = time.perf_counter() - middle
            self.connection.execute("COMMIT")
            elapsed = time.perf_counter() - started
            self.seconds["fts"] += fts_seconds
            self.seconds["rows"] += elapsed - fts_seconds
            spent += elapsed
        if self.trigram:
            started = time.perf_counter()
            self.connection.execute("BEGIN")
            execute("INSERT INTO tri.events_tri(rowid, message) VALUES (?,?)", _messages(ids, events))
            self.connection.execute("COMMIT")
            elapsed = time.perf_counter() - started
            self.seconds["trigram"] += elapsed
            spent += elapsed
        return spent

    def finish(self, *, rows: bool) -> None:
        if rows:
            started = time.perf_counter()
            self.connection.executescript(SQL_INDEXES)
            self.connection.execute("ANALYZE")
            self.seconds["indexes"] += time.perf_counter() - started
            started = time.perf_counter()
            self.connection.execute("INSERT INTO events_fts(events_fts) VALUES ('optimize')")
            self.seconds["optimize"] += time.perf_counter() - started
        if self.trigram:
            started = time.perf_counter()
            self.connection.execute("INSERT INTO tri.events_tri(events_tri) VALUES ('optimize')")
            self.seconds["optimize"] += time.perf_counter() - started
        self.connection.close()


CLICKHOUSE_TABLE = """
CREATE TABLE IF NOT EXISTS logs (
    timestamp DateTime64(9, 'UTC'), id UInt64, message String,
    level LowCardinality(String), service LowCardinality(String), host LowCardinality(String),
    env LowCardinality(String), org LowCardinality(String), idx LowCardinality(String),
    tags Array(String), attributes JSON,
    INDEX message_tokens lower(message) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1,
    INDEX message_ngrams message TYPE ngrambf_v1(3, 32768, 3, 0) GRANULARITY 1
) ENGINE = MergeTree PARTITION BY toDate(timestamp) ORDER BY (service, timestamp)
"""
CLICKHOUSE_INPUT = (
    "ts Int64, id UInt64, message String, level String, service String, host String, env String, org String,"
    " idx String, tags Array(String), attributes JSON"
)
CLICKHOUSE_INSERT_BATCH = 250_000  # events per INSERT: bounds the scratch file


class ClickhouseBuilder:
    """One INSERT per batch from a scratch NDJSON file, then every day merged to one part."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.session = clickhouse_connect(directory)
        self.session.query(CLICKHOUSE_TABLE)
        self.scratch = directory / "insert.ndjson"
        self.seconds = {"insert": 0.0, "optimize": 0.0}
        self.next_id = 1

    def add_day(self, events: Sequence[Event]) -> float:
        started = time.perf_counter()
        encode = msgspec.json.encode
        for first in range(0, len(events), CLICKHOUSE_INSERT_BATCH):
            batch = events[first : first + CLICKHOUSE_INSERT_BATCH]
            rows = (
                encode(
                    {
                        "ts": e.timestamp, "id": self.next_id + i, "message": e.message, "level": e.level,
                        "service": e.service, "host": e.host, "env": e.env, "org": e.org, "idx": e.index,
                        "tags": e.tags, "attributes": e.attributes,
                    }
                )
                for i, e in enumerate(batch)
            )  # fmt: skip
            self.scratch.write_bytes(b"\n".join(rows))
            self.next_id += len(batch)
            self.session.query(
                "INSERT INTO logs SELECT fromUnixTimestamp64Nano(ts), id, message, level, service, host, env, org,"
                f" idx, tags, attributes FROM file('{self.scratch}', JSONEachRow, '{CLICKHOUSE_INPUT}')"
            )
        self.scratch.unlink(missing_ok=True)
        elapsed = time.perf_counter() - started
        self.seconds["insert"] += elapsed
        return elapsed

    def finish(self) -> None:
        started = time.perf_counter()
        self.session.query("OPTIMIZE TABLE logs FINAL")
        self.seconds["optimize"] += time.perf_counter() - started
        self.session.close()


def clickhouse_connect(directory: Path) -> Any:
    from chdb import session  # imported here: the bench runs without chdb when ClickHouse is skipped

    return session.Session(str(directory))


def raw_document(document: str) -> bytes:
    """A document as the event's JSON: without the message copy only the capitalised-words field indexes,
    and without the stored copy of the whole event (`schema.EVENT`)."""
    fields = msgspec.json.decode(document)
    fields.pop(schema.MESSAGE_CAPITALS, None)
    fields.pop(schema.EVENT, None)
    return msgspec.json.encode(fields)


def build(data_dir: Path, args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    """Build whatever part of the dataset is missing in `data_dir`; returns the updated metadata."""
    want_tantivy = not meta["built"].get("logtraced")
    want_rows = not args.skip_sqlite and not meta["built"].get("sqlite")
    want_trigram = not args.skip_sqlite and args.trigram and not meta["built"].get("trigram")
    want_clickhouse = not args.skip_clickhouse and not meta["built"].get("clickhouse")
    if not (want_tantivy or want_rows or want_trigram or want_clickhouse):
        return meta
    wants = (
        ("logtraced", want_tantivy), ("sqlite", want_rows), ("trigram", want_trigram), ("clickhouse", want_clickhouse)
    )  # fmt: skip
    parts = [name for name, wanted in wants if wanted]
    progress(f"building {', '.join(parts)} for {args.events:,} events over {args.days} days in {data_dir}")
    if want_tantivy and (data_dir / "index").exists():
        shutil.rmtree(data_dir / "index")
    sqlite_dir = data_dir / "sqlite"
    if want_rows and sqlite_dir.exists():
        shutil.rmtree(sqlite_dir)
    if want_trigram and (sqlite_dir / "trigram.db").exists():
        (sqlite_dir / "trigram.db").unlink()
    if want_clickhouse and (data_dir / "clickhouse").exists():
        shutil.rmtree(data_dir / "clickhouse")
    clickhouse_builder = ClickhouseBuilder(data_dir / "clickhouse") if want_clickhouse else None
    tantivy_builder = (
        TantivyBuilder(data_dir, args.writer_heap_mib << 20, args.writer_threads) if want_tantivy else None
    )
    sqlite_builder = (
        SqliteBuilder(sqlite_dir, trigram=want_trigram, fts=want_rows) if (want_rows or want_trigram) else None
    )
    generate_seconds = 0.0
    document_bytes = 0
    total = 0
    started_all = time.perf_counter()
    for segment in segments(meta["anchor_ns"], args.days, args.events):
        started = time.perf_counter()
        events = generate_segment(args.seed, segment.index, segment.low_ns, segment.high_ns, segment.count, TENANT.org)
        generated = time.perf_counter() - started
        generate_seconds += generated
        if segment.index == 0:
            sample = [raw_document(document) for document in encode_documents(events[:10_000], stemming=False)]
            document_bytes = sum(len(document) for document in sample) / max(len(sample), 1)
        line = (
            f"  day {Partition(TENANT.org, segment.day).key}: {segment.count:>10,} events, generated {generated:6.1f}s"
        )
        if tantivy_builder is not None:
            elapsed = tantivy_builder.add_day(segment.day, events)
            line += f", logtraced {elapsed:6.1f}s ({segment.count / max(elapsed, 1e-9):,.0f}/s)"
        if sqlite_builder is not None:
            elapsed = sqlite_builder.add_day(events, rows=want_rows)
            line += f", sqlite {elapsed:6.1f}s ({segment.count / max(elapsed, 1e-9):,.0f}/s)"
        if clickhouse_builder is not None:
            elapsed = clickhouse_builder.add_day(events)
            line += f", clickhouse {elapsed:6.1f}s ({segment.count / max(elapsed, 1e-9):,.0f}/s)"
        total += segment.count
        progress(line + f"  [{total:,}/{args.events:,}, {time.perf_counter() - started_all:.0f}s]")
        del events
    if sqlite_builder is not None:
        progress("  sqlite: creating B-tree indexes, ANALYZE, FTS optimize ...")
        sqlite_builder.finish(rows=want_rows)
        progress(f"  sqlite finished: {sqlite_builder.seconds}")
    if clickhouse_builder is not None:
        progress("  clickhouse: OPTIMIZE TABLE FINAL ...")
        clickhouse_builder.finish()
        meta["build_seconds"]["clickhouse_insert"] = clickhouse_builder.seconds["insert"]
        meta["build_seconds"]["clickhouse_optimize"] = clickhouse_builder.seconds["optimize"]
        meta["built"]["clickhouse"] = True
    meta["generate_seconds"] = meta.get("generate_seconds") or generate_seconds
    if document_bytes:
        meta["average_document_bytes"] = document_bytes
    if tantivy_builder is not None:
        meta["build_seconds"]["logtraced"] = tantivy_builder.seconds
        meta["built"]["logtraced"] = True
    if sqlite_builder is not None:
        seconds = sqlite_builder.seconds
        if want_rows:
            meta["build_seconds"]["sqlite_rows"] = seconds["rows"]
            meta["build_seconds"]["sqlite_fts_unicode61"] = seconds["fts"]
            meta["build_seconds"]["sqlite_btree_indexes_and_analyze"] = seconds["indexes"]
            meta["built"]["sqlite"] = True
        if want_trigram:
            meta["build_seconds"]["sqlite_fts_trigram"] = seconds["trigram"]
            meta["built"]["trigram"] = True
        meta["build_seconds"]["sqlite_fts_optimize"] = (
            meta["build_seconds"].get("sqlite_fts_optimize", 0.0) + seconds["optimize"]
        )
    write_meta(data_dir, meta)
    return meta


def load_meta(data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    path = data_dir / META_FILE
    if path.exists():
        meta = json.loads(path.read_text())
        same = (meta.get("version"), meta.get("events"), meta.get("days"), meta.get("seed")) == (
            META_VERSION,
            args.events,
            args.days,
            args.seed,
        )
        if not same:
            raise SystemExit(
                f"{data_dir} holds a dataset of events={meta.get('events')} days={meta.get('days')} "
                f"seed={meta.get('seed')}; pass the same values or another --data-dir"
            )
        progress(f"reusing the dataset in {data_dir} (built {', '.join(k for k, v in meta['built'].items() if v)})")
        return meta
    return {
        "version": META_VERSION,
        "events": args.events,
        "days": args.days,
        "seed": args.seed,
        "anchor_ns": time.time_ns() // NS_PER_SECOND * NS_PER_SECOND,
        "built": {},
        "build_seconds": {},
    }


def write_meta(data_dir: Path, meta: dict[str, Any]) -> None:
    (data_dir / META_FILE).write_text(json.dumps(meta, indent=2))


# -- questions ------------------------------------------------------------------------------------

Answer = list[Any]  # row timestamps, or label names/values


@dataclasses.dataclass
class Variant:
    name: str
    run: Callable[[], Answer]
    sql: str | None = None  # for EXPLAIN QUERY PLAN in the report
    params: Sequence[Any] = ()


@dataclasses.dataclass
class Question:
    key: str
    title: str
    query: str  # what was asked of logtraced
    target_ms: float  # the p50 it must meet: 20 ms a search, 50 ms a rare one, 1 ms discovery, 300 ms a count
    logtraced: Callable[[], Answer]
    sqlite: list[Variant]
    clickhouse: list[Variant] = dataclasses.field(default_factory=list)


def logtraced_rows(view: TenantView, start_ns: int, end_ns: int, pipeline: Pipeline) -> Callable[[], Answer]:
    def run() -> Answer:
        page = view.search(SearchRequest(start_ns, end_ns, pipeline, LIMIT))
        return [row.event.timestamp for row in page.rows]

    return run


def sqlite_rows(connection: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Callable[[], Answer]:
    """Rows as the query API needs them: every column, attributes decoded."""
    decode = msgspec.json.decode

    def run() -> Answer:
        rows = connection.execute(sql, params).fetchall()
        for row in rows:
            decode(row[10])
        return [row[1] for row in rows]

    return run


EVENT_COLUMNS = "e.id, e.ts, e.message, e.level, e.service, e.host, e.env, e.org, e.idx, e.tags, e.attributes"


WINDOW_FIRST_ID = "(SELECT id FROM events WHERE ts >= ? ORDER BY ts LIMIT 1)"
WINDOW_LAST_ID = "(SELECT id FROM events WHERE ts < ? ORDER BY ts DESC LIMIT 1)"


def id_window(column: str) -> str:
    """The time window as a rowid range (two index look-ups), so scans run newest first and stop early.

    Rows are inserted in time order, so this equals `ts >= ? AND ts < ?`; written on `ts` itself,
    SQLite reads the whole window through the ts index and sorts it before applying LIMIT.
    """
    return f"{column} BETWEEN {WINDOW_FIRST_ID} AND {WINDOW_LAST_ID}"


def sql_scan(where: str) -> str:
    return (
        f"SELECT {EVENT_COLUMNS} FROM events e WHERE {id_window('e.id')} AND {where} ORDER BY e.id DESC LIMIT {LIMIT}"
    )


def sql_fts(table: str, extra: str = "") -> str:
    return (
        f"SELECT {EVENT_COLUMNS} FROM {table} f JOIN events e ON e.id = f.rowid "
        f"WHERE {table} MATCH ? AND {id_window('f.rowid')} {extra} ORDER BY f.rowid DESC LIMIT {LIMIT}"
    )


def questions(
    view: TenantView, connection: sqlite3.Connection | None, start_ns: int, end_ns: int, trigram: bool
) -> list[Question]:
    service = "checkout"
    window = (start_ns, end_ns)
    last = end_ns - 1

    def kql(text: str) -> Callable[[], Answer]:
        return logtraced_rows(view, start_ns, end_ns, Pipeline((Filter(parse_kql(text)),)))

    def pipe(operator: str, value: str) -> Callable[[], Answer]:
        body = {"pipeline": [{"type": "filter", "query": {operator: ["message", value]}}]}
        return logtraced_rows(view, start_ns, end_ns, parse_pipeline(body))

    def variants(*items: tuple[str, str, Sequence[Any], bool]) -> list[Variant]:
        if connection is None:
            return []
        return [
            Variant(name, sqlite_rows(connection, sql, params), sql, params)
            for name, sql, params, needs_trigram in items
            if trigram or not needs_trigram
        ]

    def labels_sqlite() -> Answer:
        assert connection is not None
        found = []
        for name in LABEL_FIELDS:
            column = SQL_COLUMN.get(name, name)
            sql = f"SELECT 1 FROM events WHERE {id_window('id')} AND {column} != '' LIMIT 1"
            if connection.execute(sql, window).fetchone():
                found.append(name)
        return found

    def values_sqlite() -> Answer:
        assert connection is not None
        sql = (
            f"SELECT DISTINCT service FROM events WHERE {id_window('id')} AND service != '' ORDER BY service LIMIT 1000"
        )
        return [row[0] for row in connection.execute(sql, window)]

    def values_skip_scan() -> Answer:
        """A loose index scan over (service, rowid): one seek per distinct value, window still applied."""
        assert connection is not None
        low, high = connection.execute(f"SELECT {WINDOW_FIRST_ID}, {WINDOW_LAST_ID}", window).fetchone()
        sql = """
            WITH RECURSIVE seen(value) AS (
                SELECT min(service) FROM events INDEXED BY events_service
                WHERE service != '' AND id BETWEEN :low AND :high
                UNION ALL
                SELECT (
                    SELECT min(service) FROM events INDEXED BY events_service
                    WHERE service > seen.value AND id BETWEEN :low AND :high
                )
                FROM seen WHERE seen.value IS NOT NULL LIMIT 1000
            )
            SELECT value FROM seen WHERE value IS NOT NULL
        """
        return [row[0] for row in connection.execute(sql, {"low": low, "high": high})]

    common_regex = "error.*timeout|connection.*refused"
    count_start = end_ns - COUNT_SPAN_NS

    def counts_logtraced() -> Answer:
        request = CountRequest(
            count_start, end_ns, Pipeline((Filter(MatchAll()),)), COUNT_STEP_NS, by=("level",)
        )  # fmt: skip
        result = view.count(request)
        return sorted((step, s.labels["level"], n) for s in result.series for step, n in s.counts.items())

    def counts_sqlite() -> Answer:
        assert connection is not None
        sql = (
            "SELECT :start + (ts - :start) / :step * :step, level, count(*) FROM events "
            "WHERE id BETWEEN (SELECT id FROM events WHERE ts >= :start ORDER BY ts LIMIT 1) "
            "AND (SELECT id FROM events WHERE ts < :end ORDER BY ts DESC LIMIT 1) GROUP BY 1, 2"
        )
        rows = connection.execute(sql, {"start": count_start, "end": end_ns, "step": COUNT_STEP_NS})
        return sorted(tuple(row) for row in rows)

    return [
        Question(
            "a",
            "label service=X, level=error",
            f"KQL service:{service} and level:error",
            20,
            kql(f"service:{service} and level:error"),
            variants(("B-tree", sql_scan("e.service = ? AND e.level = ?"), (*window, service, "error"), False)),
        ),
        Question(
            "b",
            "term (free text)",
            "KQL timeout",
            20,
            kql("timeout"),
            variants(("FTS5 unicode61", sql_fts("events_fts"), ("timeout", *window), False)),
        ),
        Question(
            "c",
            "phrase",
            'KQL "connection refused"',
            20,
            kql('"connection refused"'),
            variants(("FTS5 unicode61", sql_fts("events_fts"), ('"connection refused"', *window), False)),
        ),
        Question(
            "d",
            "$contains (common)",
            '$contains ["message", "connect"]',
            20,
            pipe("$contains", "connect"),
            variants(
                ("LIKE scan", sql_scan("e.message LIKE ?"), (*window, "%connect%"), False),
                ("FTS5 trigram", sql_fts("events_tri"), ('"connect"', *window), True),
            ),
        ),
        Question(
            "e",
            "$regex alternation",
            f'$regex ["message", "{common_regex}"]',
            20,
            pipe("$regex", common_regex),
            variants(
                ("REGEXP scan", sql_scan("e.message REGEXP ?"), (*window, common_regex), False),
                (
                    "trigram+REGEXP",
                    sql_fts("events_tri", "AND e.message REGEXP ?"),
                    ('("error" AND "timeout") OR ("connection" AND "refused")', *window, common_regex),
                    True,
                ),
            ),
        ),
        Question(
            "f1",
            "label names",
            "label_names",
            1,
            lambda: view.label_names(start_ns, last + 1),
            [Variant("EXISTS per column", labels_sqlite)] if connection is not None else [],
        ),
        Question(
            "f2",
            "label values (service)",
            "label_values service",
            1,
            lambda: view.label_values("service", start_ns, last + 1, 1000),
            [Variant("SELECT DISTINCT", values_sqlite), Variant("skip-scan CTE", values_skip_scan)]
            if connection is not None
            else [],
        ),
        Question(
            "g",
            "rare $contains",
            f'$contains ["message", "{RARE_SUBSTRING}"]',
            50,
            pipe("$contains", RARE_SUBSTRING),
            variants(
                ("LIKE scan", sql_scan("e.message LIKE ?"), (*window, f"%{RARE_SUBSTRING}%"), False),
                ("FTS5 trigram", sql_fts("events_tri"), (f'"{RARE_SUBSTRING}"', *window), True),
            ),
        ),
        Question(
            "h",
            "rare $regex",
            f'$regex ["message", "{RARE_REGEX}"]',
            50,
            pipe("$regex", RARE_REGEX),
            variants(
                ("REGEXP scan", sql_scan("e.message REGEXP ?"), (*window, RARE_REGEX), False),
                (
                    "trigram+REGEXP",
                    sql_fts("events_tri", "AND e.message REGEXP ?"),
                    ('"ERR-" AND "-FATAL"', *window, RARE_REGEX),
                    True,
                ),
            ),
        ),
        Question(
            "i",
            "counts per minute by level, 24 h",
            "count step=1m by level",
            300,
            counts_logtraced,
            [Variant("GROUP BY rowid range", counts_sqlite)] if connection is not None else [],
        ),
    ]


def clickhouse_variants(ch: Any, start_ns: int, end_ns: int) -> dict[str, list[Variant]]:
    """The same questions in ClickHouse SQL, by question key; rows decoded as for SQLite."""
    decode = msgspec.json.decode
    window = f"timestamp >= fromUnixTimestamp64Nano({start_ns}) AND timestamp < fromUnixTimestamp64Nano({end_ns})"
    columns = "toUnixTimestamp64Nano(timestamp), id, message, level, service, host, env, org, idx, tags, attributes"

    def rows(where: str) -> Variant:
        sql = f"SELECT {columns} FROM logs WHERE {window} AND {where} ORDER BY timestamp DESC LIMIT {LIMIT}"

        def run() -> Answer:
            return [decode(line)[0] for line in ch.query(sql, "JSONCompactEachRow").bytes().splitlines()]

        return Variant("MergeTree", run, sql)

    def plain(name: str, sql: str, shape: Callable[[list[Any]], Answer]) -> Variant:
        def run() -> Answer:
            return shape([decode(line) for line in ch.query(sql, "JSONCompactEachRow").bytes().splitlines()])

        return Variant(name, run, sql)

    def names(found: list[Any]) -> Answer:
        return [name for name, present in zip(LABEL_FIELDS, found[0], strict=True) if present]

    present = ", ".join(f"max({SQL_COLUMN.get(name, name)} != '')" for name in LABEL_FIELDS)
    count_start = end_ns - COUNT_SPAN_NS
    counts = (
        f"SELECT {count_start} + intDiv(toUnixTimestamp64Nano(timestamp) - {count_start}, {COUNT_STEP_NS})"
        f" * {COUNT_STEP_NS} AS step, level, count() FROM logs"
        f" WHERE timestamp >= fromUnixTimestamp64Nano({count_start})"
        f" AND timestamp < fromUnixTimestamp64Nano({end_ns}) GROUP BY step, level"
    )
    phrase = r"(^|[^\\p{L}\\p{N}])connection[^\\p{L}\\p{N}]+refused([^\\p{L}\\p{N}]|$)"
    regex = "error.*timeout|connection.*refused"
    return {
        "a": [rows("service = 'checkout' AND level = 'error'")],
        "b": [rows("hasToken(lower(message), 'timeout')")],
        "c": [
            rows(
                "hasToken(lower(message), 'connection') AND hasToken(lower(message), 'refused')"
                f" AND match(lower(message), '{phrase}')"
            )
        ],
        "d": [rows("message LIKE '%connect%'")],
        "e": [rows(f"match(message, '{regex}')")],
        "f1": [plain("max per column", f"SELECT {present} FROM logs WHERE {window}", names)],
        "f2": [
            plain(
                "SELECT DISTINCT",
                f"SELECT DISTINCT service FROM logs WHERE {window} AND service != '' ORDER BY service LIMIT 1000",
                lambda found: [row[0] for row in found],
            )
        ],
        "g": [rows(f"message LIKE '%{RARE_SUBSTRING}%'")],
        "h": [rows("match(message, 'ERR-\\\\d{5}-FATAL')")],
        "i": [plain("GROUP BY", counts, lambda found: sorted(tuple(row) for row in found))],
    }


# -- measuring ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Timing:
    p50_ms: float
    p99_ms: float
    runs: int
    answer: Answer


def measure(run: Callable[[], Answer], repeat: int, budget_seconds: float, min_runs: int = 5) -> Timing:
    """One warm-up, then `repeat` timed runs (fewer, but at least `min_runs`, when a run is slow)."""
    started = time.perf_counter()
    answer = run()
    warm_up = time.perf_counter() - started
    runs = (
        repeat
        if warm_up * repeat <= budget_seconds
        else max(min_runs, min(repeat, int(budget_seconds / max(warm_up, 1e-9))))
    )
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    p99 = statistics.quantiles(samples, n=100, method="inclusive")[98] if len(samples) > 1 else samples[0]
    return Timing(statistics.median(samples), p99, runs, answer)


def machine() -> dict[str, Any]:
    memory = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "memory_bytes": memory,
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "tantivy": getattr(tantivy, "__version__", ""),
        "regex_engine": REGEX_ENGINE,
    }


def memory() -> dict[str, int]:
    """This process's peak and current resident memory and its anonymous part (the rest is mapped files).

    Run with --skip-sqlite --skip-clickhouse it is the read side of logtraced alone over the data set.
    """
    wanted = {"VmHWM": "peak_rss_bytes", "VmRSS": "rss_bytes", "RssAnon": "rss_anon_bytes"}
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in wanted:
            found[wanted[name]] = int(value.split()[0]) * 1024
    return found


def sizes(data_dir: Path, ch: Any = None) -> dict[str, int]:
    found = {}
    if ch is not None:
        sql = "SELECT sum(bytes_on_disk) FROM system.parts WHERE table = 'logs' AND active"
        found["clickhouse_bytes"] = int(ch.query(sql, "CSV").bytes().decode().strip())
    if (data_dir / "index").exists():
        found["logtraced_index_bytes"] = directory_bytes(data_dir / "index")
    for name, file in (("sqlite_events_db_bytes", "events.db"), ("sqlite_trigram_db_bytes", "trigram.db")):
        path = data_dir / "sqlite" / file
        if path.exists():
            found[name] = path.stat().st_size
    return found


def sqlite_table_bytes(connection: sqlite3.Connection, trigram: bool) -> dict[str, int]:
    """Bytes per table and index (dbstat), FTS shadow tables summed under their FTS table."""
    totals: dict[str, int] = {}
    schemas = ["main", "tri"] if trigram else ["main"]
    for schema_name in schemas:
        for name, size in connection.execute("SELECT name, sum(pgsize) FROM dbstat(?) GROUP BY name", (schema_name,)):
            owner = next((t for t in ("events_fts", "events_tri") if name.startswith(t)), name)
            totals[owner] = totals.get(owner, 0) + size
    return totals


def segment_counts(reader: IndexReader, start_ns: int, end_ns: int) -> dict[str, dict[str, int]]:
    found = {}
    for partition in reader.partitions(TENANT, start_ns, end_ns, newest_first=False):
        index = reader.index(partition)
        if index is not None:
            searcher = index.searcher()
            found[partition.key] = {"documents": searcher.num_docs, "segments": searcher.num_segments}
    return found


def compare(logtraced_answer: Answer, answer: Answer) -> str | None:
    """None when both engines gave the same answer, else what differs."""
    if answer == logtraced_answer:
        return None
    if len(answer) != len(logtraced_answer):
        return f"row count differs: logtraced {len(logtraced_answer)}, sqlite {len(answer)}"
    differing = sum(1 for a, b in zip(answer, logtraced_answer, strict=True) if a != b)
    return f"same row count ({len(answer)}) but {differing} rows differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=30, help="timed runs of each query after one warm-up")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds one measurement may take (>= 5 runs)")
    parser.add_argument("--min-runs", type=int, default=5, help="timed runs of a slow query, at least")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--data-dir", type=Path, help="build here, or reuse the dataset built here before")
    parser.add_argument("--skip-sqlite", action="store_true", help="build and measure logtraced only")
    parser.add_argument("--skip-clickhouse", action="store_true", help="no ClickHouse (chdb) baseline")
    parser.add_argument("--no-trigram", dest="trigram", action="store_false", help="no FTS5 trigram table")
    parser.add_argument("--writer-heap-mib", type=int, default=1024)
    parser.add_argument("--writer-threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()

    temporary = None
    if args.data_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="bench-query-")
        data_dir = Path(temporary.name)
    else:
        data_dir = args.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
    try:
        meta = build(data_dir, args, load_meta(data_dir, args))
        report = run_questions(data_dir, args, meta)
    finally:
        if temporary is not None:
            temporary.cleanup()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_table(report)


def settle_word_lists(asked: list[Question]) -> float:
    """Ask every logtraced question once, then wait for the word lists those searches queued; seconds taken.

    A settled partition's message words are listed once, in a background thread
    (logtraced/storage/tantivy/words.py), the first time a search needs them; on a node that has
    been serving they are long built, so the timed runs start after them.
    """
    started = time.perf_counter()
    for question in asked:
        question.logtraced()
    while any(thread.name == "word-lists" for thread in threading.enumerate()):
        time.sleep(0.05)
    return time.perf_counter() - started


def run_questions(data_dir: Path, args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    anchor = meta["anchor_ns"]
    start_ns, end_ns = anchor - args.days * NS_PER_DAY, anchor + 1
    reader = IndexReader(PartitionLayout(data_dir))
    view = TantivyStore(data_dir).for_tenant(TENANT)
    use_sqlite = not args.skip_sqlite
    trigram = use_sqlite and args.trigram and bool(meta["built"].get("trigram"))
    connection = sqlite_connect(data_dir / "sqlite", trigram=trigram) if use_sqlite else None
    use_clickhouse = not args.skip_clickhouse and bool(meta["built"].get("clickhouse"))
    ch = clickhouse_connect(data_dir / "clickhouse") if use_clickhouse else None
    ch_variants = clickhouse_variants(ch, start_ns, end_ns) if ch is not None else {}
    results = []
    mismatches = []
    settled_s = settle_word_lists(list(questions(view, None, start_ns, end_ns, False)))
    load_before = list(os.getloadavg())
    for question in questions(view, connection, start_ns, end_ns, trigram):
        progress(f"measuring ({question.key}) {question.title} ...")
        ours = measure(question.logtraced, args.repeat, args.budget, args.min_runs)
        entry: dict[str, Any] = {
            "key": question.key,
            "question": question.title,
            "query": question.query,
            "target_p50_ms": question.target_ms,
            "logtraced": {"p50_ms": ours.p50_ms, "p99_ms": ours.p99_ms, "runs": ours.runs, "rows": len(ours.answer)},
            "meets_target": ours.p50_ms <= question.target_ms,
            "sqlite": [],
            "clickhouse": [],
        }
        if question.key in ("f1", "f2"):
            entry["logtraced"]["answer"] = ours.answer
        baselines = [("sqlite", variant) for variant in question.sqlite]
        baselines += [("clickhouse", variant) for variant in ch_variants.get(question.key, [])]
        for engine, variant in baselines:
            theirs = measure(variant.run, args.repeat, args.budget, args.min_runs)
            mismatch = compare(ours.answer, theirs.answer)
            if mismatch:
                mismatches.append(f"({question.key}) {question.title} vs {engine} {variant.name}: {mismatch}")
                progress(f"!!! MISMATCH ({question.key}) {question.title} vs {engine} {variant.name}: {mismatch}")
            entry[engine].append(
                {
                    "variant": variant.name,
                    "p50_ms": theirs.p50_ms,
                    "p99_ms": theirs.p99_ms,
                    "runs": theirs.runs,
                    "rows": len(theirs.answer),
                    "ratio_sqlite_to_logtraced": theirs.p50_ms / ours.p50_ms if ours.p50_ms else None,
                    "same_answer": mismatch is None,
                    "mismatch": mismatch,
                }
            )
        best = min((variant["p50_ms"] for variant in entry["sqlite"]), default=None)
        entry["sqlite_best_to_logtraced"] = best / ours.p50_ms if best is not None and ours.p50_ms else None
        results.append(entry)
    report: dict[str, Any] = {
        "load_average_before_after": [load_before, list(os.getloadavg())],
        "word_lists_settled_s": round(settled_s, 2),
        "events": args.events,
        "days": args.days,
        "seed": args.seed,
        "repeat": args.repeat,
        "limit": LIMIT,
        "window_ns": [start_ns, end_ns],
        "machine": machine(),
        "average_document_bytes": meta.get("average_document_bytes"),
        "generate_seconds": meta.get("generate_seconds"),
        "build_seconds": meta["build_seconds"],
        "sizes_bytes": sizes(data_dir, ch),
        "memory": memory(),
        "raw_bytes": args.events * (meta.get("average_document_bytes") or 0),
        "partitions": segment_counts(reader, start_ns, end_ns - 1),
        "writer": {"heap_mib": args.writer_heap_mib, "threads": args.writer_threads},
        "sqlite_trigram": trigram,
        "results": results,
        "mismatches": mismatches,
    }
    if connection is not None:
        report["sqlite_table_bytes"] = sqlite_table_bytes(connection, trigram)
        report["sqlite_plans"] = {
            f"{question.key} {variant.name}": plan(connection, variant)
            for question in questions(view, connection, start_ns, end_ns, trigram)
            for variant in question.sqlite
        }
        connection.close()
    if ch is not None:
        report["clickhouse_version"] = ch.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
        ch.close()
    return report


def plan(connection: sqlite3.Connection, variant: Variant) -> list[str]:
    if variant.sql is None:
        return []
    return [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + variant.sql, variant.params)]


def print_table(report: dict[str, Any]) -> None:
    machine_info = report["machine"]
    print(
        f"events={report['events']:,} days={report['days']} seed={report['seed']} repeat={report['repeat']} "
        f"limit={report['limit']} nproc={machine_info['nproc']} mem={machine_info['memory_bytes'] / 2**30:.0f}GiB "
        f"sqlite={machine_info['sqlite']} regex={machine_info['regex_engine']}"
    )
    print(f"load average before/after: {report['load_average_before_after']}")
    print("build seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in report["build_seconds"].items()))
    print("on disk: " + ", ".join(f"{name} {value / 2**20:,.0f} MiB" for name, value in report["sizes_bytes"].items()))
    row = "{:<34} {:>19} {:>10}  {:<25} {:>19} {:>9}"
    header = row.format("question", "logtraced p50/p99", "target", "baseline", "baseline p50/p99", "ratio")
    print(header)
    print("-" * len(header))
    for entry in report["results"]:
        ours = entry["logtraced"]
        question = f"({entry['key']}) {entry['question']}"
        timing = f"{ours['p50_ms']:.2f}/{ours['p99_ms']:.2f}"
        target = f"<={entry['target_p50_ms']:g} {'ok' if entry['meets_target'] else 'MISS'}"
        variants = [("sqlite", v) for v in entry["sqlite"]] + [("ch", v) for v in entry.get("clickhouse", [])]
        for engine, variant in variants or [("", None)]:
            if variant is None:
                print(row.format(question, timing, target, "", "", ""))
                continue
            ratio = variant["ratio_sqlite_to_logtraced"]
            theirs = f"{variant['p50_ms']:.2f}/{variant['p99_ms']:.2f}"
            same = "" if variant["same_answer"] else "  MISMATCH"
            name = f"{engine} {variant['variant']}"
            print(row.format(question, timing, target, name, theirs, f"{ratio:.3g}x") + same)
            question = timing = target = ""
    print("times in ms; ratio = baseline p50 / logtraced p50 (above 1: logtraced is faster)")
    print("memory: " + ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in report["memory"].items()))
    raw = report.get("raw_bytes") or 0
    if raw:
        print(
            "bytes on disk per raw byte: " + ", ".join(f"{k} {v / raw:.3f}" for k, v in report["sizes_bytes"].items())
        )
    for mismatch in report["mismatches"]:
        print(f"!!! MISMATCH {mismatch}")


if __name__ == "__main__":
    main()
