"""Parses LogQL text (the subset Grafana's Loki data source sends) into pipelines and metric trees (sans-IO).

Hand-written lexer and recursive descent following Loki's grammar (pkg/logql/syntax/syntax.y).  A log
query becomes a `Pipeline`: the stream selector is one `Filter` over canonical event fields (see
`FIELD_OF_LABEL`; regex matchers are anchored as Loki anchors them), each line filter another
`Filter` on the message, parsers are `Parse`/`Pattern`/`Unpack`, and the rest are the stages of
`logql_stages.py`.  A metric query becomes a `logql_ast` tree.  Precedence: `^` over `* / %` over
`+ -`, left-associative; in label filters `and` (also `,`) over `or`.

Known LogQL outside the subset (`|>` pattern filters, `ip()`, `label_replace`, comparison and set
operators, `on`/`ignoring`, `absent_over_time`, ...) raises a QueryError that names the construct
and its position; anything else malformed says what was expected at which position.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any, Final, NamedTuple, NoReturn

from logtraced.errors import QueryError
from logtraced.levels import canonical_level
from logtraced.query.ast import (
    LEVEL,
    MAX_DEPTH,
    MESSAGE,
    Compare,
    Exists,
    Node,
    Not,
    Op,
    and_,
    compare,
    or_,
)
from logtraced.query.evaluate import Regex, compile_regex
from logtraced.query.gosyntax import GoStringError, parse_bytes, parse_duration, read_go_string
from logtraced.query.logql_ast import (
    COUNT_FUNCTIONS,
    UNWRAP_FUNCTIONS,
    VECTOR_OPERATORS,
    BinaryOp,
    Conversion,
    Grouping,
    Literal,
    MetricExpr,
    Query,
    RangeAggregation,
    Unwrap,
    VectorAggregation,
    VectorLiteral,
)
from logtraced.query.logql_stages import (
    FIELD_OF_LABEL,
    LEVEL_LABELS,
    CompareOp,
    Decolorize,
    DropLabels,
    KeepLabels,
    LabelAnd,
    LabelExpr,
    LabelFilter,
    LabelFormat,
    LabelMatcher,
    LabelOr,
    LineFormat,
    MatchOp,
    NumberFilter,
    Pattern,
    PatternPart,
    Unpack,
    ValueKind,
)
from logtraced.query.pipeline import Filter, Parse, ParserKind, Pipeline, Stage
from logtraced.query.template import Template, parse_template

_PUNCTUATION: Final = (
    "|=",
    "|~",
    "|>",
    "!=",
    "!~",
    "!>",
    "=~",
    "==",
    ">=",
    "<=",
    "|",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    ">",
    "<",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
)
_SPACE: Final = frozenset(" \t\r\n")
_IDENT_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT: Final = _IDENT_START | frozenset("0123456789")
_NUMBER_CHARS: Final = _IDENT | frozenset(".µμ")
_LINE_FILTERS: Final = frozenset({"|=", "!=", "|~", "!~"})
_MATCH_OPS: Final = MappingProxyType({"=": MatchOp.EQ, "!=": MatchOp.NEQ, "=~": MatchOp.RE, "!~": MatchOp.NRE})
_COMPARE_OPS: Final = MappingProxyType(
    {
        "=": CompareOp.EQ,
        "==": CompareOp.EQ,
        "!=": CompareOp.NEQ,
        ">": CompareOp.GT,
        ">=": CompareOp.GTE,
        "<": CompareOp.LT,
        "<=": CompareOp.LTE,
    }
)
_LABEL_FILTER_OPS: Final = frozenset(_MATCH_OPS) | frozenset(_COMPARE_OPS)
_VALUE_KINDS: Final = MappingProxyType({"num": ValueKind.NUMBER, "dur": ValueKind.DURATION, "bytes": ValueKind.BYTES})
_ADDITIVE: Final = frozenset({"+", "-"})
_MULTIPLICATIVE: Final = frozenset({"*", "/", "%"})
_COMPARISONS: Final = frozenset({"==", "!=", ">", ">=", "<", "<="})
_SET_OPERATORS: Final = frozenset({"and", "or", "unless"})
_CONVERSIONS: Final = MappingProxyType(
    {"duration": Conversion.DURATION, "duration_seconds": Conversion.DURATION, "bytes": Conversion.BYTES}
)
_LOGFMT_FLAGS: Final = frozenset({"--strict", "--keep-empty"})
_UNSUPPORTED_FUNCTIONS: Final = frozenset(
    {
        "absent_over_time",
        "rate_counter",
        "label_replace",
        "sort",
        "sort_desc",
        "stddev",
        "stdvar",
        "approx_topk",
        "count_values",
    }
)
_UNSUPPORTED_STAGES: Final = frozenset({"distinct", "label_replace", "ip"})


class _Token(NamedTuple):
    """One lexeme: `kind` is str, num, dur, bytes, ident, flag, op or eof; `value` its meaning."""

    kind: str
    text: str
    pos: int
    value: str | float = ""


def parse_logql(text: str) -> Query:
    """A log query's `Pipeline` or a metric query's tree; QueryError(code="invalid_query") naming the position."""
    return _Parser(text, _tokens(text)).parse()


# -- lexer ------------------------------------------------------------------------------------


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        pos = _skip_blank(text, pos)
        if pos >= len(text):
            tokens.append(_Token("eof", "", pos))
            return tokens
        token = _token(text, pos)
        tokens.append(token)
        pos += len(token.text)


def _skip_blank(text: str, pos: int) -> int:
    """Skips spaces and `#` comments (to the end of the line), which Loki's lexer allows."""
    while pos < len(text):
        if text[pos] in _SPACE:
            pos += 1
        elif text[pos] == "#":
            newline = text.find("\n", pos)
            pos = len(text) if newline < 0 else newline + 1
        else:
            break
    return pos


