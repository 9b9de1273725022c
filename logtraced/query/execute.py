"""Runs a parsed query over the day-partitions of one tenant: narrow with the index, verify, order, page.

Both query languages arrive here as a `Pipeline` (KQL is a pipeline of one filter stage).  Every
read goes through `IndexReader.search`-style confinement (`IndexReader.confine`), so the tenant
restriction is added in one place whatever the query says.

Order is by timestamp, then by tantivy's tie-breaker field, so paging is stable: a cursor is the
(timestamp, tie) of the last row, and the next page is everything strictly after it.  Rows at a
page's boundary timestamp are read in full before the page is cut, so equal timestamps never
make a row appear twice or go missing.  This rests on (timestamp, tie) being unique: tantivy keeps
tie values distinct within a segment but only almost always across segments, so two events with
the same nanosecond and a colliding tie could still be cut apart by a cursor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import tantivy

from logtraced.errors import QueryError
from logtraced.events import event_from_document
from logtraced.model import Event, Tenant
from logtraced.query.compile import compile_query
from logtraced.query.pipeline import Parse, Pipeline
from logtraced.storage import schema
from logtraced.storage.reader import IndexReader, hit_count

FIRST_CHUNK = 256
MAX_CHUNK = 8192
_INTEGER = tantivy.FieldType.Integer
_MIN_I64 = -(2**63)
_MAX_I64 = 2**63 - 1

SortKey = tuple[int, int]  # (timestamp ns, tie-breaker)


@dataclass(frozen=True)
class QueryRequest:
    """One query: whose data, which window (end exclusive), what to match and which page."""

    tenant: Tenant
    start_ns: int
    end_ns: int
    pipeline: Pipeline
    limit: int
    newest_first: bool = True
    offset: int = 0
    after: SortKey | None = None
    index: str | None = None
    deadline: float = float("inf")  # time.monotonic() past which the query is abandoned
    count_total: bool = False  # count every match up front (the KQL API reports totals; it costs a pass)


@dataclass
class Row:
    event: Event
    labels: dict[str, str]
    key: SortKey


@dataclass
class QueryResult:
    rows: list[Row] = field(default_factory=list)
    total: int = 0
    total_exact: bool = True
    lines_examined: int = 0
    bytes_examined: int = 0
    seconds: float = 0.0
    more: bool = False  # rows exist beyond this page


def execute(reader: IndexReader, request: QueryRequest) -> QueryResult:
    """The page of rows the request asks for, with the figures the APIs report."""
    started = time.perf_counter()
    result = QueryResult()
    plans: Iterable[_Plan] = _plans(reader, request)
    if request.count_total:
        plans = list(plans)
        _count(plans, result)
    else:
        result.total_exact = False
    for position, row in enumerate(_matches(plans, request, result)):
        if position < request.offset:
            continue
        if len(result.rows) == request.limit:
            result.more = True
            break
        result.rows.append(row)
    if not result.total_exact:
        # Verified queries stop reading once the page is full: what was seen is a lower bound.
        result.total = request.offset + len(result.rows) + (1 if result.more else 0)
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class _Plan:
    """One partition's confined query, and whether its hits must be verified one by one."""

    index: tantivy.Index
    searcher: tantivy.Searcher
    query: tantivy.Query
    verify: bool
    stemming: bool


def _plans(reader: IndexReader, request: QueryRequest) -> Iterator[_Plan]:
    """The partitions the window overlaps, in scan order (days are disjoint, so concatenation is ordered).

    Planned lazily: a newest-first page usually fills from the newest day, and older days are then
    never opened or compiled.
    """
    prefilter = request.pipeline.prefilter
    has_parse = any(isinstance(stage, Parse) for stage in request.pipeline.stages)
    end_inclusive = request.end_ns - 1
    partitions = reader.partitions(request.tenant, request.start_ns, end_inclusive, newest_first=request.newest_first)
    for partition in partitions:
        index = reader.index(partition)
        if index is None:
            continue
        stemming = schema.has_field(index.schema, schema.MESSAGE_STEMMED)
        compiled = compile_query(prefilter, index.schema, stemming=stemming)
        user_query = _with_index(index, compiled.query, request.index)
        query = reader.confine(index, request.tenant, request.start_ns, end_inclusive, user_query)
        yield _Plan(index, index.searcher(), query, compiled.needs_verification or has_parse, stemming)


def _count(plans: list[_Plan], result: QueryResult) -> None:
    """The exact total over every partition, counted by the index, when no partition needs verification.

    Counting up front matters: the scan stops as soon as the page is full, often before the older
    partitions are reached, and the total must still cover them.
    """
    if any(plan.verify for plan in plans):
        result.total_exact = False
        return
    result.total = sum(hit_count(plan.searcher, plan.query) for plan in plans)


def _matches(plans: Iterable[_Plan], request: QueryRequest, result: QueryResult) -> Iterator[Row]:
    """Matching rows in order across partitions, verified where the index alone cannot decide."""
    for plan in plans:
        matcher = request.pipeline.matcher(stem=_stemmer(plan.stemming))
        for key, address in _ordered(plan.searcher, plan.index, plan.query, request):
            _check_deadline(request)
            event = event_from_document(plan.searcher.doc(address).to_dict())
            result.lines_examined += 1
            result.bytes_examined += len(event.message)
            labels = matcher(event) if plan.verify else {}
            if labels is None:
                continue
            yield Row(event, labels, key)


