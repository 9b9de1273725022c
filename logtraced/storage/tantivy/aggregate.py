"""Counts per step and label set from a partition's fast fields: tantivy aggregations, no document read.

One partition's counts are nested terms aggregations over the labels with a timestamp histogram
innermost.  Labels outside, time inside: there are few label sets and many steps, and a histogram
per label set costs far less than a nest of terms aggregations under every step (measured: 40x on a
24-hour per-minute count by every stream label).  Histogram keys are f64 (see `_boundary` for how
boundaries stay exact for timestamps f64 can hold).

Two things keep a count by many labels cheap and possible:
- A label with one value in the whole partition (`env` once confined, `index` when nothing is
  routed) is not aggregated at all: each terms level costs a pass of its column.
- tantivy refuses an aggregation of more than 65 000 buckets (its default limit, which the binding
  cannot raise), and a per-minute count by every stream label over a day makes hundreds of label
  sets times 1 440 steps.  A non-empty bucket holds at least one event, so the partition's window
  is cut into step-aligned slices that cannot exceed `BUCKETS_PER_SLICE` by the smaller of two
  bounds (events matched; label sets possible times steps), and a slice that still overflows is
  halved.
"""

from __future__ import annotations

import math
from typing import Any, Final

import tantivy

from logtraced.storage.backend import CountRequest, Series, SeriesMap
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.partitions import clipped
from logtraced.storage.tantivy.reader import hit_count

# Distinct values per label one aggregation bucket reports.
MAX_AGGREGATED_VALUES: Final = 10_000
# Buckets one aggregation may make: under tantivy's 65 000, as the terms buckets above the histograms count too.
BUCKETS_PER_SLICE: Final = 50_000
_BUCKET_LIMIT: Final = "bucket limit was exceeded"
_INTEGER: Final = tantivy.FieldType.Integer


def count_partition(
    searcher: tantivy.Searcher,
    index: tantivy.Index,
    query: tantivy.Query,
    day: int,
    request: CountRequest,
    series: SeriesMap,
) -> None:
    """Add one partition's counts of `query` (already confined to the request's window) to `series`."""
    fixed = _constant_labels(searcher, request.by)
    varying = tuple(name for name in request.by if name not in fixed)
    low, high = clipped(day, request.start_ns, request.end_ns - 1)
    first = request.start_ns + (low - request.start_ns) // request.step_ns * request.step_ns
    steps = (high - first) // request.step_ns + 1
    counter = _Counter(searcher, index, request, varying, fixed, series)
    cells = steps * math.prod(_term_count(searcher, name) for name in varying)
    if cells > BUCKETS_PER_SLICE:
        cells = min(cells, hit_count(searcher, query))
    slices = max(math.ceil(cells / BUCKETS_PER_SLICE), 1)
    if slices == 1:
        counter.count(query, first, steps, whole=True)
        return
    per_slice = math.ceil(steps / slices)
    for start in range(0, steps, per_slice):
        counter.count(query, first + start * request.step_ns, min(per_slice, steps - start), whole=False)


def _constant_labels(searcher: tantivy.Searcher, names: tuple[str, ...]) -> dict[str, str]:
    """Labels with the same value on every event of the partition (absent reads as "", as the aggregation's `missing`).

    One term that is "" covers every event; another single term must be on every event, which its
    document frequency says (nothing deletes single events: tests/test_architecture.py).
    """
    fixed: dict[str, str] = {}
    for name in names:
        terms = searcher.terms_with_prefix(name, "", None, 2)
        if len(terms) != 1:
            continue
        term, events = terms[0]
        if term == "" or events == searcher.num_docs:
            fixed[name] = term
    return fixed


def _term_count(searcher: tantivy.Searcher, name: str) -> int:
    """Distinct values of a label in the partition, plus the "" an event without one counts under."""
    return len(searcher.terms_with_prefix(name, "", None, BUCKETS_PER_SLICE)) + 1


