"""The exact meaning of a query AST on one event: what index candidates are verified against.

`build_matcher` turns a node into a predicate once per query (regexes compiled once), then the
predicate is called per candidate.  Semantics, per field:

- `level`: compared case-insensitively.  `service host env org index tags`: keywords, exact and
  case-sensitive (a glob must match the whole value); `tags` matches if any tag does.
- `message` and attribute strings are text.  MATCH (KQL unquoted) means every query word appears
  as a whole word (Unicode words, lowercased; `ошибка` finds `Ошибка`); PHRASE (KQL quoted) means
  the words appear consecutively; a KQL glob is case-insensitive, and a side without `*` must sit
  on a word boundary (`db-primary-*` finds `on db-primary-03`, `time*` does not find `runtime`).
- EQ is exact equality (case-sensitive), except that a number equals a string spelling the same
  number (`$eq ["status_code", "400"]` finds 400).  CONTAINS is a case-sensitive substring, REGEX an
  unanchored RE2 search; both see numbers and booleans as their JSON text.
- GT/GTE/LT/LTE compare numbers (numeric strings count as numbers), `timestamp` and RFC 3339
  attribute strings as instants, and two non-numeric strings lexicographically.
- A dotted field is a path into attributes, trying every split into nested keys and literal dotted
  keys (`http.status` reads `{"http": {"status": 1}}` and `{"http.status": 1}`); arrays match if
  any element does.  Names that are not event fields are looked up in parsed labels first.
- Free text (field None) means the message, the default search field (as Quickwit's
  `default_search_fields` and Loki's line filters): `timeout` is `message:timeout`.
- Russian spelling: `ё` and `е` (and `Ё`, `Е`) are the same letter in every comparison of text (words,
  phrases, EQ, CONTAINS, globs, REGEX, keywords), as Russian readers treat them: most text is typed
  without `ё`, so `елка` must find `ёлка` and the other way round.  Case is kept (`$contains` stays
  case-sensitive); a regex is matched against the folded text with its own `ё` folded, so `[ё]` and
  `е` both find either spelling.
- `field:*`: an event field exists when it is not "" (how events store "not sent"); an attribute
  exists when it holds any non-null value.  A missing field never satisfies a comparison, so
  `Not(...)` (`$neq`, `$notcontains`, ...) matches it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import msgspec
import re2

from logtraced.errors import QueryError
from logtraced.query.ast import (
    EVENT_FIELDS,
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
from logtraced.query.timerange import parse_instant, rfc3339_ns


class EventLike(Protocol):
    """The fields of `logtraced.events.Event` that queries read."""

    @property
    def timestamp(self) -> int: ...
    @property
    def message(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def env(self) -> str: ...
    @property
    def org(self) -> str: ...
    @property
    def index(self) -> str: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


Labels = Mapping[str, str]
Predicate = Callable[[EventLike, Labels], bool]
Stemmer = Callable[[str], str]
_ValueTest = Callable[[object], bool]

_WORD = re.compile(r"[^\W_]+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NOT_WORD_CLASS = r"[^\pL\pN]"
_YO_FOLD = str.maketrans({"ё": "е", "Ё": "Е"})


def fold_yo(text: str) -> str:
    """`text` with ё written е (Ё as Е), case kept: the spelling every text comparison sees."""
    return text.translate(_YO_FOLD) if "ё" in text or "Ё" in text else text


def compile_regex(pattern: str, *, ignore_case: bool = False, on_bytes: bool = False) -> Any:
    """An RE2 regex (linear time, so user patterns cannot hang a query); bad syntax is a QueryError.

    `on_bytes` compiles the pattern's UTF-8 bytes with the same options (RE2 reads patterns as
    UTF-8 either way): the regex then takes UTF-8 text as bytes, which `Regex` uses.
    """
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern.encode() if on_bytes else pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise QueryError(f"invalid regular expression {pattern!r}: {reason}", code="invalid_regex") from None


class Regex:
    """An RE2 pattern asked only whether text matches it, as filters ask: tested on the text's UTF-8 bytes.

    google-re2's methods on `str` work out character offsets for a match object after every
    match, which a yes or no never reads: a `search` of a 100-character line took 5.5 µs on the
    `str` and 1.8 µs on its bytes, encoding included (the verifying half of a rare regex search).
    """

    __slots__ = ("_compiled",)

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        self._compiled = compile_regex(pattern, ignore_case=ignore_case, on_bytes=True)

    def found_in(self, text: str) -> bool:
        """Whether the pattern matches anywhere in `text` (`re.search`)."""
        return self._compiled.search(text.encode()) is not None

    def matches_all(self, text: str) -> bool:
        """Whether the pattern matches the whole of `text` (`re.fullmatch`)."""
        return self._compiled.fullmatch(text.encode()) is not None


def words(text: str) -> list[str]:
    """Unicode words, lowercased and with ё read as е: the index's split, searched in either spelling."""
    return [fold_yo(word.lower()) for word in _WORD.findall(text)]


