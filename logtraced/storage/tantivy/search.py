"""Runs a parsed query over the day-partitions of one tenant: narrow with the index, verify, order, page, count.

Every query language arrives here as a `Pipeline` (KQL is a pipeline of one filter stage).  Every
read is confined by `IndexReader.confine`, so the tenant restriction is added in one place
whatever the query says.

Order is by timestamp, then by the event's unique id, so paging is exact: a cursor is the
(timestamp, id) of the last row, and the next page is everything strictly after it.  Rows at a
page's boundary timestamp are read in full before the page is cut, so equal timestamps never
make a row appear twice or go missing.

Verified searches stop early.  A newest-N (or oldest-N) page whose query needs verification first
reads the newest candidates of each partition in order and verifies them, as a scan with early
stop would: a common substring fills the page after a few hundred events, without ranking every
candidate.  The scan reads the candidates when the candidate query only looks up the words it names
(a settled day's word list answers word pieces: storage/tantivy/words.py), and every event when it
would walk a term dictionary, because each time slice would walk it again.  After a probe, when
the observed match rate says the page would take more than `SCAN_MAX` events to fill, the rest of
the partition (strictly after the last event scanned) is read through the index's candidates in
one ordered pass instead.  Either way rows come in exact
(timestamp, id) order, so the page is exactly the one a full verification would give.

Documents are decoded only as far as needed: verification reads the fields the query touches
(`query_fields`), and a row carries the fields the request asks for (`SearchRequest.fields`).

Counts per step run as a tantivy aggregation over the fast fields (storage/tantivy/aggregate.py)
whenever the index answers the filter exactly and the labels are stored ones, once per partition
commit (storage/tantivy/countcache.py); only a filter that needs verification, or a parsed label,
reads documents.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final, cast

import tantivy

from logtraced.errors import QueryTimeout
from logtraced.model import NS_PER_DAY, Event, Tenant
from logtraced.query.ast import (
    ENV,
    EVENT_FIELDS,
    KEYWORD_FIELDS,
    LEVEL,
    MESSAGE,
    ORG,
    TAGS,
    And,
    Compare,
    Exists,
    MatchAll,
    Node,
    Not,
    Op,
    Or,
)
from logtraced.query.logql_stages import STREAM_LABELS
from logtraced.query.pipeline import Aggregate, Filter, Pipeline
from logtraced.query.verify import Verifier, build_verifier, needs_stages
from logtraced.storage.backend import (
    NO_DEADLINE,
    CountRequest,
    CountResult,
    Row,
    SearchPage,
    SearchRequest,
    SeriesMap,
    Stats,
    add_count,
)
from logtraced.storage.cursor import SortKey, decode_cursor, encode_cursor
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.aggregate import alignment, count_partition
from logtraced.storage.tantivy.compile import (
    Compiled,
    compile_query,
    keyword_terms,
    listed_fields,
    scans_message_words,
    uncapitalised,
)
from logtraced.storage.tantivy.countcache import CountKey, add_counted, frozen
from logtraced.storage.tantivy.documents import projector, trimmer
from logtraced.storage.tantivy.partitions import Partition, clipped, holds_all_of
from logtraced.storage.tantivy.reader import CompiledCache, IndexReader, hit_count
from logtraced.storage.tantivy.words import WordList

FIRST_CHUNK: Final = 256
MAX_CHUNK: Final = 8192
# The first chunk read of a time slice sized to hold FIRST_CHUNK events: one pass reads it whole.
SLICE_CHUNK: Final = 4 * FIRST_CHUNK
# Rows of hits that need no verification read per pass and per deadline check (5-20 ms of reading).
ROW_BATCH: Final = 1024
# Hits sharing the boundary timestamp of a chunk read in the same pass as their count.
BOUNDARY_HITS: Final = 64
# Candidates a count reads in one unordered search; more are read in time-ordered chunks of up to as many.
UNORDERED_MAX: Final = 100_000
# Events of a partition verified in time order before deciding whether scanning will fill the page.
SCAN_PROBE: Final = 256
# The most events a scan may expect to read to fill the page; beyond, the index narrows instead.
SCAN_MAX: Final = 8192
# Listed words whose document frequencies are summed to bound the candidates; more are counted.
MAX_SUMMED_WORDS: Final = 256
_INTEGER: Final = tantivy.FieldType.Integer
_MIN_I64: Final = -(2**63)
_MAX_I64: Final = 2**63 - 1


@dataclass(frozen=True)
class _Scan:
    """What the helpers below need of a search or count: the tenant, window, pipeline and order."""

    tenant: Tenant
    start_ns: int
    end_ns: int  # exclusive
    pipeline: Pipeline
    index: str | None
    deadline: float
    newest_first: bool = True
    after: SortKey | None = None
    fields: frozenset[str] | None = None  # what rows carry (None: every field)


def search(reader: IndexReader, tenant: Tenant, request: SearchRequest) -> SearchPage:
    """The page of rows the request asks for, with the figures the APIs report."""
    started = time.perf_counter()
    after = decode_cursor(request.after) if request.after is not None else None
    scan = _Scan(
        tenant,
        request.start_ns,
        request.end_ns,
        request.pipeline,
        request.index,
        request.deadline,
        request.newest_first,
        after,
        request.fields,
    )
    page = SearchPage()
    plans: Iterable[_Plan] = _plans(reader, scan)
    if request.count_total:
        plans = list(plans)
        _total(plans, page)
    else:
        page.total_exact = False
    last: SortKey | None = None
    wanted = request.offset + request.limit + 1
    for position, (row, key) in enumerate(_matches(plans, scan, page.stats, wanted)):
        if position < request.offset:
            continue
        if len(page.rows) == request.limit:
            page.more = True
            break
        page.rows.append(row)
        last = key
    if page.more and last is not None:
        page.cursor = encode_cursor(last)
    if not page.total_exact:
        # Verified queries stop reading once the page is full: what was seen is a lower bound.
        page.total = request.offset + len(page.rows) + (1 if page.more else 0)
    page.stats.seconds = time.perf_counter() - started
    return page


@dataclass(frozen=True)
class _Plan:
    """One partition's confined query, and whether its hits must be verified one by one."""

    index: tantivy.Index
    searcher: tantivy.Searcher
    query: tantivy.Query
    verify: bool
    stemming: bool
    # What a scan in time order reads, before confinement (`_scanned`): the candidates, or every event
    # (of the index asked for, if any) when the candidates walk a dictionary.
    scanned: tantivy.Query | None
    population: int | None  # at most how many events `scanned` holds over the day (`_population`); None: unknown
    day: int  # the partition's UTC day (days since the epoch)
    whole: bool  # the partition stores each event whole (`schema.stores_events`)
    committed_ns: int = -1  # when the partition last committed (`IndexReader.commit_mark`; -1: unknown)
    count: int | None = None  # how many events `query` matches, when the dictionary says so (`_known_count`)


