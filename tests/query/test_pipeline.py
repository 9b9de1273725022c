"""The JSON pipeline body parses into ordered stages, runs filter/parse stages, and rejects bad input clearly."""

from __future__ import annotations

from typing import Any

import pytest

from logtraced.errors import QueryError
from logtraced.model import Event
from logtraced.query.ast import And, Compare, MatchAll, Node, Not, Op, Or
from logtraced.query.pipeline import Filter, Parse, ParserKind, Pipeline, parse_pipeline


def body(*stages: Any) -> dict[str, Any]:
    return {"pipeline": list(stages)}


def where(query: Any, kind: str = "filter") -> dict[str, Any]:
    return {"type": kind, "query": query}


def only_filter(query: Any) -> Node:
    stages = parse_pipeline(body(where(query))).stages
    assert len(stages) == 1 and isinstance(stages[0], Filter)
    return stages[0].node


OPERATORS: list[tuple[dict[str, Any], Node]] = [
    ({"$eq": ["service", "api-gateway"]}, Compare(Op.EQ, "service", "api-gateway")),
    ({"$neq": ["level", "debug"]}, Not(Compare(Op.EQ, "level", "debug"))),
    ({"$contains": ["body", "error"]}, Compare(Op.CONTAINS, "message", "error")),
    ({"$notcontains": ["message", "test"]}, Not(Compare(Op.CONTAINS, "message", "test"))),
    ({"$regex": ["path", "/api/v[0-9]+"]}, Compare(Op.REGEX, "path", "/api/v[0-9]+")),
    ({"$notregex": ["path", "health"]}, Not(Compare(Op.REGEX, "path", "health"))),
    ({"$gt": ["status_code", "400"]}, Compare(Op.GT, "status_code", "400")),
    ({"$lt": ["status_code", 500]}, Compare(Op.LT, "status_code", 500)),
    ({"$gte": ["duration", "1000"]}, Compare(Op.GTE, "duration", "1000")),
    ({"$lte": ["duration", 5000.5]}, Compare(Op.LTE, "duration", 5000.5)),
    ({"$eq": ["level", "ERROR"]}, Compare(Op.EQ, "level", "error")),
    ({"$eq": ["status_code", 400]}, Compare(Op.EQ, "status_code", 400)),
    ({"$eq": ["flag", True]}, Compare(Op.EQ, "flag", True)),
    ({"$contains": ["code", 40]}, Compare(Op.CONTAINS, "code", "40")),
    ({"$eq": ["attributes.http.status", "500"]}, Compare(Op.EQ, "http.status", "500")),
    ({"$gt": ["timestamp", "2024-03-15T10:00:00Z"]}, Compare(Op.GT, "timestamp", 1_710_496_800_000_000_000)),
    ({"$lte": ["@timestamp", 1710496800]}, Compare(Op.LTE, "timestamp", 1_710_496_800_000_000_000)),
    (
        {"$and": [{"$eq": ["service", "api"]}, {"$contains": ["body", "error"]}]},
        And((Compare(Op.EQ, "service", "api"), Compare(Op.CONTAINS, "message", "error"))),
    ),
    (
        {"$or": [{"$eq": ["level", "error"]}, {"$eq": ["level", "fatal"]}]},
        Or((Compare(Op.EQ, "level", "error"), Compare(Op.EQ, "level", "fatal"))),
    ),
    ({"$not": [{"$and": [{"$eq": ["level", "debug"]}]}]}, Not(Compare(Op.EQ, "level", "debug"))),
    (
        {"$not": [{"$eq": ["a", "1"]}, {"$eq": ["b", "2"]}]},
        Not(And((Compare(Op.EQ, "a", "1"), Compare(Op.EQ, "b", "2")))),
    ),
    (
        {"$and": [{"$eq": ["s", "x"]}, {"$or": [{"$eq": ["l", "e"]}, {"$not": [{"$eq": ["l", "d"]}]}]}]},
        And((Compare(Op.EQ, "s", "x"), Or((Compare(Op.EQ, "l", "e"), Not(Compare(Op.EQ, "l", "d")))))),
    ),
    (
        {"$eq": ["service", "api"], "$neq": ["level", "debug"]},
        And((Compare(Op.EQ, "service", "api"), Not(Compare(Op.EQ, "level", "debug")))),
    ),
]


