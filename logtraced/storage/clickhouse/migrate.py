"""`logtraced migrate`: create or upgrade the ClickHouse schema, and copy Tantivy partitions into it.

The copy is resumable: each partition (one organisation's day) is read in id order and inserted
in chunks, and a re-run starts after the largest id ClickHouse already holds for that
organisation and day.  Copy before switching the daemon to ClickHouse: events it then writes into
the same organisation and day would make the copy start after them.  Attributes come back from
Tantivy with its date normalisation (RFC 3339 strings as UTC `...Z`), the one way copied events
differ from those ClickHouse receives first-hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from logtraced.config import Config
from logtraced.model import NS_PER_DAY
from logtraced.storage.clickhouse import connect
from logtraced.storage.clickhouse.client import Client
from logtraced.storage.clickhouse.params import Params
from logtraced.storage.clickhouse.writer import INSERT_SETTINGS, encode_rows
from logtraced.storage.tantivy import export

COPY_CHUNK: Final = 50_000


@dataclass
class Progress:
    """What the copy has done so far, reported after every chunk."""

    partitions_done: int = 0
    partitions: int = 0
    events_done: int = 0
    events: int = 0


def migrate(config: Config, *, copy_tantivy: bool, report: Callable[[Progress], None]) -> tuple[int | None, int]:
    """Schema first, then (optionally) every Tantivy partition; returns the schema versions (before, after)."""
    client = connect.owner_client(config)
    try:
        versions = connect.migrate_schema(client, config)
        if copy_tantivy:
            _copy(client, config, report)
        return versions
    finally:
        client.close()


def _copy(client: Client, config: Config, report: Callable[[Progress], None]) -> None:
    found = export.partitions(config.data_path)
    progress = Progress(partitions=len(found), events=sum(count for _, count in found))
    target = connect.target(config)
    for partition, _ in found:
        after = _largest_id(client, config, partition.org, partition.day)
        for batch in export.events(config.data_path, partition, after, COPY_CHUNK):
            token = f"copy:{partition.org}:{partition.day}:{batch[0].id}-{batch[-1].id}"
            client.insert(target.events, encode_rows(batch), {**INSERT_SETTINGS, "insert_deduplication_token": token})
            progress.events_done += len(batch)
            report(progress)
        progress.partitions_done += 1
        report(progress)


def _largest_id(client: Client, config: Config, org: str, day: int) -> int:
    params = Params()
    sql = (
        f"SELECT max(`id`) FROM {connect.target(config).events} WHERE `org` = {params.text(org)} "
        f"AND `timestamp` >= {params.int64(day * NS_PER_DAY)} AND `timestamp` < {params.int64((day + 1) * NS_PER_DAY)}"
    )
    rows = client.query(sql, params.values)
    return int(rows[0][0]) if rows and rows[0][0] else -1
