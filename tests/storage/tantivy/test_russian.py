"""Russian-aware search in a real partition: ё and е find each other, Cyrillic case folds, stems find word forms.

Every case is checked three ways, as the executor runs it: the reference semantics give the
expected events, the compiled Tantivy query returns a superset of them, and verification leaves
exactly them.  Partitions store words as written (no fold at index time), so these cases hold
for partitions written before the fold existed as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tantivy

from logtraced.model import Event
from logtraced.query.ast import Node
from logtraced.query.evaluate import build_matcher, fold_yo, words
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import parse_pipeline
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.compile import compile_query
from logtraced.storage.tantivy.documents import encode_documents

SECOND = 1_000_000_000
BASE_NS = 1_710_496_800 * SECOND

# id -> (message, service, attributes)
CORPUS: dict[int, tuple[str, str, dict[str, Any]]] = {
    0: ("Ёлка установлена в зале", "сервис-ёлка", {}),
    1: ("елка упала, всё пропало", "сервис-елка", {}),
    2: ("Все идет по плану", "api", {}),
    3: ("ЗЕЛЁНЫЙ свет на перекрёстке", "api", {"note": "Зелёная ветка", "city": "Орёл"}),
    4: ("зеленый свет", "api", {"note": "зеленая ветка", "city": "Орел"}),
    5: ("Ошибка: повторные ошибки, закончилось ошибкой", "billing", {}),
    6: ("English only message", "api", {"note": "plain"}),
}
EVENTS = {
    doc_id: Event(BASE_NS + doc_id * SECOND, message, "info", service, "h1", "production", "acme", "", [], attributes)
    for doc_id, (message, service, attributes) in CORPUS.items()
}


class Partition:
    """One day-partition of the corpus, with or without the stemmed copy of the message."""

    def __init__(self, path: Path, *, stemming: bool) -> None:
        self.schema = schema.build_schema(stemming=stemming)
        self.index = tantivy.Index(self.schema, path=str(path))
        schema.register_tokenizers(self.index)
        writer = self.index.writer(heap_size=15_000_000, num_threads=1)
        for document in encode_documents(list(EVENTS.values()), stemming=stemming):
            writer.add_json(document)
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.stemming = stemming
        analyzer = schema.stemmed_analyzer()
        self.stem: Callable[[str], str] | None = (lambda word: analyzer.analyze(word)[0]) if stemming else None

    def matches(self, node: Node) -> set[int]:
        """The verified answer; asserts on the way that the index narrowed to a superset."""
        compiled = compile_query(node, self.schema, stemming=self.stemming)
        matcher = build_matcher(node, stem=self.stem)
        expected = {doc_id for doc_id, event in EVENTS.items() if matcher(event, {})}
        searcher = self.index.searcher()
        hits = searcher.search(compiled.query, limit=len(EVENTS) + 1).hits
        stamps = searcher.fast_field_values(schema.TIMESTAMP, [address for _, address in hits])
        candidates = {(stamp - BASE_NS) // SECOND for stamp in stamps if isinstance(stamp, int)}
        assert candidates >= expected, "the index lost a match"
        if not compiled.needs_verification:
            assert candidates == expected
        return {doc_id for doc_id in candidates if matcher(EVENTS[doc_id], {})}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partition]:
    yield Partition(tmp_path_factory.mktemp("plain"), stemming=False)


@pytest.fixture(scope="module")
def stemmed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partition]:
    yield Partition(tmp_path_factory.mktemp("stemmed"), stemming=True)


def pipeline(query: dict[str, Any]) -> Node:
    return parse_pipeline({"pipeline": [{"type": "filter", "query": query}]}).prefilter


KQL_CASES: list[tuple[str, set[int]]] = [
    ("ёлка", {0, 1}),
    ("елка", {0, 1}),
    ("ЁЛКА", {0, 1}),
    ("всё", {1, 2}),
    ('"зелёный свет"', {3, 4}),
    ('"ЗЕЛЕНЫЙ СВЕТ"', {3, 4}),
    ('message:"елка упала"', {1}),
    ("перекрестке", {3}),
    ("ёлк*", {0, 1}),
    ("ЁЛК*", {0, 1}),
    ("*рекрест*", {3}),
    ("city:Орел", {3, 4}),
    ("city:орёл", {3, 4}),
    ('note:"зеленая ветка"', {3, 4}),
    ("note:ЗЕЛЁН*", {3, 4}),
    ("service:сервис-елка", {0, 1}),
    ("service:*ёлк*", {0, 1}),
    ("ошибка", {5}),
    ("ошибки", {5}),
    ("English", {6}),
]

PIPELINE_CASES: list[tuple[dict[str, Any], set[int]]] = [
    ({"$contains": ["body", "елка"]}, {1}),  # case-sensitive: "Ёлка" has a capital
    ({"$contains": ["body", "Елка"]}, {0}),
    ({"$contains": ["body", "перекрест"]}, {3}),
    ({"$contains": ["note", "Зеленая"]}, {3}),
    ({"$contains": ["service", "ёлка"]}, {0, 1}),
    ({"$regex": ["body", "зел[её]н"]}, {4}),
    ({"$regex": ["body", "(?i)зелён"]}, {3, 4}),
    ({"$regex": ["city", "^Орёл$"]}, {3, 4}),
    ({"$regex": ["service", "ёлка$"]}, {0, 1}),
    ({"$eq": ["city", "Орел"]}, {3, 4}),
    ({"$eq": ["service", "сервис-ёлка"]}, {0, 1}),
    ({"$neq": ["city", "Орёл"]}, {0, 1, 2, 5, 6}),
]


class TestYoAndYe:
    @pytest.mark.parametrize(("query", "expected"), KQL_CASES)
    def test_kql(self, plain: Partition, query: str, expected: set[int]) -> None:
        assert plain.matches(parse_kql(query)) == expected

    @pytest.mark.parametrize(("query", "expected"), PIPELINE_CASES)
    def test_pipeline(self, plain: Partition, query: dict[str, Any], expected: set[int]) -> None:
        assert plain.matches(pipeline(query)) == expected

    def test_a_word_with_many_e_letters_is_still_found(self, plain: Partition) -> None:
        """Past 16 spellings a word is left to verification instead of listed term by term."""
        many = "ееееё"
        assert plain.matches(parse_kql(many)) == set()
        assert plain.matches(parse_kql(f"{many} or елка")) == {0, 1}


class TestStemming:
    """With index.stemming: word forms find each other, and the stems already read ё as е."""

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("ошибка", {5}),
            ("ошибкой", {5}),
            ("ошибками", {5}),
            ("ёлки", {0, 1}),
            ("елкой", {0, 1}),
            ('"зеленого света"', {3, 4}),
            ("зелёные", {3, 4}),
        ],
    )
    def test_forms(self, stemmed: Partition, query: str, expected: set[int]) -> None:
        assert stemmed.matches(parse_kql(query)) == expected


def test_fold_keeps_case_and_words_fold_and_lowercase() -> None:
    assert fold_yo("Ёжик и ёлка") == "Ежик и елка"
    assert words("ЁЖИК, Ёлка!") == ["ежик", "елка"]
