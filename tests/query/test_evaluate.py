"""The exact meaning of every operator on one event: the ground truth index candidates are verified against."""

from __future__ import annotations

from typing import Any

import pytest
import re2

from logtraced.errors import QueryError
from logtraced.model import Event
from logtraced.query.ast import And, Compare, Exists, MatchAll, Node, Not, Op, Or, Scalar, compare
from logtraced.query.evaluate import Regex, build_matcher, compile_regex, words
from logtraced.query.kql import parse_kql

EVENT = Event(
    timestamp=1_710_496_800_000_000_000,
    message="Connection timeout on db-primary-03: Ошибка соединения",
    level="error",
    service="payment-gateway",
    host="db-primary-03",
    env="production",
    org="acme",
    index="",
    tags=["prod", "_truncated"],
    attributes={
        "http": {"status": 500, "method": "GET"},
        "http.route": "/api/v1/pay",
        "status_code": "400",
        "duration_ms": 1200.5,
        "retry": True,
        "user": {"name": "Ann Lee", "roles": ["admin", "ops"]},
        "items": [{"sku": "A-1"}, {"sku": "B-2"}],
        "created": "2024-03-15T10:22:01Z",
        "empty": "",
        "nothing": None,
        "blank": {"inner": None},
        "note": "cache miss for key",
    },
)


def holds(node: Node, labels: dict[str, str] | None = None) -> bool:
    return build_matcher(node)(EVENT, labels or {})


def cmp(op: Op, field: str | None, value: Scalar) -> Node:
    return compare(op, field, value)


class TestKeywordFields:
    """Level compares case-insensitively; service/host/env/org/index/tags exactly."""

    @pytest.mark.parametrize(
        ("node", "expected"),
        [
            (cmp(Op.EQ, "level", "ERROR"), True),
            (Compare(Op.EQ, "level", "Error"), True),
            (cmp(Op.MATCH, "level", "error"), True),
            (cmp(Op.EQ, "level", "warn"), False),
            (cmp(Op.REGEX, "level", "^ERR"), True),
            (cmp(Op.CONTAINS, "level", "RR"), True),
            (cmp(Op.WILDCARD, "level", "ERR*"), True),
            (cmp(Op.EQ, "service", "payment-gateway"), True),
            (cmp(Op.EQ, "service", "Payment-Gateway"), False),
            (cmp(Op.MATCH, "service", "payment"), False),
            (cmp(Op.PHRASE, "service", "payment-gateway"), True),
            (cmp(Op.WILDCARD, "service", "payment-*"), True),
            (cmp(Op.WILDCARD, "service", "*gate*"), True),
            (cmp(Op.WILDCARD, "service", "gate*"), False),
            (cmp(Op.WILDCARD, "service", "Payment-*"), False),
            (cmp(Op.CONTAINS, "host", "primary"), True),
            (cmp(Op.REGEX, "host", r"-\d+$"), True),
            (cmp(Op.EQ, "env", "production"), True),
            (cmp(Op.EQ, "org", "acme"), True),
            (cmp(Op.EQ, "index", ""), True),
            (cmp(Op.EQ, "tags", "_truncated"), True),
            (cmp(Op.WILDCARD, "tags", "_*"), True),
            (cmp(Op.EQ, "tags", "dev"), False),
            (Exists("service"), True),
            (Exists("index"), False),
            (Exists("tags"), True),
        ],
    )
    def test_keyword(self, node: Node, expected: bool) -> None:
        assert holds(node) is expected


