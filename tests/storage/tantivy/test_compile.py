"""Compiled Tantivy queries against a real index: candidates are a superset, verification makes them exact."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tantivy

from logtraced.errors import QueryError
from logtraced.model import Event
from logtraced.query.ast import Compare, Node, Op
from logtraced.query.evaluate import build_matcher
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import parse_pipeline
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.compile import Compiled, compile_query
from logtraced.storage.tantivy.documents import encode_documents

SECOND = 1_000_000_000
BASE_NS = 1_710_496_800 * SECOND  # 2024-03-15T10:00:00Z
HOSTILE = "a" * 90 + "b"  # exponential for a backtracking engine, one indexed word
LONG_WORD = "x" * 120 + "needle"  # over the 100-byte token limit, so not in the index

# id -> (message, level, service, host, tags, attributes, index)
CORPUS: dict[int, tuple[str, str, str, str, list[str], dict[str, Any], str]] = {
    0: (
        "Connection timeout on db-primary-03",
        "error",
        "payment-gateway",
        "db-primary-03",
        ["prod"],
        {"http": {"status": 500, "method": "GET"}, "user_id": "U-42", "duration_ms": 1200.5},
        "",
    ),
    1: (
        "Ошибка соединения с базой",
        "warn",
        "api",
        "h1",
        [],
        {"http.status": 404, "kubernetes": {"pod": {"name": "api-7f9c"}}},
        "",
    ),
    2: ("connection refused by peer", "info", "api", "h1", [], {"http": {"status": "200"}, "status_code": "400"}, ""),
    3: (
        "error: request timeout after 30s",
        "error",
        "worker",
        "h2",
        [],
        {"status_code": 400, "created": "2024-03-15T10:22:01Z"},
        "",
    ),
    4: (
        "readtimeout in handler",
        "debug",
        "worker",
        "",
        ["_jsonparsefailure"],
        {"note": "Cache miss for timeout key", "flag": True},
        "",
    ),
    5: (HOSTILE, "info", "batch", "h3", [], {}, ""),
    6: (
        "Error processing request",
        "error",
        "billing",
        "h3",
        [],
        {"labels": ["alpha beta", "gamma"], "error": {"message": "upstream unavailable"}},
        "",
    ),
    7: ("GET /api/v1/users 200 OK", "info", "api-gateway", "h4", [], {"path": "/api/v1/users", "duration_ms": 15}, ""),
    8: ("Error: connection refused (ECONNREFUSED)", "error", "api-gateway", "h4", [], {}, ""),
    9: ("", "fatal", "", "h5", [], {"k": "--"}, "audit"),
    10: (f"payload={LONG_WORD}", "info", "ingest", "h6", [], {"blob": LONG_WORD}, ""),
}
EVENTS = {
    doc_id: Event(
        timestamp=BASE_NS + doc_id * SECOND,
        message=message,
        level=level,
        service=service,
        host=host,
        env="production",
        org="acme",
        index=index,
        tags=tags,
        attributes=attributes,
    )
    for doc_id, (message, level, service, host, tags, attributes, index) in CORPUS.items()
}
EVERYTHING: set[int] = set(EVENTS)


class Partition:
    """One real day-partition holding the corpus, searched the way the executor will search it."""

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

    def candidates(self, compiled: Compiled) -> set[int]:
        searcher = self.index.searcher()
        hits = searcher.search(compiled.query, limit=len(EVENTS) + 1).hits
        stamps = searcher.fast_field_values(schema.TIMESTAMP, [address for _, address in hits])
        return {(stamp - BASE_NS) // SECOND for stamp in stamps if isinstance(stamp, int)}

    def check(self, node: Node, expected: set[int], *, stem: Callable[[str], str] | None = None) -> Compiled:
        """Exact matches equal `expected`, candidates contain them, and exact compiles need no check."""
        compiled = compile_query(node, self.schema, stemming=self.stemming)
        matcher = build_matcher(node, stem=stem)
        exact = {doc_id for doc_id, event in EVENTS.items() if matcher(event, {})}
        candidates = self.candidates(compiled)
        assert exact == expected
        assert candidates >= exact
        assert {doc_id for doc_id in candidates if matcher(EVENTS[doc_id], {})} == expected
        if not compiled.needs_verification:
            assert candidates == expected
        return compiled


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partition]:
    yield Partition(tmp_path_factory.mktemp("partition"), stemming=False)


def pipeline(query: dict[str, Any]) -> Node:
    return parse_pipeline({"pipeline": [{"type": "filter", "query": query}]}).prefilter


KQL_CASES: list[tuple[str, set[int]]] = [
    ("", set(EVERYTHING)),
    ("timeout", {0, 3}),
    ("ошибка", {1}),
    ("ОШИБКА соединения", {1}),
    ('"connection refused"', {2, 8}),
    ("connection refused", {2, 8}),
    ("level:ERROR", {0, 3, 6, 8}),
    ("service:api", {1, 2}),
    ("service:api*", {1, 2, 7, 8}),
    ("service:*gate*", {0, 7, 8}),
    ("db-primary-*", {0}),
    ("*timeout*", {0, 3, 4}),
    ("time*", {0, 3}),
    ("*refused", {2, 8}),
    ("http.status:500", {0}),
    ("http.status:404", {1}),
    ("http.status >= 400", {0, 1}),
    ("http.status:*", {0, 1, 2}),
    ("not http.status:*", {3, 4, 5, 6, 7, 8, 9, 10}),
    ("kubernetes.pod.name:api-*", {1}),
    ("attributes.kubernetes.pod.name:api-*", {1}),
    ("status_code:400", {2, 3}),
    ("not level:error and service:worker", {4}),
    ("level:error or level:warn and service:api", {0, 1, 3, 6, 8}),
    ("service:(api or worker) and not timeout", {1, 2, 4}),
    ('created > "2024-03-01T00:00:00Z"', {3}),
    ('created:"2024-03-15T10:22:01Z"', {3}),
    ("flag:true", {4}),
    ("tags:_jsonparsefailure", {4}),
    ("error.message:upstream", {6}),
    ('"alpha beta"', set()),  # free text is the message; attributes are reached by name
    ("gamma", set()),
    ("labels:gamma", {6}),
    ("labels:gamma", {6}),
    ("ECONNREFUSED", {8}),
    ("index:audit", {9}),
    ("message:*", EVERYTHING - {9}),
    ("k:*", {9}),
    ("duration_ms > 1000", {0}),
    ("user_id:U-42", {0}),
    ('@timestamp >= "2024-03-15T10:00:05Z"', {5, 6, 7, 8, 9, 10}),
    ("@timestamp < 1710496802", {0, 1}),
    ("host:*", EVERYTHING - {4}),
    ("2024", set()),
    (LONG_WORD, {10}),
    (f"blob:{LONG_WORD}", {10}),
    (f'blob:"{LONG_WORD}"', {10}),
    (f'message:"payload {LONG_WORD}"', {10}),
    ("nosuchword", set()),
]

PIPELINE_CASES: list[tuple[dict[str, Any], set[int]]] = [
    ({"$contains": ["body", "time"]}, {0, 3, 4}),
    ({"$contains": ["message", "refused (ECONN"]}, {8}),
    ({"$contains": ["body", "Ошибка"]}, {1}),
    ({"$contains": ["body", "ошибка"]}, set()),
    ({"$regex": ["body", "error.*timeout|connection.*refused"]}, {2, 3, 8}),
    ({"$regex": ["body", "(?i)ошибка"]}, {1}),
    ({"$regex": ["body", ".*"]}, set(EVERYTHING)),
    ({"$regex": ["body", "[[:digit:]]+s"]}, {3}),
    ({"$regex": ["body", "db-primary-0[0-9]"]}, {0}),
    ({"$regex": ["body", r"\(ECONN\w+\)$"]}, {8}),
    ({"$regex": ["path", "/api/v[0-9]+"]}, {7}),
    ({"$regex": ["service", "^api"]}, {1, 2, 7, 8}),
    ({"$regex": ["level", "ERR"]}, {0, 3, 6, 8}),
    ({"$eq": ["status_code", "400"]}, {2, 3}),
    ({"$eq": ["status_code", 400]}, {2, 3}),
    ({"$eq": ["level", "ERROR"]}, {0, 3, 6, 8}),
    ({"$eq": ["body", "readtimeout in handler"]}, {4}),
    ({"$eq": ["flag", True]}, {4}),
    ({"$eq": ["k", "--"]}, {9}),
    ({"$eq": ["blob", LONG_WORD]}, {10}),
    ({"$neq": ["level", "debug"]}, EVERYTHING - {4}),
    ({"$notcontains": ["body", "timeout"]}, EVERYTHING - {0, 3, 4}),
    ({"$notregex": ["body", "^$"]}, EVERYTHING - {9}),
    ({"$contains": ["service", "gate"]}, {0, 7, 8}),
    ({"$gt": ["duration_ms", "1000"]}, {0}),
    ({"$lte": ["http.status", "404"]}, {1, 2}),
    ({"$gt": ["timestamp", "2024-03-15T10:00:07Z"]}, {8, 9, 10}),
    ({"$or": [{"$eq": ["level", "error"]}, {"$eq": ["level", "fatal"]}]}, {0, 3, 6, 8, 9}),
    ({"$not": [{"$eq": ["service", "api"]}]}, EVERYTHING - {1, 2}),
    (
        {"$and": [{"$eq": ["service", "api-gateway"]}, {"$regex": ["body", "error.*timeout|connection.*refused"]}]},
        {8},
    ),
]


class TestKqlCandidates:
    """KQL queries narrow to a superset of exact matches and verify to exactly the expected events."""

    @pytest.mark.parametrize(("query", "expected"), KQL_CASES)
    def test_query(self, partition: Partition, query: str, expected: set[int]) -> None:
        partition.check(parse_kql(query), expected)


class TestPipelineCandidates:
    """Pipeline filters narrow to a superset of exact matches and verify to exactly the expected events."""

    @pytest.mark.parametrize(("query", "expected"), PIPELINE_CASES)
    def test_query(self, partition: Partition, query: dict[str, Any], expected: set[int]) -> None:
        partition.check(pipeline(query), expected)


class TestExactness:
    """Queries the index answers exactly skip verification; the rest ask for it."""

    @pytest.mark.parametrize(
        "query",
        [
            "level:error",
            "service:api*",
            "timeout",
            'message:"connection refused"',
            "ошибка",
            "http.status:500",
            "k:*",
            "tags:_jsonparsefailure",
            "not level:error and service:worker",
            '@timestamp >= "2024-03-15T10:00:05Z"',
        ],
    )
    def test_exact(self, partition: Partition, query: str) -> None:
        assert not compile_query(parse_kql(query), partition.schema, stemming=False).needs_verification

    @pytest.mark.parametrize("query", ["*timeout*", "db-primary-*", "http.status >= 400", "not *timeout*"])
    def test_needs_verification(self, partition: Partition, query: str) -> None:
        assert compile_query(parse_kql(query), partition.schema, stemming=False).needs_verification

    @pytest.mark.parametrize(
        "query",
        [{"$contains": ["body", "time"]}, {"$regex": ["body", "a"]}, {"$eq": ["status_code", "400"]}],
    )
    def test_pipeline_needs_verification(self, partition: Partition, query: dict[str, Any]) -> None:
        assert compile_query(pipeline(query), partition.schema, stemming=False).needs_verification


class TestNarrowing:
    """Substring and regex narrowing really cuts candidates down instead of scanning everything."""

    @pytest.mark.parametrize(
        ("query", "most"),
        [
            ({"$contains": ["body", "time"]}, {0, 3, 4}),
            ({"$regex": ["body", "error.*timeout|connection.*refused"]}, {2, 3, 6, 8}),
            ({"$regex": ["body", r"ECONN[A-Z]+\)"]}, {8}),
            ({"$regex": ["body", "(?:timeout|refused)+ (?:after|by)"]}, {2, 3}),
            ({"$contains": ["body", "refused (ECONN"]}, {8}),
        ],
    )
    def test_candidates_are_few(self, partition: Partition, query: dict[str, Any], most: set[int]) -> None:
        assert partition.candidates(compile_query(pipeline(query), partition.schema, stemming=False)) <= most

    @pytest.mark.parametrize(
        ("query", "looked_up", "left_out"),
        [
            (r"ERR-\d{5}-FATAL", 'Regex("fatal.*")', 'Regex(".*err")'),  # a prefix instead of a dictionary walk
            ("timeout on db", 'Regex("db.*")', 'Regex(".*timeout")'),
        ],
    )
    def test_open_left_tokens_give_way_to_exact_and_prefix_ones(
        self, partition: Partition, query: str, looked_up: str, left_out: str
    ) -> None:
        """The text of tantivy's query shows which term-dictionary regexes run; the answer stays exact."""
        node = pipeline({"$regex": ["body", query]})
        shown = repr(compile_query(node, partition.schema, stemming=False).query)
        assert looked_up in shown
        assert left_out not in shown
        partition.check(node, {0} if query == "timeout on db" else set())

    def test_words_over_the_token_limit_are_invisible(self, partition: Partition) -> None:
        """The documented limit: text inside a word of 100+ bytes cannot be found through the index."""
        node = pipeline({"$contains": ["body", "needle"]})
        assert build_matcher(node)(EVENTS[10], {})
        assert 10 not in partition.candidates(compile_query(node, partition.schema, stemming=False))
        partition.check(parse_kql("payload"), {10})

    def test_hostile_regex_finishes_instantly(self, partition: Partition) -> None:
        started = time.perf_counter()
        partition.check(pipeline({"$regex": ["body", "(a+)+$"]}), set())
        partition.check(pipeline({"$regex": ["body", "(a|aa)+b$"]}), {5})
        assert time.perf_counter() - started < 1.0