def _with_index(index: tantivy.Index, query: tantivy.Query, name: str | None) -> tantivy.Query:
    if name is None:
        return query
    term = tantivy.Query.term_query(index.schema, schema.INDEX, name)
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, term)])


def _stemmer(stemming: bool) -> Callable[[str], str] | None:
    if not stemming:
        return None
    analyzer = schema.stemmed_analyzer()

    def stem(word: str) -> str:
        tokens = analyzer.analyze(word)
        return tokens[0] if tokens else word

    return stem


def _check_deadline(request: QueryRequest) -> None:
    if time.monotonic() > request.deadline:
        raise QueryError("the query ran past its time budget and was cancelled", code="query_timeout")


def _ordered(
    searcher: tantivy.Searcher, index: tantivy.Index, query: tantivy.Query, request: QueryRequest
) -> Iterator[tuple[SortKey, tantivy.DocAddress]]:
    """Every hit of `query` in (timestamp, tie) order after `request.after`, read in growing chunks."""
    order = tantivy.Order.Desc if request.newest_first else tantivy.Order.Asc
    after = request.after
    chunk = FIRST_CHUNK
    while True:
        _check_deadline(request)
        bounded = _after(index, query, after, request.newest_first)
        hits = searcher.search(bounded, chunk, count=False, order_by_field=schema.TIMESTAMP, order=order).hits
        if not hits:
            return
        rows = _keyed(searcher, hits)
        if len(hits) == chunk:
            boundary = rows[-1][0][0]
            rows = [row for row in rows if row[0][0] != boundary]
            rows += _all_at(searcher, index, bounded, boundary)
        rows.sort(key=lambda row: row[0], reverse=request.newest_first)
        yield from rows
        if len(hits) < chunk:
            return
        after = rows[-1][0]
        chunk = min(chunk * 4, MAX_CHUNK)


def _keyed(
    searcher: tantivy.Searcher, hits: list[tuple[int, tantivy.DocAddress]]
) -> list[tuple[SortKey, tantivy.DocAddress]]:
    addresses = [address for _, address in hits]
    ties = searcher.fast_field_values(schema.TIE, addresses)
    return [((int(ts), int(tie or 0)), address) for (ts, address), tie in zip(hits, ties, strict=True)]


def _all_at(
    searcher: tantivy.Searcher, index: tantivy.Index, query: tantivy.Query, timestamp: int
) -> list[tuple[SortKey, tantivy.DocAddress]]:
    """Every hit with exactly this timestamp: a page boundary must not split equal timestamps arbitrarily."""
    exact = _range(index, schema.TIMESTAMP, timestamp, timestamp)
    both = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, exact)])
    hits = searcher.search(both, max(hit_count(searcher, both), 1), count=False).hits
    return [((timestamp, key[1]), address) for key, address in _keyed(searcher, [(timestamp, a) for _, a in hits])]


def _after(index: tantivy.Index, query: tantivy.Query, after: SortKey | None, newest_first: bool) -> tantivy.Query:
    """`query` restricted to rows strictly after the cursor in the scan's order."""
    if after is None:
        return query
    timestamp, tie = after
    if newest_first:
        strictly = _range(index, schema.TIMESTAMP, _MIN_I64, timestamp - 1)
        same = _range(index, schema.TIE, _MIN_I64, tie - 1)
    else:
        strictly = _range(index, schema.TIMESTAMP, timestamp + 1, _MAX_I64)
        same = _range(index, schema.TIE, tie + 1, _MAX_I64)
    at = tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, _range(index, schema.TIMESTAMP, timestamp, timestamp)), (tantivy.Occur.Must, same)]
    )
    either = tantivy.Query.boolean_query([(tantivy.Occur.Should, strictly), (tantivy.Occur.Should, at)])
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, either)])


def _range(index: tantivy.Index, name: str, low: int, high: int) -> tantivy.Query:
    return tantivy.Query.range_query(index.schema, name, _INTEGER, low, high)


@dataclass
class Series:
    """Counts per step of the matching events that share one set of `by` label values."""

    labels: dict[str, str]
    counts: dict[int, int] = field(default_factory=dict)  # step start (ns) -> events


def count_per_step(
    reader: IndexReader, request: QueryRequest, step_ns: int, by: tuple[str, ...]
) -> tuple[list[Series], QueryResult]:
    """Every matching event counted into steps aligned on `request.start_ns` (for an `aggregate` stage)."""
    started = time.perf_counter()
    result = QueryResult()
    series: dict[tuple[str, ...], Series] = {}
    for row in _matches(_plans(reader, request), request, result):
        values = tuple(_label_value(row, name) for name in by)
        entry = series.get(values)
        if entry is None:
            entry = series[values] = Series(dict(zip(by, values, strict=True)))
        bucket = request.start_ns + (row.key[0] - request.start_ns) // step_ns * step_ns
        entry.counts[bucket] = entry.counts.get(bucket, 0) + 1
        result.total += 1
    result.total_exact = True
    result.seconds = time.perf_counter() - started
    return list(series.values()), result


def _label_value(row: Row, name: str) -> str:
    """A canonical field, else a parsed label, else a top-level attribute; "" when absent."""
    if name in schema.LABEL_FIELDS:
        return str(getattr(row.event, name))
    if name in row.labels:
        return row.labels[name]
    value = row.event.attributes.get(name)
    return "" if value is None else str(value)