class TestMessage:
    """Message text: whole-word matches, phrases, case-sensitive substrings and unanchored regexes."""

    @pytest.mark.parametrize(
        ("node", "expected"),
        [
            (cmp(Op.MATCH, "message", "timeout"), True),
            (cmp(Op.MATCH, "message", "TIMEOUT"), True),
            (cmp(Op.MATCH, "message", "time"), False),
            (cmp(Op.MATCH, "message", "ошибка"), True),
            (cmp(Op.MATCH, "message", "ОШИБКА"), True),
            (cmp(Op.MATCH, "message", "соединения timeout"), True),
            (cmp(Op.MATCH, "message", "timeout refused"), False),
            (cmp(Op.MATCH, "message", "---"), False),
            (cmp(Op.PHRASE, "message", "connection timeout"), True),
            (cmp(Op.PHRASE, "message", "timeout connection"), False),
            (cmp(Op.PHRASE, "message", "db primary 03"), True),
            (cmp(Op.PHRASE, "message", "Ошибка соединения"), True),
            (cmp(Op.CONTAINS, "message", "time"), True),
            (cmp(Op.CONTAINS, "body", "Time"), False),
            (cmp(Op.CONTAINS, "message", "Ошибка"), True),
            (cmp(Op.CONTAINS, "message", "ошибка"), False),
            (cmp(Op.REGEX, "message", "timeout|refused"), True),
            (cmp(Op.REGEX, "message", "^timeout"), False),
            (cmp(Op.REGEX, "message", "(?i)^connection"), True),
            (cmp(Op.REGEX, "message", "(a+)+$"), False),
            (cmp(Op.EQ, "message", "Connection timeout on db-primary-03: Ошибка соединения"), True),
            (cmp(Op.EQ, "message", "connection timeout"), False),
            (cmp(Op.WILDCARD, "message", "db-primary-*"), True),
            (cmp(Op.WILDCARD, "message", "*out*"), True),
            (cmp(Op.WILDCARD, "message", "time*"), True),
            (cmp(Op.WILDCARD, "message", "*meout"), True),
            (cmp(Op.WILDCARD, "message", "ime*"), False),
            (cmp(Op.WILDCARD, "message", "conn*primary"), True),
            (cmp(Op.WILDCARD, "message", "ОШИБ*"), True),
            (cmp(Op.WILDCARD, "message", r"03\*"), False),
            (Exists("message"), True),
        ],
    )
    def test_message(self, node: Node, expected: bool) -> None:
        assert holds(node) is expected


class TestAttributes:
    """Dotted paths into nested and dotted keys, arrays, typed values and numeric strings."""

    @pytest.mark.parametrize(
        ("node", "expected"),
        [
            (cmp(Op.EQ, "http.status", "500"), True),
            (cmp(Op.EQ, "http.status", 500), True),
            (cmp(Op.EQ, "http.status", 500.0), True),
            (cmp(Op.EQ, "http.status", "500.0"), True),
            (cmp(Op.EQ, "status_code", 400), True),
            (cmp(Op.EQ, "status_code", "400"), True),
            (cmp(Op.EQ, "status_code", "400.0"), False),
            (cmp(Op.EQ, "http.route", "/api/v1/pay"), True),
            (cmp(Op.EQ, "attributes.http.route", "/api/v1/pay"), True),
            (cmp(Op.EQ, "user.name", "ann lee"), False),
            (cmp(Op.MATCH, "user.name", "ann"), True),
            (cmp(Op.PHRASE, "user.name", "ann lee"), True),
            (cmp(Op.EQ, "user.roles", "ops"), True),
            (cmp(Op.EQ, "items.sku", "B-2"), True),
            (cmp(Op.EQ, "retry", True), True),
            (cmp(Op.EQ, "retry", "true"), True),
            (cmp(Op.MATCH, "retry", "TRUE"), True),
            (cmp(Op.MATCH, "http.status", "500"), True),
            (cmp(Op.MATCH, "http.status", "50"), False),
            (cmp(Op.MATCH, "created", "2024-03-15T13:22:01+03:00"), True),
            (cmp(Op.MATCH, "created", "2024"), False),
            (cmp(Op.CONTAINS, "http.status", "50"), True),
            (cmp(Op.CONTAINS, "duration_ms", ".5"), True),
            (cmp(Op.CONTAINS, "retry", "ru"), True),
            (cmp(Op.REGEX, "http.status", "^5.."), True),
            (cmp(Op.REGEX, "http.route", "/api/v[0-9]+"), True),
            (cmp(Op.WILDCARD, "http.status", "5*"), True),
            (cmp(Op.GT, "http.status", "499"), True),
            (cmp(Op.GT, "http.status", 500), False),
            (cmp(Op.GTE, "http.status", 500), True),
            (cmp(Op.LT, "status_code", "1000"), True),
            (cmp(Op.LTE, "duration_ms", "1200.5"), True),
            (cmp(Op.GT, "duration_ms", "1e3"), True),
            (cmp(Op.GT, "created", "2024-03-15T10:00:00Z"), True),
            (cmp(Op.LT, "created", "2024-03-15T10:00:00Z"), False),
            (cmp(Op.GT, "user.name", "Ab"), True),
            (cmp(Op.GT, "user.name", "5"), False),
            (cmp(Op.GT, "note", 1), False),
            (Exists("http"), True),
            (Exists("http.status"), True),
            (Exists("empty"), True),
            (Exists("nothing"), False),
            (Exists("blank"), False),
            (Exists("absent"), False),
        ],
    )
    def test_attribute(self, node: Node, expected: bool) -> None:
        assert holds(node) is expected