def _plans(reader: IndexReader, scan: _Scan) -> Iterator[_Plan]:
    """The partitions the window overlaps, in scan order (days are disjoint, so concatenation is ordered).

    Planned lazily: a newest-first page usually fills from the newest day, and older days are then
    never opened or compiled.
    """
    for partition in reader.partitions(scan.tenant, scan.start_ns, scan.end_ns - 1, newest_first=scan.newest_first):
        plan = _plan(reader, scan, partition)
        if plan is not None:
            yield plan


def _plan(
    reader: IndexReader, scan: _Scan, partition: Partition, *, counting: bool = False, fresh: bool = False
) -> _Plan | None:
    """One partition's plan; None when it is gone.

    A count (`counting`) also asks which lowercase substrings the index answers exactly
    (compile.uncapitalised): a search would rather scan for them and stop early.  `fresh` reloads
    the index first (`IndexReader.reloaded`), for an answer filed under a commit mark read before.
    """
    index = reader.reloaded(partition) if fresh else reader.index(partition)
    if index is None:
        return None
    prefilter = scan.pipeline.prefilter
    end_inclusive = scan.end_ns - 1
    stemming = schema.has_field(index.schema, schema.MESSAGE_STEMMED)
    searcher = index.searcher()
    mark = reader.commit_mark(partition)
    words = reader.word_lists.get(partition, mark) if scans_message_words(prefilter) else None
    compiled = _compile(reader.compiled, prefilter, index.schema, stemming, searcher, counting, words)
    query = _with_index(index, compiled.query, scan.index)
    confined = reader.confine(index, scan.tenant, partition.day, scan.start_ns, end_inclusive, query)
    verify = compiled.needs_verification or needs_stages(scan.pipeline)
    whole = schema.stores_events(index.schema)
    label_hits = _label_hits(prefilter, searcher)
    scanned: tantivy.Query | None
    population: int | None
    if compiled.walks_dictionary:  # once per time slice would repeat the walk: read every event instead
        scanned, population = _index_term(index, scan.index), searcher.num_docs
    else:
        scanned, population = query, _population(compiled, label_hits, searcher)
    count = None if verify else _known_count(scan, partition.day, searcher, compiled, label_hits)
    return _Plan(
        index, searcher, confined, verify, stemming, scanned, population, partition.day, whole, mark.at_ns, count
    )


