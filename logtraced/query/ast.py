"""The one query AST that KQL and the JSON pipeline both parse to, independent of any search engine.

Parsers build it, `compile.py` narrows it to index queries and `evaluate.py` gives its exact meaning,
so a second storage backend only needs another compiler.  Field names are canonical event fields
(`message`, `timestamp`, `level`, ...) or dotted paths into the event's attributes; `None` is free
text.  Negative operators are `Not` around a positive comparison, which is also what makes a missing
field match `$neq`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final, TypeAlias

import msgspec

from logtraced.levels import canonical_level

# Canonical top-level event fields; every other field name is a path into `attributes`.
TIMESTAMP = "timestamp"
MESSAGE = "message"
LEVEL = "level"
SERVICE = "service"
HOST = "host"
ENV = "env"
ORG = "org"
INDEX = "index"
TAGS = "tags"
KEYWORD_FIELDS = frozenset({LEVEL, SERVICE, HOST, ENV, ORG, INDEX, TAGS})
EVENT_FIELDS = KEYWORD_FIELDS | {TIMESTAMP, MESSAGE}

_ALIASES = {"body": MESSAGE, "@timestamp": TIMESTAMP}
_ATTRIBUTES_PREFIX = "attributes."


class Op(enum.Enum):
    """How a `Compare` tests a field; what each means per field type is defined in evaluate.py."""

    EQ = "eq"  # exact value ($eq); numbers and numeric strings compare as numbers
    MATCH = "match"  # KQL unquoted value: all words for text, exact for keywords
    PHRASE = "phrase"  # KQL quoted value: consecutive words for text, exact for keywords
    WILDCARD = "wildcard"  # KQL glob: `*` is any run, `\*` and `\\` are literal
    CONTAINS = "contains"  # case-sensitive substring
    REGEX = "regex"  # unanchored RE2 search
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"


RANGE_OPS = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE})

# Deepest nesting of groups a query may have: parsers refuse more, so the recursive walks in
# compile.py and evaluate.py stay far from Python's recursion limit whatever users send.
MAX_DEPTH = 64

Scalar: TypeAlias = str | int | float | bool


class MatchAll(msgspec.Struct, frozen=True, tag="all"):
    """Every event: the empty KQL query, `*` and `*:*`."""


class Exists(msgspec.Struct, frozen=True, tag="exists"):
    """The field holds a non-empty value (KQL `field:*`)."""

    field: str


class Compare(msgspec.Struct, frozen=True, tag="compare"):
    """One field tested against one value; a `timestamp` value is always int nanoseconds."""

    op: Op
    field: str | None
    value: Scalar


class Not(msgspec.Struct, frozen=True, tag="not"):
    """Events the child does not match."""

    child: Node


class And(msgspec.Struct, frozen=True, tag="and"):
    """Events every child matches; built with `and_` so it is flat and has two or more children."""

    children: tuple[Node, ...]


class Or(msgspec.Struct, frozen=True, tag="or"):
    """Events any child matches; built with `or_` so it is flat and has two or more children."""

    children: tuple[Node, ...]


Node: TypeAlias = MatchAll | Exists | Compare | Not | And | Or


def canonical_field(name: str) -> str:
    """Map spellings users type (`body`, `@timestamp`, `attributes.x`) onto one field name."""
    name = _ALIASES.get(name, name)
    if name.startswith(_ATTRIBUTES_PREFIX) and len(name) > len(_ATTRIBUTES_PREFIX):
        return name[len(_ATTRIBUTES_PREFIX) :]
    return name


_EXACT_OPS: Final = frozenset({Op.EQ, Op.MATCH, Op.PHRASE})


def compare(op: Op, field: str | None, value: Scalar) -> Compare:
    """A comparison with the field canonicalised, and a level value read as ingest reads levels.

    `level:WARNING`, `level:warning` and `level:Warn` all mean the stored `warn`; a pattern (glob,
    substring) over levels is only lowercased, as stored levels are.
    """
    if field is not None:
        field = canonical_field(field)
    if field == LEVEL and op is not Op.REGEX and isinstance(value, str):
        value = (canonical_level(value) or value.lower()) if op in _EXACT_OPS else value.lower()
    return Compare(op, field, value)


def and_(nodes: Iterable[Node]) -> Node:
    """Conjunction with nested Ands flattened and MatchAll dropped (it constrains nothing)."""
    flat: list[Node] = []
    for node in nodes:
        if isinstance(node, And):
            flat.extend(node.children)
        elif not isinstance(node, MatchAll):
            flat.append(node)
    if not flat:
        return MatchAll()
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def or_(nodes: Iterable[Node]) -> Node:
    """Disjunction with nested Ors flattened; a MatchAll child makes the whole Or match all."""
    flat: list[Node] = []
    for node in nodes:
        if isinstance(node, MatchAll):
            return MatchAll()
        flat.extend(node.children if isinstance(node, Or) else (node,))
    if not flat:
        raise ValueError("or_ needs at least one node")
    return flat[0] if len(flat) == 1 else Or(tuple(flat))