class TestTimestamp:
    """The timestamp compares in nanoseconds."""

    @pytest.mark.parametrize(
        ("node", "expected"),
        [
            (Compare(Op.EQ, "timestamp", 1_710_496_800_000_000_000), True),
            (Compare(Op.GT, "timestamp", 1_710_496_799_999_999_999), True),
            (Compare(Op.LT, "timestamp", 1_710_496_800_000_000_000), False),
            (Compare(Op.LTE, "timestamp", "2024-03-15T10:00:00Z"), True),
            (Compare(Op.CONTAINS, "timestamp", "1710"), True),
            (Exists("timestamp"), True),
        ],
    )
    def test_timestamp(self, node: Node, expected: bool) -> None:
        assert holds(node) is expected


class TestMissingFields:
    """A missing field satisfies no comparison, so every negation of one matches."""

    @pytest.mark.parametrize("op", [Op.EQ, Op.MATCH, Op.PHRASE, Op.CONTAINS, Op.REGEX, Op.WILDCARD, Op.GT, Op.LT])
    def test_missing(self, op: Op) -> None:
        node = cmp(op, "no.such.field", "1")
        assert not holds(node)
        assert holds(Not(node))


class TestFreeText:
    """No field means the message, the default search field; attribute words need their name."""

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("timeout", True),
            ("ошибка", True),
            ("cache", False),
            ("note:cache", True),
            ("timeout cache", False),
            ("timeout missing", False),
            ('"cache miss"', False),
            ('"timeout cache"', False),
            ("admin", False),
            ("2024", False),
            ("500", False),
            ("*iss*", False),
            ("db-primary-*", True),
            ("*", True),
        ],
    )
    def test_free_text(self, query: str, expected: bool) -> None:
        assert holds(parse_kql(query)) is expected


class TestBooleans:
    """And, Or, Not and MatchAll combine child results."""

    @pytest.mark.parametrize(
        ("node", "expected"),
        [
            (MatchAll(), True),
            (And((cmp(Op.EQ, "level", "error"), cmp(Op.EQ, "env", "production"))), True),
            (And((cmp(Op.EQ, "level", "error"), cmp(Op.EQ, "env", "staging"))), False),
            (Or((cmp(Op.EQ, "level", "warn"), cmp(Op.EQ, "env", "production"))), True),
            (Not(cmp(Op.EQ, "level", "error")), False),
        ],
    )
    def test_boolean(self, node: Node, expected: bool) -> None:
        assert holds(node) is expected


