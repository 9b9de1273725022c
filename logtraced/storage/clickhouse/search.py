"""Runs a parsed query on the events table for one tenant: narrow in SQL, verify in Python, order, page, count.

The same contract as the Tantivy executor (storage/tantivy/search.py): rows in (timestamp, id)
order, newest first or forward; `offset` rows skipped; a cursor is the (timestamp, id) of the last
row and the next page is everything strictly after it; totals exact when nothing needs verifying.

When the compiled condition is exact and no stage needs the event, ClickHouse does everything
(filter, order, LIMIT/OFFSET, count(), GROUP BY per step).  When it is exact except on the rows its
guard selects (values ClickHouse cannot decide: compile_attributes.py), ClickHouse decides every
other row: candidates are read in order with the guard's verdict, only guarded rows are verified,
and totals and counts are ClickHouse's over decided rows plus the verified guarded ones.
Otherwise candidates are read in (timestamp, id) order in growing chunks, keyset-paged, and each is
checked with the reference semantics (`verify.build_verifier`: JSON pipeline and LogQL stages
alike, never stemmed: see README "Choosing a backend").  A page, exact or verified, reads the
window through `_slices` (newest or oldest first, each slice wider) and stops once it is full;
totals and counts read the whole window.  `_confined` is the one place the tenant and window are
added: every statement's WHERE starts with it.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from logtraced.errors import QueryTimeout
from logtraced.model import Event, Tenant
from logtraced.query.pipeline import Pipeline
from logtraced.query.verify import build_verifier, needs_stages
from logtraced.storage.backend import (
    CountRequest,
    CountResult,
    Row,
    SearchPage,
    SearchRequest,
    SeriesMap,
    Stats,
    add_count,
)
from logtraced.storage.clickhouse.client import Client, Rows, Settings
from logtraced.storage.clickhouse.compile_sql import compile_condition
from logtraced.storage.clickhouse.params import Params
from logtraced.storage.clickhouse.schema import COLUMNS, LABEL_COLUMNS, Target
from logtraced.storage.cursor import SortKey, decode_cursor, encode_cursor

FIRST_CHUNK: Final = 256
MAX_CHUNK: Final = 8192
# Candidates a verified query may read to make its total exact (the KQL API reports totals); beyond, a lower bound.
MAX_VERIFIED_TOTAL: Final = 100_000
MIN_EXECUTION_SECONDS: Final = 0.001
# A page's first time slice is sized to hold about this many of the tenant's events (one granule: the
# primary key reads whole granules anyway); each next one is SLICE_GROWTH times wider, so a match rarer
# than the first slice holds costs a few more statements, and a window read to its end no more rows.
SLICE_EVENTS: Final = 8192
SLICE_GROWTH: Final = 4
_SELECT: Final = ", ".join(f"`{name}`" for name in COLUMNS)
# The guard's verdict as `_ordered` selects it; a candidate WHERE names it instead of repeating the guard.
_UNSURE: Final = "`_unsure`"
_decode_attributes: Final = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass(frozen=True)
class _Scan:
    """A read's tenant, window, pipeline and order, and the SQL its filter compiled to."""

    tenant: Tenant
    start_ns: int
    end_ns: int
    pipeline: Pipeline
    index: str | None
    deadline: float
    newest_first: bool = True


class _Rows(enum.Enum):
    """Which rows a statement reads: candidates, rows the condition decides (and matches), or guarded rows."""

    CANDIDATES = "candidates"
    DECIDED = "decided"
    GUARDED = "guarded"


@dataclass(frozen=True)
class _Where:
    """A statement's WHERE, whether its rows need verifying, and the guard's verdict as a column ("1": all).

    A guarded candidate WHERE tests the verdict through its alias `_UNSURE`, so it stands only in a
    statement that selects `unsure AS _UNSURE` (`_ordered`): ClickHouse analyses a guard (a tree of
    JSON extractions) in some tens of ms, and once per statement is enough, which slices multiply.
    """

    sql: str
    verify: bool
    unsure: str = "1"

    @property
    def guarded(self) -> bool:
        """Exact except on guarded rows: ClickHouse decides the rest."""
        return self.unsure != "1"


