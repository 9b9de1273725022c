"""Parses Kibana Query Language text into the query AST (sans-IO, hand-written recursive descent).

The structure follows Kibana's grammar (packages/kbn-es-query/src/kuery/grammar/grammar.peggy):

    query    := Space* OrQuery? Space*            (empty => MatchAll)
    OrQuery  := AndQuery (Space+ 'or'i Space+ AndQuery)*
    AndQuery := NotQuery (Space+ 'and'i Space+ NotQuery)*
    NotQuery := 'not'i Space+ SubQuery | SubQuery
    SubQuery := '(' OrQuery ')' | Field ':' ValueList | Field RangeOp Literal | Value
    ValueList:= '(' OrList ')' | Value            (OrList/AndList/NotList mirror the above)

so precedence is not > and > or, keywords are case-insensitive and need whitespace on both sides,
and an unquoted value may contain spaces (`connection refused` is one value).  Two deliberate
differences from Kibana: `not` ends an unquoted value only at the start of a word (its grammar rejects
`cannot connect`), and `\\not`, `\\and`, `\\or` always mean the word (Kibana reads `\\n` first).
Nested `field:{...}` queries and wildcard field names are rejected with a clear error.
"""

from __future__ import annotations

from typing import NamedTuple, NoReturn

from logtraced.errors import QueryError
from logtraced.query.ast import (
    MAX_DEPTH,
    TIMESTAMP,
    Exists,
    MatchAll,
    Node,
    Not,
    Op,
    and_,
    canonical_field,
    compare,
    or_,
)
from logtraced.query.timerange import parse_instant

_SPACE = frozenset(" \t\r\n\u00a0")
_SPECIAL = frozenset('\\():<>"*{}')
_WHITESPACE_ESCAPES = {"t": "\t", "r": "\r", "n": "\n"}
_KEYWORD_ESCAPES = ("and", "not", "or")
_RANGE_OPS = (("<=", Op.LTE), (">=", Op.GTE), ("<", Op.LT), (">", Op.GT))
_HEX = frozenset("0123456789abcdefABCDEF")


def parse_kql(text: str) -> Node:
    """The AST of a KQL query; raises QueryError(code="invalid_query") naming the position."""
    return _Parser(text).parse()


class _Literal(NamedTuple):
    """A parsed field name or value; a wildcard value is kept in glob form (`\\*` = literal star)."""

    text: str
    quoted: bool
    wildcard: bool
    start: int


