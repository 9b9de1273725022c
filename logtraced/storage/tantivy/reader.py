"""The Tantivy read side: opens day-partitions for a time range and confines every query to one tenant.

`IndexReader.confine` is the one function that builds the query every read runs: the
organisation picks the directory, the environment is a term no user text can widen, and the
window bounds the timestamp.  Label discovery (names, values, routed indexes) lives here too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import tantivy

from logtraced.model import Tenant
from logtraced.query.ast import Node
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.compile import Compiled, KeywordTerms
from logtraced.storage.tantivy.countcache import CountCache
from logtraced.storage.tantivy.partitions import (
    CommitMark,
    Partition,
    PartitionLayout,
    clipped,
    holds_all_of,
    open_index,
    read_commit_mark,
)
from logtraced.storage.tantivy.words import WordList, WordLists

# (partition, commit mark, env, window clipped to the day, what was aggregated)
LabelKey = tuple[Partition, CommitMark, str, tuple[int, int], str]
# Label answers kept; past this the cache starts again (a bound, not a policy: entries are tiny).
MAX_LABEL_ENTRIES: Final = 4096
# Values per label and partition a cached answer holds; a larger `limit` asks for more.
CACHED_VALUES: Final = 1000

# Queries whose compiled forms are kept (statement-cache style, least recently used go first).
COMPILED_QUERIES: Final = 256
# Compiled forms one query keeps: one per schema, or per term list when it compares keywords term by term.
COMPILED_VARIANTS: Final = 16

# (AST, stemming), and one compiled form with the facts it was compiled against (search.py `_compile`).
CompiledKey = tuple[Node, bool]
CompiledVariant = tuple[tantivy.Schema, KeywordTerms, frozenset[str], WordList | None, Compiled]


class CompiledCache:
    """Compiled queries by (AST, stemming), shared by the query threads, so every change is made under a lock."""

    def __init__(self) -> None:
        self._entries: OrderedDict[CompiledKey, list[CompiledVariant]] = OrderedDict()
        self._lock = threading.Lock()

    def variants(self, key: CompiledKey) -> list[CompiledVariant]:
        """The forms compiled so far for `key` (a copy), which becomes the most recently used query."""
        with self._lock:
            entries = self._entries.get(key)
            if entries is None:
                return []
            self._entries.move_to_end(key)
            return list(entries)

    def add(self, key: CompiledKey, variant: CompiledVariant) -> None:
        with self._lock:
            entries = self._entries.get(key)
            if entries is None:
                entries = self._entries[key] = []
                if len(self._entries) > COMPILED_QUERIES:
                    self._entries.popitem(last=False)
            entries.append(variant)
            if len(entries) > COMPILED_VARIANTS:
                del entries[0]


@dataclass
class _Opened:
    index: tantivy.Index
    generation: int


class IndexReader:
    """Caches opened partitions; `on_commit` makes the next search reload them.

    The query threads share it: the label cache changes only under `_labels_lock`, the other
    caches hold their own locks.
    """

    def __init__(self, layout: PartitionLayout) -> None:
        self.layout = layout
        self.generation = 0
        self._open: dict[Partition, _Opened] = {}
        self._label_cache: dict[LabelKey, frozenset[str]] = {}
        self._labels_lock = threading.Lock()
        # Compiled queries per (AST, stemming), one per schema (and keyword terms): compiling builds automata.
        self.compiled = CompiledCache()
        self.word_lists = WordLists(layout)
        self.counts = CountCache()

    def commit_mark(self, partition: Partition) -> CommitMark:
        """Changes whenever the partition commits: a cache key for derived facts (`partitions.CommitMark`)."""
        return read_commit_mark(self.layout.path(partition))

    def recall(self, key: LabelKey) -> frozenset[str] | None:
        """A partition's cached label answer, or None."""
        with self._labels_lock:
            return self._label_cache.get(key)

    def remember(self, key: LabelKey, found: frozenset[str]) -> None:
        """Cache a partition's label answer; entries of the partition's earlier commits are dropped."""
        partition, mark = key[0], key[1]
        if not mark.known:
            return
        with self._labels_lock:
            if len(self._label_cache) >= MAX_LABEL_ENTRIES:
                self._label_cache.clear()
            stale = [old for old in self._label_cache if old[0] == partition and old[1] != mark]
            for old in stale:
                del self._label_cache[old]
            self._label_cache[key] = found

    def on_commit(self) -> None:
        self.generation += 1

    def drop(self, keys: list[str]) -> None:
        """Forget partitions deleted by retention."""
        gone = {Partition.from_key(key) for key in keys}
        for partition in gone:
            self._open.pop(partition, None)
        self.word_lists.drop(gone)
        self.counts.drop(gone)
        with self._labels_lock:
            self._label_cache = {key: value for key, value in self._label_cache.items() if key[0] not in gone}

    def partitions(self, tenant: Tenant, start_ns: int, end_ns: int, *, newest_first: bool = True) -> list[Partition]:
        found = self.layout.overlapping(tenant.org, start_ns, end_ns)
        return sorted(found, key=lambda p: p.day, reverse=newest_first)

    def index(self, partition: Partition) -> tantivy.Index | None:
        opened = self._open.get(partition)
        if opened is None:
            index = open_index(self.layout.path(partition), stemming=False, create=False)
            if index is None:
                return None
            opened = self._open[partition] = _Opened(index, self.generation)
        elif opened.generation != self.generation:
            opened.index.reload()
            opened.generation = self.generation
        return opened.index

    def reloaded(self, partition: Partition) -> tantivy.Index | None:
        """The partition's index, reloaded: its searchers are at least as new as any commit mark read before the call.

        A cache keyed by commit mark stores only what such a searcher found, the mark read first.  A
        searcher opened before a commit whose mark is read after it would file the older snapshot
        under the newer mark, served until the next commit; and `index` reloads only after
        `on_commit`, which the writer's commit reaches some time after meta.json changed.
        """
        index = self.index(partition)
        if index is not None:
            index.reload()
        return index

    def searchers(
        self, tenant: Tenant, start_ns: int, end_ns: int, *, newest_first: bool = True
    ) -> Iterator[tuple[Partition, tantivy.Index, tantivy.Searcher]]:
        for partition in self.partitions(tenant, start_ns, end_ns, newest_first=newest_first):
            index = self.index(partition)
            if index is not None:
                yield partition, index, index.searcher()

    @staticmethod
    def confine(
        index: tantivy.Index, tenant: Tenant, day: int, start_ns: int, end_ns: int, query: tantivy.Query | None
    ) -> tantivy.Query:
        """The tenant and time restriction every search carries; user queries are only ANDed onto it.

        `index` is the partition of UTC `day`: a window (`end_ns` inclusive) that holds every
        timestamp it may hold (`partitions.holds_all_of`) needs no range, and tantivy opens the
        timestamp column for a range on every call (~45 µs per 700 000 events, bench/RESULTS.md).
        """
        parts = [
            tantivy.Query.term_query(index.schema, schema.ENV, tenant.env),
            tantivy.Query.term_query(index.schema, schema.ORG, tenant.org),
        ]
        if not holds_all_of(day, start_ns, end_ns):
            parts.append(
                tantivy.Query.range_query(index.schema, schema.TIMESTAMP, tantivy.FieldType.Integer, start_ns, end_ns)
            )
        if query is not None:
            parts.append(query)
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, part) for part in parts])


