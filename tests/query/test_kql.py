"""KQL text parses to the same AST Kibana's grammar would give, and bad syntax names its position."""

from __future__ import annotations

import pytest

from logtraced.errors import QueryError
from logtraced.query.ast import And, Compare, Exists, MatchAll, Node, Not, Op, Or
from logtraced.query.kql import parse_kql


def text(value: str, field: str | None = None) -> Compare:
    return Compare(Op.MATCH, field, value)


def phrase(value: str, field: str | None = None) -> Compare:
    return Compare(Op.PHRASE, field, value)


def glob(value: str, field: str | None = None) -> Compare:
    return Compare(Op.WILDCARD, field, value)


FREE_TEXT = [
    ("", MatchAll()),
    ("   \t\n", MatchAll()),
    ("timeout", text("timeout")),
    ("  timeout  ", text("timeout")),
    ('"connection refused"', phrase("connection refused")),
    ("connection refused", text("connection refused")),
    ("ошибка", text("ошибка")),
    ("Ошибка соединения", text("Ошибка соединения")),
    ("cannot connect", text("cannot connect")),
    ("motor oil", text("motor oil")),
    ("a or", text("a or")),
    ("a and", text("a and")),
    ("not", text("not")),
    ("nothing here", text("nothing here")),
    ("true", text("true")),
    ("070", text("070")),
    ("*", MatchAll()),
    ('""', phrase("")),
]

FIELDS = [
    ("service:payment-gateway", text("payment-gateway", "service")),
    ("service : payment-gateway", text("payment-gateway", "service")),
    ("level:ERROR", text("error", "level")),
    ('message:"connection refused"', phrase("connection refused", "message")),
    ("body:timeout", text("timeout", "message")),
    ("http.status:500", text("500", "http.status")),
    ("attributes.http.status:500", text("500", "http.status")),
    ("kubernetes.pod.name:api-*", glob("api-*", "kubernetes.pod.name")),
    ('"quoted field":x', text("x", "quoted field")),
    ("user name:bob", text("bob", "user name")),
    ("service:*", Exists("service")),
    ("http.status:*", Exists("http.status")),
    ("*:*", MatchAll()),
    ("*:timeout", text("timeout")),
    ("f:(a or b)", Or((text("a", "f"), text("b", "f")))),
    ("f:(a and b)", And((text("a", "f"), text("b", "f")))),
    ("f:(not a)", Not(text("a", "f"))),
    ("f:(a or b and c)", Or((text("a", "f"), And((text("b", "f"), text("c", "f")))))),
    ("f:(a and not b)", And((text("a", "f"), Not(text("b", "f"))))),
    ('f:("x y" or z*)', Or((phrase("x y", "f"), glob("z*", "f")))),
    ("f:((a or b) and c)", And((Or((text("a", "f"), text("b", "f"))), text("c", "f")))),
    ("f:( a )", text("a", "f")),
    ("foo:bar and baz", And((text("bar", "foo"), text("baz")))),
    ("@timestamp:1710496800", Compare(Op.EQ, "timestamp", 1_710_496_800_000_000_000)),
]

BOOLEANS = [
    ("a or b", Or((text("a"), text("b")))),
    ("a and b", And((text("a"), text("b")))),
    ("a AND b", And((text("a"), text("b")))),
    ("a Or b", Or((text("a"), text("b")))),
    ("NOT a", Not(text("a"))),
    ("nOt a", Not(text("a"))),
    ("a or b and c", Or((text("a"), And((text("b"), text("c")))))),
    ("a and b or c", Or((And((text("a"), text("b"))), text("c")))),
    ("not a and b", And((Not(text("a")), text("b")))),
    ("not a or b", Or((Not(text("a")), text("b")))),
    ("a and not b", And((text("a"), Not(text("b"))))),
    ("not (a or b)", Not(Or((text("a"), text("b"))))),
    ("(a or b) and c", And((Or((text("a"), text("b"))), text("c")))),
    ("a and b and c", And((text("a"), text("b"), text("c")))),
    ("a or b or c", Or((text("a"), text("b"), text("c")))),
    ("a and (b and c)", And((text("a"), text("b"), text("c")))),
    ("( a )", text("a")),
    ("((a))", text("a")),
    ("a\tand\nb", And((text("a"), text("b")))),
    ("a\u00a0or\u00a0b", Or((text("a"), text("b")))),
    ("a   or   b", Or((text("a"), text("b")))),
    ("service:api and level:error", And((text("api", "service"), text("error", "level")))),
    ("service:payment-gateway AND level:ERROR", And((text("payment-gateway", "service"), text("error", "level")))),
    ('"a" or "b"', Or((phrase("a"), phrase("b")))),
    ("not a:1", Not(text("1", "a"))),
]

