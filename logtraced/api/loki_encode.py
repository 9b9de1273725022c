"""Loki's response encodings, as Grafana's converter (pkg/util/converter/prom.go) insists on them.

Streams: `{"stream": {labels}, "values": [["<ns as a string>", "line"], ...]}` in the query's
direction; with the `categorize-labels` flag each value gains a third element
`{"structuredMetadata": {...}, "parsed": {...}}` and the stream keeps only its indexed labels.
Matrix and vector: timestamps as JSON numbers of seconds, values as strings formatted as Go's
`strconv.FormatFloat(v, 'f', -1, 64)` (`+Inf`, `-Inf`, `NaN`).  Sans-IO: values in, dicts out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Final

from logtraced.query.logql_eval import Series, attribute_labels, stream_labels
from logtraced.query.logql_stages import STREAM_LABELS
from logtraced.storage.backend import Row, Stats

NS: Final = 1_000_000_000
CATEGORIZE: Final = "categorize-labels"
_STREAM_NAMES: Final = frozenset(label for _, label in STREAM_LABELS)


def number_text(value: float) -> str:
    """A sample value as Prometheus writes it: shortest exact decimal, no exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def seconds(timestamp_ns: int) -> float | int:
    """A step instant as Loki writes it in matrices and vectors: seconds, fractional only when it must be."""
    whole, rest = divmod(timestamp_ns, NS)
    return whole if rest == 0 else timestamp_ns / NS


def stats(figures: Stats) -> dict[str, Any]:
    """`stats.summary` with this query's real figures (documents read, their bytes, wall time)."""
    took = figures.seconds
    return {
        "summary": {
            "bytesProcessedPerSecond": int(figures.bytes_examined / took) if took else 0,
            "linesProcessedPerSecond": int(figures.lines_examined / took) if took else 0,
            "totalBytesProcessed": figures.bytes_examined,
            "totalLinesProcessed": figures.lines_examined,
            "execTime": round(took, 6),
            "queueTime": 0,
            "totalEntriesReturned": 0,
        }
    }


def streams(rows: Iterable[Row], *, staged: bool, categorize: bool) -> list[dict[str, Any]]:
    """Rows grouped into streams by label set (first-seen order); each stream's values keep the rows' order.

    `staged`: the rows were run through LogQL stages, so their labels are the line's whole label set
    (after drop/keep); otherwise the labels are the event's stream labels.  Without `categorize`,
    structured metadata and parsed labels join the stream labels, as Loki merges them.
    """
    grouped: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
    for row in rows:
        event = row.event
        labels = row.labels if staged else stream_labels(event)
        metadata = attribute_labels(event)
        stamp = str(event.timestamp)
        if categorize:
            indexed = {name: value for name, value in labels.items() if name in _STREAM_NAMES}
            parsed = {name: value for name, value in labels.items() if name not in _STREAM_NAMES}
            value: list[Any] = [stamp, event.message, {"structuredMetadata": metadata, "parsed": parsed}]
        else:
            indexed = {**metadata, **labels}
            value = [stamp, event.message]
        grouped.setdefault(tuple(sorted(indexed.items())), []).append(value)
    return [{"stream": dict(key), "values": values} for key, values in grouped.items()]


def matrix(series: Sequence[Series]) -> list[dict[str, Any]]:
    return [
        {"metric": item.labels, "values": [[seconds(step), number_text(value)] for step, value in item.points]}
        for item in series
    ]


def vector(series: Sequence[Series]) -> list[dict[str, Any]]:
    """One sample per series (the instant query's single step)."""
    return [
        {"metric": item.labels, "value": [seconds(step), number_text(value)]}
        for item in series
        for step, value in item.points[-1:]
    ]
