"""A settled partition's word list finds the words holding a piece exactly as the dictionary walk does."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from logtraced.model import NS_PER_DAY, Event
from logtraced.query.ast import Compare, Op
from logtraced.query.pipeline import Pipeline
from logtraced.storage.backend import SearchRequest
from logtraced.storage.tantivy import schema, search
from logtraced.storage.tantivy.compile import TERM_SET_FROM, compile_query
from logtraced.storage.tantivy.partitions import CommitMark, Partition, PartitionLayout
from logtraced.storage.tantivy.reader import IndexReader
from logtraced.storage.tantivy.words import MAX_FOUND_WORDS, SETTLE_NS, WordList, WordLists
from tests.storage.tantivy.test_search import expected, regex, substring
from tests.storage.test_store import MINE, NOW, config, write

LETTERS = "abcdeёz7"
PIECES = ["zq7x", "ёл", "елк", "7", "ab", "cd", "e", "zzz", "q7xkw"]


def listed(*words: str) -> WordList:
    return WordList(b"\n" + "\n".join(words).encode() + b"\n")


def test_a_piece_is_found_inside_words_and_at_their_end() -> None:
    words = listed("aazq7xbb", "zq7x", "timeout", "readtimeout", "timeouts", "елка", "ёлка")
    assert words.containing("zq7x", at_end=False) == ["aazq7xbb", "zq7x"]
    assert words.containing("timeout", at_end=True) == ["readtimeout", "timeout"]
    assert words.containing("ёлк", at_end=False) == ["елка", "ёлка"]  # ё and е find each other
    assert words.containing("nothing", at_end=False) == []


def test_a_piece_in_too_many_words_is_left_to_the_walk() -> None:
    words = listed(*(f"w{number}x" for number in range(MAX_FOUND_WORDS + 1)))
    assert words.containing("x", at_end=True) is None
    assert words.containing("w1234", at_end=False) is not None


def test_a_piece_alone_names_its_words_for_sizing_scans() -> None:
    """`Compiled.listed_words` lets a scan bound its candidates by document frequencies instead of counting them."""
    words = listed("aazq7xbb", "zq7x", "connect", "reconnected")
    index_schema = schema.build_schema(stemming=False)
    alone = compile_query(Compare(Op.CONTAINS, "message", "zq7x"), index_schema, stemming=False, words=words)
    assert alone.listed_words == ("aazq7xbb", "zq7x")
    both = Compare(Op.REGEX, "message", "zq7x.*onnect")
    assert compile_query(both, index_schema, stemming=False, words=words).listed_words is None
    walked = compile_query(Compare(Op.CONTAINS, "message", "zq7x"), index_schema, stemming=False)
    assert walked.listed_words is None


def settle(data_dir: Path) -> list[Partition]:
    """Age every partition's commit mark past SETTLE_NS, as an hour without writes would."""
    layout = PartitionLayout(data_dir)
    past = (time.time_ns() - 2 * SETTLE_NS) / 1e9
    for partition in layout.existing():
        os.utime(layout.path(partition) / "meta.json", (past, past))
    return layout.existing()


def built(lists: WordLists, partition: Partition, mark: CommitMark) -> WordList:
    """Ask until the background thread has listed the partition."""
    deadline = time.monotonic() + 60
    while (found := lists.get(partition, mark)) is None:
        assert time.monotonic() < deadline, "the word list was never built"
        time.sleep(0.02)
    return found


def random_words(rng: random.Random, count: int) -> list[str]:
    return ["".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 7))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(3))
