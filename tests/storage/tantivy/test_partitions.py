"""Which day-partitions a search finds: the listing it reuses follows every day made or deleted."""

from __future__ import annotations

import shutil
from pathlib import Path

from logtraced.model import NS_PER_DAY
from logtraced.storage.tantivy.partitions import Partition, PartitionLayout, open_index

DAY = 20_000
EVERYTHING = (0, 2**62)


def make(layout: PartitionLayout, day: int) -> Partition:
    partition = Partition("acme", day)
    open_index(layout.path(partition), stemming=False, create=True)
    return partition


def test_days_made_and_deleted_are_seen_by_the_next_search(tmp_path: Path) -> None:
    layout = PartitionLayout(tmp_path)
    assert layout.overlapping("acme", *EVERYTHING) == []
    first = make(layout, DAY)
    assert layout.overlapping("acme", *EVERYTHING) == [first]
    second = make(layout, DAY + 1)
    assert layout.overlapping("acme", *EVERYTHING) == [first, second]
    assert layout.overlapping("acme", DAY * NS_PER_DAY, DAY * NS_PER_DAY + 1) == [first]
    shutil.rmtree(layout.path(first))
    assert layout.overlapping("acme", *EVERYTHING) == [second]
    assert layout.overlapping("other", *EVERYTHING) == []


def test_a_day_still_being_made_is_found_once_its_meta_is_written(tmp_path: Path) -> None:
    """A day's directory exists before its meta.json: the listing that met it must not be kept."""
    layout = PartitionLayout(tmp_path)
    made = make(layout, DAY)
    layout.path(Partition("acme", DAY + 1)).mkdir()
    assert layout.overlapping("acme", *EVERYTHING) == [made]
    later = make(layout, DAY + 1)  # writes meta.json inside the directory: the organisation's mtime stays
    assert layout.overlapping("acme", *EVERYTHING) == [made, later]
