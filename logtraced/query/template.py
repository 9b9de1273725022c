"""The Go text/template subset of LogQL's `line_format` and `label_format`: parsed once, rendered per line.

Supported, because it is what Grafana users write: text with `{{ ... }}` actions (and the `{{-` / `-}}`
trim markers, `{{/* comments */}}`); a label `.name` (a missing label renders as "", as Loki's
`missingkey=zero` does); string ("..." or backquoted) and number literals; function calls with
arguments and `|` pipes (`{{ .a | ToUpper }}` passes `.a` as the last argument), parenthesised calls;
and these functions: `ToUpper ToLower upper lower title TrimSpace trim TrimPrefix TrimSuffix replace
Replace trunc default printf __line__`.  `printf` knows the verbs `%s %v %q %d %f %e %g %x %%` with
flags, width and precision; as in Go, labels are strings, so `%d` of a label prints `%!d(string=...)`.
Control structures (`if`, `range`, `with`, variables) are refused with the offset where they start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

import msgspec

from logtraced.errors import QueryError
from logtraced.query.gosyntax import GoStringError, read_go_string

Value: TypeAlias = str | int | float
Lookup = Callable[[str], str | None]

_OPEN: Final = "{{"
_CLOSE: Final = "}}"
_SPACES: Final = frozenset(" \t\r\n")
_IDENT_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT: Final = _IDENT_START | frozenset("0123456789")
_NUMBER: Final = frozenset("0123456789.-+eE")
_CONTROL_WORDS: Final = frozenset({"if", "else", "end", "range", "with", "define", "template", "block", "break"})
_PRINTF_FLAGS: Final = frozenset("+- #0")
_LINE_FUNCTION: Final = "__line__"


@dataclasses.dataclass(frozen=True)
class Field:
    """`.name`: the value of a label."""

    name: str


@dataclasses.dataclass(frozen=True)
class Const:
    """A string or number literal."""

    value: Value


@dataclasses.dataclass(frozen=True)
class Call:
    """A function applied to its arguments (a pipe's left side is already appended as the last one)."""

    function: str
    args: tuple[Arg, ...]


Arg: TypeAlias = Field | Const | Call


@dataclasses.dataclass(frozen=True)
class Template:
    """A parsed template; equal to another when the source is, so query trees compare by text."""

    source: str
    parts: tuple[str | Arg, ...] = dataclasses.field(compare=False, repr=False, default=())

    def render(self, lookup: Lookup, line: str) -> str:
        """The text for one log line: `lookup` gives label values, `line` is what `__line__` returns."""
        return "".join(part if isinstance(part, str) else _text(_evaluate(part, lookup, line)) for part in self.parts)


def parse_template(source: str) -> Template:
    """The template of `source`; QueryError whose `position` is the offset of the problem in `source`."""
    return Template(source, tuple(_Parser(source).parts()))


# -- parsing ----------------------------------------------------------------------------------


class _Parser:
    """Splits text from actions and parses each action's pipeline by recursive descent."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def parts(self) -> list[str | Arg]:
        parts: list[str | Arg] = []
        while self.pos < len(self.source):
            start = self.source.find(_OPEN, self.pos)
            text = self.source[self.pos : len(self.source) if start < 0 else start]
            if start < 0:
                parts.append(text)
                break
            if self.source.startswith("{{- ", start) or self.source.startswith("{{-\t", start):
                text = text.rstrip()
                self.pos = start + 3
            else:
                self.pos = start + 2
            if text:
                parts.append(text)
            action = self._action(start)
            if action is not None:
                parts.append(action)
        return parts

    def _action(self, start: int) -> Arg | None:
        """One `{{ ... }}`; None for a comment.  Leaves `pos` after the action (and trimmed space)."""
        self._skip_spaces()
        if self.source.startswith("/*", self.pos):
            close = self.source.find("*/", self.pos)
            if close < 0:
                raise self._error("unclosed comment", self.pos)
            self.pos = close + 2
            self._skip_spaces()
            self._close(start)
            return None
        arg = self._pipeline()
        self._close(start)
        return arg

    def _close(self, start: int) -> None:
        self._skip_spaces()
        trim = self.source.startswith("-}}", self.pos)
        if trim:
            self.pos += 1
        if not self.source.startswith(_CLOSE, self.pos):
            found = "end of template" if self.pos >= len(self.source) else repr(self.source[self.pos])
            raise self._error(f'expected "}}}}" to close the action opened at offset {start}, found {found}', self.pos)
        self.pos += 2
        if trim:
            self._skip_spaces()

    def _pipeline(self) -> Arg:
        arg = self._command()
        self._skip_spaces()
        while self._peek() == "|":
            self.pos += 1
            self._skip_spaces()
            at = self.pos
            piped = self._command()
            if not isinstance(piped, Call):
                raise self._error("a pipe must lead into a function", at)
            arg = Call(piped.function, (*piped.args, arg))
            self._skip_spaces()
        return arg

    def _command(self) -> Arg:
        """A function with its arguments, or a single operand."""
        self._skip_spaces()
        at = self.pos
        name = self._identifier()
        if not name:
            return self._operand()
        if name in _CONTROL_WORDS:
            raise self._error(f'unsupported: the "{name}" action', at)
        if name not in _FUNCTIONS:
            raise self._error(f'unknown function "{name}"', at)
        args: list[Arg] = []
        self._skip_spaces()
        while self.pos < len(self.source) and self._peek() not in ("|", ")") and not self._at_close():
            args.append(self._operand())
            self._skip_spaces()
        # Only the maximum is checked here: a pipe may still append the last argument.
        high = _FUNCTIONS[name][1][1]
        if len(args) > high:
            raise self._error(f'function "{name}" takes at most {high} arguments, got {len(args)}', at)
        return Call(name, tuple(args))

    def _operand(self) -> Arg:
        at = self.pos
        char = self._peek()
        if char == ".":
            self.pos += 1
            name = self._identifier()
            if not name:
                raise self._error('unsupported: "." without a label name', at)
            if self._peek() == ".":
                raise self._error(f'unsupported: nested field ".{name}."', at)
            return Field(name)
        if char in ('"', "`"):
            try:
                value, self.pos = read_go_string(self.source, self.pos)
            except GoStringError as exc:
                raise self._error(exc.message, exc.offset) from None
            return Const(value)
        if char == "(":
            self.pos += 1
            inner = self._pipeline()
            self._skip_spaces()
            if self._peek() != ")":
                raise self._error('expected ")"', self.pos)
            self.pos += 1
            return inner
        if char == "$":
            raise self._error("unsupported: template variables", at)
        if char and (char.isdigit() or char in "-+"):
            return self._number()
        name = self._identifier()
        if name:
            if name in _FUNCTIONS and not _FUNCTIONS[name][1][0]:
                return Call(name, ())
            raise self._error(f'function "{name}" needs parentheses when used as an argument', at)
        found = "end of template" if not char else repr(char)
        raise self._error(f"expected a label (.name), a literal or a function, found {found}", at)

    def _number(self) -> Const:
        start = self.pos
        while self.pos < len(self.source) and self.source[self.pos] in _NUMBER:
            self.pos += 1
        text = self.source[start : self.pos]
        try:
            return Const(int(text))
        except ValueError:
            pass
        try:
            return Const(float(text))
        except ValueError:
            raise self._error(f"invalid number {text!r}", start) from None

    def _identifier(self) -> str:
        start = self.pos
        if self._peek() and self._peek() in _IDENT_START:
            while self.pos < len(self.source) and self.source[self.pos] in _IDENT:
                self.pos += 1
        return self.source[start : self.pos]

    def _at_close(self) -> bool:
        return self.source.startswith(_CLOSE, self.pos) or self.source.startswith("-}}", self.pos)

    def _peek(self) -> str:
        return self.source[self.pos : self.pos + 1]

    def _skip_spaces(self) -> None:
        while self.pos < len(self.source) and self.source[self.pos] in _SPACES:
            self.pos += 1

    def _error(self, message: str, offset: int) -> QueryError:
        return QueryError(f"template: {message} at offset {offset}", code="invalid_query", position=offset)


# -- rendering --------------------------------------------------------------------------------


def _evaluate(arg: Arg, lookup: Lookup, line: str) -> Value:
    if isinstance(arg, Field):
        return lookup(arg.name) or ""
    if isinstance(arg, Const):
        return arg.value
    if arg.function == _LINE_FUNCTION:
        return line
    function, (low, high) = _FUNCTIONS[arg.function]
    values = [_evaluate(item, lookup, line) for item in arg.args]
    if not low <= len(values) <= high:
        raise QueryError(
            f'template: function "{arg.function}" takes {low} to {high} arguments, got {len(values)}',
            code="invalid_query",
        )
    return function(values)


def _text(value: Value) -> str:
    """How Go prints a value: strings as they are, numbers in decimal."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _string(value: Value) -> str:
    return value if isinstance(value, str) else _text(value)


def _integer(value: Value) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except ValueError:
        raise QueryError(f"template: expected an integer, got {value!r}", code="invalid_query") from None


def _default(args: Sequence[Value]) -> Value:
    """sprig's `default fallback value`: the value unless it is empty (or absent)."""
    fallback = args[0]
    given = args[1] if len(args) > 1 else ""
    return given if given not in ("", 0) else fallback


def _trunc(args: Sequence[Value]) -> Value:
    """sprig's `trunc n s`: the first n characters, or the last -n when n is negative."""
    count, text = _integer(args[0]), _string(args[1])
    return text[:count] if count >= 0 else text[count:]


def _printf(args: Sequence[Value]) -> Value:
    """Go's `fmt.Sprintf` for the common verbs; wrong or missing arguments print as Go prints them."""
    if not args:
        return ""
    pattern, values = _string(args[0]), list(args[1:])
    out: list[str] = []
    pos, used = 0, 0
    while pos < len(pattern):
        percent = pattern.find("%", pos)
        if percent < 0:
            out.append(pattern[pos:])
            break
        out.append(pattern[pos:percent])
        spec_end = percent + 1
        while spec_end < len(pattern) and (pattern[spec_end] in _PRINTF_FLAGS or pattern[spec_end].isdigit()):
            spec_end += 1
        if spec_end < len(pattern) and pattern[spec_end] == ".":
            spec_end += 1
            while spec_end < len(pattern) and pattern[spec_end].isdigit():
                spec_end += 1
        if spec_end >= len(pattern):
            out.append("%!(NOVERB)")
            break
        verb, spec = pattern[spec_end], pattern[percent + 1 : spec_end]
        pos = spec_end + 1
        if verb == "%":
            out.append("%")
            continue
        if used >= len(values):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(spec, verb, values[used]))
        used += 1
    extra = values[used:]
    if extra:
        out.append("%!(EXTRA " + ", ".join(f"{_go_type(value)}={_text(value)}" for value in extra) + ")")
    return "".join(out)


