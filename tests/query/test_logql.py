"""LogQL parses into the expected trees, refuses what it cannot run by position, and evaluates exactly."""

from __future__ import annotations

import math

import pytest

from logtraced.errors import QueryError
from logtraced.model import Event
from logtraced.query.ast import And, Compare, Exists, Not, Op, Or
from logtraced.query.logql import parse_logql
from logtraced.query.logql_ast import (
    BinaryOp,
    Conversion,
    Grouping,
    Literal,
    RangeAggregation,
    Unwrap,
    VectorAggregation,
    VectorLiteral,
)
from logtraced.query.logql_eval import (
    Sample,
    Series,
    build_log_pipeline,
    evaluate_metric,
    events_source,
    is_scalar,
    step_points,
)
from logtraced.query.logql_stages import (
    CompareOp,
    Decolorize,
    DropLabels,
    KeepLabels,
    LabelAnd,
    LabelFilter,
    LabelFormat,
    LabelMatcher,
    LabelOr,
    LineFormat,
    MatchOp,
    NumberFilter,
    Pattern,
    Unpack,
    ValueKind,
)
from logtraced.query.pipeline import Filter, Parse, ParserKind, Pipeline
from logtraced.query.template import parse_template

S = 1_000_000_000
MINUTE = 60 * S
API = Filter(Compare(Op.EQ, "service", "api"))


def log_stages(query: str) -> tuple[object, ...]:
    parsed = parse_logql(query)
    assert isinstance(parsed, Pipeline)
    return parsed.stages


# -- stream selectors and line filters ----------------------------------------------------------

SELECTORS: list[tuple[str, object]] = [
    ('{service_name="api"}', Compare(Op.EQ, "service", "api")),
    ('{service="api"}', Compare(Op.EQ, "service", "api")),
    ('{level="WARNING"}', Compare(Op.EQ, "level", "warn")),
    ('{detected_level="Error"}', Compare(Op.EQ, "level", "error")),
    ('{host!="web-1"}', Not(Compare(Op.EQ, "host", "web-1"))),
    ('{env=~"prod|staging"}', Compare(Op.REGEX, "env", "^(?:prod|staging)$")),
    ('{index!~"tmp.*"}', Not(Compare(Op.REGEX, "index", "^(?:tmp.*)$"))),
    ('{region="eu"}', Compare(Op.EQ, "region", "eu")),
    ('{region=""}', Or((Not(Exists("region")), Compare(Op.EQ, "region", "")))),
    ('{region!=""}', Not(Or((Not(Exists("region")), Compare(Op.EQ, "region", ""))))),
    ('{region=~"eu.*"}', Compare(Op.REGEX, "region", "^(?:eu.*)$")),
    ('{region=~"(eu.*)?"}', Or((Not(Exists("region")), Compare(Op.REGEX, "region", "^(?:(eu.*)?)$")))),
    ('{service_name=~".+"}', Compare(Op.REGEX, "service", "^(?:.+)$")),
    (
        '{service_name="api", level="error"}',
        And((Compare(Op.EQ, "service", "api"), Compare(Op.EQ, "level", "error"))),
    ),
]


@pytest.mark.parametrize(("query", "node"), SELECTORS)
def test_stream_selectors_map_labels_onto_event_fields(query: str, node: object) -> None:
    assert log_stages(query) == (Filter(node),)  # type: ignore[arg-type]


LINE_FILTERS: list[tuple[str, object]] = [
    ('|= "timeout"', Compare(Op.CONTAINS, "message", "timeout")),
    ('!= "health"', Not(Compare(Op.CONTAINS, "message", "health"))),
    ('|~ "(?i)err(or)?"', Compare(Op.REGEX, "message", "(?i)err(or)?")),
    ('!~ "GET /\\\\d+"', Not(Compare(Op.REGEX, "message", "GET /\\d+"))),
    ("|= `C:\\path`", Compare(Op.CONTAINS, "message", "C:\\path")),
    ('|= "tab\\there \\"q\\" \\u00e9"', Compare(Op.CONTAINS, "message", 'tab\there "q" é')),
    (
        '|= "a" or "b"',
        Or((Compare(Op.CONTAINS, "message", "a"), Compare(Op.CONTAINS, "message", "b"))),
    ),
    (
        '!= "a" or "b"',
        Not(Or((Compare(Op.CONTAINS, "message", "a"), Compare(Op.CONTAINS, "message", "b")))),
    ),
]