class _Counter:
    """Runs the aggregations of one partition and folds their buckets into the series."""

    def __init__(
        self,
        searcher: tantivy.Searcher,
        index: tantivy.Index,
        request: CountRequest,
        varying: tuple[str, ...],
        fixed: dict[str, str],
        series: SeriesMap,
    ) -> None:
        self.searcher = searcher
        self.index = index
        self.request = request
        self.varying = varying
        self.fixed = fixed
        self.series = series

    def count(self, query: tantivy.Query, start: int, steps: int, *, whole: bool) -> None:
        """Count `steps` steps from `start`; halved until tantivy accepts the number of buckets."""
        step = self.request.step_ns
        bounded = query if whole else _and(query, _range(self.index, start, start + steps * step - 1))
        try:
            result = self.searcher.aggregate(bounded, {"by": self._spec()})
        except ValueError as error:
            if _BUCKET_LIMIT not in str(error) or steps == 1:
                raise
            half = steps // 2
            self.count(query, start, half, whole=False)
            self.count(query, start + half * step, steps - half, whole=False)
            return
        self._collect(result["by"], ())

    def _spec(self) -> dict[str, Any]:
        request = self.request
        spec: dict[str, Any] = {
            "histogram": {
                "field": schema.TIMESTAMP,
                "interval": request.step_ns,
                "offset": _boundary(request.start_ns, request.step_ns),
                "min_doc_count": 1,
            }
        }
        for label in reversed(self.varying):
            spec = {"terms": {"field": label, "size": MAX_AGGREGATED_VALUES, "missing": ""}, "aggs": {"by": spec}}
        return spec

    def _collect(self, node: dict[str, Any], values: tuple[str, ...]) -> None:
        """Walk the nested terms buckets down to each full set of label values, then read its histogram."""
        if len(values) < len(self.varying):
            for child in node["buckets"]:
                self._collect(child["by"], (*values, str(child["key"])))
            return
        request = self.request
        named = dict(zip(self.varying, values, strict=True))
        labels = tuple(self.fixed[name] if name in self.fixed else named[name] for name in request.by)
        entry = self.series.get(labels)
        if entry is None:
            entry = self.series[labels] = Series(dict(zip(request.by, labels, strict=True)))
        counts, start, step = entry.counts, request.start_ns, request.step_ns
        for bucket in node["buckets"]:  # hundreds of thousands for a count by every label: kept lean
            at = start + round((bucket["key"] - start) / step) * step
            counts[at] = counts.get(at, 0) + int(bucket["doc_count"])


def alignment(request: CountRequest) -> tuple[int, int]:
    """What places a partition's buckets besides the step: the first step's start modulo the step, and the
    histogram's offset (`_boundary`), which for the same alignment may still differ with the start's magnitude."""
    return request.start_ns % request.step_ns, _boundary(request.start_ns, request.step_ns)


def _boundary(start: int, step: int) -> int:
    """The histogram offset that lets f64 timestamps fall on the right side of every step boundary.

    tantivy turns each i64 timestamp into an f64 before bucketing, and from 2006 to 2043 an f64 holds
    multiples of 256 ns only.  A boundary is therefore moved to just past the middle between the
    two multiples around it (127 ns before the first multiple at or after it): a timestamp that is a
    multiple of 256 ns (whole seconds and microsecond multiples of 256, what most logs carry) then
    lands exactly where integer arithmetic puts it, and LogQL's windows, which start 1 ns after a
    step, count an event at the step itself in that step.  Other timestamps may still land on the
    wrong side when within 128 ns of a boundary, and steps that are not multiples of 256 ns keep
    that fuzz everywhere.
    """
    ulp = 1 << max(start.bit_length() - 53, 0)
    first_exact = -(-start // ulp) * ulp
    return (first_exact - max(ulp // 2 - 1, 0)) % step


def _and(query: tantivy.Query, other: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, other)])


def _range(index: tantivy.Index, low: int, high: int) -> tantivy.Query:
    return tantivy.Query.range_query(index.schema, schema.TIMESTAMP, _INTEGER, low, high)