@pytest.fixture(scope="class")
def stemmed(tmp_path_factory: pytest.TempPathFactory) -> Partition:
    return Partition(tmp_path_factory.mktemp("stemmed"), stemming=True)


class TestStemming:
    """With stemming on, message words match other forms of the same word through the stemmed field."""

    @staticmethod
    def stem(word: str) -> str:
        stems: list[str] = schema.stemmed_analyzer().analyze(word)
        return stems[0] if stems else word

    @pytest.mark.parametrize(
        ("query", "expected"),
        [("ошибки", {1}), ("connections", {0, 2, 8}), ('"request timeouts"', {3}), ("timeout", {0, 3})],
    )
    def test_word_forms(self, stemmed: Partition, query: str, expected: set[int]) -> None:
        stemmed.check(parse_kql(query), expected, stem=self.stem)


LEAVES = [
    "timeout",
    "ошибка",
    '"connection refused"',
    "level:error",
    "service:api*",
    "*time*",
    "time*",
    "*fused",
    "e*r",
    "http.status:500",
    "http.status >= 404",
    "http.status:*",
    "status_code:400",
    "flag:true",
    "labels:gamma",
    "user_id:u*",
    "created:*",
    "message:Error*",
    "duration_ms < 100",
    "tags:prod",
    '"request timeout"',
]
PIPELINE_LEAVES: list[dict[str, Any]] = [
    {"$contains": ["body", "time"]},
    {"$regex": ["body", "o.*o"]},
    {"$regex": ["body", "^[A-Z]"]},
    {"$regex": ["body", "e(r|x)+o"]},
    {"$contains": ["body", ": "]},
    {"$eq": ["status_code", 400]},
    {"$neq": ["service", "api"]},
    {"$regex": ["service", "(?i)API"]},
    {"$contains": ["user_id", "42"]},
    {"$gt": ["duration_ms", "10"]},
]


