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
from logtraced.storage.tantivy import search
from logtraced.storage.tantivy.compile import compile_query
from logtraced.storage.tantivy.partitions import Partition, PartitionLayout
from logtraced.storage.tantivy.reader import IndexReader
from logtraced.storage.tantivy.words import MAX_FOUND_WORDS, SETTLE_NS, WordList, WordLists
from tests.storage.tantivy.test_search import regex, substring
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


def settle(data_dir: Path) -> list[Partition]:
    """Age every partition's commit mark past SETTLE_NS, as an hour without writes would."""
    layout = PartitionLayout(data_dir)
    past = (time.time_ns() - 2 * SETTLE_NS) / 1e9
    for partition in layout.existing():
        os.utime(layout.path(partition) / "meta.json", (past, past))
    return layout.existing()


def built(lists: WordLists, partition: Partition, mark: int) -> WordList:
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