def _known_count(
    scan: _Scan, day: int, searcher: tantivy.Searcher, compiled: Compiled, label_hits: int | None
) -> int | None:
    """How many of the tenant's events in the window pass the filter, when the dictionary alone says so.

    Only when the window holds everything the partition may hold (then `IndexReader.confine` adds no
    time range) and no index is named: the confined query is then the tenant's labels and the
    filter, each counted exactly when `_label_hits` knows it (for the filter, the plan's `label_hits`;
    or the filter is one message word of one spelling, `RequiredWords.exact_count`), and their
    conjunction when one of the two is on every event.
    An exact total over a week of whole days then costs a few dictionary look-ups, not a pass over them.
    """
    if not holds_all_of(day, scan.start_ns, scan.end_ns - 1) or scan.index is not None:
        return None
    tenant = _label_hits(And((Compare(Op.EQ, ENV, scan.tenant.env), Compare(Op.EQ, ORG, scan.tenant.org))), searcher)
    passing = label_hits
    if passing is None and compiled.required_words is not None:
        passing = compiled.required_words.exact_count(searcher)
    if tenant is None or passing is None:
        return None
    if tenant == searcher.num_docs:
        return passing
    return tenant if passing == searcher.num_docs else None


def _label_hits(node: Node, searcher: tantivy.Searcher) -> int | None:
    """How many events of the partition pass `node`, when its terms alone say so; else None.

    No condition passes every event; a label equality compiles to one term (`compile._keyword`),
    whose document frequency is its number of events, exactly, since events are never deleted
    from a partition (retention drops whole days); a conjunction of them is known when all but one
    are on every event (one service, one environment: a LogQL stream selector of a small deployment).
    """
    if isinstance(node, MatchAll):
        return searcher.num_docs
    if isinstance(node, And):
        counts = [_label_hits(child, searcher) for child in node.children]
        known = [count for count in counts if count is not None]
        if len(known) < len(counts) or sum(count != searcher.num_docs for count in known) > 1:
            return None
        return min(known)
    if not (
        isinstance(node, Compare)
        and node.field in KEYWORD_FIELDS
        and node.field != TAGS
        and node.op in (Op.EQ, Op.MATCH, Op.PHRASE)
        and isinstance(node.value, str)
    ):
        return None
    value = node.value.lower() if node.field == LEVEL else node.value
    return searcher.doc_freq(node.field, value)


def _compile(
    cache: CompiledCache,
    node: Node,
    index_schema: tantivy.Schema,
    stemming: bool,
    searcher: tantivy.Searcher,
    counting: bool,
    words: WordList | None,
) -> Compiled:
    """A query compiled once per schema and reused by every partition and search that has that schema.

    Compiling builds term-dictionary automata (several ms for a substring), and the partitions
    of a deployment share one or two schemas; like a statement cache, the least recently used go.
    A query that compares keywords term by term, or trusts the index for substrings no capitalised
    word holds, or names the words of its list (`words`), is valid only for partitions with the same
    such facts, so they are part of what must match.
    """
    key = (node, stemming)
    listed = listed_fields(node)
    terms = keyword_terms(searcher, listed) if listed else {}
    exact_substrings = uncapitalised(searcher, index_schema, node) if counting else frozenset()
    for known, known_terms, known_substrings, known_words, compiled in cache.variants(key):
        if (
            known == index_schema
            and known_terms == terms
            and known_substrings == exact_substrings
            and known_words is words
        ):
            return compiled
    compiled = compile_query(
        node, index_schema, stemming=stemming, terms=terms, uncapitalised=exact_substrings, words=words
    )
    cache.add(key, (index_schema, terms, exact_substrings, words, compiled))
    return compiled


