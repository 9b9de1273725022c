"""Searches that stop early (verified, or read through time slices) give the full answer; projections read less."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import tantivy

from logtraced.model import NS_PER_DAY, Event
from logtraced.query.ast import And, Compare, MatchAll, Node, Not, Op
from logtraced.query.evaluate import build_matcher
from logtraced.query.kql import parse_kql
from logtraced.query.logql import parse_logql
from logtraced.query.pipeline import Filter, Pipeline, parse_pipeline
from logtraced.storage.backend import CountRequest, SearchRequest, TenantView
from logtraced.storage.tantivy import schema, search
from logtraced.storage.tantivy.documents import encode_documents
from logtraced.storage.tantivy.partitions import Partition, PartitionLayout
from logtraced.storage.tantivy.store import TantivyStore
from tests.storage.tantivy.test_documents import separate_fields_schema
from tests.storage.test_store import MINE, NOW, config, write

EVENTS = 3000
SPAN_NS = 2 * NS_PER_DAY  # two day-partitions at least


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[TantivyStore, list[Event]]:
    """Events over two days, some sharing a nanosecond; one in three says "connection", one in 500 "zq7x"."""
    rng = random.Random(12)
    events = []
    for position in range(EVENTS):
        timestamp = NOW - rng.randrange(SPAN_NS) // 1000 * 1000  # coarse: equal timestamps happen
        words = ["connection refused" if position % 3 == 0 else "request done", f"n={position}"]
        if position % 500 == 7:
            words.append("key=aazq7xbb")
        level = "error" if position % 5 == 0 else "info"
        events.append(Event(timestamp, " ".join(words), level=level, service=f"svc{position % 4}"))
    path = tmp_path_factory.mktemp("early")
    cfg = config(path)
    for first in range(0, EVENTS, 500):
        write(cfg, [(MINE, events[first : first + 500])]).close()
    return TantivyStore(cfg.data_path), events


def expected(events: list[Event], pipeline: Pipeline, newest_first: bool) -> list[tuple[int, str]]:
    """The reference answer: every event verified with evaluate.py, in (timestamp, id) order."""
    test = build_matcher(pipeline.prefilter)
    kept = [event for event in events if test(event, {})]
    kept.sort(key=lambda event: (event.timestamp, event.message), reverse=newest_first)
    return [(event.timestamp, event.message) for event in kept]


def pages(view: TenantView, pipeline: Pipeline, limit: int, newest_first: bool) -> list[tuple[int, str]]:
    """Every page in turn, following cursors."""
    rows: list[tuple[int, str]] = []
    after = None
    while True:
        request = SearchRequest(NOW - 3 * NS_PER_DAY, NOW + 1, pipeline, limit, newest_first, after=after)
        page = view.search(request)
        rows.extend((row.event.timestamp, row.event.message) for row in page.rows)
        if not page.more:
            return rows
        after = page.cursor


def substring(value: str) -> Pipeline:
    return parse_pipeline({"pipeline": [{"type": "filter", "query": {"$contains": ["message", value]}}]})


def regex(value: str) -> Pipeline:
    return parse_pipeline({"pipeline": [{"type": "filter", "query": {"$regex": ["message", value]}}]})


@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize(
    ("pipeline", "limit"),
    [
        (substring("onnection refu"), 100),  # common: the scan fills every page
        (substring("onnection refu"), 7),
        (substring("zq7x"), 3),  # rare: the probe gives up and the index narrows
        (regex("refused|zq7x"), 50),
        (regex(r"n=\d*99\b"), 10),  # one in a hundred: the scan gives way part-way through a partition
        (Pipeline((Filter(MatchAll()),)), 100),  # every event: read through time slices, never ranked whole
        (Pipeline((Filter(MatchAll()),)), 7),
        (Pipeline((Filter(parse_kql("level:error")),)), 50),  # a label's count is its document frequency: sliced
        (Pipeline((Filter(parse_kql("service:svc1 and env:production")),)), 9),  # the other label is on every event
        (Pipeline((Filter(parse_kql("service:svc1 and level:error")),)), 9),  # no count known: ranked
        (Pipeline((Filter(parse_kql('"connection refused"')),)), 11),  # a phrase: sliced by its rarest word
        (Pipeline((Filter(parse_kql("request done")),)), 11),  # words: ranked
        (Pipeline((Filter(parse_kql("env:production")),)), 7),  # a label every event has: as without filter
        (parse_logql('{env="production"}'), 7),  # a stream selector every event meets
    ],
)
def test_early_stop_pages_equal_a_full_verification(
    stored: tuple[TantivyStore, list[Event]], pipeline: Pipeline, limit: int, newest_first: bool
) -> None:
    store, events = stored
    view = store.for_tenant(MINE)
    got = pages(view, pipeline, limit, newest_first)
    want = expected(events, pipeline, newest_first)
    assert sorted(got) == sorted(want)
    assert [timestamp for timestamp, _ in got] == [timestamp for timestamp, _ in want]


def test_offsets_agree_with_the_full_answer(stored: tuple[TantivyStore, list[Event]]) -> None:
    store, events = stored
    pipeline = substring("zq7x")
    want = expected(events, pipeline, True)
    page = store.for_tenant(MINE).search(SearchRequest(NOW - 3 * NS_PER_DAY, NOW + 1, pipeline, 2, offset=2))
    assert [row.event.timestamp for row in page.rows] == [timestamp for timestamp, _ in want[2:4]]


def test_a_projection_reads_only_the_fields_asked_for(stored: tuple[TantivyStore, list[Event]]) -> None:
    store, _ = stored
    view = store.for_tenant(MINE)
    fields = frozenset({"message", "timestamp"})
    full = view.search(SearchRequest(NOW - 3 * NS_PER_DAY, NOW + 1, substring("zq7x"), 5))
    projected = view.search(SearchRequest(NOW - 3 * NS_PER_DAY, NOW + 1, substring("zq7x"), 5, fields=fields))
    assert len(full.rows) == 5
    assert [row.event.message for row in projected.rows] == [row.event.message for row in full.rows]
    assert [row.event.id for row in projected.rows] == [row.event.id for row in full.rows]
    assert {row.event.service for row in projected.rows} == {""}
    assert {row.event.service for row in full.rows} != {""}


def test_verification_reads_the_fields_the_query_touches() -> None:
    query = {"$and": [{"$contains": ["message", "x"]}, {"$eq": ["service", "a"]}, {"$eq": ["http.status", 500]}]}
    pipeline = parse_pipeline({"pipeline": [{"type": "filter", "query": query}]})
    assert search.query_fields(pipeline) == {"timestamp", "message", "service", "attributes"}
    parsed = parse_pipeline({"pipeline": [{"type": "parse", "parser": "logfmt"}]})
    assert search.query_fields(parsed) is None


def test_verified_counts_agree_with_the_reference(stored: tuple[TantivyStore, list[Event]]) -> None:
    store, events = stored
    pipeline = Pipeline((Filter(regex("refused|zq7x").prefilter),))
    start = NOW - 3 * NS_PER_DAY
    result = store.for_tenant(MINE).count(CountRequest(start, NOW + 1, pipeline, NS_PER_DAY, by=("level",)))
    counted = {series.labels["level"]: sum(series.counts.values()) for series in result.series}
    test = build_matcher(pipeline.prefilter)
    want: dict[str, int] = {}
    for event in events:
        if test(event, {}):
            want[event.level] = want.get(event.level, 0) + 1
    assert counted == want


@pytest.mark.parametrize(
    ("needle", "aggregated"),
    [
        ("connection refused", False),  # two words: the index cannot tell they are adjacent, so they are verified
        ("refused", True),  # one lowercase word piece no capitalised word holds: the index is exact
    ],
)
def test_logql_line_filters_are_counted_exactly(
    stored: tuple[TantivyStore, list[Event]], needle: str, aggregated: bool
) -> None:
    """A verified LogQL pipeline of filters reads the message and the stream labels it sees, not the attributes."""
    pipeline = parse_logql(f'{{service_name="svc1"}} |= "{needle}"')
    assert isinstance(pipeline, Pipeline)
    assert search.query_fields(pipeline) == {"timestamp", "message", "service", "level", "host", "env", "index"}
    store, events = stored
    request = CountRequest(NOW - 3 * NS_PER_DAY, NOW + 1, pipeline, NS_PER_DAY, by=("level",))
    result = store.for_tenant(MINE).count(request)
    counted = {series.labels["level"]: sum(series.counts.values()) for series in result.series}
    want: dict[str, int] = {}
    for event in events:
        if needle in event.message and event.service == "svc1":
            want[event.level] = want.get(event.level, 0) + 1
    assert counted == want
    assert (result.stats.lines_examined == 0) is aggregated


@pytest.mark.parametrize(
    "node",
    [
        Compare(Op.REGEX, "service", "^(?:svc1|svc2)$"),  # LogQL `{service_name=~"svc1|svc2"}`
        And((Not(Compare(Op.REGEX, "service", "^(?:svc1)$")), Compare(Op.REGEX, "level", "^ERR"))),
        Compare(Op.GTE, "service", "svc2"),
    ],
)
def test_keyword_regex_counts_come_from_the_fast_fields(stored: tuple[TantivyStore, list[Event]], node: Node) -> None:
    store, events = stored
    pipeline = Pipeline((Filter(node),))
    request = CountRequest(NOW - 3 * NS_PER_DAY, NOW + 1, pipeline, NS_PER_DAY, by=("service", "level"))
    result = store.for_tenant(MINE).count(request)
    assert result.stats.lines_examined == 0  # aggregated, not read
    counted = {(s.labels["service"], s.labels["level"]): sum(s.counts.values()) for s in result.series}
    test = build_matcher(node)
    want: dict[tuple[str, str], int] = {}
    for event in events:
        if test(event, {}):
            want[event.service, event.level] = want.get((event.service, event.level), 0) + 1
    assert counted == want


def test_label_answers_are_cached_until_the_partition_commits(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    write(cfg, [(MINE, [Event(NOW, "one", service="api")])]).close()
    store = TantivyStore(cfg.data_path)
    view = store.for_tenant(MINE)
    window = (NOW - NS_PER_DAY, NOW + 1)
    assert view.label_values("service", *window, 10) == ["api"]
    assert view.label_names(*window) == ["service", "env"]
    assert view.label_values("service", *window, 10) == ["api"]  # answered from the cache
    time.sleep(0.01)  # the commit mark is meta.json's mtime
    write(cfg, [(MINE, [Event(NOW - 1, "two", service="web", level="error")])]).close()
    assert view.label_values("service", *window, 10) == ["api", "web"]
    assert view.label_names(*window) == ["service", "level", "env"]
    assert view.label_values("service", NOW, NOW + 1, 10) == ["api"]  # another window, its own entry


def test_a_search_reads_days_of_both_stored_layouts(tmp_path: Path) -> None:
    """A day written before events were stored whole is read field by field beside today's, in one page."""
    cfg = config(tmp_path)
    today = [
        Event(
            NOW - position,
            f"connection refused {position}",
            level="error",
            env="production",
            org="acme",
            attributes={"at": "2024-06-10T06:13:20Z"},
            id=position + 1,
        )
        for position in range(5)
    ]
    write(cfg, [(MINE, today)]).close()
    yesterday = NOW - NS_PER_DAY
    layout = PartitionLayout(cfg.data_path)
    path = layout.path(Partition("acme", yesterday // NS_PER_DAY))
    path.mkdir(parents=True)
    old = tantivy.Index(separate_fields_schema(), path=str(path))
    schema.register_tokenizers(old)
    writer = old.writer(15_000_000, 1)
    before = [
        Event(
            yesterday - position,
            f"connection refused then {position}",
            level="error",
            env="production",
            org="acme",
            id=(1 << 40) + position,
        )
        for position in range(3)
    ]
    for document in encode_documents(before, stemming=False):
        writer.add_json(document)
    writer.commit()
    writer.wait_merging_threads()
    view = TantivyStore(cfg.data_path).for_tenant(MINE)
    for pipeline in (Pipeline((Filter(parse_kql("level:error")),)), substring("onnection refu")):
        page = view.search(SearchRequest(NOW - 3 * NS_PER_DAY, NOW + 1, pipeline, 100))
        assert [row.event.message for row in page.rows] == [event.message for event in today + before]
    [newest] = view.search(SearchRequest(NOW - 3 * NS_PER_DAY, NOW + 1, substring("onnection refu"), 1)).rows
    assert newest.event.attributes == {"at": "2024-06-10T06:13:20Z"}  # stored whole: as sent
