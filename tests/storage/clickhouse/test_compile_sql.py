"""Golden SQL: what the compiler emits for representative queries, with every user value a bound parameter."""

from __future__ import annotations

from typing import Any

import pytest

from logtraced.query.kql import parse_kql
from logtraced.storage.clickhouse.compile_sql import Condition, Params, compile_condition
from tests.storage.tantivy.test_compile import pipeline

GOLDEN: list[tuple[Any, str, dict[str, Any], bool]] = [
    ("timeout refused", "((has(`words`, {p0:String})) AND (has(`words`, {p1:String})))",
     {"p0": "timeout", "p1": "refused"}, True),
    ("level:ERROR and not service:api*", "((lowerUTF8(`level`) = {p0:String}) AND (NOT (`service` LIKE {p1:String})))",
     {"p0": "error", "p1": "api%"}, True),
    ("http.status >= 400", "position(`attributes`, {p0:String}) > 0", {"p0": "status"}, False),
    ("*time*", "positionCaseInsensitiveUTF8(`message`, {p0:String}) > 0", {"p0": "time"}, False),
    ("@timestamp < 1710496802", "`timestamp` < {p0:Int64}", {"p0": 1_710_496_802_000_000_000}, True),
    ("tags:prod or host:*", "((arrayExists(v -> v = {p0:String}, `tags`)) OR (`host` != ''))", {"p0": "prod"}, True),
    ('"" or x', "((0) OR (has(`words`, {p0:String})))", {"p0": "x"}, True),
    ({"$contains": ["body", "50%_x"]}, "position(`message`, {p0:String}) > 0", {"p0": "50%_x"}, True),
    ({"$eq": ["user_id", "U-42"]},
     "((position(`attributes`, {p0:String}) > 0) AND (position(`attributes`, {p1:String}) > 0))",
     {"p0": "user_id", "p1": '"U-42"'}, False),
    ({"$regex": ["level", "ERR"]}, "match(lowerUTF8(`level`), {p0:String})", {"p0": "(?i)ERR"}, False),
    ({"$neq": ["service", "x' OR 1=1 --"]}, "NOT (`service` = {p0:String})", {"p0": "x' OR 1=1 --"}, True),
    ({"$eq": ["body", 400]}, "1", {}, False),
]  # fmt: skip


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
