"""The ClickHouse tables, their versions and the migrations between them; the one place that writes DDL.

Layout, and why:
- one `events` table partitioned by UTC day, so retention drops whole partitions (exactly the
  days the Tantivy backend deletes) and a query window prunes the rest;
- `ORDER BY (org, env, timestamp, id)`: every read is confined to one tenant and a time window
  and pages in (timestamp, id) order, so reads are range scans of the primary key;
- labels are `LowCardinality`, the message and the raw attributes ZSTD-compressed;
- `attributes` is the JSON text as sent (ClickHouse's JSON type re-nests dotted keys, and events
  must come back exactly as they arrived);
- `words` holds the message's words as logtraced splits them (Unicode words, lowercased), written
  by the writer, with a text index: `message:word` is then exact and indexed, where ClickHouse's
  own tokenizers split non-ASCII text differently from the reference semantics;
- an `ngrambf_v1` skip index of the message's trigrams (schema version 2), case-sensitive as
  `$contains` is: a rare substring skips every granule whose bloom filter lacks one of its
  trigrams instead of scanning the whole message column;
- a `label_rollup` of the stream labels (schema version 3): per tenant and UTC minute, each label
  name with each non-empty value it took, kept by a materialized view at every insert into the
  events table.  Label discovery reads it for the whole minutes of a window (labels.py): a set,
  so a row written twice (a retried insert, the upgrade's backfill beside the view) changes no
  answer, and ReplacingMergeTree merges such duplicates away.  A retried INSERT (same token) that
  the events table drops as a duplicate still reaches the view (tests/storage/clickhouse/
  test_label_rollup.py), so a view write lost with a failed INSERT is made good by the writer's
  retry.  Partitioned by the same UTC day as the events, so retention drops both alike.

With `clickhouse.cluster` set, `events_local` is a ReplicatedMergeTree on every node (created
ON CLUSTER) and `events` a Distributed table over it, sharded by event id; the rollup follows
the same pattern (`label_rollup_local` fed by a view on each node's `events_local`, read through
a Distributed `label_rollup`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from logtraced.errors import StorageError
from logtraced.storage.clickhouse.client import Client

SCHEMA_VERSION: Final = 3
EVENTS: Final = "events"
ROLLUP: Final = "label_rollup"
ROLLUP_VIEW: Final = "label_rollup_view"
VERSIONS: Final = "schema_versions"
# The embedded engine's version mark, read by `serve` before the writer process opens the directory.
VERSION_FILE: Final = "logtraced-schema.json"
NS_PER_DAY_SQL: Final = "86400000000000"
# Columns in the order the writer sends them and the store reads them.
COLUMNS: Final = ("timestamp", "id", "org", "env", "level", "service", "host", "index", "tags", "message", "attributes")
LABEL_COLUMNS: Final = ("service", "level", "env", "host", "index")  # the stream labels, in the APIs' order
# Every canonical label whose values discovery answers: the keyword columns and `tags` (an array).
KEYWORD_COLUMNS: Final = ("level", "service", "host", "env", "org", "index")
ROLLUP_LABELS: Final = (*KEYWORD_COLUMNS, "tags")
# The rollup's bucket, one UTC minute: a window's partial minutes at its two edges are read from the
# events table, at most two minutes of one tenant's events whatever the window; a coarser bucket would
# make those edge reads longer, a finer one the rollup larger.  A day holds a whole number of them.
NS_PER_BUCKET: Final = 60_000_000_000
BUCKETS_PER_DAY: Final = 1440
# The (name, value) pairs of an events row, one per keyword column and one per tag; empty values are
# not labels.  The view and the edge reads of label discovery expand rows with this one expression,
# so the rollup's minutes and the events table's edges answer alike.
LABEL_PAIRS_SQL: Final = (
    "arrayConcat(["
    + ", ".join(f"('{name}', `{name}`)" for name in KEYWORD_COLUMNS)
    + "], arrayMap(tag -> ('tags', tag), `tags`))"
)
# How many recent insert tokens a MergeTree remembers: a replay after a crash repeats at most a few commits.
DEDUPLICATION_WINDOW: Final = 1000

_COLUMN_DDL: Final = """
    `timestamp` Int64 CODEC(DoubleDelta, ZSTD(1)),
    `id` Int64 CODEC(Delta, ZSTD(1)),
    `org` LowCardinality(String),
    `env` LowCardinality(String),
    `level` LowCardinality(String),
    `service` LowCardinality(String),
    `host` LowCardinality(String),
    `index` LowCardinality(String),
    `tags` Array(LowCardinality(String)),
    `message` String CODEC(ZSTD(1)),
    `attributes` String CODEC(ZSTD(1)),
    `words` Array(String) CODEC(ZSTD(1)),
    INDEX words_text `words` TYPE text(tokenizer = 'array') GRANULARITY 1