ESCAPES = [
    (r"a\:b", text("a:b")),
    (r"\(a\)", text("(a)")),
    (r"a\\b", text("a\\b")),
    (r"\"quoted\"", text('"quoted"')),
    (r"a \and b", text("a and b")),
    (r"\or", text("or")),
    (r"a \NOT b", text("a NOT b")),
    (r"tab\there", text("tab\there")),
    (r"\u0041BC", text("ABC")),
    (r"\<\>\{\}", text("<>{}")),
    (r"literal\*star", text("literal*star")),
    (r"part\*ial*", glob(r"part\*ial*")),
    (r'"say \"hi\""', phrase('say "hi"')),
    (r'"back\\slash"', phrase("back\\slash")),
    (r'"keep \q"', phrase("keep \\q")),
    (r'"\u00e9t\u00e9"', phrase("été")),
    ('"line\\nbreak"', phrase("line\nbreak")),
    ('"a or b and not c"', phrase("a or b and not c")),
    ('"(x:y)"', phrase("(x:y)")),
]

WILDCARDS = [
    ("db-primary-*", glob("db-primary-*")),
    ("*timeout*", glob("*timeout*")),
    ("time*", glob("time*")),
    ("a*b", glob("a*b")),
    ('"*timeout*"', phrase("*timeout*")),
    ('f:"db-*"', phrase("db-*", "f")),
    ("**", MatchAll()),
    ("f:**", Exists("f")),
]

RANGES = [
    ("http.status > 500", Compare(Op.GT, "http.status", "500")),
    ("http.status>=500", Compare(Op.GTE, "http.status", "500")),
    ("duration < 1.5", Compare(Op.LT, "duration", "1.5")),
    ("duration <= -4", Compare(Op.LTE, "duration", "-4")),
    ('name > "m"', Compare(Op.GT, "name", "m")),
    ('@timestamp > "2024-03-15T10:00:00Z"', Compare(Op.GT, "timestamp", 1_710_496_800_000_000_000)),
    ("timestamp <= 1710496800000", Compare(Op.LTE, "timestamp", 1_710_496_800_000_000_000)),
    ("a > 1 and b < 2", And((Compare(Op.GT, "a", "1"), Compare(Op.LT, "b", "2")))),
    ("not a >= 1", Not(Compare(Op.GTE, "a", "1"))),
]


class TestDepth:
    """Nesting up to the limit parses; the limit keeps later recursive walks bounded."""

    def test_deepest_allowed(self) -> None:
        assert parse_kql("(" * 64 + "a" + ")" * 64) == text("a")


class TestFreeText:
    """Values without a field search text; spaces inside an unquoted value are part of it."""

    @pytest.mark.parametrize(("query", "expected"), FREE_TEXT)
    def test_parse(self, query: str, expected: Node) -> None:
        assert parse_kql(query) == expected


class TestFields:
    """`field:value`, value lists, dotted attribute paths, aliases and exists."""

    @pytest.mark.parametrize(("query", "expected"), FIELDS)
    def test_parse(self, query: str, expected: Node) -> None:
        assert parse_kql(query) == expected