def hit_count(searcher: tantivy.Searcher, query: tantivy.Query) -> int:
    """How many documents match, counted by the index (tantivy's type stubs omit `SearchResult.count`)."""
    result: Any = searcher.search(query, 1, count=True)
    return int(result.count or 0)


def label_field(name: str) -> str:
    """Event fields kept raw (labels, `org`, `tags`) are their own fields; any other name is an attribute path."""
    return name if name in schema.RAW_FIELDS or name == schema.TAGS else f"{schema.ATTRIBUTES}.{name}"


def label_names(reader: IndexReader, tenant: Tenant, start_ns: int, end_ns: int) -> list[str]:
    """The canonical labels that carry at least one non-empty value in range, from the fast fields."""
    present: set[str] = set()
    for found in _per_partition(reader, tenant, start_ns, end_ns, "", _LABELS_SPEC, _labels_present):
        present |= found
    return [name for name in schema.LABEL_FIELDS if name in present]


_LABELS_SPEC = {name: {"terms": {"field": name, "size": 2}} for name in schema.LABEL_FIELDS}


def _labels_present(result: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        name
        for name in schema.LABEL_FIELDS
        if any(bucket["key"] != "" for bucket in result.get(name, {}).get("buckets", []))
    )


def label_values(reader: IndexReader, tenant: Tenant, start_ns: int, end_ns: int, name: str, limit: int) -> list[str]:
    """Distinct values of a label in range (a canonical field or an attribute path), sorted, at most `limit`."""
    size = max(limit, CACHED_VALUES)
    spec = {"values": {"terms": {"field": label_field(name), "size": size}}}
    values: set[str] = set()
    for found in _per_partition(reader, tenant, start_ns, end_ns, f"{size}:{name}", spec, _values_found):
        values |= found
    return sorted(values)[:limit]


def _values_found(result: dict[str, Any]) -> frozenset[str]:
    values: set[str] = set()
    for bucket in result.get("values", {}).get("buckets", []):
        key = bucket["key"]
        if key != "":
            values.add(str(int(key)) if isinstance(key, float) and key.is_integer() else str(key))
    return frozenset(values)


def _per_partition(
    reader: IndexReader,
    tenant: Tenant,
    start_ns: int,
    end_ns: int,
    what: str,
    spec: dict[str, Any],
    read: Callable[[dict[str, Any]], frozenset[str]],
) -> Iterator[frozenset[str]]:
    """One aggregation's answer per partition in range, cached per partition commit.

    The key is the partition, its last commit (`commit_mark`), the tenant's environment and the
    window clipped to the day, so every window covering a day whole shares one entry and a commit
    (or retention) is the only thing that makes an entry stale.  Before an answer is cached the
    index is reloaded, so it is at least as new as the mark read first.
    """
    for partition in reader.partitions(tenant, start_ns, end_ns):
        window = clipped(partition.day, start_ns, end_ns)
        key = (partition, reader.commit_mark(partition), tenant.env, window, what)
        found = reader.recall(key)
        if found is None:
            index = reader.reloaded(partition)
            if index is None:
                continue
            query = reader.confine(index, tenant, partition.day, *window, None)
            found = read(index.searcher().aggregate(query, spec))
            reader.remember(key, found)
        yield found


def has_index(reader: IndexReader, tenant: Tenant, name: str) -> bool:
    """Whether any event of the tenant, on any day, was routed to `name` (one term count per day, newest first)."""
    for partition, index, searcher in reader.searchers(tenant, 0, 2**63 - 1):
        term = tantivy.Query.term_query(index.schema, schema.INDEX, name)
        if hit_count(searcher, reader.confine(index, tenant, partition.day, 0, 2**63 - 1, term)):
            return True
    return False