def glob_parts(pattern: str) -> tuple[list[str], bool, bool]:
    """A KQL glob as its literal pieces between `*`s, and whether it starts / ends with `*`."""
    pieces: list[str] = [""]
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            pieces[-1] += next(chars, "\\")
        elif char == "*":
            pieces.append("")
        else:
            pieces[-1] += char
    starred = len(pieces) > 1
    return pieces, starred and pieces[0] == "", starred and pieces[-1] == ""


def build_matcher(node: Node, *, stem: Stemmer | None = None) -> Predicate:
    """A predicate for `node`, built once per query; `stem` maps message words to stems if enabled."""
    return _Builder(stem).build(node)


class _Builder:
    """Walks the AST once, returning closures so per-event work is only the comparisons."""

    def __init__(self, stem: Stemmer | None) -> None:
        self.stem = stem

    def build(self, node: Node) -> Predicate:
        if isinstance(node, MatchAll):
            return lambda event, labels: True
        if isinstance(node, Not):
            child = self.build(node.child)
            return lambda event, labels: not child(event, labels)
        if isinstance(node, And):
            every = [self.build(child) for child in node.children]
            return lambda event, labels: all(test(event, labels) for test in every)
        if isinstance(node, Or):
            anyof = [self.build(child) for child in node.children]
            return lambda event, labels: any(test(event, labels) for test in anyof)
        if isinstance(node, Exists):
            field = node.field
            present = _present if field in EVENT_FIELDS else _present_leaf
            return lambda event, labels: any(present(value) for value in _field_values(field, event, labels))
        return self._compare(node)

    def _compare(self, node: Compare) -> Predicate:
        if node.field is None:
            return self._free_text(node)
        if node.field == MESSAGE:
            test = self._message_test(node)
            return lambda event, labels: test(event.message)
        if node.field == TIMESTAMP:
            test = _timestamp_test(node)
            return lambda event, labels: test(event.timestamp)
        if node.field in KEYWORD_FIELDS:
            test = _keyword_test(node)
            field = node.field
            return lambda event, labels: any(test(value) for value in _keyword_values(field, event))
        test = _value_test(node.op, node.value)
        path = node.field
        return lambda event, labels: any(test(value) for value in _resolve(path, event, labels))

    def _message_words(self, text: str) -> list[str]:
        found = words(text)
        return [self.stem(word) for word in found] if self.stem is not None else found

    def _message_test(self, node: Compare) -> _ValueTest:
        """Text semantics on the message, with stems when stemming is configured."""
        if node.op is Op.MATCH:
            wanted = set(self._message_words(_text(node.value) or ""))
            return lambda value: bool(wanted) and isinstance(value, str) and wanted <= set(self._message_words(value))
        if node.op is Op.PHRASE:
            phrase = self._message_words(_text(node.value) or "")
            return lambda value: isinstance(value, str) and _has_phrase(self._message_words(value), phrase)
        return _value_test(node.op, node.value)

    def _free_text(self, node: Compare) -> Predicate:
        """Free text is the message, the default search field; attributes are reached by name."""
        message_test = self._message_test(node)
        return lambda event, labels: message_test(event.message)


def _timestamp_test(node: Compare) -> _ValueTest:
    """Timestamps compare as ns; text operators see the decimal ns, which is all they could mean."""
    if node.op in RANGE_OPS or node.op in (Op.EQ, Op.MATCH, Op.PHRASE):
        wanted = node.value if isinstance(node.value, int) and not isinstance(node.value, bool) else None
        bound = parse_instant(node.value) if wanted is None else wanted
        return _range_test(node.op, bound) if node.op in RANGE_OPS else (lambda value: value == bound)
    return _value_test(node.op, node.value)