def _total(plans: list[_Plan], page: SearchPage) -> None:
    """The exact total over every partition, counted by the index, when no partition needs verification.

    Counting up front matters: the scan stops as soon as the page is full, often before the older
    partitions are reached, and the total must still cover them.
    """
    if any(plan.verify for plan in plans):
        page.total_exact = False
        return
    page.total = sum(hit_count(plan.searcher, plan.query) if plan.count is None else plan.count for plan in plans)


def _matches(plans: Iterable[_Plan], scan: _Scan, stats: Stats, wanted: int) -> Iterator[tuple[Row, SortKey]]:
    """Matching rows in order across partitions, verified where the index alone cannot decide.

    `wanted` is how many rows the caller will take at most; it decides
    whether a verified partition is scanned first.
    """
    found = 0
    probe = _Probe()
    verify_fields = query_fields(scan.pipeline)
    for plan in plans:
        decode = _Decoder(plan, scan.fields, verify_fields if plan.verify else None, stats, scan.deadline)
        if not plan.verify:
            first = min(FIRST_CHUNK, max(wanted - found, 1) + 1)  # one more: the last row's timestamp may tie
            largest = max(MAX_CHUNK, wanted - found)
            ordered = (
                _ordered(plan.searcher, plan.index, plan.query, scan, first, largest)
                if plan.population is None
                else _sliced(plan, scan)  # sized from a known bound: ranking them all would be a pass over them
            )
            pairs = iter(ordered)
            while batch := list(islice(pairs, min(max(wanted - found, 1), ROW_BATCH))):
                _check_deadline(scan.deadline)
                found += len(batch)
                for event, (key, _) in zip(decode.rows(batch), batch, strict=True):
                    yield Row(event, {}), key
            continue
        verifier = build_verifier(scan.pipeline, stem=_stemmer(plan.stemming))
        remaining = wanted - found
        for row, key in _verified(plan, scan, decode, verifier, remaining, probe):
            found += 1
            yield row, key


@dataclass
class _Probe:
    """What scanning has seen so far in this search: the match rate decides whether to keep scanning."""

    scanned: int = 0
    matched: int = 0

    def worth_scanning(self, wanted: int) -> bool:
        """Until the probe is done, yes; then only if the page should fill within `SCAN_MAX` events."""
        if self.scanned < SCAN_PROBE:
            return True
        return self.matched > 0 and self.scanned * wanted <= SCAN_MAX * self.matched


def _verified(
    plan: _Plan, scan: _Scan, decode: _Decoder, verifier: Verifier, wanted: int, probe: _Probe
) -> Iterator[tuple[Row, SortKey]]:
    """One partition's verified rows: a scan in time order while it promises to fill the page, then the index.

    The probe is shared by the partitions of one search, so a rare match is found out once, not per day.
    """
    rest = scan
    if probe.worth_scanning(wanted):
        last: SortKey | None = None
        for key, address in _sliced(plan, scan):
            row = _check(decode, verifier, address, key)
            probe.scanned, last = probe.scanned + 1, key
            if row is not None:
                probe.matched += 1
                wanted -= 1
                yield row, key
            if not probe.worth_scanning(max(wanted, 1)):
                break
        else:
            return  # the scan read the whole partition
        rest = dataclasses.replace(scan, after=last)
    for key, address in _ordered(plan.searcher, plan.index, plan.query, rest):
        row = _check(decode, verifier, address, key)
        if row is not None:
            yield row, key