class TestOperators:
    """Each operator maps onto the shared AST; negative operators are Not(...)."""

    @pytest.mark.parametrize(("query", "expected"), OPERATORS)
    def test_operator(self, query: dict[str, Any], expected: Node) -> None:
        assert only_filter(query) == expected

    def test_deepest_allowed(self) -> None:
        node = only_filter(nested_not(63))
        for _ in range(63):
            assert isinstance(node, Not)
            node = node.child
        assert node == Compare(Op.EQ, "a", "b")

    def test_where_is_a_filter(self) -> None:
        stages = parse_pipeline(body(where({"$eq": ["a", "b"]}, "where"))).stages
        assert stages == (Filter(Compare(Op.EQ, "a", "b")),)


class TestStages:
    """Stages keep their order; only filters before the first parse reach the index."""

    def test_raw_json_bytes_and_text(self) -> None:
        raw = b'{"pipeline":[{"type":"filter","query":{"$and":[{"$eq":["service","api-gateway"]}]}}]}'
        expected = Pipeline((Filter(Compare(Op.EQ, "service", "api-gateway")),))
        assert parse_pipeline(raw) == expected
        assert parse_pipeline(raw.decode()) == expected

    def test_empty_pipeline_matches_everything(self) -> None:
        assert parse_pipeline(body()).prefilter == MatchAll()

    def test_prefilter_stops_at_first_parse(self) -> None:
        pipeline = parse_pipeline(
            body(
                where({"$eq": ["service", "api"]}),
                where({"$eq": ["level", "error"]}, "where"),
                {"type": "parse", "parser": "json", "labels": {"user_id": None}},
                where({"$eq": ["user_id", "42"]}, "where"),
            )
        )
        assert pipeline.prefilter == And((Compare(Op.EQ, "service", "api"), Compare(Op.EQ, "level", "error")))
        assert len(pipeline.stages) == 4
        assert isinstance(pipeline.stages[2], Parse)

    @pytest.mark.parametrize(
        ("stage", "parser", "field", "labels"),
        [
            ({"type": "parse", "parser": "json"}, ParserKind.JSON, "message", ()),
            (
                {"type": "parse", "parser": "json", "field": "body", "labels": {"user_id": None, "uid": "user.id"}},
                ParserKind.JSON,
                "message",
                (("user_id", "user_id"), ("uid", "user.id")),
            ),
            ({"type": "parse", "parser": "logfmt", "field": "raw"}, ParserKind.LOGFMT, "raw", ()),
        ],
    )
    def test_parse_stage(
        self, stage: dict[str, Any], parser: ParserKind, field: str, labels: tuple[tuple[str, str], ...]
    ) -> None:
        parsed = parse_pipeline(body(stage)).stages[0]
        assert isinstance(parsed, Parse)
        assert (parsed.parser, parsed.field, parsed.labels) == (parser, field, labels)

    def test_regexp_stage_keeps_pattern(self) -> None:
        parsed = parse_pipeline(body({"type": "parse", "parser": "regexp", "pattern": r"took (?P<ms>\d+)ms"})).stages[0]
        assert isinstance(parsed, Parse)
        assert parsed.pattern == r"took (?P<ms>\d+)ms"


class TestExtract:
    """Parse stages turn text into string labels; unreadable text yields none."""

    @pytest.mark.parametrize(
        ("stage", "text", "expected"),
        [
            (
                {"parser": "json"},
                '{"user_id": 42, "ok": true, "who": {"name": "ann"}}',
                {"user_id": "42", "ok": "true", "who_name": "ann"},
            ),
            ({"parser": "json", "labels": {"user_id": None}}, '{"user_id": "u1", "other": 1}', {"user_id": "u1"}),
            ({"parser": "json", "labels": {"name": "who.name"}}, '{"who": {"name": "ann"}}', {"name": "ann"}),
            ({"parser": "json", "labels": {"first": "items.0"}}, '{"items": ["a", "b"]}', {"first": "a"}),
            ({"parser": "json", "labels": {"tags": None}}, '{"tags": ["a", 1]}', {"tags_extracted": '["a",1]'}),
            ({"parser": "json", "labels": {"gone": None}}, '{"gone": null}', {}),
            ({"parser": "json"}, "not json at all", {}),
            ({"parser": "json"}, "[1, 2]", {}),
            (
                {"parser": "logfmt"},
                'level=info msg="hello \\"you\\"" took=12ms flag',
                {"level_extracted": "info", "msg": 'hello "you"', "took": "12ms", "flag": ""},
            ),
            ({"parser": "logfmt", "labels": {"t": "took"}}, "took=3 x=1", {"t": "3"}),
            ({"parser": "regexp", "pattern": r"took (?P<ms>\d+)ms(?: (?P<unit>\w+))?"}, "req took 15ms", {"ms": "15"}),
            ({"parser": "regexp", "pattern": r"(?P<a>x)"}, "nothing", {}),
        ],
    )
    def test_extract(self, stage: dict[str, Any], text: str, expected: dict[str, str]) -> None:
        parsed = parse_pipeline(body({"type": "parse", **stage})).stages[0]
        assert isinstance(parsed, Parse)
        assert parsed.extract(text) == expected