def random_kql(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 2 or roll < 0.4:
        return rng.choice(LEAVES)
    if roll < 0.6:
        return f"not ({random_kql(rng, depth + 1)})"
    return f"({random_kql(rng, depth + 1)}){rng.choice([' and ', ' or '])}({random_kql(rng, depth + 1)})"


def random_pipeline(rng: random.Random) -> Node:
    leaves = [rng.choice(PIPELINE_LEAVES) for _ in range(rng.randint(1, 3))]
    return pipeline({rng.choice(["$and", "$or", "$not"]): leaves})


class TestRandomQueries:
    """Seeded random combinations keep both promises: candidates are a superset, exact means exact."""

    @pytest.mark.parametrize("seed", range(8))
    def test_combinations(self, partition: Partition, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            node = parse_kql(random_kql(rng)) if rng.random() < 0.7 else random_pipeline(rng)
            compiled = compile_query(node, partition.schema, stemming=False)
            matcher = build_matcher(node)
            exact = {doc_id for doc_id, event in EVENTS.items() if matcher(event, {})}
            candidates = partition.candidates(compiled)
            assert candidates >= exact, node
            assert compiled.needs_verification or candidates == exact, node


class TestTantivyAssumptions:
    """Facts about tantivy-py and the schema that the narrowing relies on; a change here changes the compiler."""

    def test_no_range_query_on_json_subpaths(self, partition: Partition) -> None:
        with pytest.raises(ValueError, match="not defined in the schema"):
            tantivy.Query.range_query(partition.schema, "attributes.duration_ms", tantivy.FieldType.Float, 1.0, None)

    def test_rfc3339_strings_are_dates_not_words(self, partition: Partition) -> None:
        query = tantivy.Query.regex_query(partition.schema, schema.ATTRIBUTES, "created\\x00s.*")
        assert partition.candidates(Compiled(query, False)) == set()
        exists = tantivy.Query.exists_query("attributes.created", json_subpaths=True)
        assert partition.candidates(Compiled(exists, False)) == {3}

    def test_exists_sees_values_without_words(self, partition: Partition) -> None:
        exists = tantivy.Query.exists_query("attributes.k", json_subpaths=True)
        assert partition.candidates(Compiled(exists, False)) == {9}

    def test_numbers_match_typed_terms_only(self, partition: Partition) -> None:
        as_int = tantivy.Query.term_query(partition.schema, "attributes.status_code", 400)
        as_text = tantivy.Query.term_query(partition.schema, "attributes.status_code", "400")
        assert partition.candidates(Compiled(as_int, False)) == {3}
        assert partition.candidates(Compiled(as_text, False)) == {2}


class TestErrors:
    """Values the index cannot represent are refused instead of silently matching nothing."""

    def test_bad_timestamp_value(self, partition: Partition) -> None:
        with pytest.raises(QueryError):
            compile_query(Compare(Op.GT, "timestamp", "yesterday"), partition.schema, stemming=False)
