"""LogQL metric-query trees: range aggregations over a log pipeline, vector aggregations and arithmetic.

A metric query is a tree of `RangeAggregation`, `VectorAggregation`, `BinaryOp`, `Literal` and
`VectorLiteral`; its leaves hold the `Pipeline` whose lines they count or unwrap.  Plain data,
free of any engine: `logql_eval.py` gives the meaning, a backend may compute common shapes itself.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Final, TypeAlias

from logtraced.query.logql_stages import LabelFilter
from logtraced.query.pipeline import Pipeline

COUNT_FUNCTIONS: Final = frozenset({"count_over_time", "rate", "bytes_over_time", "bytes_rate"})
UNWRAP_FUNCTIONS: Final = frozenset(
    {
        "rate",
        "sum_over_time",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "first_over_time",
        "last_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "quantile_over_time",
    }
)
VECTOR_OPERATORS: Final = frozenset({"sum", "avg", "min", "max", "count", "topk", "bottomk"})


class Conversion(enum.Enum):
    """How `unwrap` reads a label as a number."""

    NUMBER = "number"  # `unwrap x`: a decimal number
    DURATION = "duration"  # `unwrap duration(x)` or `duration_seconds(x)`: a Go duration, in seconds
    BYTES = "bytes"  # `unwrap bytes(x)`: a byte size such as 1.5KB, in bytes


@dataclasses.dataclass(frozen=True)
class Unwrap:
    """`| unwrap label`: each line's sample value comes from a label; `filters` run after it."""

    label: str
    conversion: Conversion = Conversion.NUMBER
    filters: tuple[LabelFilter, ...] = ()


@dataclasses.dataclass(frozen=True)
class Grouping:
    """`by (a, b)` keeps only those labels; `without (a, b)` removes them."""

    labels: tuple[str, ...]
    without: bool = False


@dataclasses.dataclass(frozen=True)
class RangeAggregation:
    """`func([param,] pipeline [range] offset o)`: one value per series per step, from its lines in the window.

    The window ending at step t is (t - offset - range, t - offset], as Loki computes it.
    """

    function: str
    pipeline: Pipeline
    range_ns: int
    offset_ns: int = 0
    unwrap: Unwrap | None = None
    param: float | None = None
    grouping: Grouping | None = None


@dataclasses.dataclass(frozen=True)
class VectorAggregation:
    """`op by (...) ([param,] inner)`: series of each group combined per step (`param` is topk's k)."""

    op: str
    inner: MetricExpr
    grouping: Grouping | None = None
    param: int | None = None


@dataclasses.dataclass(frozen=True)
class BinaryOp:
    """Arithmetic between scalars and vectors; two vectors pair up series with identical labels."""

    op: str
    left: MetricExpr
    right: MetricExpr


@dataclasses.dataclass(frozen=True)
class Literal:
    """A number: a scalar in arithmetic."""

    value: float


@dataclasses.dataclass(frozen=True)
class VectorLiteral:
    """`vector(N)`: one series without labels whose value is N at every step."""

    value: float


MetricExpr: TypeAlias = RangeAggregation | VectorAggregation | BinaryOp | Literal | VectorLiteral
Query: TypeAlias = Pipeline | MetricExpr