def keyword_value_test(node: Compare) -> Callable[[str], bool]:
    """Whether one stored value of a keyword field satisfies `node` (`level` is read lowercased).

    An event matches when any of its values does: a backend holding the field's distinct values
    (a term dictionary) can decide the comparison per value instead of per event.
    """
    test = _keyword_test(node)
    if node.field == LEVEL:
        return lambda value: test(value.lower())
    return test


def _keyword_test(node: Compare) -> _ValueTest:
    """Keywords are exact strings; `level` is compared lowercased, as levels are stored."""
    ignore_case = node.field == LEVEL
    if node.op is Op.REGEX:
        regex = Regex(fold_yo(str(node.value)), ignore_case=ignore_case)
        return lambda value: isinstance(value, str) and regex.found_in(fold_yo(value))
    wanted = fold_yo(_text(node.value) or "")
    if ignore_case:
        wanted = wanted.lower()
    if node.op in (Op.EQ, Op.MATCH, Op.PHRASE):
        return lambda value: isinstance(value, str) and fold_yo(value) == wanted
    if node.op is Op.WILDCARD:
        regex = Regex(_glob_regex(wanted, anchored=True))
        return lambda value: isinstance(value, str) and regex.matches_all(fold_yo(value))
    return _value_test(node.op, wanted)


def _value_test(op: Op, wanted: Scalar) -> _ValueTest:
    """The test of one attribute, label or message value (string, number, bool or other)."""
    if op is Op.EQ:
        return lambda value: _equal(value, wanted)
    if op is Op.MATCH:
        query_words = set(words(_text(wanted) or ""))
        return lambda value: _match_value(
            value, wanted, lambda text: bool(query_words) and query_words <= set(words(text))
        )
    if op is Op.PHRASE:
        phrase = words(_text(wanted) or "")
        return lambda value: _match_value(value, wanted, lambda text: _has_phrase(words(text), phrase))
    if op is Op.CONTAINS:
        return _contains_test(fold_yo(_text(wanted) or ""))
    if op is Op.REGEX:
        regex = Regex(fold_yo(str(wanted)))
        return lambda value: (text := _text(value)) is not None and regex.found_in(fold_yo(text))
    if op is Op.WILDCARD:
        regex = Regex(_glob_regex(fold_yo(str(wanted)), anchored=False), ignore_case=True)
        return lambda value: (text := _text(value)) is not None and regex.found_in(fold_yo(text))
    return _range_test(op, wanted)


def _contains_test(needle: str) -> _ValueTest:
    """A case-sensitive substring; the text is folded only when the needle has an е to meet a ё."""
    if "е" in needle or "Е" in needle:
        return lambda value: (text := _text(value)) is not None and needle in fold_yo(text)
    return lambda value: (text := _text(value)) is not None and needle in text


def _range_test(op: Op, bound: Scalar) -> _ValueTest:
    def test(value: object) -> bool:
        order = _order(value, bound)
        if order is None:
            return False
        if op is Op.GT:
            return order > 0
        if op is Op.GTE:
            return order >= 0
        if op is Op.LT:
            return order < 0
        return order <= 0

    return test


def _match_value(value: object, wanted: Scalar, text_test: Callable[[str], bool]) -> bool:
    """KQL `field:value` on one attribute value: words for text, equality for the rest."""
    if isinstance(value, bool):
        return _text(value) == (_text(wanted) or "").lower()
    if isinstance(value, (int, float)):
        return as_number(wanted) == value
    if not isinstance(value, str):
        return False
    instant = rfc3339_ns(value)
    if instant is not None:
        return date_value(wanted) == instant
    return text_test(value)