def _token(text: str, pos: int) -> _Token:
    char = text[pos]
    if char in ('"', "`"):
        try:
            value, end = read_go_string(text, pos)
        except GoStringError as exc:
            raise QueryError(
                f"invalid string at position {exc.offset}: {exc.message}", code="invalid_query", position=exc.offset
            ) from None
        return _Token("str", text[pos:end], pos, value)
    if char.isdigit() or (char == "." and text[pos + 1 : pos + 2].isdigit()):
        return _number(text, pos)
    if char in _IDENT_START:
        end = pos
        while end < len(text) and text[end] in _IDENT:
            end += 1
        return _Token("ident", text[pos:end], pos, text[pos:end])
    if text.startswith("--", pos) and text[pos + 2 : pos + 3] in _IDENT_START:
        end = pos + 2
        while end < len(text) and (text[end] in _IDENT or text[end] == "-"):
            end += 1
        return _Token("flag", text[pos:end], pos, text[pos:end])
    for symbol in _PUNCTUATION:
        if text.startswith(symbol, pos):
            return _Token("op", symbol, pos, symbol)
    raise QueryError(f'unexpected character "{char}" at position {pos}', code="invalid_query", position=pos)


def _number(text: str, pos: int) -> _Token:
    """A number, or a duration (`5m`, `1h30m`) or byte size (`10KB`) when letters follow the digits."""
    end = pos
    while end < len(text) and text[end] in _NUMBER_CHARS:
        end += 1
    word = text[pos:end]
    if all(char.isdigit() or char == "." for char in word) and word.count(".") <= 1:
        return _Token("num", word, pos, float(word))
    exponent = _exponent_number(word)
    if exponent is not None:
        return _Token("num", word, pos, exponent)
    duration = parse_duration(word)
    if duration is not None:
        return _Token("dur", word, pos, float(duration))
    size = parse_bytes(word)
    if size is not None:
        return _Token("bytes", word, pos, size)
    raise QueryError(
        f'invalid number, duration or byte size "{word}" at position {pos}', code="invalid_query", position=pos
    )