@pytest.mark.parametrize(("text", "node"), LINE_FILTERS)
def test_line_filters_test_the_message(text: str, node: object) -> None:
    assert log_stages('{service_name="api"} ' + text) == (API, Filter(node))  # type: ignore[arg-type]


def test_chained_line_filters_all_join_the_prefilter() -> None:
    parsed = parse_logql('{service_name="api"} |= "a" != "b" | json |= "c"')
    assert isinstance(parsed, Pipeline)
    assert parsed.prefilter == And(
        (
            Compare(Op.EQ, "service", "api"),
            Compare(Op.CONTAINS, "message", "a"),
            Not(Compare(Op.CONTAINS, "message", "b")),
        )
    )


# -- parsers and stages -----------------------------------------------------------------------

STAGES: list[tuple[str, object]] = [
    ("| json", Parse(ParserKind.JSON, "message")),
    ('| json a="x.y", b="items[0]", c, d=`h["User-Agent"]`', None),
    ("| logfmt", Parse(ParserKind.LOGFMT, "message")),
    ("| logfmt --strict --keep-empty", Parse(ParserKind.LOGFMT, "message")),
    ('| logfmt a, b="c"', Parse(ParserKind.LOGFMT, "message", (("a", "a"), ("b", "c")))),
    ("| unpack", Unpack()),
    ("| decolorize", Decolorize()),
    ('| pattern "<ip> - <_> [<ts>]"', Pattern("<ip> - <_> [<ts>]")),
    ("| drop __error__, __error_details__", DropLabels(("__error__", "__error_details__"))),
    ('| drop a, b="x"', DropLabels(("a",), (LabelMatcher("b", MatchOp.EQ, "x"),))),
    ("| keep a, b", KeepLabels(("a", "b"))),
    ('| line_format "{{.a}} {{.b}}"', LineFormat(parse_template("{{.a}} {{.b}}"))),
    (
        '| label_format a=b, c="{{.x}}"',
        LabelFormat((("a", "b"), ("c", parse_template("{{.x}}")))),
    ),
    ('| __error__=""', LabelFilter(LabelMatcher("__error__", MatchOp.EQ, ""))),
    ('| method!="GET"', LabelFilter(LabelMatcher("method", MatchOp.NEQ, "GET"))),
    ('| level="ERROR"', LabelFilter(LabelMatcher("level", MatchOp.EQ, "error"))),
    ('| path=~"/api/.*"', LabelFilter(LabelMatcher("path", MatchOp.RE, "/api/.*"))),
    ('| path!~"/health"', LabelFilter(LabelMatcher("path", MatchOp.NRE, "/health"))),
    ("| status >= 500", LabelFilter(NumberFilter("status", CompareOp.GTE, 500.0))),
    ("| status == 200", LabelFilter(NumberFilter("status", CompareOp.EQ, 200.0))),
    ("| status = 200", LabelFilter(NumberFilter("status", CompareOp.EQ, 200.0))),
    ("| status != 200", LabelFilter(NumberFilter("status", CompareOp.NEQ, 200.0))),
    ("| temp < -1.5", LabelFilter(NumberFilter("temp", CompareOp.LT, -1.5))),
    ("| latency > 10s", LabelFilter(NumberFilter("latency", CompareOp.GT, 10.0, ValueKind.DURATION))),
    ("| latency <= 250ms", LabelFilter(NumberFilter("latency", CompareOp.LTE, 0.25, ValueKind.DURATION))),
    ("| size > 1KB", LabelFilter(NumberFilter("size", CompareOp.GT, 1000.0, ValueKind.BYTES))),
    ("| size < 2KiB", LabelFilter(NumberFilter("size", CompareOp.LT, 2048.0, ValueKind.BYTES))),
    (
        '| a="1" and b="2" or c="3", d="4"',
        LabelFilter(
            LabelOr(
                (
                    LabelAnd((LabelMatcher("a", MatchOp.EQ, "1"), LabelMatcher("b", MatchOp.EQ, "2"))),
                    LabelAnd((LabelMatcher("c", MatchOp.EQ, "3"), LabelMatcher("d", MatchOp.EQ, "4"))),
                )
            )
        ),
    ),
    (
        '| (a="1" or b="2") and c > 3',
        LabelFilter(
            LabelAnd(
                (
                    LabelOr((LabelMatcher("a", MatchOp.EQ, "1"), LabelMatcher("b", MatchOp.EQ, "2"))),
                    NumberFilter("c", CompareOp.GT, 3.0),
                )
            )
        ),
    ),
]


