"""Where day-partitions live on disk, and opening them: one Tantivy index per organisation per UTC day.

Layout: `<data_dir>/index/<org>/<YYYY-MM-DD>/`.  Retention deletes a whole directory; a query
opens only the days its time range touches.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from pathlib import Path
from typing import Final, NamedTuple

import tantivy

from logtraced.model import ID_POSITION_BITS, NS_PER_DAY
from logtraced.storage.tantivy import schema

_EPOCH = dt.date(1970, 1, 1)
# Days outside this range are clamped so a wild timestamp cannot make a path tantivy or the OS rejects.
MIN_DAY = 0
MAX_DAY = (dt.date(2261, 12, 31) - _EPOCH).days
# The coarsest clock a file system stamps modification times with (FAT: 2 s; ext4's is a few ms):
# two changes this close together may carry the same mtime.
MTIME_TICK_NS: Final = 2_000_000_000
# tantivy writes meta.json with its operation stamp last; this many bytes from its end hold it.
_META_TAIL_BYTES: Final = 256
_OPSTAMP: Final = re.compile(rb'"opstamp":\s*(\d+)')


class Partition(NamedTuple):
    org: str
    day: int  # days since the Unix epoch, UTC

    @property
    def key(self) -> str:
        """The WAL record key: `org/YYYY-MM-DD`."""
        return f"{self.org}/{day_name(self.day)}"

    @classmethod
    def from_key(cls, key: str) -> Partition:
        org, _, name = key.partition("/")
        return cls(org, day_from_name(name))


class CommitMark(NamedTuple):
    """Which commit of a partition a cached fact belongs to, and when the partition last changed.

    Equal marks mean the same commit.  meta.json's mtime alone did not say so: two commits within one
    tick of the file system's clock share it, and a cache would then serve what the first commit held
    after the second.  tantivy's operation stamp (in meta.json) grows with every commit, and the
    mtime, which also moves when a merge rewrites meta.json, tells a day deleted and made again apart.
    """

    opstamp: int
    at_ns: int  # meta.json's mtime

    @property
    def known(self) -> bool:
        return self.opstamp >= 0


UNKNOWN_MARK: Final = CommitMark(-1, -1)


def read_commit_mark(directory: Path) -> CommitMark:
    """The partition's commit mark, from one open of its meta.json (mtime and content of one version of it)."""
    try:
        fd = os.open(directory / "meta.json", os.O_RDONLY)
    except OSError:
        return UNKNOWN_MARK
    try:
        info = os.fstat(fd)
        found = _OPSTAMP.search(os.pread(fd, _META_TAIL_BYTES, max(info.st_size - _META_TAIL_BYTES, 0)))
        if found is None:  # not where tantivy puts it: look through the whole file
            found = _OPSTAMP.search(os.pread(fd, info.st_size, 0))
    except OSError:
        return UNKNOWN_MARK
    finally:
        os.close(fd)
    return UNKNOWN_MARK if found is None else CommitMark(int(found.group(1)), info.st_mtime_ns)


