"""A lowercase `$contains` of one word piece is exact in the index where no capitalised word holds it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import tantivy

from logtraced.model import Event
from logtraced.query.ast import And, Compare, Node, Not, Op
from logtraced.query.evaluate import build_matcher
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.compile import compile_query, uncapitalised
from logtraced.storage.tantivy.documents import encode_documents

SECOND = 1_000_000_000
BASE_NS = 1_710_496_800 * SECOND
WORDS = ["timeout", "readtimeout", "Timeout", "TIMEOUTS", "refused", "ёлка", "Ёлка", "елка", "reTimeout", "time-out"]
NEEDLES = ["timeout", "time", "out", "refused", "efuse", "елка", "ёлк", "Timeout", "connection refused", "zz"]


class Partition:
    """One real day-partition of `messages`."""

    def __init__(self, path: Path, messages: list[str], *, capitals: bool = True) -> None:
        self.events = {
            doc_id: Event(BASE_NS + doc_id * SECOND, message, "info", "api", "h", "production", "acme")
            for doc_id, message in enumerate(messages)
        }
        self.schema = schema.build_schema(stemming=False, capitals=capitals)
        self.index = tantivy.Index(self.schema, path=str(path))
        schema.register_tokenizers(self.index)
        writer = self.index.writer(heap_size=15_000_000, num_threads=1)
        for document in encode_documents(list(self.events.values()), stemming=False, capitals=capitals):
            writer.add_json(document)
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()

    def check(self, node: Node) -> bool:
        """Candidates hold the reference answer, and equal it when the compiled query claims exactness."""
        searcher = self.index.searcher()
        proven = uncapitalised(searcher, self.schema, node)
        compiled = compile_query(node, self.schema, stemming=False, uncapitalised=proven)
        matcher = build_matcher(node)
        expected = {doc_id for doc_id, event in self.events.items() if matcher(event, {})}
        hits = searcher.search(compiled.query, limit=len(self.events) + 1).hits
        stamps = searcher.fast_field_values(schema.TIMESTAMP, [address for _, address in hits])
        candidates = {(stamp - BASE_NS) // SECOND for stamp in stamps if isinstance(stamp, int)}
        assert candidates >= expected, node
        if not compiled.needs_verification:
            assert candidates == expected, node
        return not compiled.needs_verification


def contains(needle: str) -> Compare:
    return Compare(Op.CONTAINS, "message", needle)


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partition]:
    messages = ["connection refused", "readtimeout in handler", "Connection TIMEOUT", "ёлка упала", "plain text"]
    yield Partition(tmp_path_factory.mktemp("capitals"), messages)


def test_the_capitalised_words_are_the_simple_tokenizers(partition: Partition) -> None:
    analyzer = schema.capitals_analyzer()
    splitter = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).build()
    text = "Connection TIMEOUT on db-Primary-03 abcDef ab-Cd x1Y2 ёлка Ёлка ⅣⅤ Ⓐb ǅemal İstanbul plain"
    assert analyzer.analyze(text) == [word.lower() for word in splitter.analyze(text) if word != word.lower()]


@pytest.mark.parametrize(
    ("node", "exact"),
    [
        (contains("refused"), True),  # no capitalised word: the lowercased index is the answer
        (contains("efuse"), True),
        (contains("timeout"), False),  # TIMEOUT is capitalised: the lowercased index cannot tell it apart
        (contains("handler"), True),
        (contains("елка"), True),  # ё and е find each other, as in the reference
        (contains("Timeout"), False),  # capitals in the substring: verified
        (contains("connection refused"), False),  # two words: adjacency is verified
        (Not(contains("refused")), True),
        (And((contains("refused"), Not(contains("plain")))), True),
    ],
)
def test_exact_where_no_capitalised_word_holds_the_substring(partition: Partition, node: Node, exact: bool) -> None:
    assert partition.check(node) is exact


def test_partitions_without_the_field_stay_verified(tmp_path: Path) -> None:
    """index.capitals = false (or a partition made before the field): the substring is verified, as before."""
    partition = Partition(tmp_path, ["connection refused", "plain text"], capitals=False)
    assert not partition.check(contains("refused"))


def test_searches_that_do_not_ask_stay_verified(partition: Partition) -> None:
    assert compile_query(contains("refused"), partition.schema, stemming=False).needs_verification


@pytest.mark.parametrize("seed", range(4))
def test_random_messages_agree_with_the_reference(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    messages = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 4))) for _ in range(40)]
    partition = Partition(tmp_path, messages)
    for needle in NEEDLES:
        partition.check(contains(needle))
        partition.check(Not(contains(needle)))