@pytest.mark.parametrize(("text", "stage"), STAGES)
def test_pipeline_stages_parse(text: str, stage: object) -> None:
    stages = log_stages('{service_name="api"} ' + text)
    assert stages[0] == API and len(stages) == 2
    if stage is None:  # json with paths: checked by the shape of its labels
        assert stages[1] == Parse(
            ParserKind.JSON, "message", (("a", "x.y"), ("b", "items.0"), ("c", "c"), ("d", "h.User-Agent"))
        )
    else:
        assert stages[1] == stage


def test_regexp_parser_keeps_its_pattern() -> None:
    stages = log_stages('{service_name="api"} | regexp "(?P<ip>\\\\S+) (?P<verb>[A-Z]+)"')
    assert stages[1] == Parse(ParserKind.REGEXP, "message", (), "(?P<ip>\\S+) (?P<verb>[A-Z]+)")


# -- metric queries ---------------------------------------------------------------------------


def count(stages: tuple[object, ...] = (), range_ns: int = MINUTE, **extra: object) -> RangeAggregation:
    return RangeAggregation("count_over_time", Pipeline(logql=True, stages=(API, *stages)), range_ns, **extra)  # type: ignore[arg-type]


METRICS: list[tuple[str, object]] = [
    ("vector(1)+vector(1)", BinaryOp("+", VectorLiteral(1.0), VectorLiteral(1.0))),
    ("1 + 2 * 3", BinaryOp("+", Literal(1.0), BinaryOp("*", Literal(2.0), Literal(3.0)))),
    ("2 ^ 3 ^ 2", BinaryOp("^", Literal(2.0), BinaryOp("^", Literal(3.0), Literal(2.0)))),
    ("(1 - 2) - 3", BinaryOp("-", BinaryOp("-", Literal(1.0), Literal(2.0)), Literal(3.0))),
    ("-4", Literal(-4.0)),
    ('count_over_time({service_name="api"}[1m])', count()),
    ('count_over_time({service_name="api"}[1m] offset 5m)', count(offset_ns=5 * MINUTE)),
    (
        'count_over_time({service_name="api"} |= "x" [5m])',
        count((Filter(Compare(Op.CONTAINS, "message", "x")),), 5 * MINUTE),
    ),
    (
        'count_over_time({service_name="api"}[5m] |= "x")',
        count((Filter(Compare(Op.CONTAINS, "message", "x")),), 5 * MINUTE),
    ),
    (
        'count_over_time(({service_name="api"} |= "x")[1h30m])',
        count((Filter(Compare(Op.CONTAINS, "message", "x")),), 90 * MINUTE),
    ),
    ('rate({service_name="api"}[30s])', RangeAggregation("rate", Pipeline(logql=True, stages=(API,)), 30 * S)),
    (
        'bytes_over_time({service_name="api"}[1d])',
        RangeAggregation("bytes_over_time", Pipeline(logql=True, stages=(API,)), 1440 * MINUTE),
    ),
    (
        'bytes_rate({service_name="api"}[1m])',
        RangeAggregation("bytes_rate", Pipeline(logql=True, stages=(API,)), MINUTE),
    ),
    (
        'sum by (level, detected_level) (count_over_time({service_name="api"} |= "e" | drop __error__[1m]))',
        VectorAggregation(
            "sum",
            count((Filter(Compare(Op.CONTAINS, "message", "e")), DropLabels(("__error__",)))),
            Grouping(("level", "detected_level")),
        ),
    ),
    (
        'sum(count_over_time({service_name="api"}[1m])) without (host)',
        VectorAggregation("sum", count(), Grouping(("host",), without=True)),
    ),
    ('topk(3, count_over_time({service_name="api"}[1m]))', VectorAggregation("topk", count(), None, 3)),
    (
        'bottomk by (env) (2, count_over_time({service_name="api"}[1m]))',
        VectorAggregation("bottomk", count(), Grouping(("env",)), 2),
    ),
    (
        'avg_over_time({service_name="api"} | logfmt | unwrap latency [5m]) by (host)',
        RangeAggregation(
            "avg_over_time",
            Pipeline(logql=True, stages=(API, Parse(ParserKind.LOGFMT, "message"))),
            5 * MINUTE,
            unwrap=Unwrap("latency"),
            grouping=Grouping(("host",)),
        ),
    ),
    (
        'quantile_over_time(0.99, {service_name="api"} | json | unwrap duration(took) | __error__="" [1m])',
        RangeAggregation(
            "quantile_over_time",
            Pipeline(logql=True, stages=(API, Parse(ParserKind.JSON, "message"))),
            MINUTE,
            unwrap=Unwrap("took", Conversion.DURATION, (LabelFilter(LabelMatcher("__error__", MatchOp.EQ, "")),)),
            param=0.99,
        ),
    ),
    (
        'sum_over_time({service_name="api"} | unwrap bytes(size) [1m])',
        RangeAggregation(
            "sum_over_time", Pipeline(logql=True, stages=(API,)), MINUTE, unwrap=Unwrap("size", Conversion.BYTES)
        ),
    ),
    (
        'sum(rate({service_name="api"}[1m])) / 2',
        BinaryOp(
            "/",
            VectorAggregation("sum", RangeAggregation("rate", Pipeline(logql=True, stages=(API,)), MINUTE)),
            Literal(2.0),
        ),
    ),
]


