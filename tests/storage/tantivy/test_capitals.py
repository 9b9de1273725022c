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
from logtraced.storage.tantivy.documents import capitalised_chunks, encode_documents

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


# The words lowercasing changes, as the index's own Unicode tables see them: what the field must hold.
CAPITALISED_WORDS = (
    tantivy.TextAnalyzerBuilder(
        tantivy.Tokenizer.regex(r"[\p{Alphabetic}\p{N}]*\p{Changes_When_Lowercased}[\p{Alphabetic}\p{N}]*")
    )
    .filter(tantivy.Filter.remove_long(schema.TEXT_MAX_TOKEN_CHARS))
    .filter(tantivy.Filter.lowercase())
    .build()
)


def field_words(message: str) -> list[str]:
    """The words the capitals field indexes for a message."""
    return schema.text_analyzer().analyze(capitalised_chunks(message))


def test_the_field_holds_the_capitalised_words_and_their_chunks() -> None:
    text = "Connection TIMEOUT on db-Primary-03 abcDef ab-Cd x1Y2 ёлка Ёлка ⅣⅤ Ⓐb ǅemal İstanbul plain"
    assert capitalised_chunks(text) == "Connection TIMEOUT db-Primary-03 abcDef ab-Cd x1Y2 Ёлка ⅣⅤ Ⓐb ǅemal İstanbul"
    assert set(CAPITALISED_WORDS.analyze(text)) <= set(field_words(text))
    assert capitalised_chunks("no capitals here, ёлка 42") == ""


def test_the_field_holds_every_capitalised_word_for_every_code_point() -> None:
    """Each code point goes inside and beside words with and without capitals: one that Python splits on
    but the index keeps in a word, or one the index lowercases and `str.lower` leaves alone, loses a word."""
    points = [chr(point) for point in range(0x110000) if not 0xD800 <= point <= 0xDFFF]
    for start in range(0, len(points), 20_000):
        message = " ".join(f"Q{c}q q{c}Q a{c}a {c} x{c}" for c in points[start : start + 20_000])
        missing = set(CAPITALISED_WORDS.analyze(message)) - set(field_words(message))
        assert not missing, sorted(missing)[:5]


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