class TestMatcher:
    """Running a pipeline on an event: filters in order, labels from parse stages visible afterwards."""

    EVENT = Event(
        timestamp=1,
        message='{"user_id": "42", "latency_ms": 950}',
        level="error",
        service="api",
        attributes={"raw": "level=warn took=12"},
    )

    @pytest.mark.parametrize(
        ("stages", "expected"),
        [
            ([where({"$eq": ["service", "api"]})], {}),
            ([where({"$eq": ["service", "web"]})], None),
            (
                [{"type": "parse", "parser": "json"}, where({"$eq": ["user_id", "42"]}, "where")],
                {"user_id": "42", "latency_ms": "950"},
            ),
            (
                [{"type": "parse", "parser": "json"}, where({"$gt": ["latency_ms", "900"]}, "where")],
                {"user_id": "42", "latency_ms": "950"},
            ),
            ([{"type": "parse", "parser": "json"}, where({"$gt": ["latency_ms", 1000]}, "where")], None),
            ([where({"$eq": ["user_id", "42"]}), {"type": "parse", "parser": "json"}], None),
            (
                [{"type": "parse", "parser": "logfmt", "field": "raw"}, where({"$eq": ["took", 12]})],
                {"level_extracted": "warn", "took": "12"},
            ),
            (
                [{"type": "parse", "parser": "logfmt", "field": "raw"}, where({"$eq": ["level", "error"]})],
                {"level_extracted": "warn", "took": "12"},
            ),
            (
                [{"type": "parse", "parser": "logfmt", "field": "raw"}, where({"$eq": ["level_extracted", "warn"]})],
                {"level_extracted": "warn", "took": "12"},
            ),
            (
                [{"type": "parse", "parser": "json"}, where({"$neq": ["missing", "x"]})],
                {"user_id": "42", "latency_ms": "950"},
            ),
        ],
    )
    def test_run(self, stages: list[dict[str, Any]], expected: dict[str, str] | None) -> None:
        assert parse_pipeline(body(*stages)).matcher()(self.EVENT) == expected


def nested_not(depth: int) -> dict[str, Any]:
    query: dict[str, Any] = {"$eq": ["a", "b"]}
    for _ in range(depth):
        query = {"$not": [query]}
    return query