@pytest.mark.parametrize(("query", "tree"), METRICS)
def test_metric_queries_parse(query: str, tree: object) -> None:
    assert parse_logql(query) == tree


# Queries Grafana and Grafana Logs Drilldown generate (reference/grafana-loki.md and their sources).
GRAFANA_QUERIES = [
    "vector(1)+vector(1)",
    '{service_name="api"}',
    '{service_name=~".+"}',
    '{service_name="api"} |= "x"',
    'sum by (level, detected_level) (count_over_time({service_name="api"} |= "x" | drop __error__[1m]))',
    'sum by (level, detected_level) (count_over_time({service_name="x"} |= "e" | drop __error__[1m]))',
    'sum by (level) (count_over_time({service_name="api"} | drop __error__[1m]))',
    'sum by (detected_level) (count_over_time({service_name="api"} | detected_level="error" [1m]))',
    '{service_name="api"} | detected_level="error" or detected_level="warn"',
    '{service_name="api"} | json | logfmt | drop __error__, __error_details__',
    '{service_name="api"} | json | __error__="" | status="500"',
    'sum(count_over_time({service_name="api"} | logfmt | duration > 10s [1m])) by (method)',
    'topk(10, sum by (service_name) (rate({service_name=~".+"}[5m])))',
    'sum(bytes_rate({env="prod"}[1m])) by (host)',
    '{service_name="api"} |~ `(?i)error` != "health" | line_format "{{.level}} {{__line__}}"',
    'count_over_time({service_name="api"}[$__auto])'.replace("$__auto", "1m"),
]


@pytest.mark.parametrize("query", GRAFANA_QUERIES)
def test_grafana_generated_queries_parse(query: str) -> None:
    parse_logql(query)


# -- errors -----------------------------------------------------------------------------------

