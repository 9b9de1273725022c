"""Compiles the query AST into a parameterised ClickHouse condition that narrows candidates.

Every value a user typed becomes a `{pN:Type}` placeholder bound by the client; the SQL text is
built only from logtraced's own column names and function names.  Like the Tantivy compiler, the
condition matches a SUPERSET of what evaluate.py accepts, and `exact` says when it matches exactly
those events, except on the rows its `guard` selects (then counts and totals run in ClickHouse,
and only guarded rows are verified in Python).

Exact:
- keywords (`level` compared lowercased, service, host, env, org, index; `tags` through
  `arrayExists`): equality, globs as LIKE, `$contains` as `position`, "non-empty";
- timestamp ranges and equality;
- message words (`message:word`, free text) through the `words` column the writer fills with the
  reference split, `$eq` and `$contains` (LIKE, answered by the trigram index) on the message,
  `message:*`, and message regexes (`match`
  is RE2 as evaluate.py's, given `(?-s)` since ClickHouse lets `.` match a newline by default);
- attributes (compile_attributes.py): equality, words and phrases, `$contains`, ranges and `field:*`
  on the raw JSON text, with a guard for the values ClickHouse cannot decide.
Narrowed, then verified:
- message phrases (every word present: the `words` column holds each word once, so word order is
  not in it), message globs;
- attribute regexes and globs, date queries on attributes (instants of RFC 3339 strings), and
  paths of more than four dotted parts: the raw JSON text must contain the last key of the path
  and, where the value's JSON spelling is known, that spelling or its words (case-insensitively);
- `NOT` of anything inexact narrows nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgspec

from logtraced.query.ast import (
    KEYWORD_FIELDS,
    LEVEL,
    MESSAGE,
    RANGE_OPS,
    TAGS,
    TIMESTAMP,
    And,
    Compare,
    Exists,
    MatchAll,
    Node,
    Not,
    Op,
    Or,
    Scalar,
)
from logtraced.query.evaluate import as_number, compile_regex, date_value, fold_yo, glob_parts, words
from logtraced.query.timerange import parse_instant
from logtraced.storage.clickhouse.compile_attributes import AttributeCompiler
from logtraced.storage.clickhouse.params import Params

TRUE: Final = "1"
FALSE: Final = "0"
_BOOLEANS: Final = ("true", "false")  # `$eq [f, "true"]` also equals the JSON literal true
_RANGE_SQL: Final = {Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}
# Characters msgspec escapes inside JSON strings: text containing one is not verbatim in `attributes`.
_JSON_ESCAPED: Final = frozenset(['"', "\\", *map(chr, range(0x20))])


@dataclass(frozen=True)
class Condition:
    """A WHERE condition and whether it selects exactly the events the node accepts.

    An exact condition with a `guard` is exact on the rows the guard does not select; on guarded
    rows it decides nothing, and `superset` is the condition that keeps them as candidates.
    """

    sql: str
    exact: bool
    guard: str = ""

    @property
    def superset(self) -> str:
        return f"(({self.guard}) OR ({self.sql}))" if self.guard else self.sql


def _exact(sql: str, guard: str = "") -> Condition:
    return Condition(sql, True, guard)


def _loose(sql: str = TRUE) -> Condition:
    return Condition(sql, False)


def compile_condition(node: Node, params: Params) -> Condition:
    """The narrowing condition of `node`; its values are added to `params`."""
    return _Compiler(params).compile(node)


class _Compiler:
    def __init__(self, params: Params) -> None:
        self.params = params

    def compile(self, node: Node) -> Condition:
        if isinstance(node, MatchAll):
            return _exact(TRUE)
        if isinstance(node, (And, Or)):
            operator = "AND" if isinstance(node, And) else "OR"
            parts = [self.compile(child) for child in node.children]
            if all(part.exact for part in parts):
                guard = _join("OR", [part.guard for part in parts])
                return _exact(_join(operator, [part.sql for part in parts]), guard)
            return _loose(_join(operator, [part.superset for part in parts]))
        if isinstance(node, Not):
            child = self.compile(node.child)
            return _exact(f"NOT ({child.sql})", child.guard) if child.exact else _loose()
        if isinstance(node, Exists):
            return self._exists(node.field)
        return self._compare(node)

    def _exists(self, name: str) -> Condition:
        if name == TIMESTAMP:
            return _exact(TRUE)
        if name == MESSAGE:
            return _exact("`message` != ''")
        if name == TAGS:
            return _exact("arrayExists(t -> t != '', `tags`)")
        if name in KEYWORD_FIELDS:
            return _exact(f"`{name}` != ''")
        compiled = AttributeCompiler(self.params).exists(name)
        return _loose(self._has_key(name)) if compiled is None else _exact(compiled.sql, compiled.guard)

    def _compare(self, node: Compare) -> Condition:
        if node.field is None or node.field == MESSAGE:
            return self._message(node)
        if node.field == TIMESTAMP:
            return self._timestamp(node)
        if node.field in KEYWORD_FIELDS:
            return self._keyword(node.field, node)
        return self._attribute(node.field, node)

    # -- keywords ---------------------------------------------------------------------------------

    def _keyword(self, name: str, node: Compare) -> Condition:
        """One keyword value per event, or any of the tags."""
        if node.op is Op.REGEX:
            pattern = self.params.text(("(?i)" if name == LEVEL else "") + str(node.value))
            return _loose(_on_keyword(name, lambda column: f"match({column}, {pattern})"))
        value = _json_text(node.value)
        if name == LEVEL:
            value = value.lower()
        if node.op in (Op.EQ, Op.MATCH, Op.PHRASE):
            wanted = self.params.text(value)
            return _exact(_on_keyword(name, lambda column: f"{column} = {wanted}"))
        if node.op is Op.WILDCARD:
            pieces, _, _ = glob_parts(value)
            like = self.params.text("%".join(_like_escape(piece) for piece in pieces))
            return _exact(_on_keyword(name, lambda column: f"{column} LIKE {like}"))
        if node.op is Op.CONTAINS:
            needle = self.params.text(value)
            return _exact(_on_keyword(name, lambda column: f"position({column}, {needle}) > 0"))
        return _loose()

    # -- timestamp --------------------------------------------------------------------------------

    def _timestamp(self, node: Compare) -> Condition:
        if node.op not in RANGE_OPS and node.op not in (Op.EQ, Op.MATCH, Op.PHRASE):
            return _loose()
        value = node.value
        bound = value if isinstance(value, int) and not isinstance(value, bool) else parse_instant(value)
        operator = _RANGE_SQL.get(node.op, "=")
        return _exact(f"`timestamp` {operator} {self.params.int64(bound)}")

    # -- message ----------------------------------------------------------------------------------

    def _message(self, node: Compare) -> Condition:
        if node.op in (Op.MATCH, Op.PHRASE):
            found = words(_json_text(node.value))
            if not found:
                return _exact(FALSE)  # no words: the reference matches nothing
            present = _join("AND", [f"has(`words`, {self.params.text(word)})" for word in dict.fromkeys(found)])
            return Condition(present, node.op is Op.MATCH)
        if node.op is Op.EQ:
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return _loose()  # "400.0" equals 400: numbers compare as numbers
            return _exact(f"`message` = {self.params.text(_json_text(node.value))}")
        if node.op is Op.CONTAINS:
            return self._message_contains(fold_yo(_json_text(node.value)))
        if node.op is Op.REGEX:
            return self._message_regex(str(node.value))
        if node.op is Op.WILDCARD:
            return _loose(self._glob_words(str(node.value), "`message`"))
        return _loose()

    def _message_contains(self, needle: str) -> Condition:
        """A case-sensitive substring as LIKE, which the trigram index answers; an е also finds a ё (unindexed)."""
        if "е" in needle or "Е" in needle:
            return _exact(f"position(translateUTF8(`message`, 'ёЁ', 'еЕ'), {self.params.text(needle)}) > 0")
        return _exact(f"`message` LIKE {self.params.text('%' + _like_escape(needle) + '%')}")

    def _message_regex(self, pattern: str) -> Condition:
        """RE2 on both sides; evaluate.py reads ё as е in the text and the pattern alike, and `.` stops at newlines."""
        folded = fold_yo(pattern)
        compile_regex(folded)  # a bad pattern is the user's error, as on Tantivy, not ClickHouse's
        bound = self.params.text("(?-s)" + folded)
        return _exact(f"match(translateUTF8(`message`, 'ёЁ', 'еЕ'), {bound})")

    def _glob_words(self, pattern: str, column: str) -> str:
        """A glob's literal pieces, each somewhere in the text case-insensitively (word edges are verified)."""
        pieces, _, _ = glob_parts(pattern)
        tests = [f"positionCaseInsensitiveUTF8({column}, {self.params.text(piece)}) > 0" for piece in pieces if piece]
        return _join("AND", tests) if tests else TRUE

    # -- attributes -------------------------------------------------------------------------------

    def _attribute(self, path: str, node: Compare) -> Condition:
        """Exact where compile_attributes.py can decide the comparison, else narrowed on the raw JSON text."""
        compiled = AttributeCompiler(self.params).compare(path, node)
        if compiled is not None:
            return _exact(compiled.sql, compiled.guard)
        tests = [self._has_key(path)]
        spelling = self._value_spelling(node)
        if spelling:
            tests.append(spelling)
        return _loose(_join("AND", [test for test in tests if test != TRUE]) or TRUE)

    def _value_spelling(self, node: Compare) -> str:
        value = node.value
        if node.op is Op.CONTAINS:
            needle = _json_text(value)
            return "" if _escaped_in_json(needle) else f"position(`attributes`, {self.params.text(needle)}) > 0"
        if node.op is Op.EQ and isinstance(value, str) and as_number(value) is None and value not in _BOOLEANS:
            return f"position(`attributes`, {self.params.text(msgspec.json.encode(value).decode())}) > 0"
        if node.op in (Op.MATCH, Op.PHRASE) and as_number(value) is None and date_value(value) is None:
            found = words(_json_text(value))
            tests = [f"positionCaseInsensitiveUTF8(`attributes`, {self.params.text(word)}) > 0" for word in found]
            return _join("AND", tests)
        return ""

    def _has_key(self, path: str) -> str:
        """Every reading of a dotted path (nested keys or keys with dots) ends in its last segment."""
        last = path.rsplit(".", 1)[-1]
        if not last or _escaped_in_json(last):
            return TRUE
        return f"position(`attributes`, {self.params.text(last)}) > 0"


def _on_keyword(name: str, test: Callable[[str], str]) -> str:
    """`test` applied to the keyword's column (lowercased for level), or to any tag."""
    if name == TAGS:
        return f"arrayExists(v -> {test('v')}, `tags`)"
    return test("lowerUTF8(`level`)" if name == LEVEL else f"`{name}`")


def _join(operator: str, parts: list[str]) -> str:
    kept = [part for part in parts if part]
    if not kept:
        return ""
    return kept[0] if len(kept) == 1 else "(" + f" {operator} ".join(f"({part})" for part in kept) + ")"


def _json_text(value: Scalar) -> str:
    """A query value as evaluate.py reads it: strings as they are, numbers and booleans as JSON spells them."""
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _escaped_in_json(text: str) -> bool:
    return any(char in _JSON_ESCAPED for char in text)