def _format_one(spec: str, verb: str, value: Value) -> str:
    """One verb: Python's %-formatting has the same flag, width and precision rules for these."""
    if verb in "sv":
        return ("%" + spec + "s") % _text(value)
    if verb == "q" and isinstance(value, str):
        return ("%" + spec + "s") % msgspec.json.encode(value).decode()
    if verb in "dx" and isinstance(value, int):
        return ("%" + spec + verb) % value
    if verb == "x" and isinstance(value, str):
        return ("%" + spec + "s") % value.encode().hex()
    if verb in "feg" and isinstance(value, (int, float)):
        return ("%" + spec + verb) % float(value)
    return f"%!{verb}({_go_type(value)}={_text(value)})"


def _go_type(value: Value) -> str:
    if isinstance(value, str):
        return "string"
    return "int" if isinstance(value, int) else "float64"


_Function = Callable[[Sequence[Value]], Value]
_FUNCTIONS: Final[dict[str, tuple[_Function, tuple[int, int]]]] = {
    "ToUpper": (lambda a: _string(a[0]).upper(), (1, 1)),
    "ToLower": (lambda a: _string(a[0]).lower(), (1, 1)),
    "upper": (lambda a: _string(a[0]).upper(), (1, 1)),
    "lower": (lambda a: _string(a[0]).lower(), (1, 1)),
    "title": (lambda a: _string(a[0]).title(), (1, 1)),
    "TrimSpace": (lambda a: _string(a[0]).strip(), (1, 1)),
    "trim": (lambda a: _string(a[0]).strip(), (1, 1)),
    "TrimPrefix": (lambda a: _string(a[0]).removeprefix(_string(a[1])), (2, 2)),
    "TrimSuffix": (lambda a: _string(a[0]).removesuffix(_string(a[1])), (2, 2)),
    "replace": (lambda a: _string(a[2]).replace(_string(a[0]), _string(a[1])), (3, 3)),
    "Replace": (lambda a: _string(a[0]).replace(_string(a[1]), _string(a[2]), _integer(a[3])), (4, 4)),
    "trunc": (_trunc, (2, 2)),
    "default": (_default, (1, 2)),
    "printf": (_printf, (1, 64)),
    _LINE_FUNCTION: (lambda a: "", (0, 0)),
}