ERRORS: list[tuple[str, int, str]] = [
    ('{service_name="api"} |> "<_> foo"', 21, 'unsupported: the "|>" pattern filter at position 21'),
    ('{service_name="api"} !> "x"', 21, 'unsupported: the "!>" pattern filter'),
    ('{a="b"} |= ip("10.0.0.0/8")', 11, "ip() line filter"),
    ('{a="b"} | addr = ip("10.0.0.0/8")', 17, "ip() label filter"),
    ('label_replace(vector(1), "a", "b", "c", "d")', 0, '"label_replace" function'),
    ('absent_over_time({a="b"}[1m])', 0, '"absent_over_time" function'),
    ('sum(rate({a="b"}[1m])) > 1', 23, 'unsupported: the ">" comparison operator'),
    ("vector(1) + bool vector(1)", 12, '"bool" modifier'),
    ("vector(1) or vector(2)", 10, '"or" set operator'),
    ('{a="b"} | distinct a', 10, '"distinct" stage'),
    ("{}", 1, "Expected a label matcher"),
    ('{a="b"', 6, 'Expected "}" at position 6, found end of input'),
    ('{a="b"} |= "x', 11, "unterminated string"),
    ('{a="b"} |= "\\d"', 12, "unknown escape sequence"),
    ('{a=~"("}', 4, "invalid regular expression"),
    ('{a="b"} | regexp "(x)"', 17, "named group"),
    ('{a="b"} | pattern "no captures"', 18, "named capture"),
    ('{a="b"} | pattern "<a><b>"', 18, "separated by text"),
    ('{a="b"} | line_format "{{if .a}}x{{end}}"', 22, 'the "if" action'),
    ('{a="b"} | line_format "{{ nope .a }}"', 22, 'unknown function "nope"'),
    ('count_over_time({a="b"})', 23, 'Expected "[" and a range'),
    ('count_over_time({a="b"}[5])', 24, "a range such as 5m"),
    ('count_over_time({a="b"} | unwrap x [1m])', 0, "cannot take | unwrap"),
    ('sum_over_time({a="b"}[1m])', 0, "needs an unwrapped label"),
    ('count_over_time({a="b"}[1m]) by (x)', 0, "by/without only with | unwrap"),
    ('{a="b"} | unwrap x', 10, "belongs in a range aggregation"),
    ('{a="b"} + 1', 0, "a log query cannot be used in arithmetic"),
    ('sum({a="b"})', 4, "a log query cannot be used"),
    ('topk(1.5, count_over_time({a="b"}[1m]))', 5, "whole number"),
    ('{a="b"} | status > "x"', 19, "Expected a quoted string, a number"),
    ('{a="b"} | json | foo', 17, "Expected a parser, a label filter or a formatting stage after |"),
    ('{a="b"} | a="1" and foo', 23, "Expected a comparison operator"),
    ('{a="b"} | (a="1" or b="2") c > 3', 27, "join label filters with and, or, or a comma"),
    ("sum(", 4, "found end of input"),
    ('{a="b"} @', 8, 'unexpected character "@" at position 8'),
    ("nonsense", 0, 'Expected a stream selector "{", a number, "(" or a function at position 0, found "nonsense"'),
]