def _check(decode: _Decoder, verifier: Verifier, address: tantivy.DocAddress, key: SortKey) -> Row | None:
    """The row of a candidate the pipeline accepts (read from the fields it tests first), else None."""
    _check_deadline(decode.deadline)
    document = decode.searcher.doc(address)
    candidate = decode.for_verification(document, key)
    verified = verifier(candidate)
    if verified is None:
        return None
    shown, labels = verified
    event = decode.shown(document, candidate, key)
    if shown.message != candidate.message:  # LogQL's line_format or unpack rewrote the line
        event.message = shown.message
    return Row(event, labels)


class _Decoder:
    """Stored documents to events, reading only the fields asked for, and the read counted in the stats."""

    def __init__(
        self,
        plan: _Plan,
        fields: frozenset[str] | None,
        verify_fields: frozenset[str] | None,
        stats: Stats,
        deadline: float = NO_DEADLINE,
    ) -> None:
        self.searcher = plan.searcher
        self.whole = plan.whole
        self.stats = stats
        self.deadline = deadline
        self.project_fields = projector(fields, whole=plan.whole)
        # A whole event is decoded in full once for verification, and the row trimmed from it.
        self.project_verified = projector(None if plan.whole else verify_fields, whole=plan.whole)
        self.trim = trimmer(fields)

    def rows(self, hits: list[tuple[SortKey, tantivy.DocAddress]]) -> list[Event]:
        """The rows of hits that need no verification, read in one pass: a page is read whole, so nothing is wasted."""
        doc, project = self.searcher.doc, self.project_fields
        events = [project(doc(address), timestamp, identifier) for (timestamp, identifier), address in hits]
        self.stats.lines_examined += len(events)
        self.stats.bytes_examined += sum([len(event.message) for event in events])
        return events

    def shown(self, document: tantivy.Document, verified: Event, key: SortKey) -> Event:
        """The row of a verified candidate: the event verification read, when that was the whole event."""
        return self._counted(self.trim(verified) if self.whole else self.project_fields(document, *key))

    def _counted(self, event: Event) -> Event:
        self.stats.lines_examined += 1
        self.stats.bytes_examined += len(event.message)
        return event

    def for_verification(self, document: tantivy.Document, key: SortKey) -> Event:
        return self.project_verified(document, *key)


def query_fields(pipeline: Pipeline) -> frozenset[str] | None:
    """The event fields verifying `pipeline` reads (always the timestamp); None when it may read any.

    A parse stage reads the field it parses and hands labels on, so only pipelines of filters are
    narrowed; a field that is not an event field is an attribute path.  A LogQL filter also sees
    the stream labels (a name it tests is looked up among them first), so those are read too; any
    other LogQL stage may read or rewrite anything.
    """
    fields = {schema.TIMESTAMP}
    if pipeline.logql:
        if not all(isinstance(stage, Filter) for stage in pipeline.stages):
            return None
        fields.update(field for field, _ in STREAM_LABELS)
    for stage in pipeline.stages:
        if isinstance(stage, Aggregate):
            continue
        if not isinstance(stage, Filter):
            return None
        _node_fields(stage.node, fields)
    return frozenset(fields)


def _node_fields(node: Node, fields: set[str]) -> None:
    if isinstance(node, (And, Or)):
        for child in node.children:
            _node_fields(child, fields)
    elif isinstance(node, Not):
        _node_fields(node.child, fields)
    elif isinstance(node, (Compare, Exists)):
        name = node.field if node.field is not None else MESSAGE
        fields.add(name if name in EVENT_FIELDS else schema.ATTRIBUTES)
    elif not isinstance(node, MatchAll):
        raise TypeError(f"unknown query node {node!r}")


def _index_term(index: tantivy.Index, name: str | None) -> tantivy.Query | None:
    return None if name is None else tantivy.Query.term_query(index.schema, schema.INDEX, name)


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


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise QueryTimeout("the query ran past its time budget and was cancelled")