class _Parser:
    """Cursor over the query text; one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def parse(self) -> Node:
        """The whole query: optional spaces around an optional OrQuery."""
        self._skip_spaces()
        if self._at_end():
            return MatchAll()
        node = self._or_query()
        self._skip_spaces()
        if not self._at_end():
            self._fail("AND, OR or end of input")
        return node

    # -- boolean structure ---------------------------------------------------------------

    def _or_query(self) -> Node:
        children = [self._and_query()]
        while self._take_binary_keyword("or"):
            children.append(self._and_query())
        return or_(children)

    def _and_query(self) -> Node:
        children = [self._not_query()]
        while self._take_binary_keyword("and"):
            children.append(self._not_query())
        return and_(children)

    def _not_query(self) -> Node:
        if self._take_not():
            return Not(self._sub_query())
        return self._sub_query()

    def _sub_query(self) -> Node:
        if self._peek() == "(":
            self._open_group()
            node = self._or_query()
            self._close_group()
            return node
        return self._expression()

    def _expression(self) -> Node:
        """`field:values`, `field <op> value` or a bare value, told apart after the first literal."""
        first = self._literal('"(", a field name or a value')
        after_literal = self.pos
        self._skip_spaces()
        if self._peek() == ":":
            self.pos += 1
            self._skip_spaces()
            if self._peek() == "{":
                raise self._error("nested field queries (field:{...}) are not supported")
            return self._value_list(self._field(first))
        for symbol, op in _RANGE_OPS:
            if self.text.startswith(symbol, self.pos):
                self.pos += len(symbol)
                self._skip_spaces()
                return self._range(self._field(first), op)
        self.pos = after_literal
        return self._value(None, first)

    # -- values of one field ------------------------------------------------------------

    def _value_list(self, field: str | None) -> Node:
        if self._peek() == "(":
            self._open_group()
            node = self._or_list(field)
            self._close_group()
            return node
        return self._value(field, self._literal('"(" or a value'))

    def _or_list(self, field: str | None) -> Node:
        children = [self._and_list(field)]
        while self._take_binary_keyword("or"):
            children.append(self._and_list(field))
        return or_(children)

    def _and_list(self, field: str | None) -> Node:
        children = [self._not_list(field)]
        while self._take_binary_keyword("and"):
            children.append(self._not_list(field))
        return and_(children)

    def _not_list(self, field: str | None) -> Node:
        if self._take_not():
            return Not(self._value_list(field))
        return self._value_list(field)

    def _value(self, field: str | None, literal: _Literal) -> Node:
        """One value: phrase if quoted, glob if it has `*`, words (or exact keyword) otherwise."""
        if literal.wildcard and literal.text.strip("*") == "":
            return MatchAll() if field is None else Exists(field)
        if field == TIMESTAMP:
            if literal.wildcard:
                raise self._error("wildcards are not supported on timestamp", literal.start)
            return compare(Op.EQ, field, self._instant(literal))
        if literal.wildcard:
            return compare(Op.WILDCARD, field, literal.text)
        return compare(Op.PHRASE if literal.quoted else Op.MATCH, field, literal.text)

    def _range(self, field: str | None, op: Op) -> Node:
        literal = self._literal("a value")
        if field is None:
            raise self._error("a range needs a field name, not *", literal.start)
        if literal.wildcard:
            raise self._error("a range value cannot contain a wildcard", literal.start)
        if field == TIMESTAMP:
            return compare(op, field, self._instant(literal))
        return compare(op, field, literal.text)

    def _field(self, literal: _Literal) -> str | None:
        """A field name, `None` for `*` (all fields); other wildcard field names are refused."""
        if literal.wildcard:
            if literal.text == "*":
                return None
            raise self._error("wildcard field names are not supported", literal.start)
        return canonical_field(literal.text)

    def _instant(self, literal: _Literal) -> int:
        try:
            return parse_instant(literal.text)
        except QueryError:
            hint = "; quote timestamps that contain ':'" if self._peek() == ":" and not literal.quoted else ""
            raise self._error(
                f"invalid timestamp {literal.text!r}: expected ISO-8601 or epoch seconds/ms/ns{hint}", literal.start
            ) from None

    # -- literals -------------------------------------------------------------------------

    def _literal(self, expected: str) -> _Literal:
        start = self.pos
        literal = self._quoted() if self._peek() == '"' else self._unquoted()
        if literal is None:
            self.pos = start
            self._fail(expected)
        return literal

    def _quoted(self) -> _Literal:
        """A quoted string: only `\\"`, `\\\\`, `\\t\\r\\n` and `\\uXXXX` are escapes; `*` is literal."""
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while not self._at_end():
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return _Literal("".join(chars), quoted=True, wildcard=False, start=start)
            if char == "\\":
                escaped = self._quoted_escape()
                if escaped is not None:
                    chars.append(escaped)
                    continue
            chars.append(char)
            self.pos += 1
        raise QueryError(
            f"Expected '\"' at position {self.pos}, found end of input (string opened at position {start})",
            code="invalid_query",
            position=self.pos,
        )

    def _quoted_escape(self) -> str | None:
        """The character an escape inside quotes stands for; None means the backslash is literal."""
        follower = self.text[self.pos + 1 : self.pos + 2]
        if follower in ('"', "\\"):
            self.pos += 2
            return follower
        if follower in _WHITESPACE_ESCAPES:
            self.pos += 2
            return _WHITESPACE_ESCAPES[follower]
        if follower == "u":
            return self._unicode_escape()
        return None

    def _unquoted(self) -> _Literal | None:
        """Characters up to a special character or a keyword; spaces inside are kept, ends trimmed."""
        start = self.pos
        glob: list[str] = []
        plain: list[str] = []
        wildcard = False
        while not self._at_end():
            char = self.text[self.pos]
            if char == "\\":
                literal_char = self._unquoted_escape()
                plain.append(literal_char)
                glob.append("\\" + literal_char if literal_char in "*\\" else literal_char)
            elif char == "*":
                wildcard = True
                glob.append("*")
                self.pos += 1
            elif char in _SPECIAL or self._keyword_at(self.pos, start):
                break
            else:
                plain.append(char)
                glob.append(char)
                self.pos += 1
        text = ("".join(glob) if wildcard else "".join(plain)).strip()
        if not text:
            return None
        return _Literal(text, quoted=False, wildcard=wildcard, start=start)

    def _unquoted_escape(self) -> str:
        """`\\` before a special character, `\\and`/`\\or`/`\\not`, `\\t\\r\\n` or `\\uXXXX`."""
        follower = self.text[self.pos + 1 : self.pos + 2]
        for keyword in _KEYWORD_ESCAPES:
            word = self.text[self.pos + 1 : self.pos + 1 + len(keyword)]
            if word.lower() == keyword:
                self.pos += 1 + len(keyword)
                return word
        if follower and follower in _SPECIAL:
            self.pos += 2
            return follower
        if follower in _WHITESPACE_ESCAPES and follower:
            self.pos += 2
            return _WHITESPACE_ESCAPES[follower]
        if follower == "u":
            return self._unicode_escape()
        raise self._error(
            f'Invalid escape "\\{follower}": only \\ before one of \\():<>"*{{}}, and, or, not, t, r, n, uXXXX',
            self.pos,
        )

    def _unicode_escape(self) -> str:
        digits = self.text[self.pos + 2 : self.pos + 6]
        if len(digits) != 4 or not set(digits) <= _HEX:
            raise self._error("Expected four hex digits after \\u", self.pos + 2)
        self.pos += 6
        return chr(int(digits, 16))

    # -- keywords and spaces --------------------------------------------------------------

    def _take_binary_keyword(self, word: str) -> bool:
        """Consume `Space+ word Space+` (case-insensitive) if it is next."""
        end = self._binary_keyword_end(self.pos, word)
        if end is None:
            return False
        self.pos = end
        return True

    def _binary_keyword_end(self, pos: int, word: str) -> int | None:
        spaces_end = self._spaces_end(pos)
        if spaces_end == pos or self.text[spaces_end : spaces_end + len(word)].lower() != word:
            return None
        end = self._spaces_end(spaces_end + len(word))
        return end if end > spaces_end + len(word) else None

    def _take_not(self) -> bool:
        end = self._not_end(self.pos)
        if end is None:
            return False
        self.pos = end
        return True

    def _not_end(self, pos: int) -> int | None:
        """End of `not Space+` at `pos`, case-insensitive."""
        if self.text[pos : pos + 3].lower() != "not":
            return None
        end = self._spaces_end(pos + 3)
        return end if end > pos + 3 else None

    def _keyword_at(self, pos: int, literal_start: int) -> bool:
        """Whether a keyword ends an unquoted literal here; `not` only counts at a word start."""
        if self._binary_keyword_end(pos, "or") is not None or self._binary_keyword_end(pos, "and") is not None:
            return True
        at_word_start = pos == literal_start or self.text[pos - 1] in _SPACE
        return at_word_start and self._not_end(pos) is not None

    def _spaces_end(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in _SPACE:
            pos += 1
        return pos

    def _skip_spaces(self) -> None:
        self.pos = self._spaces_end(self.pos)

    def _open_group(self) -> None:
        if self.depth >= MAX_DEPTH:
            raise self._error(f"parentheses nest deeper than {MAX_DEPTH} levels")
        self.depth += 1
        self.pos += 1
        self._skip_spaces()

    def _close_group(self) -> None:
        self._skip_spaces()
        self._expect(")")
        self.depth -= 1

    # -- cursor helpers -------------------------------------------------------------------

    def _peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def _at_end(self) -> bool:
        return self.pos >= len(self.text)

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            self._fail(f'"{char}"')
        self.pos += 1

    def _fail(self, expected: str) -> NoReturn:
        """The syntax error of the current position: what would have been accepted, what was found."""
        found = "end of input" if self._at_end() else f'"{self.text[self.pos]}"'
        message = f"Expected {expected} at position {self.pos}, found {found}"
        raise QueryError(message, code="invalid_query", position=self.pos)

    def _error(self, message: str, position: int | None = None) -> QueryError:
        """A semantic error (valid syntax, unsupported meaning) located at `position`."""
        where = self.pos if position is None else position
        return QueryError(f"{message} at position {where}", code="invalid_query", position=where)