@pytest.mark.parametrize(("query", "position", "message"), ERRORS)
def test_errors_name_the_position(query: str, position: int, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_logql(query)
    assert caught.value.position == position
    assert message in caught.value.message
    assert f"position {position}" in caught.value.message


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(QueryError, match="nest deeper"):
        parse_logql("(" * 100 + "1" + ")" * 100)


# -- evaluation of log pipelines --------------------------------------------------------------


def event(ts: int, message: str, **fields: object) -> Event:
    return Event(timestamp=ts, message=message, service=str(fields.pop("service", "api")), **fields)  # type: ignore[arg-type]


EVENTS = [
    event(10 * S, '{"status":500,"took":"1.5s","user":{"id":"u1"}}', level="error", host="web-1"),
    event(20 * S, '{"status":200,"took":"250ms"}', level="info", host="web-2"),
    event(30 * S, "plain text line", level="info", host="web-1", attributes={"region": "eu", "http": {"code": 404}}),
    event(70 * S, '{"status":503,"took":"2s"}', level="error", host="web-2"),
    event(75 * S, "other service", service="db", level="warn"),
]


def run(query: str, events: list[Event] = EVENTS) -> list[tuple[dict[str, str], str] | None]:
    parsed = parse_logql(query)
    assert isinstance(parsed, Pipeline)
    runner = build_log_pipeline(parsed)
    return [(out.labels, out.line) if (out := runner(e)) is not None else None for e in events]


def test_selector_and_line_filters_select_events() -> None:
    kept = run('{service_name="api", host=~"web-1|web-2"} |= "status" != "503"')
    assert [r is not None for r in kept] == [True, True, False, False, False]
    assert kept[0] == ({"service_name": "api", "level": "error", "host": "web-1"}, EVENTS[0].message)


def test_selector_regex_is_anchored_and_level_is_canonical() -> None:
    assert [r is not None for r in run('{host=~"web"}')] == [False] * 5
    assert [r is not None for r in run('{level="ERR"}')] == [True, False, False, True, False]
    assert [r is not None for r in run('{region=""}')] == [True, True, False, True, True]


def test_json_labels_filters_and_error_marking() -> None:
    kept = run('{service_name="api"} | json | status >= 500')
    assert kept[0] is not None and kept[0][0] == {
        "service_name": "api",
        "level": "error",
        "host": "web-1",
        "status": "500",
        "took": "1.5s",
        "user_id": "u1",
    }
    assert kept[1] is None  # 200
    # Not JSON: marked, and a numeric filter lets an errored line through (Loki).
    assert kept[2] is not None and kept[2][0]["__error__"] == "JSONParserErr"
    assert kept[3] is not None and kept[4] is None
    clean = run('{service_name="api"} | json | __error__="" | took > 1s')
    assert [r is not None for r in clean] == [True, False, False, True, False]


def test_json_with_paths_and_label_format_and_keep() -> None:
    kept = run('{service_name="api"} |= "u1" | json id="user.id", s="status" | label_format who=id | keep who, s')
    assert kept[0] == ({"who": "u1", "s": "500"}, EVENTS[0].message)


def test_line_format_and_filters_on_the_new_line() -> None:
    query = (
        '{host="web-1"} | json | line_format "{{ .status | default \\"-\\" }} {{ ToUpper .level }} '
        '{{ .region }}{{ .detected_level }}" |= "ERROR"'
    )
    assert run(query) == [
        (
            {
                "service_name": "api",
                "level": "error",
                "host": "web-1",
                "status": "500",
                "took": "1.5s",
                "user_id": "u1",
            },
            "500 ERROR error",
        ),
        None,
        None,
        None,
        None,
    ]


def test_logfmt_pattern_regexp_unpack_decolorize() -> None:
    lines = [
        event(1, 'method=GET path="/a b" took=5ms'),
        event(2, '10.0.0.1 - frank [10/Oct/2000] "GET /x"'),
        event(3, '{"_entry":"original \\u001b[31mred\\u001b[0m","app":"web","n":1}'),
    ]
    logfmt = run('{service_name="api"} |= "method" | logfmt | took < 10ms', lines)
    assert logfmt[0] is not None and logfmt[0][0]["path"] == "/a b"
    pattern = run('{service_name="api"} |= "frank" | pattern "<ip> - <user> [<_>] \\"<verb> <path>\\""', lines)
    assert pattern[1] is not None
    assert {k: pattern[1][0][k] for k in ("ip", "user", "verb", "path")} == {
        "ip": "10.0.0.1",
        "user": "frank",
        "verb": "GET",
        "path": "/x",
    }
    regexp = run('{service_name="api"} | regexp "^(?P<ip>\\\\S+) - (?P<user>\\\\w+)" | user="frank"', lines)
    assert [r is not None for r in regexp] == [False, True, False]
    unpacked = run('{service_name="api"} | unpack | decolorize', lines)
    assert unpacked[2] == ({"service_name": "api", "app": "web"}, "original red")


def test_drop_with_matcher_and_extracted_collision() -> None:
    lines = [event(1, '{"service_name":"spoof","level":"debug","a":"x","b":"y"}', level="info")]
    kept = run('{service_name="api"} | json | drop a="x", b="other"', lines)
    assert kept == [
        (
            {
                "service_name": "api",
                "level": "info",
                "service_name_extracted": "spoof",
                "level_extracted": "debug",
                "b": "y",
            },
            lines[0].message,
        )
    ]


def test_label_filters_read_attributes_flattened() -> None:
    kept = run('{service_name="api"} | http_code >= 400 and region="eu"')
    assert [r is not None for r in kept] == [False, False, True, False, False]


# -- evaluation of metric queries -------------------------------------------------------------


def metric(query: str, steps: list[int], events: list[Event] = EVENTS) -> list[Series]:
    parsed = parse_logql(query)
    assert not isinstance(parsed, Pipeline)
    return evaluate_metric(parsed, steps, events_source(events))


def test_vector_one_plus_vector_one_is_two() -> None:
    parsed = parse_logql("vector(1)+vector(1)")
    assert not isinstance(parsed, Pipeline) and not is_scalar(parsed)
    assert evaluate_metric(parsed, [4000 * S], events_source([])) == [Series({}, [(4000 * S, 2.0)])]


def test_scalar_arithmetic() -> None:
    parsed = parse_logql("(1 + 2) * 3 / 2 - 2 ^ 2 % 3")
    assert not isinstance(parsed, Pipeline) and is_scalar(parsed)
    # (3 * 3 / 2) - ((2^2) % 3) = 4.5 - 1
    assert evaluate_metric(parsed, [0, S], events_source([])) == [Series({}, [(0, 3.5), (S, 3.5)])]


def test_division_by_zero_follows_ieee() -> None:
    result = metric("vector(1) / 0", [0]) + metric("vector(0) / 0", [0])
    assert result[0].points == [(0, math.inf)] and math.isnan(result[1].points[0][1])


def test_logs_volume_windows_are_left_open_right_closed() -> None:
    # Steps 30s, 60s, 90s with [30s]: windows (0,30], (30,60], (60,90].
    query = 'sum by (level, detected_level) (count_over_time({service_name="api"} | drop __error__[30s]))'
    assert metric(query, [30 * S, 60 * S, 90 * S]) == [
        Series({"level": "error"}, [(30 * S, 1.0), (90 * S, 1.0)]),
        Series({"level": "info"}, [(30 * S, 2.0)]),
    ]


def test_rate_bytes_and_offset() -> None:
    # Window (0, 60s] holds api events at 10, 20, 30 s: 3 lines.
    assert metric('sum(rate({service_name="api"}[1m]))', [60 * S]) == [Series({}, [(60 * S, 3 / 60)])]
    total_bytes = len(EVENTS[0].message) + len(EVENTS[1].message) + len("plain text line")
    assert metric('sum(bytes_over_time({service_name="api"}[1m]))', [60 * S]) == [
        Series({}, [(60 * S, float(total_bytes))])
    ]
    # offset 1m at step 120 s reads (0, 60] too.
    assert metric('sum(count_over_time({service_name="api"}[1m] offset 1m))', [120 * S]) == [
        Series({}, [(120 * S, 3.0)])
    ]


def test_unwrap_aggregations() -> None:
    base = '{service_name="api"} | json | __error__="" | unwrap duration(took) [2m]'
    # took in seconds: 1.5 (web-1), 0.25 (web-2), 2.0 (web-2); all in (0, 120].
    assert metric(f"sum_over_time({base}) by (host)", [120 * S]) == [
        Series({"host": "web-1"}, [(120 * S, 1.5)]),
        Series({"host": "web-2"}, [(120 * S, 2.25)]),
    ]
    assert metric(f"max_over_time({base}) without (host, status, user_id)", [120 * S]) == [
        Series({"level": "error", "service_name": "api"}, [(120 * S, 2.0)]),
        Series({"level": "info", "service_name": "api"}, [(120 * S, 0.25)]),
    ]
    # quantile 0.5 over [0.25, 1.5, 2.0] is the middle value; 0.75 interpolates 1.5 + 0.5 * 0.5.
    assert metric(f"quantile_over_time(0.5, {base}) by (service_name)", [120 * S])[0].points == [(120 * S, 1.5)]
    assert metric(f"quantile_over_time(0.75, {base}) by (service_name)", [120 * S])[0].points == [(120 * S, 1.75)]
    assert metric(f"avg_over_time({base}) by (service_name)", [120 * S])[0].points == [(120 * S, 3.75 / 3)]
    assert metric(f"rate({base}) by (service_name)", [120 * S])[0].points == [(120 * S, 3.75 / 120)]


def test_unwrap_of_unreadable_value_fails_unless_filtered() -> None:
    lines = [event(S, "took=fast"), event(2 * S, "took=3")]
    with pytest.raises(QueryError, match="pipeline error: 'SampleExtractionErr'"):
        metric('sum_over_time({service_name="api"} | logfmt | unwrap took [1m])', [MINUTE], lines)
    assert metric(
        'sum_over_time({service_name="api"} | logfmt | unwrap took | __error__="" [1m])', [MINUTE], lines
    ) == [Series({"service_name": "api"}, [(MINUTE, 3.0)])]


def test_parser_errors_fail_metric_queries_unless_dropped() -> None:
    with pytest.raises(QueryError, match="JSONParserErr"):
        metric('count_over_time({service_name="api"} | json [1m])', [MINUTE])
    assert metric(
        'sum(count_over_time({service_name="api"} | json | drop __error__, __error_details__ [1m]))', [MINUTE]
    ) == [Series({}, [(MINUTE, 3.0)])]


def test_topk_bottomk_keep_series_labels() -> None:
    samples = [
        Sample(1, {"host": "a"}, "x"),
        Sample(2, {"host": "a"}, "x"),
        Sample(3, {"host": "a"}, "x"),
        Sample(4, {"host": "b"}, "x"),
        Sample(5, {"host": "c"}, "x"),
        Sample(6, {"host": "c"}, "x"),
    ]
    parsed = parse_logql('topk(2, count_over_time({service_name="api"}[1m]))')
    assert not isinstance(parsed, Pipeline)
    assert evaluate_metric(parsed, [MINUTE], lambda agg: samples) == [
        Series({"host": "a"}, [(MINUTE, 3.0)]),
        Series({"host": "c"}, [(MINUTE, 2.0)]),
    ]
    parsed = parse_logql('bottomk(1, count_over_time({service_name="api"}[1m]))')
    assert not isinstance(parsed, Pipeline)
    assert evaluate_metric(parsed, [MINUTE], lambda agg: samples) == [Series({"host": "b"}, [(MINUTE, 1.0)])]
    parsed = parse_logql(
        'avg(count_over_time({service_name="api"}[1m])) + count(count_over_time({service_name="api"}[1m]))'
    )
    assert not isinstance(parsed, Pipeline)
    assert evaluate_metric(parsed, [MINUTE], lambda agg: samples) == [Series({}, [(MINUTE, 2.0 + 3.0)])]


def test_vector_with_vector_matches_identical_labels() -> None:
    query = (
        'sum by (host) (count_over_time({service_name="api"}[2m])) * 10'
        ' - sum by (host) (count_over_time({level="error"}[2m]))'
    )
    # web-1: 2 lines, 1 error -> 19; web-2: 2 lines, 1 error -> 19.
    assert metric(query, [120 * S]) == [
        Series({"host": "web-1"}, [(120 * S, 19.0)]),
        Series({"host": "web-2"}, [(120 * S, 19.0)]),
    ]


def test_step_points_include_the_end() -> None:
    assert step_points(0, 10, 5) == [0, 5, 10]
    with pytest.raises(QueryError):
        step_points(0, 10, 0)