def _ordered(
    searcher: tantivy.Searcher,
    index: tantivy.Index,
    query: tantivy.Query,
    scan: _Scan,
    first: int = FIRST_CHUNK,
    largest: int = MAX_CHUNK,
) -> Iterator[tuple[SortKey, tantivy.DocAddress]]:
    """Every hit of `query` in (timestamp, id) order after `scan.after`, read in chunks growing from `first`.

    Chunks grow to `largest`: a caller that will take many rows (analysis reads 100 000) says so,
    because every chunk is one more ordered pass over the partition's hits.
    """
    order = tantivy.Order.Desc if scan.newest_first else tantivy.Order.Asc
    after = scan.after
    chunk = first
    while True:
        _check_deadline(scan.deadline)
        bounded = _after(index, query, after, scan.newest_first)
        hits = searcher.search(bounded, chunk, count=False, order_by_field=schema.TIMESTAMP, order=order).hits
        if not hits:
            return
        rows = _keyed(searcher, [ts for ts, _ in hits], [address for _, address in hits])
        if len(hits) < chunk:
            yield from sorted(rows, key=_sort_key, reverse=scan.newest_first)
            return
        # The chunk may have cut the hits at its last timestamp: those before it are complete, and the
        # rest at it are read only if the caller still wants rows (a page usually fills before them).
        boundary = rows[-1][0][0]
        yield from sorted((row for row in rows if row[0][0] != boundary), key=_sort_key, reverse=scan.newest_first)
        tied = sorted(_all_at(searcher, index, bounded, boundary), key=_sort_key, reverse=scan.newest_first)
        yield from tied
        after = tied[-1][0]
        chunk = min(chunk * 4, largest)


def _sort_key(row: tuple[SortKey, tantivy.DocAddress]) -> SortKey:
    return row[0]


def _sliced(plan: _Plan, scan: _Scan) -> Iterator[tuple[SortKey, tantivy.DocAddress]]:
    """Everything the partition's scan reads in its window, in order, through time slices of about a chunk each.

    Ordering a whole day's events to take the newest few hundred ranks all of them (a full pass
    of the timestamp column per chunk); a slice bounded by timestamp ranks only its own.  Slices
    are disjoint and taken in scan order, so their concatenation is ordered; each is sized from the
    density of what is scanned (the partition's events, or candidates whose number the dictionary
    bounds, `_population`) and doubles with every slice read (fourfold when one came back short).
    Candidates that would have to be counted are ranked instead: a count is a pass over them, as
    ranking them is, and ranking gives the rows (measured on the 10M benchmark, quiet: a common regex
    alternation's page 9.9-10.0 ms through a count and slices, 5.9-6.2 ms ranked).
    """
    population = plan.population
    if population is None:  # only candidates that walk no dictionary: what is scanned is the plan's query
        yield from _ordered(plan.searcher, plan.index, plan.query, scan)
        return
    low, high = clipped(plan.day, scan.start_ns, scan.end_ns - 1)
    after = scan.after
    if after is not None:
        high, low = (min(high, after[0]), low) if scan.newest_first else (high, max(low, after[0]))
    width = max(_spread(plan) * FIRST_CHUNK // max(population, 1), 1)
    while low <= high:
        first, last = (max(low, high - width + 1), high) if scan.newest_first else (low, min(high, low + width - 1))
        read = 0
        bounded = _scanned(plan, scan, first, last)
        for item in _ordered(plan.searcher, plan.index, bounded, dataclasses.replace(scan, after=after), SLICE_CHUNK):
            read += 1
            yield item
        high, low = (first - 1, low) if scan.newest_first else (high, last + 1)
        after = None  # later slices lie wholly beyond the cursor
        width *= 4 if read < FIRST_CHUNK else 2  # still reading: the page needs more than one slice held


def _scanned(plan: _Plan, scan: _Scan, low: int, high: int) -> tantivy.Query:
    """What the scan reads between two timestamps (inclusive), confined: their range replaces the window's."""
    return IndexReader.confine(plan.index, scan.tenant, plan.day, low, high, plan.scanned)


def _spread(plan: _Plan) -> int:
    """The nanoseconds of its day the partition's events are taken to spread over: until its last commit.

    A day being written holds events up to about now, so sizing slices as if its events filled the
    whole day would make them several times too wide.  A day that last committed before it began
    (events dated ahead of the clock) is taken as whole.
    """
    start = plan.day * NS_PER_DAY
    if plan.committed_ns <= start:
        return NS_PER_DAY
    return min(plan.committed_ns - start, NS_PER_DAY)


def _population(compiled: Compiled, label_hits: int | None, searcher: tantivy.Searcher) -> int | None:
    """At most how many of the partition's events are candidates, from its term dictionary; None if only a count knows.

    Label terms whose count is known (`label_hits`, the filter's `_label_hits`), a phrase (its rarest word's frequency:
    `Compiled.required_words`), or a few listed words (their frequencies summed), a dictionary
    look-up each.  A plan whose population is known is read through time slices sized from it
    (`_sliced`), whether or not its hits are verified.  Plain words are left to ranking: on
    bench/query.py's 10M set `timeout` read 1.5-2.7 ms ranked and 2.0-3.0 ms sliced, where the
    phrase `"connection refused"`, whose every hit is a positions check, read 3.2-5.2 ms ranked and
    1.9-2.5 ms sliced.
    """
    if label_hits is not None:
        return label_hits
    if compiled.required_words is not None and compiled.required_words.phrase:
        return compiled.required_words.bound(searcher)
    words = compiled.listed_words
    if words is not None and len(words) <= MAX_SUMMED_WORDS:
        return sum(searcher.doc_freq(schema.MESSAGE, word) for word in words)
    return None


def _keyed(
    searcher: tantivy.Searcher, timestamps: Sequence[object], addresses: list[tantivy.DocAddress]
) -> list[tuple[SortKey, tantivy.DocAddress]]:
    """Hits with their sort keys: the timestamps given, the ids from the fast field."""
    ids = searcher.fast_field_values(schema.ID, addresses)
    return [
        ((int(cast(int, ts)), int(identifier or 0)), address)
        for ts, identifier, address in zip(timestamps, ids, addresses, strict=True)
    ]


def _all_at(
    searcher: tantivy.Searcher, index: tantivy.Index, query: tantivy.Query, timestamp: int
) -> list[tuple[SortKey, tantivy.DocAddress]]:
    """Every hit with exactly this timestamp: a page boundary must not split equal timestamps arbitrarily."""
    exact = _range(index, schema.TIMESTAMP, timestamp, timestamp)
    both = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, exact)])
    result: Any = searcher.search(both, BOUNDARY_HITS, count=True)  # one pass unless the tie is large
    hits = result.hits
    if result.count > len(hits):
        hits = searcher.search(both, result.count, count=False).hits
    return _keyed(searcher, [timestamp] * len(hits), [address for _, address in hits])


