"""Compiles a comparison on an attribute path into exact SQL over the raw `attributes` JSON text.

evaluate.py resolves `a.b.c` by trying every split of the path into keys (nested objects and
literal dotted keys alike), arrays being transparent at every level; the SQL does the same: one
`JSONExtractRaw` chain per split, each step followed by one level of array fan-out, the values of
all splits concatenated, and the comparison tested on each (`arrayExists`).  A missing field
yields no value, so `NOT` of the comparison matches it, as in evaluate.py.

Per value the test follows evaluate.py's types: strings decoded (`JSONExtractString`, ё read as е
where the query's text has an е), numbers compared as numbers (ClickHouse compares integers with
floats exactly, as Python does), numeric strings parsed as evaluate.py's `as_number` parses them,
booleans as JSON spells them.

Where ClickHouse cannot decide a value exactly, the compiled test says which rows it cannot decide
(a guard, never a verdict): those rows alone are verified in Python.  They are rows where the path
reaches
- arrays nested in arrays (beyond the one level of fan-out),
- a string in RFC 3339 shape, for comparisons where evaluate.py reads it as an instant,
- a non-ASCII string, for word matches (Python's Unicode word split and lowercasing are not
  ClickHouse's),
- a float, for `$contains` with a needle a float's text could contain (ClickHouse re-serialises
  floats: `1.0` comes back as `1`),
- an integer string longer than ClickHouse's Int128.
Regexes and globs on attributes are not compiled here (the caller narrows them and verifies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations
from typing import Final

import msgspec

from logtraced.query.ast import RANGE_OPS, Compare, Op, Scalar
from logtraced.query.evaluate import as_number, date_value, fold_yo, words
from logtraced.storage.clickhouse.params import Params

# Paths of up to this many splits (4 dotted parts) are compiled; longer ones are narrowed and verified.
MAX_SPLITS: Final = 8
_INT64: Final = (-(2**63), 2**63 - 1)
_RANGE_SQL: Final = {Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<=", Op.EQ: "="}
_TYPE: Final = "JSONType(v)"
_STRING: Final = "JSONExtractString(v)"
# Python's str.strip() whitespace, which `as_number` strips before reading a number.
_TRIM: Final = (
    r"^[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+"
    r"|[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+$"
)
_NUMBER: Final = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_INTEGER: Final = r"^[+-]?[0-9]+$"
_HUGE_INTEGER: Final = r"^[+-]?[0-9]{38,}$"
_RFC3339_SHAPE: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[\x00-\x7f][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
# Words an RFC 3339 string splits into (`2024`, `15t10`, `00z`): other query words never meet one.
_DATE_WORD: Final = re.compile(r"[0-9]+(?:t[0-9]+|z)?")
# `field:*` on JSON text: with keys removed, any character but `null`'s, brackets and commas is a value.
_KEYS: Final = r'"(?:[^"\\]|\\.)*":'
_NON_NULL_TOKEN: Final = r"[^\[\]{},nul]"
_FLOAT_TEXT: Final = frozenset("0123456789.e-+")


@dataclass(frozen=True)
class ValueTest:
    """SQL over one value `v`: whether it matches, and whether ClickHouse cannot tell (then verified)."""

    sql: str
    unsure: str = ""


@dataclass(frozen=True)
class AttributeSql:
    """The exact condition on the row and the guard of rows to verify ("" when every row is decided)."""

    sql: str
    guard: str


class AttributeCompiler:
    """Builds the SQL with every value bound through `params`."""

    def __init__(self, params: Params) -> None:
        self.params = params

    def exists(self, path: str) -> AttributeSql | None:
        """A non-null value somewhere under the path: after dropping keys, a token other than null and brackets."""
        if _too_long(path):
            return None
        keys, tokens = self.params.text(_KEYS), self.params.text(_NON_NULL_TOKEN)
        return self._on_values(path, [ValueTest(f"match(replaceRegexpAll(v, {keys}, ''), {tokens})")])

    def compare(self, path: str, node: Compare) -> AttributeSql | None:
        if _too_long(path):
            return None
        tests = self._value_tests(node.op, node.value)
        return None if tests is None else self._on_values(path, tests)

    # -- values -----------------------------------------------------------------------------------

    def _value_tests(self, op: Op, wanted: Scalar) -> list[ValueTest] | None:
        if op is Op.EQ:
            return self._equal(wanted)
        if op in (Op.MATCH, Op.PHRASE):
            return self._match(op, wanted)
        if op is Op.CONTAINS:
            return self._contains(wanted)
        if op in RANGE_OPS:
            return self._range(op, wanted)
        return None

    def _equal(self, wanted: Scalar) -> list[ValueTest] | None:
        """evaluate._equal: booleans by their text, numbers as numbers on either side, strings folded."""
        if isinstance(wanted, bool):
            text = self.params.text(_json(wanted))
            return [ValueTest(f"({_TYPE} = 'Bool' AND v = {text}) OR ({_TYPE} = 'String' AND {_STRING} = {text})")]
        number = as_number(wanted)
        bound = None if number is None else self._number(number)
        if number is not None and bound is None:
            return None
        tests: list[ValueTest] = []
        if isinstance(wanted, str):
            folded = fold_yo(wanted)
            tests.append(ValueTest(f"{_TYPE} = 'String' AND {_folded(_STRING, folded)} = {self.params.text(folded)}"))
            if wanted in ("true", "false"):
                tests.append(ValueTest(f"{_TYPE} = 'Bool' AND v = {self.params.text(wanted)}"))
        elif bound is not None:
            tests.append(self._numeric_string("=", bound))
        if bound is not None:
            tests.append(ValueTest(_typed_number("=", bound)))
        return tests

    def _match(self, op: Op, wanted: Scalar) -> list[ValueTest] | None:
        """evaluate._match_value: booleans by lowercased text, numbers as numbers, strings by words."""
        text = _json(wanted)
        if isinstance(wanted, str) and date_value(wanted) is not None:
            return None  # a date query compares instants with RFC 3339 strings: verified
        number = as_number(wanted)
        bound = None if number is None else self._number(number)
        if number is not None and bound is None:
            return None
        tests = [ValueTest(_typed_number("=", bound))] if bound is not None else []
        if text.lower() in ("true", "false"):
            tests.append(ValueTest(f"{_TYPE} = 'Bool' AND v = {self.params.text(text.lower())}"))
        found = words(text)
        if found:
            tests.append(self._words(op, found))
        return tests

    def _words(self, op: Op, found: list[str]) -> ValueTest:
        """ASCII strings split and lowercased in SQL exactly as Python does; other strings are verified."""
        split = f"arrayMap(w -> lower(w), extractAll({_STRING}, {self.params.text('[A-Za-z0-9]+')}))"
        wanted = "[" + ", ".join(self.params.text(word) for word in found) + "]"
        test = f"hasAll({split}, {wanted})" if op is Op.MATCH else f"hasSubstr({split}, {wanted})"
        unsure = [f"lengthUTF8({_STRING}) != length({_STRING})"]
        if all(_DATE_WORD.fullmatch(word) for word in found):
            unsure.append(self._date_shaped())
        return ValueTest(f"{_TYPE} = 'String' AND {test}", f"{_TYPE} = 'String' AND ({' OR '.join(unsure)})")

    def _contains(self, wanted: Scalar) -> list[ValueTest]:
        """A case-sensitive substring of a string, or of a number's or boolean's JSON text."""
        needle = fold_yo(_json(wanted))
        bound = self.params.text(needle)
        tests = [
            ValueTest(f"{_TYPE} = 'String' AND position({_folded(_STRING, needle)}, {bound}) > 0"),
            ValueTest(f"{_TYPE} IN ('Int64', 'UInt64', 'Bool') AND position(v, {bound}) > 0"),
        ]
        if set(needle) <= _FLOAT_TEXT:
            tests.append(ValueTest("0", f"{_TYPE} = 'Double'"))
        return tests

    def _range(self, op: Op, wanted: Scalar) -> list[ValueTest] | None:
        """evaluate._order: numbers (numeric strings too), instants for RFC 3339 strings, else two strings."""
        if isinstance(wanted, bool):
            return []
        operator = _RANGE_SQL[op]
        number = as_number(wanted)
        if number is not None:
            bound = self._number(number)
            if bound is None:
                return None
            return [ValueTest(_typed_number(operator, bound)), self._numeric_string(operator, bound, dates=True)]
        text = self.params.text(str(wanted))
        numeric = f"match({self._trimmed()}, {self.params.text(_NUMBER)})"
        return [ValueTest(f"{_TYPE} = 'String' AND NOT {numeric} AND {_STRING} {operator} {text}", self._date_string())]

    def _numeric_string(self, operator: str, bound: str, *, dates: bool = False) -> ValueTest:
        """A string `as_number` reads as a number, compared with `bound`."""
        trimmed = self._trimmed()
        integer = f"ifNull(toInt128OrNull({trimmed}) {operator} {bound}, 0)"
        decimal = f"ifNull(toFloat64OrNull({trimmed}) {operator} {bound}, 0)"
        number = f"match({trimmed}, {self.params.text(_NUMBER)})"
        spelled = f"match({trimmed}, {self.params.text(_INTEGER)})"
        test = f"{_TYPE} = 'String' AND {number} AND if({spelled}, {integer}, {decimal})"
        unsure = f"match({trimmed}, {self.params.text(_HUGE_INTEGER)})"
        if dates:
            unsure += f" OR match({_STRING}, {self.params.text(_RFC3339_SHAPE)})"
        return ValueTest(test, f"{_TYPE} = 'String' AND ({unsure})")

    def _trimmed(self) -> str:
        return f"replaceRegexpAll({_STRING}, {self.params.text(_TRIM)}, '')"

    def _date_shaped(self) -> str:
        return f"match({_STRING}, {self.params.text(_RFC3339_SHAPE)})"

    def _date_string(self) -> str:
        return f"{_TYPE} = 'String' AND {self._date_shaped()}"

    def _number(self, number: int | float) -> str | None:
        """A bound placeholder for a query number; integers beyond Int64 and UInt64 are left to Python."""
        if isinstance(number, int) and _INT64[0] <= number <= _INT64[1]:
            return self.params.int64(number)
        if isinstance(number, int):
            return self.params.add(number, "UInt64") if 0 <= number < 2**64 else None
        return self.params.add(number, "Float64")

    # -- paths ------------------------------------------------------------------------------------

    def _on_values(self, path: str, tests: list[ValueTest]) -> AttributeSql:
        """`tests` on every value the path reaches; rows where a value is undecidable form the guard."""
        values, nested = self._values(path)
        matched = " OR ".join(f"({test.sql})" for test in tests) or "0"
        unsure = " OR ".join(f"({test.unsure})" for test in tests if test.unsure)
        has_key = self._has_key(path)
        sql = f"{has_key}arrayExists(v -> {matched}, {values})"
        guards = [nested] + ([f"arrayExists(v -> {unsure}, {values})"] if unsure else [])
        return AttributeSql(sql, f"{has_key}({' OR '.join(guards)})")

    def _values(self, path: str) -> tuple[str, str]:
        """The values at `path` for every split of it into keys, and the test for arrays nested deeper."""
        parts = path.split(".")
        bound = [self.params.text(part) for part in parts]
        splits: list[str] = []
        nested: list[str] = []
        for cuts in _cut_sets(len(parts)):
            values = "[`attributes`]"
            for start, end in zip((0, *cuts), (*cuts, len(parts)), strict=True):
                key = bound[start] if end - start == 1 else self._joined(parts[start:end])
                values = (
                    "arrayFlatten(arrayMap(x -> if(JSONType(x) = 'Array', JSONExtractArrayRaw(x), [x]), "
                    f"arrayFilter(x -> x != '', arrayMap(x -> JSONExtractRaw(x, {key}), {values}))))"
                )
                nested.append(f"arrayExists(x -> JSONType(x) = 'Array', {values})")
            splits.append(values)
        values = splits[0] if len(splits) == 1 else f"arrayConcat({', '.join(splits)})"
        return values, " OR ".join(nested)

    def _joined(self, parts: list[str]) -> str:
        return self.params.text(".".join(parts))

    def _has_key(self, path: str) -> str:
        """A cheap necessary condition first: the raw text holds the path's last key."""
        last = path.rsplit(".", 1)[-1]
        if not last or any(char in '"\\' or ord(char) < 0x20 for char in last):
            return ""
        return f"position(`attributes`, {self.params.text(last)}) > 0 AND "


def _too_long(path: str) -> bool:
    return 1 << path.count(".") > MAX_SPLITS


def _cut_sets(count: int) -> list[tuple[int, ...]]:
    """Every choice of cut points between `count` parts: each is one way to read the dots."""
    inner = range(1, count)
    return [cuts for size in range(count) for cuts in combinations(inner, size)]


def _typed_number(operator: str, bound: str) -> str:
    """A JSON number compared with a bound (ClickHouse compares Int64/UInt64 with Float64 exactly)."""
    return (
        f"multiIf({_TYPE} = 'Int64', JSONExtractInt(v) {operator} {bound}, "
        f"{_TYPE} = 'UInt64', JSONExtractUInt(v) {operator} {bound}, "
        f"{_TYPE} = 'Double', JSONExtractFloat(v) {operator} {bound}, 0)"
    )


def _folded(column: str, text: str) -> str:
    """`column` with ё read as е when the query text (already folded) has an е to meet it."""
    return f"translateUTF8({column}, 'ёЁ', 'еЕ')" if "е" in text or "Е" in text else column


def _json(value: Scalar) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()