def _confined(scan: _Scan, params: Params, rows: _Rows = _Rows.CANDIDATES) -> _Where:
    """The WHERE of every statement: tenant and window first, then the index, then the user's filter."""
    condition = compile_condition(scan.pipeline.prefilter, params)
    parts = [
        f"`org` = {params.text(scan.tenant.org)}",
        f"`env` = {params.text(scan.tenant.env)}",
        f"`timestamp` >= {params.int64(scan.start_ns)}",
        f"`timestamp` < {params.int64(scan.end_ns)}",
    ]
    if scan.index is not None:
        parts.append(f"`index` = {params.text(scan.index)}")
    stages = needs_stages(scan.pipeline)
    if not condition.exact or stages or not condition.guard:
        parts.append(f"({condition.superset})")
        return _Where(" AND ".join(parts), not condition.exact or stages)
    if rows is _Rows.DECIDED:
        parts.append(f"NOT ({condition.guard}) AND ({condition.sql})")
    elif rows is _Rows.GUARDED:
        parts.append(_UNSURE)
    else:
        parts.append(f"({_UNSURE} OR ({condition.sql}))")
    return _Where(" AND ".join(parts), True, condition.guard)


def _settings(deadline: float) -> Settings:
    """ClickHouse stops a statement at the query's deadline too, not only between chunks."""
    remaining = deadline - time.monotonic()
    if remaining == float("inf"):
        return {}
    if remaining <= 0:
        raise QueryTimeout("the query ran past its time budget and was cancelled")
    return {"max_execution_time": round(max(remaining, MIN_EXECUTION_SECONDS), 3)}  # fractional seconds are honoured


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise QueryTimeout("the query ran past its time budget and was cancelled")


def event_from_row(row: list[Any]) -> Event:
    timestamp, identifier, org, env, level, service, host, index, tags, message, attributes = row[: len(COLUMNS)]
    return Event(
        timestamp=int(timestamp),
        message=message,
        level=level,
        service=service,
        host=host,
        env=env,
        org=org,
        index=index,
        tags=list(tags),
        attributes=_decode_attributes(attributes) if attributes else {},
        id=int(identifier),
    )


def search(client: Client, target: Target, tenant: Tenant, request: SearchRequest) -> SearchPage:
    """The page of rows the request asks for, with the figures the APIs report."""
    started = time.perf_counter()
    after = decode_cursor(request.after) if request.after is not None else None
    scan = _Scan(
        tenant, request.start_ns, request.end_ns, request.pipeline, request.index, request.deadline,
        request.newest_first,
    )  # fmt: skip
    params = Params()
    where = _confined(scan, params)
    page = SearchPage()
    if where.verify:
        _verified_page(client, target, scan, request, after, page)
    else:
        _exact_page(client, target, scan, request, after, page)
    total: int | None = None
    if request.count_total and where.guarded:
        total = _guarded_total(client, target, scan, page.stats)
    elif request.count_total and where.verify:
        total = _verified_total(client, target, scan, page.stats)
    elif request.count_total:
        total = _count(client, target, scan, where.sql, params)
    if total is None:
        page.total_exact = False
        total = request.offset + len(page.rows) + (1 if page.more else 0)
    page.total = total
    page.stats.seconds = time.perf_counter() - started
    return page


def _exact_page(
    client: Client, target: Target, scan: _Scan, request: SearchRequest, after: SortKey | None, page: SearchPage
) -> None:
    """ClickHouse filters, orders and cuts the page itself, slice by slice until the page is full."""
    rows: Rows = []
    wanted = request.limit + 1
    skip = request.offset
    for part in _slices(client, target, scan, after):
        params = Params()
        where = _confined(part, params)
        found = _ordered(client, target, part, params, where, after, wanted - len(rows), skip)
        if skip and not found:  # the slice held at most `skip` rows: how many it held is still to skip
            skip -= _count(client, target, part, where.sql + _after(part, params, after), params)
            continue
        skip = 0
        rows += found
        if len(rows) == wanted:
            break
    for row in rows[: request.limit]:
        event = event_from_row(row)
        page.rows.append(Row(event, {}))
        _examined(page.stats, event)
    page.more = len(rows) > request.limit
    if page.more and page.rows:
        last = page.rows[-1].event
        page.cursor = encode_cursor((last.timestamp, last.id))