def _after(index: tantivy.Index, query: tantivy.Query, after: SortKey | None, newest_first: bool) -> tantivy.Query:
    """`query` restricted to rows strictly after the cursor in the scan's order."""
    if after is None:
        return query
    timestamp, identifier = after
    if newest_first:
        strictly = _range(index, schema.TIMESTAMP, _MIN_I64, timestamp - 1)
        same = _range(index, schema.ID, _MIN_I64, identifier - 1)
    else:
        strictly = _range(index, schema.TIMESTAMP, timestamp + 1, _MAX_I64)
        same = _range(index, schema.ID, identifier + 1, _MAX_I64)
    at = tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, _range(index, schema.TIMESTAMP, timestamp, timestamp)), (tantivy.Occur.Must, same)]
    )
    either = tantivy.Query.boolean_query([(tantivy.Occur.Should, strictly), (tantivy.Occur.Should, at)])
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, either)])


def _range(index: tantivy.Index, name: str, low: int, high: int) -> tantivy.Query:
    return tantivy.Query.range_query(index.schema, name, _INTEGER, low, high)


def count(reader: IndexReader, tenant: Tenant, request: CountRequest) -> CountResult:
    """Matching events counted into steps aligned on `request.start_ns`, per set of `by` values.

    A partition whose filter the index answers exactly, grouped by stored labels, is counted by a
    fast-field aggregation, once per commit (`_aggregated`); any other partition's candidates are
    read and verified in document order (a count needs no time order, and the docstore then
    decompresses each block once).
    """
    started = time.perf_counter()
    fields = _count_fields(request)
    scan = _Scan(
        tenant, request.start_ns, request.end_ns, request.pipeline, request.index, request.deadline, fields=fields
    )
    result = CountResult()
    series: SeriesMap = {}
    stored_labels = all(name in schema.LABEL_FIELDS for name in request.by)
    cacheable = stored_labels and not needs_stages(request.pipeline)
    for partition in reader.partitions(tenant, scan.start_ns, scan.end_ns - 1):
        _check_deadline(request.deadline)
        key = _count_key(reader, scan, request, partition) if cacheable else None
        if key is not None and _cached(reader, key, series):
            continue
        plan = _plan(reader, scan, partition, counting=True, fresh=key is not None)
        if plan is None:
            continue
        if stored_labels and not plan.verify:
            _aggregated(reader, plan, request, key, series)
            continue
        _counted_one_by_one(plan, scan, request, fields, series, result.stats)
    result.series = list(series.values())
    result.stats.seconds = time.perf_counter() - started
    return result


