"""The storage contract: what every backend offers (`LogStore`), and the tenant-confined view every read goes through.

A backend is written once against these types and nothing above storage/ ever sees its
engine: requests carry the query AST (the backend compiles it itself), pages carry opaque
cursors, and aggregations are asked for as counts per step, never as documents to count.

Reads cannot be unconfined.  A backend's read methods are private (`_search`, `_count`, ...)
and take the tenant as an argument; the public surface is `LogStore.for_tenant(tenant)`,
which returns a `TenantView` bound to that tenant.  Requests have no tenant field, so no
query, cursor or parameter can name another organisation or environment.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar, Final

from logtraced.model import Event, EventColumns, Tenant
from logtraced.query.pipeline import Pipeline

NO_DEADLINE: Final = float("inf")


@dataclass(frozen=True)
class SearchRequest:
    """One page of matching events: which window (end exclusive), what to match, which page."""

    start_ns: int
    end_ns: int
    pipeline: Pipeline
    limit: int
    newest_first: bool = True
    offset: int = 0
    after: bytes | None = None  # a `SearchPage.cursor` of this backend: the page starts after it
    index: str | None = None  # one routed index, or every index
    deadline: float = NO_DEADLINE  # time.monotonic() past which the query is abandoned (QueryTimeout)
    count_total: bool = False  # count every match (the KQL API reports totals; it costs a pass)
    # Event fields the rows need (`Event` attribute names); None = all.  Unread fields keep their
    # defaults.  Decoding a whole stored document is most of a row's cost, and rows held by the
    # thousand cost memory, so callers that only look at a few fields (pattern mining reads
    # message, level and timestamp) should say so.
    fields: frozenset[str] | None = None


@dataclass
class Row:
    """One matching event and the labels the pipeline's parse stages extracted from it."""

    event: Event
    labels: dict[str, str]


@dataclass
class Stats:
    """What a read cost, as the APIs report it: documents read, their message bytes, wall time."""

    lines_examined: int = 0
    bytes_examined: int = 0
    seconds: float = 0.0


@dataclass
class SearchPage:
    rows: list[Row] = field(default_factory=list)
    total: int = 0
    total_exact: bool = True
    more: bool = False  # rows exist beyond this page
    cursor: bytes | None = None  # where the next page starts (opaque; only this backend reads it)
    stats: Stats = field(default_factory=Stats)


@dataclass(frozen=True)
class CountRequest:
    """Matching events counted per step (aligned on `start_ns`), grouped by label values."""

    start_ns: int
    end_ns: int
    pipeline: Pipeline
    step_ns: int
    by: tuple[str, ...] = ()
    index: str | None = None
    deadline: float = NO_DEADLINE


@dataclass
class Series:
    """Counts per step of the matching events that share one set of `by` label values."""

    labels: dict[str, str]
    counts: dict[int, int] = field(default_factory=dict)  # step start (ns) -> events


# Series of one count, by their `by` label values (in `CountRequest.by` order).
SeriesMap = dict[tuple[str, ...], Series]


def add_count(series: SeriesMap, request: CountRequest, values: tuple[str, ...], ts: int, n: int) -> None:
    """Count `n` events at `ts` for the label set `values` into its step: every backend buckets alike."""
    entry = series.get(values)
    if entry is None:
        entry = series[values] = Series(dict(zip(request.by, values, strict=True)))
    bucket = request.start_ns + (ts - request.start_ns) // request.step_ns * request.step_ns
    entry.counts[bucket] = entry.counts.get(bucket, 0) + n


@dataclass
class CountResult:
    series: list[Series] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)


class LogStore(abc.ABC):
    """A storage backend's read side.  Subclasses implement the private methods; callers use `for_tenant`."""

    def for_tenant(self, tenant: Tenant) -> TenantView:
        """The only way to read: a view that confines every call to `tenant`."""
        return TenantView(self, tenant)

    @abc.abstractmethod
    def _search(self, tenant: Tenant, request: SearchRequest) -> SearchPage: ...

    @abc.abstractmethod
    def _count(self, tenant: Tenant, request: CountRequest) -> CountResult: ...

    @abc.abstractmethod
    def _label_names(self, tenant: Tenant, start_ns: int, end_ns: int) -> list[str]: ...

    @abc.abstractmethod
    def _label_values(self, tenant: Tenant, name: str, start_ns: int, end_ns: int, limit: int) -> list[str]: ...

    @abc.abstractmethod
    def _has_index(self, tenant: Tenant, name: str) -> bool: ...

    @abc.abstractmethod
    def refresh(self) -> None:
        """The writer committed: the next read sees everything committed so far."""

    @abc.abstractmethod
    def forget(self, keys: list[str]) -> None:
        """The writer deleted these partitions (retention): drop whatever the read side holds open."""


class TenantView:
    """Every read a caller may make, each confined to the one tenant this view was made for."""

    __slots__ = ("_store", "tenant")

    def __init__(self, store: LogStore, tenant: Tenant) -> None:
        self._store = store
        self.tenant = tenant

    def search(self, request: SearchRequest) -> SearchPage:
        """A page of matching events in time order, with the cursor of the next page."""
        return self._store._search(self.tenant, request)

    def count(self, request: CountRequest) -> CountResult:
        """Matching events counted per step and label set, inside the backend (no documents read where avoidable)."""
        return self._store._count(self.tenant, request)

    def label_names(self, start_ns: int, end_ns: int) -> list[str]:
        """The canonical labels that carry a value in [start_ns, end_ns)."""
        return self._store._label_names(self.tenant, start_ns, end_ns)

    def label_values(self, name: str, start_ns: int, end_ns: int, limit: int) -> list[str]:
        """Distinct values of a label (a canonical field or an attribute path) in [start_ns, end_ns), sorted."""
        return self._store._label_values(self.tenant, name, start_ns, end_ns, limit)

    def has_index(self, name: str) -> bool:
        """Whether any event of the tenant, at any time, was routed to the named index."""
        return self._store._has_index(self.tenant, name)


@dataclass
class WriterCounters:
    """What a writer did with the events it was given, reported to the daemon with each commit."""

    documents: int = 0  # events stored
    expired: int = 0  # events older than the retention period, not stored
    rejected: int = 0  # events the backend refused (counted, logged, never retried forever)


@dataclass(frozen=True)
class Footprint:
    """What a backend holds on disk, reported with each commit for /metrics."""

    partitions: int = 0
    bytes: int = 0


class StoreWriter(abc.ABC):
    """A backend's write side, driven by the writer process in WAL order.

    `apply` may be called again for records the backend already holds (replay after a crash):
    the backend knows which WAL sequence numbers it holds and skips those, so nothing is stored twice.
    """

    counters: WriterCounters
    # Whether the writer may commit as soon as the input pauses (see `index.commit_quiet_ms`) rather
    # than only once a commit interval: a backend whose every commit is costly downstream says no.
    commits_on_pause: ClassVar[bool] = True

    @abc.abstractmethod
    def apply(self, seq: int, tenant: Tenant, events: EventColumns) -> None:
        """Stage one WAL record's events (ids already assigned, never empty); searchable after the next commit."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make everything applied so far durable and searchable."""

    @abc.abstractmethod
    def enforce_retention(self, oldest_day: int) -> list[str]:
        """Delete data of UTC days before `oldest_day` (days since the epoch); return what was deleted."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def footprint(self) -> Footprint:
        """Partitions and bytes on this machine's disk; a backend whose data lives on a server reports none."""
        return Footprint()