class TestLabels:
    """Parsed labels are looked up before attributes; event fields are never shadowed."""

    @pytest.mark.parametrize(
        ("node", "labels", "expected"),
        [
            (cmp(Op.EQ, "user_id", "42"), {"user_id": "42"}, True),
            (cmp(Op.GT, "latency", 900), {"latency": "950"}, True),
            (cmp(Op.EQ, "status_code", "200"), {"status_code": "200"}, True),
            (cmp(Op.EQ, "level", "warn"), {"level": "warn"}, False),
            (Exists("user_id"), {"user_id": ""}, True),
        ],
    )
    def test_label(self, node: Node, labels: dict[str, str], expected: bool) -> None:
        assert holds(node, labels) is expected


class TestStemming:
    """With a stemmer, message words compare by stem; attribute words stay exact."""

    @staticmethod
    def stem(word: str) -> str:
        return word.rstrip("s")

    @pytest.mark.parametrize(
        ("node", "expected"),
        [
            (cmp(Op.MATCH, "message", "timeouts"), True),
            (cmp(Op.PHRASE, "message", "connections timeouts"), True),
            (parse_kql("timeouts"), True),
            (parse_kql("misses"), False),
        ],
    )
    def test_stemmed(self, node: Node, expected: bool) -> None:
        assert build_matcher(node, stem=self.stem)(EVENT, {}) is expected


class TestCompiledOnce:
    """Regexes are compiled when the matcher is built, not per event."""

    def test_compile_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[str] = []
        real = re2.compile

        def counting(pattern: str, *args: Any) -> Any:
            calls.append(pattern)
            return real(pattern, *args)

        monkeypatch.setattr(re2, "compile", counting)
        matcher = build_matcher(
            Or((cmp(Op.REGEX, "message", "x+y"), cmp(Op.WILDCARD, "message", "*z*"), cmp(Op.REGEX, "service", "q")))
        )
        for _ in range(100):
            matcher(EVENT, {})
        assert len(calls) == 3

    def test_bad_regex_is_a_query_error(self) -> None:
        with pytest.raises(QueryError) as caught:
            compile_regex("(?<=x)")
        assert caught.value.code == "invalid_regex"


class TestYesNoRegex:
    """`Regex` tests UTF-8 bytes and must answer exactly as the same pattern on `str` does."""

    PATTERNS = [
        ("ERR-\\d{5}-FATAL", False),
        ("^ошибка", True),
        ("соединени.", False),
        ("^.{5}$", False),
        ("[а-я]+ \\d", True),
        ("\\bdb\\b", False),
        ("x*", False),
        ("(?i)ПЛАТЁЖ|payment", False),
        ("\\pL{3}\\.\\pN", False),
        ("^$", False),
    ]
    TEXTS = [
        "", "ERR-12345-FATAL in payment", "err-12345-fatal", "Ошибка соединения 5", "ошибка",
        "ééééé", "abcde", "abcdef", "a db b", "adbc", "платёж принят", "PAYMENT", "Где.1", "日本語.2",
    ]  # fmt: skip

    @pytest.mark.parametrize(("pattern", "ignore_case"), PATTERNS)
    def test_same_answers_as_on_str(self, pattern: str, ignore_case: bool) -> None:
        on_str = compile_regex(pattern, ignore_case=ignore_case)
        on_bytes = Regex(pattern, ignore_case=ignore_case)
        for text in self.TEXTS:
            assert on_bytes.found_in(text) == (on_str.search(text) is not None), (pattern, text)
            assert on_bytes.matches_all(text) == (on_str.fullmatch(text) is not None), (pattern, text)

    def test_bad_pattern_is_a_query_error(self) -> None:
        with pytest.raises(QueryError) as caught:
            Regex("(?<=x)")
        assert caught.value.code == "invalid_regex" and "(?<=x)" in caught.value.message


class TestWords:
    """The word split mirrors the index analyzer: Unicode letters and digits, lowercased."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Connection timeout", ["connection", "timeout"]),
            ("db-primary-03", ["db", "primary", "03"]),
            ("Ошибка: соединения!", ["ошибка", "соединения"]),
            ("snake_case", ["snake", "case"]),
            ("", []),
        ],
    )
    def test_words(self, text: str, expected: list[str]) -> None:
        assert words(text) == expected