def _equal(value: object, wanted: Scalar) -> bool:
    """`$eq`: same string, or same number when either side is a number, or same boolean."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return _text(value) == _text(wanted)
    if isinstance(value, (int, float)):
        number = as_number(wanted)
        return number is not None and value == number
    if isinstance(value, str):
        if isinstance(wanted, str):
            return value == wanted or fold_yo(value) == fold_yo(wanted)
        return as_number(value) == wanted
    return False


def _order(value: object, bound: Scalar) -> int | None:
    """Sign of value - bound: numbers, then instants, then two non-numeric strings; else None."""
    left, right = as_number(value), as_number(bound)
    if left is not None and right is not None:
        return (left > right) - (left < right)
    if isinstance(value, str) and not isinstance(bound, bool):
        instant = rfc3339_ns(value)
        if instant is not None:
            other = _instant_or_none(bound)
            return None if other is None else (instant > other) - (instant < other)
        if left is None and right is None and isinstance(bound, str):
            return (value > bound) - (value < bound)
    return None


def as_number(value: object) -> int | float | None:
    """A number, or a string spelling one in decimal ("400", "-1.5e3"); booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return None


def date_value(value: Scalar) -> int | None:
    """The instant a query value names when matched against a stored date: ISO text, never a bare number."""
    if not isinstance(value, str) or as_number(value) is not None:
        return None
    return _instant_or_none(value)


def _instant_or_none(value: Scalar) -> int | None:
    try:
        return parse_instant(value)
    except QueryError:
        return None


def _text(value: object) -> str | None:
    """A scalar as text: strings as they are, numbers and booleans as JSON spells them."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return msgspec.json.encode(value).decode()
    return None


def _has_phrase(haystack: list[str], phrase: list[str]) -> bool:
    """Whether `phrase` occurs as consecutive words; an empty phrase (no words) matches nothing."""
    if not phrase:
        return False
    width = len(phrase)
    return any(haystack[start : start + width] == phrase for start in range(len(haystack) - width + 1))


def _glob_regex(pattern: str, *, anchored: bool) -> str:
    """RE2 source for a KQL glob: whole value if anchored, else a run bounded by word edges."""
    pieces, open_start, open_end = glob_parts(pattern)
    body = ".*".join(re2.escape(piece) for piece in pieces)
    if anchored:
        return "(?s)" + body
    first, last = pieces[0], pieces[-1]
    head = "" if open_start or not _starts_with_word(first) else f"(?:^|{_NOT_WORD_CLASS})"
    tail = "" if open_end or not _starts_with_word(last[::-1]) else f"(?:$|{_NOT_WORD_CLASS})"
    return "(?s)" + head + body + tail


def _starts_with_word(text: str) -> bool:
    return bool(text) and _WORD.match(text[0]) is not None


def _field_values(field: str, event: EventLike, labels: Labels) -> Sequence[object]:
    """Every value a field has on this event (several for tags and attribute arrays)."""
    if field == MESSAGE:
        return [event.message]
    if field == TIMESTAMP:
        return [event.timestamp]
    if field in KEYWORD_FIELDS:
        return _keyword_values(field, event)
    return _resolve(field, event, labels)


def _keyword_values(field: str, event: EventLike) -> Sequence[str]:
    if field == TAGS:
        return event.tags
    value: str = getattr(event, field)
    return [value.lower()] if field == LEVEL else [value]


def _resolve(path: str, event: EventLike, labels: Labels) -> list[object]:
    """Values at a field path: a parsed label if one has this name, else attribute leaves."""
    if path in labels:
        return [labels[path]]
    found: list[object] = []
    _walk(event.attributes, path.split("."), found)
    return found


def _walk(node: object, parts: list[str], found: list[object]) -> None:
    """Collect values for every split of `parts` into keys (nested or dotted); arrays fan out."""
    if isinstance(node, list):
        for item in node:
            _walk(item, parts, found)
        return
    if not parts:
        found.append(node)
        return
    if not isinstance(node, Mapping):
        return
    for cut in range(1, len(parts) + 1):
        key = ".".join(parts[:cut])
        if key in node:
            _walk(node[key], parts[cut:], found)


def _present(value: object) -> bool:
    """`field:*` on an event field: events store "" for "not sent"."""
    return value != ""


def _present_leaf(value: object) -> bool:
    """`field:*` on an attribute: any non-null value was sent ("" included), empty containers were not."""
    if isinstance(value, Mapping):
        return any(_present_leaf(item) for item in value.values())
    if isinstance(value, list):
        return any(_present_leaf(item) for item in value)
    return value is not None