"""


class SchemaMismatch(StorageError):
    """The database holds a schema this logtraced does not run on; the message names the command to run."""

    default_code = "schema_mismatch"


@dataclass(frozen=True)
class Target:
    """Where the tables live: the database, and the cluster (empty for a single node)."""

    database: str
    cluster: str = ""

    @property
    def events(self) -> str:
        return self._table(EVENTS)

    @property
    def local_events(self) -> str:
        """The table inserts and partition drops address on each node."""
        return self._local(EVENTS)

    @property
    def rollup(self) -> str:
        """The table label discovery reads (Distributed over every shard's rollup on a cluster)."""
        return self._table(ROLLUP)

    @property
    def local_rollup(self) -> str:
        """The table each node's view writes into and partition drops address."""
        return self._local(ROLLUP)

    @property
    def versions(self) -> str:
        return self._table(VERSIONS)

    def _table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def _local(self, name: str) -> str:
        """On a cluster, a Distributed table `name` reads `name`_local on every node; on one node they are one."""
        return self._table(f"{name}_local") if self.cluster else self._table(name)

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""


def create_statements(target: Target) -> list[str]:
    """DDL of schema version 1, idempotent (IF NOT EXISTS)."""
    on = target.on_cluster
    settings = "SETTINGS index_granularity = 8192"
    partition = f"PARTITION BY intDiv(`timestamp`, {NS_PER_DAY_SQL}) ORDER BY (`org`, `env`, `timestamp`, `id`)"
    statements = [f"CREATE DATABASE IF NOT EXISTS `{target.database}`{on}"]
    if target.cluster:
        path = f"'/clickhouse/tables/{{shard}}/{target.database}/{EVENTS}_local'"
        statements += [
            f"CREATE TABLE IF NOT EXISTS {target.local_events}{on} ({_COLUMN_DDL}) "
            f"ENGINE = ReplicatedMergeTree({path}, '{{replica}}') {partition} {settings}",
            f"CREATE TABLE IF NOT EXISTS {target.events}{on} AS {target.local_events} "
            f"ENGINE = Distributed(`{target.cluster}`, `{target.database}`, `{EVENTS}_local`, cityHash64(`id`))",
        ]
    else:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {target.events} ({_COLUMN_DDL}) ENGINE = MergeTree {partition} "
            f"{settings}, non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}"
        )
    engine = (
        f"ReplicatedMergeTree('/clickhouse/tables/{target.database}/{VERSIONS}', '{{replica}}')"
        if target.cluster
        else "MergeTree"
    )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {target.versions}{on} (`version` UInt32, `applied_at` DateTime DEFAULT now()) "
        f"ENGINE = {engine} ORDER BY `version`"
    )
    return statements


# Trigram bloom filter per 8 192-row granule: 64 KiB keeps false positives rare even for the tens of
# thousands of distinct trigrams a granule of ~380-byte messages holds (about 8 MiB per million rows).
MESSAGE_NGRAMS: Final = "message_ngrams"
NGRAM_INDEX_DDL: Final = f"INDEX {MESSAGE_NGRAMS} `message` TYPE ngrambf_v1(3, 65536, 3, 0) GRANULARITY 1"


def _trigram_index(target: Target) -> list[str]:
    """Version 2: the message trigram index.  A MATERIALIZE is a mutation: `mutations_sync` makes `migrate`
    return once existing parts hold the index."""
    events, on = target.local_events, target.on_cluster
    return [
        f"ALTER TABLE {events}{on} ADD {NGRAM_INDEX_DDL.replace('INDEX', 'INDEX IF NOT EXISTS', 1)}",
        f"ALTER TABLE {events}{on} MATERIALIZE INDEX {MESSAGE_NGRAMS} SETTINGS mutations_sync = 2",
    ]


def _rollup_select(source: str) -> str:
    """The rollup rows of `source`'s events: one per tenant, minute, name and non-empty value.

    Only events at or after the epoch: `intDiv` truncates toward zero, so minutes (and days) are even
    buckets only there; label discovery reads earlier times from the events table.
    """
    return (
        f"SELECT `org`, `env`, intDiv(`timestamp`, {NS_PER_BUCKET}) AS `minute`, pair.1 AS `name`, "
        f"pair.2 AS `value` FROM {source} ARRAY JOIN {LABEL_PAIRS_SQL} AS pair "
        "WHERE `timestamp` >= 0 AND `value` != '' GROUP BY `org`, `env`, `minute`, `name`, `value`"
    )


