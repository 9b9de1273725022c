"""Keyword regexes and ranges decided term by term against a real partition's term list: exact, no verification."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import tantivy

from logtraced.model import Event
from logtraced.query.ast import And, Compare, Node, Not, Op, Or
from logtraced.query.evaluate import build_matcher
from logtraced.query.kql import parse_kql
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.compile import compile_query, keyword_terms, listed_fields
from logtraced.storage.tantivy.documents import encode_documents

SECOND = 1_000_000_000
BASE_NS = 1_710_496_800 * SECOND

# id -> (level, service, host, tags)
CORPUS: dict[int, tuple[str, str, str, list[str]]] = {
    0: ("error", "checkout", "node-01", ["prod"]),
    1: ("info", "billing", "node-02", []),
    2: ("info", "checkout-v2", "", ["prod", "canary"]),
    3: ("Notice", "ёлка-svc", "node-01", [""]),  # a level as sent: compared lowercased
    4: ("warn", "елка-svc", "node-10", ["_jsonparsefailure"]),
    5: ("debug", "", "node-02", []),
    6: ("error", "api.gateway", "NODE-03", ["a|b"]),
    7: ("info", "apixgateway", "node-03\n", []),
}
EVENTS = {
    doc_id: Event(BASE_NS + doc_id * SECOND, f"event {doc_id}", level, service, host, "production", "acme", "", tags)
    for doc_id, (level, service, host, tags) in CORPUS.items()
}


class Partition:
    """One real day-partition of the corpus."""

    def __init__(self, path: Path) -> None:
        self.schema = schema.build_schema(stemming=False)
        self.index = tantivy.Index(self.schema, path=str(path))
        schema.register_tokenizers(self.index)
        writer = self.index.writer(heap_size=15_000_000, num_threads=1)
        for document in encode_documents(list(EVENTS.values()), stemming=False):
            writer.add_json(document)
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()

    def check(self, node: Node) -> set[int]:
        """Compiled with the partition's terms: needs no verification and hits exactly the reference answer."""
        searcher = self.index.searcher()
        compiled = compile_query(node, self.schema, stemming=False, terms=keyword_terms(searcher, listed_fields(node)))
        matcher = build_matcher(node)
        expected = {doc_id for doc_id, event in EVENTS.items() if matcher(event, {})}
        hits = searcher.search(compiled.query, limit=len(EVENTS) + 1).hits
        stamps = searcher.fast_field_values(schema.TIMESTAMP, [address for _, address in hits])
        candidates = {(stamp - BASE_NS) // SECOND for stamp in stamps if isinstance(stamp, int)}
        assert not compiled.needs_verification, node
        assert candidates == expected, node
        return expected


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partition]:
    yield Partition(tmp_path_factory.mktemp("keywords"))


def regex(field: str, pattern: str) -> Compare:
    return Compare(Op.REGEX, field, pattern)


LEAVES: list[Node] = [
    regex("service", "^(?:checkout|billing)$"),  # LogQL's anchoring of `=~"checkout|billing"`
    regex("service", "checkout"),  # unanchored: checkout-v2 too
    regex("service", "^api.gateway$"),  # RE2's `.` is any character, not a literal dot
    regex("service", r"^api\.gateway$"),
    regex("service", "^ёлка"),  # ё and е find each other
    regex("service", "^$"),  # only the event without a service
    regex("service", "x*"),  # matches "", so every event
    regex("host", "(?i)^node-0[13]$"),
    regex("host", "^node-03$"),  # `$` is the end of the text: not before a trailing newline
    regex("host", r"^node-\d+$"),
    regex("level", "^NOTICE$"),  # level is compared case-insensitively
    regex("level", "^(?:error|warn)$"),
    regex("tags", "^$"),  # an event without tags has no tag to match
    regex("tags", ".*"),
    regex("tags", r"a\|b|canary"),
    regex("tags", "^prod$"),
    Compare(Op.GT, "service", "c"),
    Compare(Op.LTE, "level", "info"),
    Compare(Op.GTE, "host", "node-02"),
    regex("index", "^$"),
]


@pytest.mark.parametrize("node", LEAVES, ids=repr)
def test_comparisons_are_exact(partition: Partition, node: Node) -> None:
    partition.check(node)
    partition.check(Not(node))  # `!~`: events without the field keep today's meaning


def test_logql_selectors_answer_what_loki_would(partition: Partition) -> None:
    assert partition.check(regex("service", "^(?:checkout|billing)$")) == {0, 1}
    assert partition.check(Not(regex("service", "^(?:checkout|billing)$"))) == {2, 3, 4, 5, 6, 7}
    assert partition.check(regex("service", "^(?:.*)$")) == set(EVENTS)
    assert partition.check(regex("service", "^(?:.+)$")) == set(EVENTS) - {5}


def test_kql_globs_stay_exact(partition: Partition) -> None:
    assert partition.check(parse_kql("service:check*")) == {0, 2}
    assert partition.check(parse_kql("not service:check*")) == set(EVENTS) - {0, 2}


@pytest.mark.parametrize("seed", range(6))
def test_random_combinations_are_exact(partition: Partition, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(30):
        children = tuple(rng.choice(LEAVES) for _ in range(rng.randint(2, 3)))
        node: Node = rng.choice([And, Or])(children)
        partition.check(Not(node) if rng.random() < 0.3 else node)


def test_without_a_term_list_a_regex_is_narrowed_and_verified(partition: Partition) -> None:
    """A field with too many terms to list keeps the required-literal narrowing."""
    node = regex("service", "^(?:checkout|billing)$")
    compiled = compile_query(node, partition.schema, stemming=False)
    assert compiled.needs_verification
    assert partition.index.searcher().search(compiled.query, 10, count=True).count >= 2


def test_only_fields_compared_term_by_term_are_listed() -> None:
    node = And((regex("service", "a"), Compare(Op.CONTAINS, "message", "x"), Not(Compare(Op.LT, "tags", "b"))))
    assert listed_fields(node) == {"service", "tags"}
    assert listed_fields(parse_kql("service:check* and level:error")) == frozenset()
