"""Which day-partitions a search finds: the listing it reuses follows every day made or deleted."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from logtraced.model import NS_PER_DAY
from logtraced.storage.tantivy.partitions import (
    MTIME_TICK_NS,
    UNKNOWN_MARK,
    Partition,
    PartitionLayout,
    open_index,
    read_commit_mark,
)

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


def test_a_day_made_within_the_same_tick_of_the_clock_is_found(tmp_path: Path) -> None:
    """A file system stamps mtimes from a coarse clock (whole seconds on some): a day made right after
    a listing may leave the organisation's mtime as the listing saw it, as set back here."""
    layout = PartitionLayout(tmp_path)
    first = make(layout, DAY)
    organisation = tmp_path / "index" / "acme"
    seen = organisation.stat().st_mtime_ns
    assert layout.overlapping("acme", *EVERYTHING) == [first]
    second = make(layout, DAY + 1)
    os.utime(organisation, ns=(seen, seen))
    assert layout.overlapping("acme", *EVERYTHING) == [first, second]


def test_a_listing_made_well_after_the_last_change_is_reused(tmp_path: Path) -> None:
    """Past the clock's coarsest tick no later change can share the mtime: the listing is kept."""
    layout = PartitionLayout(tmp_path)
    first = make(layout, DAY)
    organisation = tmp_path / "index" / "acme"
    settled = time.time_ns() - MTIME_TICK_NS - 1_000_000_000
    os.utime(organisation, ns=(settled, settled))
    assert layout.overlapping("acme", *EVERYTHING) == [first]
    make(layout, DAY + 1)
    os.utime(organisation, ns=(settled, settled))  # a change the mtime does not show: the kept listing answers
    assert layout.overlapping("acme", *EVERYTHING) == [first]


def test_every_commit_changes_the_commit_mark_even_within_one_tick(tmp_path: Path) -> None:
    """meta.json's mtime alone is shared by two commits within one tick (set back here); the mark is not."""
    directory = tmp_path / "day"
    index = open_index(directory, stemming=False, create=True)
    assert index is not None
    writer = index.writer(50_000_000, 1)
    writer.add_json('{"message": "one"}')
    writer.commit()
    first = read_commit_mark(directory)
    writer.add_json('{"message": "two"}')
    writer.commit()
    writer.wait_merging_threads()
    os.utime(directory / "meta.json", ns=(first.at_ns, first.at_ns))
    second = read_commit_mark(directory)
    assert first.known and second.at_ns == first.at_ns
    assert second != first and second.opstamp > first.opstamp
    assert read_commit_mark(tmp_path / "gone") == UNKNOWN_MARK
