"""Golden SQL: what the compiler emits for representative queries, with every user value a bound parameter."""

from __future__ import annotations

from typing import Any

import pytest

from logtraced.query.kql import parse_kql
from logtraced.storage.clickhouse.compile_sql import Condition, compile_condition
from logtraced.storage.clickhouse.params import Params
from tests.storage.tantivy.test_compile import pipeline

GOLDEN: list[tuple[Any, str, dict[str, Any], bool]] = [
    ("timeout refused", "((has(`words`, {p0:String})) AND (has(`words`, {p1:String})))",
     {"p0": "timeout", "p1": "refused"}, True),
    ("level:ERROR and not service:api*", "((lowerUTF8(`level`) = {p0:String}) AND (NOT (`service` LIKE {p1:String})))",
     {"p0": "error", "p1": "api%"}, True),
    ({"$regex": ["user_id", "U-4"]}, "position(`attributes`, {p0:String}) > 0", {"p0": "user_id"}, False),
    ({"$regex": ["body", "a.b"]}, "match(translateUTF8(`message`, 'ёЁ', 'еЕ'), {p0:String})", {"p0": "(?-s)a.b"}, True),
    ("*time*", "positionCaseInsensitiveUTF8(`message`, {p0:String}) > 0", {"p0": "time"}, False),
    ("@timestamp < 1710496802", "`timestamp` < {p0:Int64}", {"p0": 1_710_496_802_000_000_000}, True),
    ("tags:prod or host:*", "((arrayExists(v -> v = {p0:String}, `tags`)) OR (`host` != ''))", {"p0": "prod"}, True),
    ('"" or x', "((0) OR (has(`words`, {p0:String})))", {"p0": "x"}, True),
    ({"$contains": ["body", "50%_x"]}, "`message` LIKE {p0:String}", {"p0": "%50\\%\\_x%"}, True),
    ({"$contains": ["body", "Ёлк"]}, "position(translateUTF8(`message`, 'ёЁ', 'еЕ'), {p0:String}) > 0", {"p0": "Елк"},
     True),
    ({"$regex": ["level", "ERR"]}, "match(lowerUTF8(`level`), {p0:String})", {"p0": "(?i)ERR"}, False),
    ({"$neq": ["service", "x' OR 1=1 --"]}, "NOT (`service` = {p0:String})", {"p0": "x' OR 1=1 --"}, True),
    ({"$eq": ["body", 400]}, "1", {}, False),
]  # fmt: skip


# One path step: the key's values, arrays among them fanned out one level.
_STEP = (
    "arrayFlatten(arrayMap(x -> if(JSONType(x) = 'Array', JSONExtractArrayRaw(x), [x]), "
    "arrayFilter(x -> x != '', arrayMap(x -> JSONExtractRaw(x, {{{key}:String}}), [`attributes`]))))"
)
_NESTED = "arrayExists(x -> JSONType(x) = 'Array', {values})"
GOLDEN_ATTRIBUTES: list[tuple[Any, str, str, dict[str, Any]]] = [
    ({"$eq": ["user_id", "U-42"]},
     "position(`attributes`, {p2:String}) > 0 AND arrayExists(v -> (JSONType(v) = 'String' AND "
     "JSONExtractString(v) = {p0:String}), " + _STEP.format(key="p1") + ")",
     "position(`attributes`, {p2:String}) > 0 AND (" + _NESTED.format(values=_STEP.format(key="p1")) + ")",
     {"p0": "U-42", "p1": "user_id", "p2": "user_id"}),
    ("k:*",
     "position(`attributes`, {p3:String}) > 0 AND arrayExists(v -> (match(replaceRegexpAll(v, {p0:String}, ''), "
     "{p1:String})), " + _STEP.format(key="p2") + ")",
     "position(`attributes`, {p3:String}) > 0 AND (" + _NESTED.format(values=_STEP.format(key="p2")) + ")",
     {"p0": '"(?:[^"\\\\]|\\\\.)*":', "p1": "[^\\[\\]{},nul]", "p2": "k", "p3": "k"}),
]  # fmt: skip


@pytest.mark.parametrize(("query", "sql", "guard", "params"), GOLDEN_ATTRIBUTES, ids=str)
def test_golden_attributes(query: Any, sql: str, guard: str, params: dict[str, Any]) -> None:
    """Exact on the raw JSON text, with the guard of rows whose arrays nest deeper than SQL fans out."""
    node = parse_kql(query) if isinstance(query, str) else pipeline(query)
    bound = Params()
    assert compile_condition(node, bound) == Condition(sql, True, guard)
    assert bound.values == params


def test_dotted_paths_try_every_split() -> None:
    """`a.b.c` reads keys a/b/c, a.b/c, a/b.c and a.b.c, as evaluate.py does; five parts are left to Python."""
    bound = Params()
    condition = compile_condition(parse_kql("a.b.c:1"), bound)
    assert condition.exact and condition.sql.count("arrayConcat(") == 1
    assert {"a", "b", "c", "a.b", "b.c", "a.b.c"} <= set(bound.values.values())
    assert not compile_condition(parse_kql("a.b.c.d.e:1"), Params()).exact


@pytest.mark.parametrize(("query", "sql", "params", "exact"), GOLDEN, ids=str)
def test_golden(query: Any, sql: str, params: dict[str, Any], exact: bool) -> None:
    node = parse_kql(query) if isinstance(query, str) else pipeline(query)
    bound = Params()
    assert compile_condition(node, bound) == Condition(sql, exact)
    assert bound.values == params


def test_no_user_text_reaches_the_sql() -> None:
    hostile = "'); DROP TABLE events; --\\"
    nodes = [pipeline({op: [field, hostile]}) for op in ("$eq", "$contains") for field in ("body", "service", "k")]
    for node in nodes:
        bound = Params()
        condition = compile_condition(node, bound)
        assert "DROP" not in condition.sql and "'y" not in condition.sql
