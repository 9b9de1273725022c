"""Reads whole Tantivy day-partitions back as events, in id order, for copying them into another backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import tantivy

from logtraced.model import Event
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.documents import projector
from logtraced.storage.tantivy.partitions import Partition, PartitionLayout, open_index
from logtraced.storage.tantivy.reader import hit_count


def partitions(data_dir: Path) -> list[tuple[Partition, int]]:
    """Every partition on disk with its number of events, oldest day first."""
    layout = PartitionLayout(data_dir)
    found: list[tuple[Partition, int]] = []
    for partition in layout.existing():
        index = open_index(layout.path(partition), stemming=False, create=False)
        if index is not None:
            found.append((partition, hit_count(index.searcher(), tantivy.Query.all_query())))
    return found


def events(data_dir: Path, partition: Partition, after_id: int, chunk: int) -> Iterator[list[Event]]:
    """The partition's events with ids above `after_id`, ascending, `chunk` at a time."""
    index = open_index(PartitionLayout(data_dir).path(partition), stemming=False, create=False)
    if index is None:
        return
    searcher = index.searcher()
    read = projector(None, whole=schema.stores_events(index.schema))
    while True:
        query = tantivy.Query.range_query(index.schema, schema.ID, tantivy.FieldType.Integer, after_id + 1, 2**63 - 1)
        hits = searcher.search(query, chunk, count=False, order_by_field=schema.ID, order=tantivy.Order.Asc).hits
        if not hits:
            return
        addresses = [address for _, address in hits]
        ids = searcher.fast_field_values(schema.ID, addresses)
        stamps = searcher.fast_field_values(schema.TIMESTAMP, addresses)
        batch = [
            read(searcher.doc(address), int(timestamp or 0), int(identifier or 0))
            for address, timestamp, identifier in zip(addresses, stamps, ids, strict=True)
        ]
        yield batch
        after_id = batch[-1].id