def _count_key(reader: IndexReader, scan: _Scan, request: CountRequest, partition: Partition) -> CountKey:
    """The partition's cache key, its commit mark read now, before the plan's searcher is opened (`reloaded`)."""
    return CountKey(
        partition,
        reader.commit_mark(partition),
        scan.tenant.env,
        clipped(partition.day, scan.start_ns, scan.end_ns - 1),
        request.step_ns,
        alignment(request),
        request.by,
        scan.pipeline.prefilter,
        request.index,
    )


def _cached(reader: IndexReader, key: CountKey, series: SeriesMap) -> bool:
    """Add the partition's counts from the cache; False when they are not there."""
    counted = reader.counts.get(key)
    if counted is None:
        return False
    add_counted(counted, key.by, series)
    return True


def _aggregated(
    reader: IndexReader, plan: _Plan, request: CountRequest, key: CountKey | None, series: SeriesMap
) -> None:
    """Aggregate the partition; with a key, cache its counts (the plan's index was reloaded after the mark was read)."""
    if key is None:
        count_partition(plan.searcher, plan.index, plan.query, plan.day, request, series)
        return
    own: SeriesMap = {}
    count_partition(plan.searcher, plan.index, plan.query, plan.day, request, own)
    counted = frozen(own)
    reader.counts.keep(key, counted)
    add_counted(counted, request.by, series)


def _counted_one_by_one(
    plan: _Plan, scan: _Scan, request: CountRequest, fields: frozenset[str] | None, series: SeriesMap, stats: Stats
) -> None:
    """Count the partition by reading and verifying its candidates."""
    verifier = build_verifier(scan.pipeline, stem=_stemmer(plan.stemming))
    decode = _Decoder(plan, fields, fields, stats, request.deadline)
    for key, address in _unordered(plan, scan):
        _check_deadline(request.deadline)
        verified = verifier(decode.for_verification(plan.searcher.doc(address), key))
        stats.lines_examined += 1
        if verified is not None:
            shown, labels = verified
            stats.bytes_examined += len(shown.message)
            values = tuple(_label_value(Row(shown, labels), name) for name in request.by)
            add_count(series, request, values, key[0], 1)


def _unordered(plan: _Plan, scan: _Scan) -> Iterable[tuple[SortKey, tantivy.DocAddress]]:
    """Every hit of the plan's query in document order, from one search when there are few enough to hold."""
    result: Any = plan.searcher.search(plan.query, UNORDERED_MAX, count=True)
    if result.count > UNORDERED_MAX:
        return _ordered(plan.searcher, plan.index, plan.query, scan, MAX_CHUNK, UNORDERED_MAX)
    addresses = sorted((address for _, address in result.hits), key=lambda address: (address.segment_ord, address.doc))
    return _keyed(plan.searcher, plan.searcher.fast_field_values(schema.TIMESTAMP, addresses), addresses)


def _count_fields(request: CountRequest) -> frozenset[str] | None:
    """What counting reads of a verified event: the fields the query tests and the labels it groups by."""
    needed = query_fields(request.pipeline)
    if needed is None:
        return None
    labels = {name if name in schema.LABEL_FIELDS else schema.ATTRIBUTES for name in request.by}
    return needed | labels


def _label_value(row: Row, name: str) -> str:
    """A canonical field, else a parsed label, else a top-level attribute; "" when absent."""
    if name in schema.LABEL_FIELDS:
        return str(getattr(row.event, name))
    if name in row.labels:
        return row.labels[name]
    value = row.event.attributes.get(name)
    return "" if value is None else str(value)