def _label_rollup(target: Target) -> list[str]:
    """Version 3: the label rollup, the view that keeps it, and a backfill from the events already stored.

    The view comes first: events inserted during the backfill are then rolled up by the view, the
    backfill, or both (a set: both is harmless), never by neither.  The backfill reads every stored
    event once, so it takes as long as a scan of the events table.  Values are LowCardinality as the
    label columns they come from are (a tag too): DISTINCT then works on dictionary positions.
    """
    on = target.on_cluster
    columns = (
        "`org` LowCardinality(String), `env` LowCardinality(String), `minute` Int64 CODEC(Delta, ZSTD(1)), "
        "`name` LowCardinality(String), `value` LowCardinality(String)"
    )
    layout = f"PARTITION BY intDiv(`minute`, {BUCKETS_PER_DAY}) ORDER BY (`org`, `env`, `name`, `minute`, `value`)"
    statements: list[str] = []
    if target.cluster:
        path = f"'/clickhouse/tables/{{shard}}/{target.database}/{ROLLUP}_local'"
        statements += [
            f"CREATE TABLE IF NOT EXISTS {target.local_rollup}{on} ({columns}) "
            f"ENGINE = ReplicatedReplacingMergeTree({path}, '{{replica}}') {layout}",
            # Any shard may hold any row: discovery asks every shard and keeps distinct values.
            f"CREATE TABLE IF NOT EXISTS {target.rollup}{on} AS {target.local_rollup} "
            f"ENGINE = Distributed(`{target.cluster}`, `{target.database}`, `{ROLLUP}_local`, rand())",
        ]
    else:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {target.rollup} ({columns}) ENGINE = ReplacingMergeTree {layout}"
        )
    statements += [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{target.database}`.`{ROLLUP_VIEW}`{on} TO {target.local_rollup} "
        f"AS {_rollup_select(target.local_events)}",
        f"INSERT INTO {target.rollup} {_rollup_select(target.events)} SETTINGS distributed_foreground_insert = 1",
    ]
    return statements


# Statements taking version N-1 to N, by N; version 1 is `create_statements`, and a fresh database runs
# every migration after it (each is cheap on empty tables).
MIGRATIONS: Final[dict[int, Callable[[Target], list[str]]]] = {2: _trigram_index, 3: _label_rollup}


def installed_version(client: Client, target: Target) -> int | None:
    """The schema version the database holds, or None when logtraced never created its tables there."""
    rows = client.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        {"db": target.database, "table": VERSIONS},
    )
    if not rows or not rows[0][0]:
        return None
    found = client.query(f"SELECT max(`version`) FROM {target.versions}")
    return int(found[0][0]) if found and found[0][0] else None


def migrate(client: Client, target: Target) -> tuple[int | None, int]:
    """Create or upgrade the schema to SCHEMA_VERSION; returns (version found, version now)."""
    found = installed_version(client, target)
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaMismatch(_newer(found))
    if found is None:
        for statement in create_statements(target):
            client.command(statement)
        _record(client, target, 1)
        found_now = 1
    else:
        found_now = found
    for version in range(found_now + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version](target):
            client.command(statement)
        _record(client, target, version)
    return found, SCHEMA_VERSION


def _record(client: Client, target: Target, version: int) -> None:
    client.command(f"INSERT INTO {target.versions} (`version`) VALUES ({{version:UInt32}})", {"version": version})


def check(found: int | None, *, create_if_absent: bool) -> None:
    """Refuse to run on a schema this logtraced does not know, saying what to run; None is a fresh database."""
    if found == SCHEMA_VERSION or (found is None and create_if_absent):
        return
    if found is None:
        raise SchemaMismatch("the ClickHouse database has no logtraced tables: run `logtraced migrate` first")
    if found > SCHEMA_VERSION:
        raise SchemaMismatch(_newer(found))
    raise SchemaMismatch(
        f"the ClickHouse schema is version {found}, this logtraced runs on {SCHEMA_VERSION}: "
        "stop the daemon and run `logtraced migrate`"
    )


def _newer(found: int) -> str:
    return (
        f"the ClickHouse schema is version {found}, newer than this logtraced knows ({SCHEMA_VERSION}): "
        "upgrade logtraced"
    )


def write_version_file(directory: Path, version: int) -> None:
    """Mirror the embedded database's version where `serve` can read it without opening the engine."""
    (directory / VERSION_FILE).write_text(json.dumps({"schema_version": version}))


def read_version_file(directory: Path) -> int | None:
    try:
        return int(json.loads((directory / VERSION_FILE).read_text())["schema_version"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise SchemaMismatch(f"{directory / VERSION_FILE} is unreadable ({exc}): run `logtraced migrate`") from None