PIPELINE_ERRORS: list[tuple[Any, str, str]] = [
    (body(where(nested_not(64))), "invalid_pipeline", "nest deeper than 64 levels"),
    (b"{not json", "invalid_pipeline", "not valid JSON"),
    ([], "invalid_pipeline", '"pipeline" list'),
    ({"stages": []}, "invalid_pipeline", '"pipeline" list'),
    ({"pipeline": {}}, "invalid_pipeline", "must be a list"),
    (body("filter"), "invalid_pipeline", "stage 0: a stage must be an object"),
    (body({"query": {}}), "invalid_pipeline", "stage 0: unknown stage type None"),
    (body({"type": "select"}), "invalid_pipeline", "stage 0: unknown stage type 'select'"),
    (body({"type": "filter"}), "invalid_pipeline", 'stage 0 (filter): missing "query"'),
    (body(where({})), "invalid_pipeline", "stage 0 (filter): a query must be an object"),
    (body(where([])), "invalid_pipeline", "a query must be an object"),
    (
        body(where({"$eq": ["a", "b", "c"]})),
        "invalid_pipeline",
        "stage 0 (filter): operator $eq takes exactly 2 arguments [field, value], got 3",
    ),
    (body(where({"$neq": ["a"]})), "invalid_pipeline", "operator $neq takes exactly 2 arguments [field, value], got 1"),
    (body(where({"$gt": "a"})), "invalid_pipeline", "operator $gt takes exactly 2 arguments [field, value], got str"),
    (body(where({"$like": ["a", "b"]})), "invalid_pipeline", "stage 0 (filter): unknown operator '$like'"),
    (body(where({"$eq": [1, "b"]})), "invalid_pipeline", "operator $eq: the field must be a non-empty string"),
    (body(where({"$eq": ["", "b"]})), "invalid_pipeline", "the field must be a non-empty string"),
    (
        body(where({"$eq": ["a", None]})),
        "invalid_pipeline",
        "operator $eq: the value must be a string, number or boolean",
    ),
    (body(where({"$eq": ["a", ["b"]]})), "invalid_pipeline", "the value must be a string, number or boolean"),
    (body(where({"$gt": ["a", "many"]})), "invalid_pipeline", "operator $gt: needs a number, got 'many'"),
    (body(where({"$lte": ["a", True]})), "invalid_pipeline", "operator $lte: needs a number"),
    (body(where({"$gt": ["timestamp", "yesterday"]})), "invalid_pipeline", "operator $gt: invalid timestamp"),
    (body(where({"$and": []})), "invalid_pipeline", "operator $and takes a non-empty list"),
    (body(where({"$or": {"$eq": ["a", "b"]}})), "invalid_pipeline", "operator $or takes a non-empty list"),
    (body(where({"$not": []})), "invalid_pipeline", "operator $not takes a non-empty list"),
    (body(where({"$and": [{"$eq": ["a"]}]})), "invalid_pipeline", "operator $eq takes exactly 2 arguments"),
    (
        body(where({"$eq": ["a", "b"]}), where({"$bad": 1}, "where")),
        "invalid_pipeline",
        "stage 1 (where): unknown operator",
    ),
    (
        body(where({"$regex": ["body", "(?<=x)y"]})),
        "invalid_regex",
        "stage 0 (filter): operator $regex: invalid regular expression",
    ),
    (
        body(where({"$notregex": ["body", "(unclosed"]})),
        "invalid_regex",
        "operator $notregex: invalid regular expression",
    ),
    (body(where({"$regex": ["body", r"(a)\1"]})), "invalid_regex", "invalid regular expression"),
    (body({"type": "parse", "parser": "xml"}), "invalid_pipeline", "stage 0 (parse): unknown parser 'xml'"),
    (body({"type": "parse"}), "invalid_pipeline", "unknown parser None"),
    (body({"type": "parse", "parser": "json", "field": 3}), "invalid_pipeline", "field must be a non-empty string"),
    (body({"type": "parse", "parser": "json", "labels": ["a"]}), "invalid_pipeline", "labels must be an object"),
    (body({"type": "parse", "parser": "json", "labels": {"a": 1}}), "invalid_pipeline", "label 'a' must map to null"),
    (body({"type": "parse", "parser": "regexp"}), "invalid_pipeline", 'parser regexp needs a "pattern"'),
    (body({"type": "parse", "parser": "regexp", "pattern": "x+"}), "invalid_pipeline", "has no named groups"),
    (
        body({"type": "parse", "parser": "regexp", "pattern": "(?P<a>"}),
        "invalid_regex",
        "stage 0 (parse): invalid regular expression",
    ),
]


class TestErrors:
    """Malformed pipelines raise QueryError(code="invalid_pipeline", or "invalid_regex") naming the stage."""

    @pytest.mark.parametrize(("raw", "code", "message"), PIPELINE_ERRORS)
    def test_error(self, raw: Any, code: str, message: str) -> None:
        with pytest.raises(QueryError) as caught:
            parse_pipeline(raw)
        assert caught.value.code == code
        assert message in caught.value.message


def test_kql_operator_parses_to_the_same_tree_as_kql() -> None:
    from logtraced.query.kql import parse_kql

    text = 'service:payments and not level:"error" and timeout'
    parsed = parse_pipeline({"pipeline": [{"type": "filter", "query": {"$kql": text}}]})
    assert parsed.stages == (Filter(parse_kql(text)),)


@pytest.mark.parametrize("args", [["level", "error"], 3, None])
def test_kql_operator_takes_text_only(args: Any) -> None:
    with pytest.raises(QueryError, match=r"\$kql takes KQL text"):
        parse_pipeline({"pipeline": [{"type": "filter", "query": {"$kql": args}}]})