def _slices(client: Client, target: Target, scan: _Scan, after: SortKey | None) -> Iterator[_Scan]:
    """The window (from the cursor on) cut into disjoint time slices in page order, each SLICE_GROWTH times wider.

    The table is ordered by (org, env, timestamp, id), so a statement confined to a slice reads only
    the granules of that slice's time range, where one over the whole window would evaluate the
    filter on every row of it before ORDER BY ... LIMIT kept the newest.  Slices are cut on
    timestamps, so events of equal timestamp are never split and the concatenation of the slices'
    rows is exactly the window's order.  The first slice is sized from the window's density: about
    SLICE_EVENTS events of the tenant, whatever the filter keeps of them.
    """
    low, high = scan.start_ns, scan.end_ns
    if after is not None:
        low, high = (low, min(high, after[0] + 1)) if scan.newest_first else (max(low, after[0]), high)
    if low >= high:
        return
    population = _population(client, target, dataclasses.replace(scan, start_ns=low, end_ns=high))
    width = max((high - low) * SLICE_EVENTS // max(population, 1), 1)
    while low < high:
        if scan.newest_first:
            low_part, high_part = max(low, high - width), high
            high = low_part
        else:
            low_part, high_part = low, min(high, low + width)
            low = high_part
        yield dataclasses.replace(scan, start_ns=low_part, end_ns=high_part)
        width *= SLICE_GROWTH


def _population(client: Client, target: Target, scan: _Scan) -> int:
    """The tenant's events in the window, whatever they say: a primary-key range count, no filter evaluated."""
    params = Params()
    unfiltered = dataclasses.replace(scan, pipeline=Pipeline(()))
    return _count(client, target, scan, _confined(unfiltered, params).sql, params)


def _verified_page(
    client: Client, target: Target, scan: _Scan, request: SearchRequest, after: SortKey | None, page: SearchPage
) -> None:
    matched = 0
    last: SortKey | None = None
    for row, key in _matches(client, target, scan, after, page.stats, sliced=True):
        matched += 1
        if matched <= request.offset:
            continue
        if len(page.rows) == request.limit:
            page.more = True
            break
        page.rows.append(row)
        last = key
    if page.more and last is not None:
        page.cursor = encode_cursor(last)


def _count(client: Client, target: Target, scan: _Scan, where: str, params: Params) -> int:
    sql = f"SELECT count() FROM {target.events} WHERE {where}"
    return int(client.query(sql, params.values, _settings(scan.deadline))[0][0])


def _guarded_total(client: Client, target: Target, scan: _Scan, stats: Stats) -> int | None:
    """ClickHouse's count of the rows it decides, plus the guarded rows that pass verification."""
    guarded = _verified_total(client, target, scan, stats, _Rows.GUARDED)
    if guarded is None:
        return None
    params = Params()
    return guarded + _count(client, target, scan, _confined(scan, params, _Rows.DECIDED).sql, params)


def _verified_total(
    client: Client, target: Target, scan: _Scan, stats: Stats, rows: _Rows = _Rows.CANDIDATES
) -> int | None:
    """Every match in the window (cursor or not, as an exact total counts), if at most MAX_VERIFIED_TOTAL reads tell."""
    total = 0
    budget = Stats()
    for _ in _matches(client, target, scan, None, budget, rows):
        total += 1
        if budget.lines_examined >= MAX_VERIFIED_TOTAL:
            return None
    stats.lines_examined += budget.lines_examined
    stats.bytes_examined += budget.bytes_examined
    return total


def _matches(
    client: Client, target: Target, scan: _Scan, after: SortKey | None, stats: Stats,
    selected: _Rows = _Rows.CANDIDATES, *, sliced: bool = False,
) -> Iterator[tuple[Row, SortKey]]:  # fmt: skip
    """Candidates in order, keyset-paged in growing chunks, each verified with the reference semantics.

    A guarded condition's verdict comes along as a last column: rows it decides are matches as they are.
    `sliced` reads the window through `_slices`, for a page that may stop early; a total or a count
    reads every candidate anyway, and one statement per chunk over the whole window is fewer.
    """
    verifier = build_verifier(scan.pipeline, stem=None)
    chunk = FIRST_CHUNK
    for part in _slices(client, target, scan, after) if sliced else iter((scan,)):
        while True:
            _check_deadline(scan.deadline)
            params = Params()
            where = _confined(part, params, selected)
            rows = _ordered(client, target, part, params, where, after, chunk, 0)
            for row in rows:
                _check_deadline(scan.deadline)  # per event: an abandoned query must free its thread promptly
                event = event_from_row(row)
                _examined(stats, event)
                verified = verifier(event) if row[-1] else (event, {})
                if verified is not None:
                    yield Row(*verified), (event.timestamp, event.id)
            if len(rows) < chunk:
                break
            last = rows[-1]
            after = (int(last[0]), int(last[1]))
            chunk = min(chunk * 4, MAX_CHUNK)


def _ordered(
    client: Client, target: Target, scan: _Scan, params: Params, where: _Where, after: SortKey | None, limit: int,
    offset: int,
) -> Rows:  # fmt: skip
    """Rows in page order, each with the guard's verdict last ("1" when every row is to be verified)."""
    direction = "DESC" if scan.newest_first else "ASC"
    sql = (
        f"SELECT {_SELECT}, ({where.unsure}) AS {_UNSURE} FROM {target.events} "
        f"WHERE {where.sql}{_after(scan, params, after)} "
        f"ORDER BY `timestamp` {direction}, `id` {direction} LIMIT {params.int64(limit)} OFFSET {params.int64(offset)}"
    )
    return client.query(sql, params.values, _settings(scan.deadline))


def _after(scan: _Scan, params: Params, after: SortKey | None) -> str:
    """The keyset condition of a cursor: strictly after its (timestamp, id) in page order."""
    if after is None:
        return ""
    comparison = "<" if scan.newest_first else ">"
    return f" AND (`timestamp`, `id`) {comparison} ({params.int64(after[0])}, {params.int64(after[1])})"


def _examined(stats: Stats, event: Event) -> None:
    stats.lines_examined += 1
    stats.bytes_examined += len(event.message)


def count(client: Client, target: Target, tenant: Tenant, request: CountRequest) -> CountResult:
    """Matching events counted into steps aligned on `request.start_ns`, per set of `by` values."""
    started = time.perf_counter()
    scan = _Scan(tenant, request.start_ns, request.end_ns, request.pipeline, request.index, request.deadline)
    params = Params()
    where = _confined(scan, params)
    result = CountResult()
    series: SeriesMap = {}
    by_columns = all(name in LABEL_COLUMNS for name in request.by)
    selected = _Rows.CANDIDATES
    if by_columns and where.guarded:
        params = Params()
        _aggregate(client, target, request, params, _confined(scan, params, _Rows.DECIDED).sql, series)
        selected = _Rows.GUARDED
    elif by_columns and not where.verify:
        _aggregate(client, target, request, params, where.sql, series)
        return _counted(result, series, started)
    forward = _Scan(tenant, request.start_ns, request.end_ns, request.pipeline, request.index, request.deadline,
                    newest_first=False)  # fmt: skip
    for row, key in _matches(client, target, forward, None, result.stats, selected):
        add_count(series, request, tuple(_label_value(row, name) for name in request.by), key[0], 1)
    return _counted(result, series, started)


def _counted(result: CountResult, series: SeriesMap, started: float) -> CountResult:
    result.series = list(series.values())
    result.stats.seconds = time.perf_counter() - started
    return result


def _aggregate(
    client: Client, target: Target, request: CountRequest, params: Params, where: str,
    series: SeriesMap,
) -> None:  # fmt: skip
    """Counts per step and label values, computed by ClickHouse (no event leaves the database)."""
    start = params.int64(request.start_ns)
    step = params.int64(request.step_ns)
    labels = "".join(f", `{name}`" for name in request.by)
    sql = (
        f"SELECT {start} + intDiv(`timestamp` - {start}, {step}) * {step} AS bucket{labels}, count() "
        f"FROM {target.events} WHERE {where} GROUP BY bucket{labels}"
    )
    for row in client.query(sql, params.values, _settings(request.deadline)):
        add_count(series, request, tuple(str(value) for value in row[1:-1]), int(row[0]), int(row[-1]))


def _label_value(row: Row, name: str) -> str:
    """A canonical field, else a parsed label, else a top-level attribute; "" when absent (as on Tantivy)."""
    if name in LABEL_COLUMNS:
        return str(getattr(row.event, name))
    if name in row.labels:
        return row.labels[name]
    value = row.event.attributes.get(name)
    return "" if value is None else str(value)
