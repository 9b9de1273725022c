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
  trigrams instead of scanning the whole message column.

With `clickhouse.cluster` set, `events_local` is a ReplicatedMergeTree on every node (created
ON CLUSTER) and `events` a Distributed table over it, sharded by event id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from logtraced.errors import StorageError
from logtraced.storage.clickhouse.client import Client

SCHEMA_VERSION: Final = 2
EVENTS: Final = "events"
VERSIONS: Final = "schema_versions"
# The embedded engine's version mark, read by `serve` before the writer process opens the directory.
VERSION_FILE: Final = "logtraced-schema.json"
NS_PER_DAY_SQL: Final = "86400000000000"
# Columns in the order the writer sends them and the store reads them.
COLUMNS: Final = ("timestamp", "id", "org", "env", "level", "service", "host", "index", "tags", "message", "attributes")
LABEL_COLUMNS: Final = ("service", "level", "env", "host", "index")  # the stream labels, in the APIs' order
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
        return f"`{self.database}`.`{EVENTS}`"

    @property
    def local_events(self) -> str:
        """The table inserts and partition drops address on each node."""
        return f"`{self.database}`.`{EVENTS}_local`" if self.cluster else self.events

    @property
    def versions(self) -> str:
        return f"`{self.database}`.`{VERSIONS}`"

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
# Statements taking version N-1 to N, by N; version 1 is `create_statements`.  A MATERIALIZE is a
# mutation: `mutations_sync` makes `migrate` return once existing parts hold the index.
MIGRATIONS: Final[dict[int, list[str]]] = {
    2: [
        f"ALTER TABLE {{events}}{{on}} ADD {NGRAM_INDEX_DDL.replace('INDEX', 'INDEX IF NOT EXISTS', 1)}",
        f"ALTER TABLE {{events}}{{on}} MATERIALIZE INDEX {MESSAGE_NGRAMS} SETTINGS mutations_sync = 2",
    ],
}


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
        for statement in MIGRATIONS[version]:
            client.command(statement.format(events=target.local_events, on=target.on_cluster))
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