def day_of(timestamp_ns: int) -> int:
    return min(max(timestamp_ns // NS_PER_DAY, MIN_DAY), MAX_DAY)


def held_span(day: int) -> tuple[int, int]:
    """The timestamps (ns, inclusive) the partition of `day` may hold: its UTC day, and beyond it on
    the first and last day, which hold whatever `day_of` clamps onto them."""
    low = -(2**63) if day <= MIN_DAY else day * NS_PER_DAY
    high = 2**63 - 1 if day >= MAX_DAY else (day + 1) * NS_PER_DAY - 1
    return low, high


def holds_all_of(day: int, start_ns: int, end_ns: int) -> bool:
    """Whether a window (both ends inclusive) holds every timestamp the partition of `day` may hold."""
    low, high = held_span(day)
    return start_ns <= low and end_ns >= high


def clipped(day: int, start_ns: int, end_ns: int) -> tuple[int, int]:
    """The part of a window (both ends inclusive) the partition of `day` may hold events in (`held_span`)."""
    low, high = held_span(day)
    return max(start_ns, low), min(end_ns, high)


def day_name(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


def day_from_name(name: str) -> int:
    return (dt.date.fromisoformat(name) - _EPOCH).days


class PartitionLayout:
    """Maps partitions to directories and finds which exist."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "index"
        # Per organisation: its directory's mtime, when it was listed and the days found (see `_days_of`).
        self._listed: dict[str, tuple[int, int, list[Partition]]] = {}

    def path(self, partition: Partition) -> Path:
        return self.root / partition.org / day_name(partition.day)

    def existing(self, org: str | None = None) -> list[Partition]:
        """Every partition on disk (of one organisation, or all), oldest day first."""
        orgs = [self.root / org] if org is not None else sorted(self.root.glob("*"))
        found = [partition for org_dir in orgs for partition in _days_in(org_dir)[0]]
        return sorted(found, key=lambda p: (p.day, p.org))

    def overlapping(self, org: str, start_ns: int, end_ns: int) -> list[Partition]:
        """The partitions of `org` whose day intersects [start_ns, end_ns]."""
        first, last = day_of(start_ns), day_of(end_ns)
        return [p for p in self._days_of(org) if first <= p.day <= last]

    def _days_of(self, org: str) -> list[Partition]:
        """`existing(org)`, listed again only when the organisation's directory changed: a day made or deleted.

        Every search asks (listing and checking each day cost ~0.1 ms).  A day's directory is made
        before its meta.json is written, so a listing that met a day without one is not kept.  A
        listing is trusted only when made `MTIME_TICK_NS` after the directory's last change: a day
        made within the same tick of the file system's clock (a batch that opens two days) leaves
        the mtime as it was, and a listing made between the two would hide the second day.
        """
        org_dir = self.root / org
        try:
            mark = org_dir.stat().st_mtime_ns
        except OSError:
            return []
        cached = self._listed.get(org)
        if cached is not None and cached[0] == mark and cached[1] - mark >= MTIME_TICK_NS:
            return cached[2]
        listed_at = time.time_ns()
        found, complete = _days_in(org_dir)
        if complete:
            self._listed[org] = (mark, listed_at, found)
        return found


def _days_in(org_dir: Path) -> tuple[list[Partition], bool]:
    """The organisation's partitions, oldest first, and whether every day directory has its meta.json."""
    if not org_dir.is_dir():
        return [], True
    found: list[Partition] = []
    complete = True
    for day_dir in org_dir.iterdir():
        try:
            day = day_from_name(day_dir.name)
        except ValueError:
            continue
        if (day_dir / "meta.json").exists():
            found.append(Partition(org_dir.name, day))
        else:
            complete = False
    return sorted(found, key=lambda p: p.day), complete


def open_index(path: Path, *, stemming: bool, create: bool, capitals: bool = True) -> tantivy.Index | None:
    """Open (or create) the index at `path` with our analyzers registered; None when absent."""
    if (path / "meta.json").exists():
        index = tantivy.Index.open(str(path))
    elif create:
        path.mkdir(parents=True, exist_ok=True)
        tantivy.Index(schema.build_schema(stemming=stemming, capitals=capitals), path=str(path))
        _tune(path)
        index = tantivy.Index.open(str(path))
    else:
        return None
    schema.register_tokenizers(index)
    return index


def _tune(path: Path) -> None:
    """Rewrite the fresh, still empty index's meta.json with `schema.tune_meta`, atomically (rename)."""
    meta_path = path / "meta.json"
    meta = json.loads(meta_path.read_text())
    schema.tune_meta(meta)
    temporary = path / "meta.json.tuning"
    temporary.write_text(json.dumps(meta))
    os.replace(temporary, meta_path)


def max_wal_seq(index: tantivy.Index) -> int:
    """The newest WAL record this index holds (the high bits of its newest event id): recovery resumes after it."""
    searcher = index.searcher()
    if searcher.num_docs == 0:
        return 0
    hits = searcher.search(
        tantivy.Query.all_query(), 1, count=False, order_by_field=schema.ID, order=tantivy.Order.Desc
    ).hits
    return int(hits[0][0]) >> ID_POSITION_BITS
