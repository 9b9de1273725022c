"""One day-partition's counts per step kept in memory per commit, so a day that no longer changes is aggregated once.

A count over a week aggregates every event of every day in it (storage/tantivy/aggregate.py), and
its cost grows with the window although every day before today is settled; Loki caches such
results per day (its results cache with query splitting) for the same reason.  An entry is one
partition's series for one question (`CountKey`), filed under the partition's commit mark, so a
commit into a past day (a late event) makes the next count miss and replace the entry; a day
still being written commits about every second and simply misses.

Memory is bounded in cells, one label set's count at one step (two 8-byte integers in arrays,
plus one cell per label set for its labels): at most MAX_CACHED_CELLS, the least recently used
entries going first.  Counts run on the query threads, so the cache takes a lock.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, NamedTuple

from logtraced.query.ast import Node
from logtraced.storage.backend import Series, SeriesMap
from logtraced.storage.tantivy.partitions import CommitMark, Partition

# Cells held at most (about 16 bytes each): 2M is 278 days of per-minute counts by five levels, ~32 MB.
MAX_CACHED_CELLS: Final = 2_000_000


class CountKey(NamedTuple):
    """Everything one partition's counts depend on.

    The partition at one commit also pins what the compiled query depends on besides the query
    itself (search.py `_compile`): its schema (stemming, stored layout), the keyword terms a
    comparison expands to, the substrings the index answers exactly, its word list.  The window
    clipped to the day makes every window that holds the day whole share one entry.  Two windows
    share a day's buckets only if their step boundaries coincide, hence the alignment.
    """

    partition: Partition
    mark: CommitMark  # `IndexReader.commit_mark`, read before the searcher that counted is opened
    env: str
    window: tuple[int, int]  # the request's window clipped to the day (`partitions.clipped`), both ends inclusive
    step_ns: int
    alignment: tuple[int, int]  # `aggregate.alignment`: the step boundaries and the histogram's offset
    by: tuple[str, ...]
    query: Node  # the pipeline's prefilter (a pipeline with later stages is not aggregated)
    routed: str | None  # the routed index the request names (`CountRequest.index`)


@dataclass(frozen=True)
class Counted:
    """One partition's series, compact: label values, then the step starts and their counts side by side."""

    series: tuple[tuple[tuple[str, ...], array[int], array[int]], ...]
    cells: int


def frozen(series: SeriesMap) -> Counted:
    """The series as arrays, steps in order: a sixth of the memory of dicts of ints, and copied back at C speed."""
    rows = []
    for labels, entry in series.items():
        ordered = sorted(entry.counts.items())
        rows.append((labels, array("q", (at for at, _ in ordered)), array("q", (n for _, n in ordered))))
    return Counted(tuple(rows), sum(len(steps) + 1 for _, steps, _ in rows))


def add_counted(counted: Counted, by: tuple[str, ...], series: SeriesMap) -> None:
    """Add a partition's counts to the request's series; a step that straddles two days sums both.

    Partitions hold disjoint spans of time, so a step another partition also counted can only be
    this one's first or last: only those two are looked up (a set intersection per label set cost
    a third more on a week counted per minute).
    """
    for labels, steps, counts in counted.series:
        entry = series.get(labels)
        if entry is None:
            series[labels] = Series(dict(zip(by, labels, strict=True)), dict(zip(steps, counts, strict=True)))
            continue
        if not steps:  # no label counted: a partition without a match still makes its (empty) series
            continue
        held = entry.counts
        shared = {at: held[at] for at in {steps[0], steps[-1]} if at in held}
        held.update(zip(steps, counts, strict=True))
        for at, before in shared.items():
            held[at] += before


class CountCache:
    """Counted partitions by `CountKey`, least recently used first, holding only each partition's newest commit."""

    def __init__(self, max_cells: int = MAX_CACHED_CELLS) -> None:
        self._max_cells = max_cells
        self._entries: OrderedDict[CountKey, Counted] = OrderedDict()
        self._held: dict[Partition, tuple[CommitMark, set[CountKey]]] = {}  # per partition: its mark and keys
        self._cells = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CountKey) -> Counted | None:
        with self._lock:
            counted = self._entries.get(key)
            if counted is not None:
                self._entries.move_to_end(key)
            return counted

    def keep(self, key: CountKey, counted: Counted) -> None:
        """Cache what a searcher at least as new as `key.mark` counted; entries of the partition's other commits go.

        An unreadable mark files nothing, and an entry larger than the whole bound is not kept.
        """
        if not key.mark.known or counted.cells > self._max_cells:
            return
        with self._lock:
            held = self._held.get(key.partition)
            if held is None or held[0] != key.mark:
                self._forget(key.partition)
                held = self._held[key.partition] = (key.mark, set())
            self._remove(key)
            self._entries[key] = counted
            held[1].add(key)
            self._cells += counted.cells
            while self._cells > self._max_cells:
                self._remove(next(iter(self._entries)))

    def drop(self, partitions: set[Partition]) -> None:
        """Forget partitions deleted by retention."""
        with self._lock:
            for partition in partitions:
                self._forget(partition)

    def _forget(self, partition: Partition) -> None:
        held = self._held.pop(partition, None)
        for key in held[1] if held is not None else ():
            self._cells -= self._entries.pop(key).cells

    def _remove(self, key: CountKey) -> None:
        counted = self._entries.pop(key, None)
        if counted is not None:
            self._cells -= counted.cells
            self._held[key.partition][1].discard(key)