class TestBooleans:
    """not > and > or, keywords in any case, whitespace required around and/or and after not."""

    @pytest.mark.parametrize(("query", "expected"), BOOLEANS)
    def test_parse(self, query: str, expected: Node) -> None:
        assert parse_kql(query) == expected

    @pytest.mark.parametrize("query", ["(a)or(b)", "(a) or(b)", "(a)and (b)"])
    def test_keywords_need_surrounding_space(self, query: str) -> None:
        with pytest.raises(QueryError):
            parse_kql(query)


class TestEscapes:
    """Backslash escapes in unquoted values and the narrower set inside quotes."""

    @pytest.mark.parametrize(("query", "expected"), ESCAPES)
    def test_parse(self, query: str, expected: Node) -> None:
        assert parse_kql(query) == expected


class TestWildcards:
    """An unquoted `*` is a glob, a quoted one is a literal star, a lone `*` means exists."""

    @pytest.mark.parametrize(("query", "expected"), WILDCARDS)
    def test_parse(self, query: str, expected: Node) -> None:
        assert parse_kql(query) == expected


class TestRanges:
    """Range operators on numbers, strings and timestamps (ISO-8601 or epoch, stored as ns)."""

    @pytest.mark.parametrize(("query", "expected"), RANGES)
    def test_parse(self, query: str, expected: Node) -> None:
        assert parse_kql(query) == expected


ERRORS = [
    ("(a or b", 7, 'Expected ")" at position 7'),
    ("a:", 2, 'Expected "(" or a value at position 2'),
    ("a: ", 3, "at position 3"),
    ('"unterminated', 13, "at position 13"),
    ("a and (b", 8, 'Expected ")"'),
    ("f:(a or b", 9, 'Expected ")" at position 9'),
    ("a)", 1, "Expected AND, OR or end of input at position 1"),
    ('"a" b', 4, "at position 4"),
    ("not not a", 4, "at position 4"),
    ("foo:not bar", 4, "at position 4"),
    ("foo not bar", 4, "at position 4"),
    ("a or ", 5, "at position 5"),
    ("()", 1, "at position 1"),
    ("a:b:c", 3, "at position 3"),
    (r"a\qb", 1, "Invalid escape"),
    (r"\u12", 2, "four hex digits"),
    ("f:{x:1}", 2, "nested field queries"),
    ("f*:x", 0, "wildcard field names"),
    ("f > *", 4, "wildcard"),
    ("* > 1", 4, "needs a field name"),
    ("f >", 3, "at position 3"),
    ("@timestamp > yesterday", 13, "invalid timestamp"),
    ("@timestamp > 2024-03-15T10:00:00Z", 13, "quote timestamps"),
    ("timestamp:2024*", 10, "wildcards are not supported on timestamp"),
    (">5", 0, "at position 0"),
    ("(" * 65 + "a" + ")" * 65, 64, "parentheses nest deeper than 64 levels"),
    ("f:" + "(" * 65 + "a" + ")" * 65, 66, "parentheses nest deeper than 64 levels"),
]


class TestErrors:
    """Syntax errors are QueryError(code="invalid_query") naming the 0-based position and what was expected."""

    @pytest.mark.parametrize(("query", "position", "message"), ERRORS)
    def test_error(self, query: str, position: int, message: str) -> None:
        with pytest.raises(QueryError) as caught:
            parse_kql(query)
        assert caught.value.code == "invalid_query"
        assert caught.value.position == position
        assert message in caught.value.message


@pytest.mark.parametrize(
    ("text", "stored"),
    [("level:WARNING", "warn"), ("level:warning", "warn"), ("level:err", "error"), ("level:Error", "error"),
     ('level:"CRITICAL"', "fatal"), ("level:4", "warn"), ("level:custom", "custom")],
)  # fmt: skip
def test_level_values_are_read_as_ingest_reads_levels(text: str, stored: str) -> None:
    node = parse_kql(text)
    assert isinstance(node, Compare) and (node.field, node.value) == ("level", stored)


def test_level_patterns_are_only_lowercased() -> None:
    node = parse_kql("level:WARN*")
    assert isinstance(node, Compare) and node.value == "warn*"