def test_candidates_equal_the_dictionary_walk(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    events = [Event(NOW - index, " ".join(random_words(rng, 4)), service="api") for index in range(400)]
    cfg = config(tmp_path)
    write(cfg, [(MINE, events)]).close()
    (partition,) = settle(cfg.data_path)
    reader = IndexReader(PartitionLayout(cfg.data_path))
    index = reader.index(partition)
    assert index is not None
    searcher = index.searcher()
    words = built(reader.word_lists, partition, reader.commit_mark(partition))
    found = [len(words.containing(piece, at_end=False) or []) for piece in PIECES]
    assert max(found) > TERM_SET_FROM and any(0 < count <= TERM_SET_FROM for count in found)  # both query forms
    for piece in PIECES + random_words(rng, 20):
        for node in (Compare(Op.CONTAINS, "message", piece), Compare(Op.WILDCARD, "message", f"*{piece}")):
            walked = compile_query(node, index.schema, stemming=False)
            scanned = compile_query(node, index.schema, stemming=False, words=words)
            hits = [searcher.search(query, limit=len(events) + 1).hits for query in (walked.query, scanned.query)]
            assert sorted(address.doc for _, address in hits[0]) == sorted(address.doc for _, address in hits[1])


def test_searches_use_the_list_only_for_the_commit_it_was_built_from(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    write(cfg, [(MINE, [Event(NOW - 10, "key=aazq7xbb"), Event(NOW - 20, "plain")])]).close()
    (partition,) = settle(cfg.data_path)
    reader = IndexReader(PartitionLayout(cfg.data_path))

    def messages(pipeline: Pipeline) -> list[str]:
        page = search.search(reader, MINE, SearchRequest(NOW - NS_PER_DAY, NOW + 1, pipeline, 10))
        return [row.event.message for row in page.rows]

    assert messages(substring("zq7x")) == ["key=aazq7xbb"]  # walks, and queues the list
    words = built(reader.word_lists, partition, reader.commit_mark(partition))
    assert words.containing("zq7x", at_end=False) == ["aazq7xbb"]
    assert messages(substring("zq7x")) == ["key=aazq7xbb"]  # from the list
    assert messages(regex("a+zq7x.*")) == ["key=aazq7xbb"]
    write(cfg, [(MINE, [Event(NOW - 5, "then bbzq7xcc")])]).close()
    reader.on_commit()
    assert reader.word_lists.get(partition, reader.commit_mark(partition)) is None  # a fresh commit: not settled
    assert messages(substring("zq7x")) == ["then bbzq7xcc", "key=aazq7xbb"]


@pytest.fixture(scope="module")
def settled(tmp_path_factory: pytest.TempPathFactory) -> tuple[IndexReader, list[Event]]:
    """test_search's two days of events, settled, with both days' word lists built."""
    data_dir = tmp_path_factory.mktemp("settled")
    rng = random.Random(12)
    events = []
    for position in range(3000):
        words = ["connection refused" if position % 3 == 0 else "request done", f"n={position}"]
        if position % 500 == 7:
            words.append("key=aazq7xbb")
        events.append(Event(NOW - rng.randrange(2 * NS_PER_DAY) // 1000 * 1000, " ".join(words), service="api"))
    cfg = config(data_dir)
    for first in range(0, len(events), 500):
        write(cfg, [(MINE, events[first : first + 500])]).close()
    reader = IndexReader(PartitionLayout(cfg.data_path))
    for partition in settle(cfg.data_path):
        built(reader.word_lists, partition, reader.commit_mark(partition))
    return reader, events


@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize(
    ("pipeline", "limit"),
    [
        (substring("onnection refu"), 100),  # common: the candidates' scan fills every page
        (substring("onnection refu"), 7),
        (substring("zq7x"), 3),  # rare
        (regex("refused|zq7x"), 50),
        (regex(r"n=\d*99\b"), 10),
        (regex("nection.*fused"), 30),
    ],
)
def test_pages_from_word_lists_equal_a_full_verification(
    settled: tuple[IndexReader, list[Event]], pipeline: Pipeline, limit: int, newest_first: bool
) -> None:
    reader, events = settled
    got: list[tuple[int, str]] = []
    after = None
    while True:
        request = SearchRequest(NOW - 3 * NS_PER_DAY, NOW + 1, pipeline, limit, newest_first, after=after)
        page = search.search(reader, MINE, request)
        got.extend((row.event.timestamp, row.event.message) for row in page.rows)
        if not page.more:
            break
        after = page.cursor
    want = expected(events, pipeline, newest_first)
    assert sorted(got) == sorted(want)
    assert [timestamp for timestamp, _ in got] == [timestamp for timestamp, _ in want]
