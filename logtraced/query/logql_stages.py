"""The pipeline stages LogQL has beyond filter and parse (label filters, drop/keep, formats, pattern, unpack).

A LogQL log query is a `pipeline.Pipeline`: the stream selector and the line filters before the
first other stage are `Filter`s (so `Pipeline.prefilter` is what an index narrows by), parsers are
`Parse` stages or the `Pattern` / `Unpack` stages here, and the rest are the stages below.  They are
plain data (regexes and templates compiled at parse time, so evaluation never recompiles them) and
import nothing of `pipeline.py`, which lists them among its stage types; `logql_eval.py` gives the
meaning.
"""

from __future__ import annotations

import dataclasses
import enum
from types import MappingProxyType
from typing import Final, TypeAlias

from logtraced.query.ast import ENV, HOST, INDEX, LEVEL, SERVICE
from logtraced.query.evaluate import Regex
from logtraced.query.template import Template

# Loki label names that are canonical event fields; every other label name is an attribute path.
FIELD_OF_LABEL: Final = MappingProxyType(
    {
        "service_name": SERVICE,
        "service": SERVICE,
        "level": LEVEL,
        "detected_level": LEVEL,
        "host": HOST,
        "env": ENV,
        "index": INDEX,
    }
)
LEVEL_LABELS: Final = frozenset({"level", "detected_level"})
# Event field -> the stream label it is shown as: an event's stream labels in LogQL.
STREAM_LABELS: Final = (
    ("service", "service_name"),
    ("level", "level"),
    ("host", "host"),
    ("env", "env"),
    ("index", "index"),
)

ERROR_LABEL: Final = "__error__"
ERROR_DETAILS_LABEL: Final = "__error_details__"


class MatchOp(enum.Enum):
    """How a string matcher tests a label (Prometheus matcher operators; regexes match whole values)."""

    EQ = "="
    NEQ = "!="
    RE = "=~"
    NRE = "!~"


class CompareOp(enum.Enum):
    """How a numeric label filter compares (`=` and `==` are the same test)."""

    EQ = "=="
    NEQ = "!="
    GT = ">"
    GTE = ">="
    LT = "<"
    LTE = "<="


class ValueKind(enum.Enum):
    """What a numeric label filter reads the label as: a plain number, a duration (seconds) or a byte size."""

    NUMBER = "number"
    DURATION = "duration"
    BYTES = "bytes"


@dataclasses.dataclass(frozen=True)
class LabelMatcher:
    """`name op "value"` on a label's string value; a missing label reads as "" (as in Loki)."""

    name: str
    op: MatchOp
    value: str
    regex: Regex | None = dataclasses.field(default=None, compare=False, repr=False)  # anchored, for =~ / !~


@dataclasses.dataclass(frozen=True)
class NumberFilter:
    """`name > 10`, `name >= 250ms`, `name < 1KB`: `value` is in seconds for durations, bytes for sizes."""

    name: str
    op: CompareOp
    value: float
    kind: ValueKind = ValueKind.NUMBER


@dataclasses.dataclass(frozen=True)
class LabelAnd:
    """Every child passes (`and`, `,` or two filters side by side)."""

    children: tuple[LabelExpr, ...]


@dataclasses.dataclass(frozen=True)
class LabelOr:
    """Any child passes; `and` binds tighter than `or`, as in Loki."""

    children: tuple[LabelExpr, ...]


LabelExpr: TypeAlias = LabelMatcher | NumberFilter | LabelAnd | LabelOr


@dataclasses.dataclass(frozen=True)
class LabelFilter:
    """`| status >= 500 and method="GET"`: lines whose labels fail the expression stop here."""

    expr: LabelExpr


@dataclasses.dataclass(frozen=True)
class DropLabels:
    """`| drop a, b="x"`: removes label `a`, and `b` only where the matcher holds."""

    names: tuple[str, ...] = ()
    matchers: tuple[LabelMatcher, ...] = ()


@dataclasses.dataclass(frozen=True)
class KeepLabels:
    """`| keep a, b="x"`: removes every label but `a`, and `b` where the matcher holds."""

    names: tuple[str, ...] = ()
    matchers: tuple[LabelMatcher, ...] = ()


@dataclasses.dataclass(frozen=True)
class LineFormat:
    """`| line_format "{{.a}}"`: the line becomes the rendered template (later stages see the new line)."""

    template: Template


@dataclasses.dataclass(frozen=True)
class LabelFormat:
    """`| label_format a=b, c="{{.x}}"`: each item renames a label (source is a name) or sets it (a template)."""

    items: tuple[tuple[str, str | Template], ...]


@dataclasses.dataclass(frozen=True)
class PatternPart:
    """One piece of a pattern expression: literal text, or a capture (`<name>`, `<_>` for unnamed)."""

    text: str
    capture: bool = False


@dataclasses.dataclass(frozen=True)
class Pattern:
    """`| pattern "<ip> - <_> [<ts>]"`: Loki's pattern parser, captures become labels."""

    source: str
    parts: tuple[PatternPart, ...] = dataclasses.field(compare=False, repr=False, default=())


@dataclasses.dataclass(frozen=True)
class Unpack:
    """`| unpack`: string keys of a JSON line become labels and `_entry` becomes the line (promtail's pack)."""


@dataclasses.dataclass(frozen=True)
class Decolorize:
    """`| decolorize`: ANSI colour sequences are removed from the line."""


LogqlStage: TypeAlias = LabelFilter | DropLabels | KeepLabels | LineFormat | LabelFormat | Pattern | Unpack | Decolorize