def _exponent_number(word: str) -> float | None:
    """`1e3` or `2.5E6`: a mantissa, one `e`, and digits."""
    mantissa, e, exponent = word.lower().partition("e")
    if not e or not exponent.isdigit() or not mantissa or not all(c.isdigit() or c == "." for c in mantissa):
        return None
    return float(word)


# -- parser -----------------------------------------------------------------------------------


class _Parser:
    """Cursor over the tokens; one method per grammar rule."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def parse(self) -> Query:
        query = self._expr()
        if self._peek().kind != "eof":
            self._fail("an operator or end of input")
        return query

    # -- metric expressions ---------------------------------------------------------------

    def _expr(self) -> Query:
        return self._binary(self._additive_operand, _ADDITIVE)

    def _additive_operand(self) -> Query:
        return self._binary(self._power, _MULTIPLICATIVE)

    def _binary(self, operand: Callable[[], Query], operators: frozenset[str]) -> Query:
        start = self._peek()
        left = operand()
        while self._is_op(operators):
            op = self._advance()
            self._refuse_modifiers()
            right_start = self._peek()
            right = operand()
            left = BinaryOp(op.text, self._metric(left, start), self._metric(right, right_start))
        self._refuse_comparison()
        return left

    def _power(self) -> Query:
        start = self._peek()
        base = self._unary()
        if not self._is_op(frozenset({"^"})):
            return base
        self._advance()
        exponent_start = self._peek()
        exponent = self._power()
        return BinaryOp("^", self._metric(base, start), self._metric(exponent, exponent_start))

    def _unary(self) -> Query:
        if self._is_op(_ADDITIVE):
            sign = self._advance()
            start = self._peek()
            operand = self._metric(self._unary(), start)
            if sign.text == "+":
                return operand
            if isinstance(operand, Literal):
                return Literal(-operand.value)
            return BinaryOp("*", Literal(-1.0), operand)
        return self._primary()

    def _primary(self) -> Query:
        token = self._peek()
        if token.kind == "num":
            self._advance()
            return Literal(float(token.value))
        if token.kind == "op" and token.text == "{":
            return self._log_query()
        if token.kind == "op" and token.text == "(":
            self._open()
            inner = self._expr()
            self._close()
            return inner
        if token.kind == "ident":
            return self._function(token)
        self._fail('a stream selector "{", a number, "(" or a function')

    def _function(self, token: _Token) -> MetricExpr:
        name = token.text
        if name == "vector":
            self._advance()
            self._expect("(")
            value = self._signed_number("a number")
            self._expect(")")
            return VectorLiteral(value)
        if name in COUNT_FUNCTIONS or name in UNWRAP_FUNCTIONS:
            return self._range_aggregation()
        if name in VECTOR_OPERATORS:
            return self._vector_aggregation()
        if name in _UNSUPPORTED_FUNCTIONS:
            raise self._unsupported(f'"{name}" function', token.pos)
        self._fail('a stream selector "{", a number, "(" or a function')

    def _vector_aggregation(self) -> VectorAggregation:
        op = self._advance().text
        grouping = self._grouping()
        self._expect("(")
        param = None
        if op in ("topk", "bottomk"):
            at = self._peek().pos
            value = self._signed_number(f"the number of series {op} keeps")
            if not value.is_integer() or value < 1:
                raise self._error(f"{op} needs a whole number of series of at least 1, got {value:g}", at)
            param = int(value)
            self._expect(",")
        start = self._peek()
        inner = self._metric(self._expr(), start)
        self._expect(")")
        if grouping is None:
            grouping = self._grouping()
        return VectorAggregation(op, inner, grouping, param)

    def _range_aggregation(self) -> RangeAggregation:
        name_token = self._advance()
        function = name_token.text
        self._expect("(")
        param = None
        if function == "quantile_over_time":
            param = self._signed_number("the quantile (such as 0.99)")
            self._expect(",")
        pipeline, range_ns, offset_ns, unwrap = self._range_body()
        self._expect(")")
        grouping = self._grouping()
        if unwrap is None and function not in COUNT_FUNCTIONS:
            raise self._error(
                f"{function} needs an unwrapped label: add | unwrap <label> before the range", name_token.pos
            )
        if unwrap is not None and function not in UNWRAP_FUNCTIONS:
            raise self._error(f"{function} counts lines and cannot take | unwrap", name_token.pos)
        if grouping is not None and unwrap is None:
            raise self._error(
                f"{function} takes by/without only with | unwrap; group with sum by (...)", name_token.pos
            )
        return RangeAggregation(function, pipeline, range_ns, offset_ns, unwrap, param, grouping)

    def _range_body(self) -> tuple[Pipeline, int, int, Unwrap | None]:
        """`selector stages [range] offset stages`, or `(selector stages) [range] offset`."""
        if self._is_op(frozenset({"("})):
            self._open()
            selector = self._selector()
            stages, unwrap = self._stages(allow_unwrap=True)
            self._close()
            range_ns, offset_ns = self._range()
        else:
            selector = self._selector()
            stages, unwrap = self._stages(allow_unwrap=True)
            range_ns, offset_ns = self._range()
            if not stages and unwrap is None:
                stages, unwrap = self._stages(allow_unwrap=True)
        return Pipeline((selector, *stages), logql=True), range_ns, offset_ns, unwrap

    def _range(self) -> tuple[int, int]:
        if not self._is_op(frozenset({"["})):
            self._fail('"[" and a range such as [5m]')
        self._advance()
        range_ns = self._duration("a range such as 5m")
        if range_ns <= 0:
            raise self._error("the range must be positive", self.tokens[self.index - 1].pos)
        self._expect("]")
        offset_ns = 0
        if self._is_ident("offset"):
            self._advance()
            offset_ns = self._duration("an offset duration such as 1h")
        return range_ns, offset_ns

    def _duration(self, expected: str) -> int:
        token = self._peek()
        if token.kind == "dur":
            self._advance()
            return int(token.value)
        self._fail(expected)

    def _grouping(self) -> Grouping | None:
        if not (self._is_ident("by") or self._is_ident("without")):
            return None
        without = self._advance().text == "without"
        self._expect("(")
        labels: list[str] = []
        if not self._is_op(frozenset({")"})):
            labels.append(self._identifier("a label name"))
            while self._take(","):
                labels.append(self._identifier("a label name"))
        self._expect(")")
        return Grouping(tuple(labels), without)

    # -- log queries ----------------------------------------------------------------------

    def _log_query(self) -> Pipeline:
        selector = self._selector()
        stages, _ = self._stages(allow_unwrap=False)
        return Pipeline((selector, *stages), logql=True)

    def _selector(self) -> Filter:
        self._expect("{")
        nodes = [self._stream_matcher()]
        while self._take(","):
            nodes.append(self._stream_matcher())
        self._expect("}")
        return Filter(and_(nodes))

    def _stream_matcher(self) -> Node:
        if self._is_op(frozenset({"}"})):
            self._fail('a label matcher such as service_name="api"')
        name = self._identifier("a label name")
        op_token = self._peek()
        if op_token.kind != "op" or op_token.text not in _MATCH_OPS:
            self._fail('"=", "!=", "=~" or "!~"')
        self._advance()
        at = self._peek().pos
        value = self._string("a quoted label value")
        if op_token.text in ("=~", "!~"):
            self._regex(_anchor(value), at)
        return _stream_node(name, _MATCH_OPS[op_token.text], value)

    def _stages(self, *, allow_unwrap: bool) -> tuple[list[Stage], Unwrap | None]:
        stages: list[Stage] = []
        unwrap: Unwrap | None = None
        while True:
            token = self._peek()
            if token.kind != "op":
                break
            if token.text in ("|>", "!>"):
                raise self._unsupported(f'"{token.text}" pattern filter', token.pos)
            if token.text in _LINE_FILTERS:
                if unwrap is not None:
                    raise self._error("only label filters may follow | unwrap", token.pos)
                stages.append(self._line_filter())
                continue
            if token.text != "|":
                break
            self._advance()
            if self._is_ident("unwrap"):
                unwrap = self._unwrap(unwrap, allow_unwrap)
                continue
            stage = self._stage()
            if unwrap is None:
                stages.append(stage)
            elif isinstance(stage, LabelFilter):
                unwrap = dataclasses.replace(unwrap, filters=(*unwrap.filters, stage))
            else:
                raise self._error("only label filters may follow | unwrap", token.pos)
        return stages, unwrap

    def _unwrap(self, previous: Unwrap | None, allowed: bool) -> Unwrap:
        token = self._advance()
        if not allowed:
            raise self._error("| unwrap belongs in a range aggregation such as sum_over_time(...[5m])", token.pos)
        if previous is not None:
            raise self._error("a query may unwrap only one label", token.pos)
        name = self._identifier("the label to unwrap")
        if name in _CONVERSIONS and self._take("("):
            label = self._identifier("the label to unwrap")
            self._expect(")")
            return Unwrap(label, _CONVERSIONS[name])
        return Unwrap(name)

    def _line_filter(self) -> Filter:
        op = self._advance()
        if self._is_ident("ip"):
            raise self._unsupported("ip() line filter", self._peek().pos)
        nodes = [self._line_match(op.text)]
        while self._is_ident("or") and self._peek(1).kind == "str":
            self._advance()
            nodes.append(self._line_match(op.text))
        either = or_(nodes)
        return Filter(Not(either) if op.text in ("!=", "!~") else either)

    def _line_match(self, op: str) -> Compare:
        at = self._peek().pos
        value = self._string("a quoted string")
        if op in ("|~", "!~"):
            self._regex(value, at)
            return compare(Op.REGEX, MESSAGE, value)
        return compare(Op.CONTAINS, MESSAGE, value)

    def _stage(self) -> Stage:
        token = self._peek()
        if token.kind == "op" and token.text == "(":
            return LabelFilter(self._label_or())
        if token.kind != "ident":
            self._fail("a parser, a label filter or a formatting stage after |")
        follower = self._peek(1)
        if follower.kind == "op" and follower.text in _LABEL_FILTER_OPS:
            return LabelFilter(self._label_or())
        parse = _STAGE_PARSERS.get(token.text)
        if parse is not None:
            self._advance()
            return parse(self)
        if token.text in _UNSUPPORTED_STAGES:
            raise self._unsupported(f'"{token.text}" stage', token.pos)
        self._fail("a parser, a label filter or a formatting stage after |")

    # -- stages -----------------------------------------------------------------------------

    def _json(self) -> Parse:
        labels = self._extraction_params(json_paths=True)
        return Parse(ParserKind.JSON, MESSAGE, labels)

    def _logfmt(self) -> Parse:
        while self._peek().kind == "flag":
            flag = self._advance()
            if flag.text not in _LOGFMT_FLAGS:
                raise self._unsupported(f'logfmt flag "{flag.text}"', flag.pos)
        return Parse(ParserKind.LOGFMT, MESSAGE, self._extraction_params(json_paths=False))

    def _extraction_params(self, *, json_paths: bool) -> tuple[tuple[str, str], ...]:
        """`a, b="x.y"`: labels to extract and where from (a JSON path or a logfmt key)."""
        params: list[tuple[str, str]] = []
        while self._peek().kind == "ident":
            name = self._advance().text
            source = name
            if self._take("="):
                at = self._peek().pos
                raw = self._string('a quoted JSON path such as "a.b[0]"' if json_paths else "a quoted key")
                source = _json_path(raw, at) if json_paths else raw
            params.append((name, source))
            if not self._take(","):
                break
        return tuple(params)

    def _regexp(self) -> Parse:
        at = self._peek().pos
        pattern = self._string("a quoted regular expression with named groups")
        regex = self._regex(pattern, at)
        if not regex.groupindex:
            raise self._error("the regexp parser needs at least one named group (?P<name>...)", at)
        return Parse(ParserKind.REGEXP, MESSAGE, (), pattern, regex)

    def _pattern(self) -> Pattern:
        at = self._peek().pos
        source = self._string('a quoted pattern such as "<ip> - <_>"')
        return Pattern(source, _pattern_parts(source, at))

    def _unpack(self) -> Unpack:
        return Unpack()

    def _decolorize(self) -> Decolorize:
        return Decolorize()

    def _line_format(self) -> LineFormat:
        return LineFormat(self._template())

    def _label_format(self) -> LabelFormat:
        items: list[tuple[str, str | Template]] = []
        while True:
            name = self._identifier("a label name")
            self._expect("=")
            source: str | Template
            if self._peek().kind == "str":
                source = self._template()
            else:
                source = self._identifier("a label name or a quoted template")
            items.append((name, source))
            if not self._take(","):
                return LabelFormat(tuple(items))

    def _drop(self) -> DropLabels:
        names, matchers = self._label_list()
        return DropLabels(names, matchers)

    def _keep(self) -> KeepLabels:
        names, matchers = self._label_list()
        return KeepLabels(names, matchers)

    def _label_list(self) -> tuple[tuple[str, ...], tuple[LabelMatcher, ...]]:
        """`a, b="x", c=~"y.*"` for drop and keep: bare names and matchers."""
        names: list[str] = []
        matchers: list[LabelMatcher] = []
        while True:
            name = self._identifier("a label name")
            op = self._peek()
            if op.kind == "op" and op.text in _MATCH_OPS:
                self._advance()
                matchers.append(self._label_matcher(name, op))
            else:
                names.append(name)
            if not self._take(","):
                return tuple(names), tuple(matchers)

    def _template(self) -> Template:
        token = self._peek()
        source = self._string('a quoted template such as "{{.label}}"')
        try:
            return parse_template(source)
        except QueryError as exc:
            raise self._error(
                f"in the template of the string at position {token.pos}: {exc.message}", token.pos
            ) from None

    # -- label filters ----------------------------------------------------------------------

    def _label_or(self) -> LabelExpr:
        children = [self._label_and()]
        while self._is_ident("or"):
            self._advance()
            children.append(self._label_and())
        return children[0] if len(children) == 1 else LabelOr(tuple(children))

    def _label_and(self) -> LabelExpr:
        children = [self._label_primary()]
        while True:
            if self._take(",") or (self._is_ident("and") and self._advance()):
                children.append(self._label_primary())
            elif self._starts_label_filter():
                # Loki joins side-by-side filters with `and`, but Grafana's grammar (lezer-logql)
                # marks them as an error: refuse them, so nothing accepted here is invalid there.
                raise self._error("join label filters with and, or, or a comma", self._peek().pos)
            else:
                break
        return children[0] if len(children) == 1 else LabelAnd(tuple(children))

    def _starts_label_filter(self) -> bool:
        follower = self._peek(1)
        return (
            self._peek().kind == "ident"
            and self._peek().text not in _SET_OPERATORS
            and follower.kind == "op"
            and follower.text in _LABEL_FILTER_OPS
        )

    def _label_primary(self) -> LabelExpr:
        if self._is_op(frozenset({"("})):
            self._open()
            inner = self._label_or()
            self._close()
            return inner
        name = self._identifier("a label name")
        op = self._peek()
        if op.kind != "op" or op.text not in _LABEL_FILTER_OPS:
            self._fail("a comparison operator (= != =~ !~ > >= < <= ==)")
        self._advance()
        value = self._peek()
        if value.kind == "str" and op.text in ("=", "==", "!=", "=~", "!~"):
            return self._label_matcher(name, op if op.text != "==" else op._replace(text="="))
        if self._is_ident("ip"):
            raise self._unsupported("ip() label filter", value.pos)
        if op.text in ("=~", "!~"):
            self._fail("a quoted regular expression")
        negative = self._take("-")
        number = self._peek()
        if number.kind not in _VALUE_KINDS:
            self._fail("a quoted string, a number, a duration such as 10s or a size such as 1KB")
        self._advance()
        amount = float(number.value) * (-1 if negative else 1)
        if number.kind == "dur":
            amount /= 1e9
        return NumberFilter(name, _COMPARE_OPS[op.text], amount, _VALUE_KINDS[number.kind])

    def _label_matcher(self, name: str, op: _Token) -> LabelMatcher:
        at = self._peek().pos
        value = self._string("a quoted label value")
        match_op = _MATCH_OPS[op.text]
        if match_op in (MatchOp.RE, MatchOp.NRE):
            return LabelMatcher(name, match_op, value, self._yes_no_regex(_anchor(value), at))
        if name in LEVEL_LABELS:
            value = canonical_level(value) or value
        return LabelMatcher(name, match_op, value)

    # -- helpers ----------------------------------------------------------------------------

    def _metric(self, query: Query, start: _Token) -> MetricExpr:
        if isinstance(query, Pipeline):
            raise self._error(
                "a log query cannot be used in arithmetic or aggregation; count it first: count_over_time(...[5m])",
                start.pos,
            )
        return query

    def _refuse_modifiers(self) -> None:
        token = self._peek()
        if token.kind == "ident" and token.text in ("bool", "on", "ignoring", "group_left", "group_right"):
            raise self._unsupported(f'"{token.text}" modifier', token.pos)

    def _refuse_comparison(self) -> None:
        token = self._peek()
        if token.kind == "op" and token.text in _COMPARISONS:
            raise self._unsupported(f'"{token.text}" comparison operator', token.pos)
        if token.kind == "ident" and token.text in _SET_OPERATORS:
            raise self._unsupported(f'"{token.text}" set operator', token.pos)

    def _signed_number(self, expected: str) -> float:
        negative = self._take("-")
        token = self._peek()
        if token.kind != "num":
            self._fail(expected)
        self._advance()
        return -float(token.value) if negative else float(token.value)

    def _regex(self, pattern: str, at: int) -> Any:
        """An RE2 regex with its groups (the regexp parser; a check of syntax), its syntax error placed at `at`."""
        with _placed(at):
            return compile_regex(pattern)

    def _yes_no_regex(self, pattern: str, at: int) -> Regex:
        """A regex that only says whether a value matches (label matchers), its syntax error placed at `at`."""
        with _placed(at):
            return Regex(pattern)

    def _string(self, expected: str) -> str:
        token = self._peek()
        if token.kind != "str":
            self._fail(expected)
        self._advance()
        return str(token.value)

    def _identifier(self, expected: str) -> str:
        token = self._peek()
        if token.kind != "ident":
            self._fail(expected)
        self._advance()
        return token.text

    def _open(self) -> None:
        if self.depth >= MAX_DEPTH:
            raise self._error(f"parentheses nest deeper than {MAX_DEPTH} levels", self._peek().pos)
        self.depth += 1
        self._expect("(")

    def _close(self) -> None:
        self._expect(")")
        self.depth -= 1

    def _expect(self, symbol: str) -> None:
        if not self._take(symbol):
            self._fail(f'"{symbol}"')

    def _take(self, symbol: str) -> bool:
        if self._is_op(frozenset({symbol})):
            self.index += 1
            return True
        return False

    def _is_op(self, symbols: frozenset[str]) -> bool:
        token = self._peek()
        return token.kind == "op" and token.text in symbols

    def _is_ident(self, word: str) -> bool:
        token = self._peek()
        return token.kind == "ident" and token.text == word

    def _peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def _advance(self) -> _Token:
        token = self._peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def _fail(self, expected: str) -> NoReturn:
        """The syntax error of the current token: what would have been accepted, what was found."""
        token = self._peek()
        found = "end of input" if token.kind == "eof" else f'"{token.text}"'
        raise QueryError(f"Expected {expected} at position {token.pos}, found {found}", position=token.pos)

    def _unsupported(self, what: str, position: int) -> QueryError:
        return QueryError(f"unsupported: the {what} at position {position}", code="unsupported", position=position)

    def _error(self, message: str, position: int) -> QueryError:
        return QueryError(f"{message} at position {position}", position=position)


_STAGE_PARSERS: Final[MappingProxyType[str, Callable[[_Parser], Stage]]] = MappingProxyType(
    {
        "json": _Parser._json,
        "logfmt": _Parser._logfmt,
        "regexp": _Parser._regexp,
        "pattern": _Parser._pattern,
        "unpack": _Parser._unpack,
        "decolorize": _Parser._decolorize,
        "line_format": _Parser._line_format,
        "label_format": _Parser._label_format,
        "drop": _Parser._drop,
        "keep": _Parser._keep,
    }
)


@contextlib.contextmanager
def _placed(at: int) -> Iterator[None]:
    """A regular expression's syntax error, placed at the pattern's position in the query."""
    try:
        yield
    except QueryError as exc:
        raise QueryError(f"{exc.message} at position {at}", code="invalid_regex", position=at) from None


def _anchor(pattern: str) -> str:
    """Loki matches label regexes against the whole value."""
    return f"^(?:{pattern})$"


def _stream_node(name: str, op: MatchOp, value: str) -> Node:
    """One selector matcher as an AST node over the event field or attribute the label names.

    As in Loki, a matcher that accepts "" also accepts a label that is absent: event fields store
    "" for "absent" already, attributes need an explicit `Not(Exists)`.
    """
    field = FIELD_OF_LABEL.get(name, name)
    if op in (MatchOp.EQ, MatchOp.NEQ):
        if field == LEVEL:
            value = canonical_level(value) or value
        node: Node = compare(Op.EQ, field, value)
        accepts_empty = value == ""
    else:
        pattern = _anchor(value)
        node = compare(Op.REGEX, field, pattern)
        accepts_empty = compile_regex(pattern).fullmatch("") is not None
    if accepts_empty and name not in FIELD_OF_LABEL:
        node = or_([Not(Exists(field)), node])
    return Not(node) if op in (MatchOp.NEQ, MatchOp.NRE) else node


def _json_path(expression: str, at: int) -> str:
    """Loki's JSON expression (`a.b[0]`, `a["key with space"]`) as the dotted path `Parse` reads."""
    parts: list[str] = []
    pos = 0
    while pos < len(expression):
        char = expression[pos]
        if char == "[":
            close = expression.find("]", pos)
            inner = expression[pos + 1 : close] if close > 0 else ""
            if inner.isdigit():
                parts.append(inner)
            elif len(inner) >= 2 and inner[0] in "\"'" and inner[-1] == inner[0]:
                parts.append(inner[1:-1])
            else:
                raise QueryError(f'invalid JSON path "{expression}" at position {at}', position=at)
            pos = close + 1
        elif char == "." and parts and pos + 1 < len(expression):
            pos += 1
        else:
            end = pos
            while end < len(expression) and expression[end] not in ".[":
                end += 1
            if end == pos:
                raise QueryError(f'invalid JSON path "{expression}" at position {at}', position=at)
            parts.append(expression[pos:end])
            pos = end
    if not parts:
        raise QueryError(f"empty JSON path at position {at}", position=at)
    return ".".join(parts)


def _pattern_parts(source: str, at: int) -> tuple[PatternPart, ...]:
    """Loki's pattern syntax: `<name>` and `<_>` capture, everything else is literal text."""
    parts: list[PatternPart] = []
    literal: list[str] = []
    pos = 0
    while pos < len(source):
        close = source.find(">", pos) if source[pos] == "<" else -1
        name = source[pos + 1 : close] if close > 0 else ""
        if name and name[0] in _IDENT_START and all(char in _IDENT for char in name):
            if literal:
                parts.append(PatternPart("".join(literal)))
                literal = []
            elif parts and parts[-1].capture:
                raise QueryError(f"pattern captures must be separated by text at position {at}", position=at)
            parts.append(PatternPart(name, capture=True))
            pos = close + 1
            continue
        literal.append(source[pos])
        pos += 1
    if literal:
        parts.append(PatternPart("".join(literal)))
    names = [part.text for part in parts if part.capture and part.text != "_"]
    if not names:
        raise QueryError(f"a pattern needs at least one named capture such as <ip> at position {at}", position=at)
    if len(set(names)) != len(names):
        raise QueryError(f"a pattern names a capture twice at position {at}", position=at)
    return tuple(parts)
