"""Reference semantics of LogQL: a pipeline run over one event, and metric trees evaluated at step points.

The label model: an event's stream labels are `service_name level host env index` (those not ""),
parsed labels are added by parser stages (renamed `<name>_extracted` when they collide with a stream
label, as Loki renames them) and the other stages edit that set.  Attributes are not labels of the
stream (that would make one series per request id), but label filters, templates, `by (...)` and
`unwrap` read them, flattened with `_` and sanitised like Loki's json parser, when no label has the
name; label filters and templates also read `detected_level` and `service` as the event's level and
service.  As in Loki: a missing label reads as "" in string matchers; a numeric filter drops a line
without the label and marks `__error__=LabelFilterErr` (keeping the line) when the value is not a
number; a line the json or unpack parser cannot read is marked `__error__=JSONParserErr`; a metric
query whose samples still carry `__error__` fails ("pipeline error"), which is why Grafana sends
`| drop __error__`; an `unwrap` of an absent label yields no sample.

Metric trees are evaluated at explicit steps: the window of a step t is (t - offset - range, t - offset]
and a series has no point at a step whose window holds none of its samples (Loki's range vectors).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple, TypeAlias

import msgspec

from logtraced.errors import QueryError
from logtraced.model import Event
from logtraced.query.evaluate import Stemmer, build_matcher, compile_regex
from logtraced.query.gosyntax import NS_PER_SECOND, parse_bytes, parse_duration
from logtraced.query.logql_ast import (
    BinaryOp,
    Conversion,
    Grouping,
    Literal,
    MetricExpr,
    RangeAggregation,
    Unwrap,
    VectorAggregation,
    VectorLiteral,
)
from logtraced.query.logql_stages import (
    ERROR_DETAILS_LABEL,
    ERROR_LABEL,
    FIELD_OF_LABEL,
    STREAM_LABELS,
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

EXTRACTED_SUFFIX: Final = "_extracted"
# ANSI escape sequences (the expression Loki's decolorize uses, from acarl005/stripansi).
_ANSI: Final = compile_regex(
    "[\\x1b\\x{9b}][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z\\d]*(?:;[a-zA-Z\\d]*)*)?\\x07)"
    "|(?:(?:\\d{1,4}(?:;\\d{0,4})*)?[\\dA-PRZcf-ntqry=><~]))"
)
_LABEL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@dataclasses.dataclass
class LogLine:
    """An event that passed a pipeline: its labels and its (possibly reformatted) line."""

    labels: dict[str, str]
    line: str


class Sample(NamedTuple):
    """One line's contribution to a range aggregation: `value` is the unwrapped number, if any."""

    timestamp: int
    labels: Mapping[str, str]
    line: str
    value: float | None = None


@dataclasses.dataclass
class Series:
    """One output series: its labels and (step ns, value) points in step order."""

    labels: dict[str, str]
    points: list[tuple[int, float]]


SampleSource = Callable[[RangeAggregation], Iterable[Sample]]


def stream_labels(event: Event) -> dict[str, str]:
    """The labels an event's stream has in LogQL (its non-empty canonical fields)."""
    return {label: value for field, label in STREAM_LABELS if (value := getattr(event, field))}


def attribute_labels(event: Event) -> dict[str, str]:
    """An event's attributes as Loki shows structured metadata: nested keys joined with `_`, values as text."""
    return dict(_flatten(event.attributes))


def build_log_pipeline(pipeline: Pipeline, *, stem: Stemmer | None = None) -> Callable[[Event], LogLine | None]:
    """Runs a LogQL pipeline on one event: its labels and line, or None when a stage filters it out.

    Built once per query (regexes and predicates compiled once), called per candidate event.
    """
    steps = [_step(stage, stem) for stage in pipeline.stages]

    def run(event: Event) -> LogLine | None:
        state = _State(event)
        if all(step(state) for step in steps):
            return LogLine(state.labels, state.line)
        return None

    return run


def events_source(events: Iterable[Event], *, stem: Stemmer | None = None) -> SampleSource:
    """The samples of each range aggregation computed from `events` (the fallback when a backend cannot)."""
    kept = list(events)

    def samples(aggregation: RangeAggregation) -> list[Sample]:
        return samples_of(aggregation, kept, stem=stem)

    return samples


def samples_of(aggregation: RangeAggregation, events: Iterable[Event], *, stem: Stemmer | None = None) -> list[Sample]:
    """Runs the aggregation's pipeline and unwrap over events; QueryError if a sample keeps `__error__`."""
    steps = [_step(stage, stem) for stage in aggregation.pipeline.stages]
    if aggregation.unwrap is not None:
        steps.append(_unwrap_step(aggregation.unwrap))
        steps.extend(_step(stage, stem) for stage in aggregation.unwrap.filters)
    samples: list[Sample] = []
    for event in events:
        state = _State(event)
        if not all(step(state) for step in steps):
            continue
        if ERROR_LABEL in state.labels:
            raise QueryError(
                f"pipeline error: {state.labels[ERROR_LABEL]!r} for series {state.labels}; "
                'filter it with | __error__="" or remove it with | drop __error__',
                code="pipeline_error",
            )
        samples.append(Sample(event.timestamp, state.labels, state.line, state.value))
    return samples


def step_points(start_ns: int, end_ns: int, step_ns: int) -> list[int]:
    """The evaluation instants of a range query: start, start + step, ... up to end inclusive (as Loki)."""
    if step_ns <= 0:
        raise QueryError("step must be positive", code="invalid_step")
    return list(range(start_ns, end_ns + 1, step_ns))


def is_scalar(expr: MetricExpr) -> bool:
    """Whether the result is a scalar (only literals and arithmetic between them), not a vector."""
    if isinstance(expr, Literal):
        return True
    if isinstance(expr, BinaryOp):
        return is_scalar(expr.left) and is_scalar(expr.right)
    return False


def evaluate_metric(expr: MetricExpr, steps: Sequence[int], source: SampleSource) -> list[Series]:
    """The series of a metric query at `steps` (ns); a scalar result is one series without labels."""
    result = _Evaluator(steps, source).evaluate(expr)
    if isinstance(result, _Scalars):
        return [Series({}, list(zip(steps, result.values, strict=True)))]
    series: dict[_Key, Series] = {}
    for step, vector in zip(steps, result, strict=True):
        for key, value in vector.items():
            series.setdefault(key, Series(dict(key), [])).points.append((step, value))
    return [series[key] for key in sorted(series)]


# -- one event through the stages -------------------------------------------------------------


class _State:
    """What the stages see and change for one event."""

    def __init__(self, event: Event) -> None:
        self.event = event
        self.labels = stream_labels(event)
        self.stream = frozenset(self.labels)
        self.line = event.message
        self.value: float | None = None
        self._attributes: dict[str, str] | None = None

    stream_names: Final = frozenset(label for _, label in STREAM_LABELS)

    def lookup(self, name: str, *, aliases: bool) -> str | None:
        """A label's value; else (with `aliases`) the event field it names; else a flattened attribute."""
        value = self.labels.get(name)
        if value is not None:
            return value
        field = FIELD_OF_LABEL.get(name) if aliases and name not in self.stream_names else None
        if field is not None:
            found: str = getattr(self.event, field)
            return found or None
        if self._attributes is None:
            self._attributes = dict(_flatten(self.event.attributes))
        return self._attributes.get(name)

    def add_parsed(self, found: Iterable[tuple[str, str]]) -> None:
        for raw_name, value in found:
            name = _sanitize(raw_name)
            self.labels[f"{name}{EXTRACTED_SUFFIX}" if name in self.stream else name] = value

    def set_error(self, error: str, details: str) -> None:
        if ERROR_LABEL not in self.labels:
            self.labels[ERROR_LABEL] = error
            self.labels[ERROR_DETAILS_LABEL] = details


_Step: TypeAlias = Callable[[_State], bool]


def _step(stage: Stage, stem: Stemmer | None) -> _Step:
    """The per-event function of one stage: False stops the event."""
    if isinstance(stage, Filter):
        return _filter_step(stage, stem)
    if isinstance(stage, Parse):
        return _parse_step(stage)
    if isinstance(stage, LabelFilter):
        expr = stage.expr
        return lambda state: _label_test(expr, state)
    if isinstance(stage, Pattern):
        return _pattern_step(stage)
    if isinstance(stage, (DropLabels, KeepLabels)):
        return _drop_keep_step(stage)
    if isinstance(stage, LineFormat):
        return _line_format_step(stage)
    if isinstance(stage, LabelFormat):
        return _label_format_step(stage)
    if isinstance(stage, Unpack):
        return _unpack
    if isinstance(stage, Decolorize):
        return _decolorize
    return lambda state: True  # a JSON pipeline's `aggregate` stage does not filter lines


def _pattern_step(stage: Pattern) -> _Step:
    def step(state: _State) -> bool:
        state.add_parsed(_pattern_match(stage.parts, state.line))
        return True

    return step


def _line_format_step(stage: LineFormat) -> _Step:
    def step(state: _State) -> bool:
        state.line = stage.template.render(lambda name: state.lookup(name, aliases=True), state.line)
        return True

    return step


def _decolorize(state: _State) -> bool:
    state.line = _ANSI.sub("", state.line)
    return True


def _filter_step(stage: Filter, stem: Stemmer | None) -> _Step:
    """Line filters test the current line: after `line_format` that is the new line, as in Loki."""
    predicate = build_matcher(stage.node, stem=stem)

    def step(state: _State) -> bool:
        event = state.event
        if state.line != event.message:
            event = msgspec.structs.replace(event, message=state.line)
        return predicate(event, state.labels)

    return step


def _parse_step(stage: Parse) -> _Step:
    def step(state: _State) -> bool:
        if stage.parser is ParserKind.JSON and not isinstance(_json_object(state.line), dict):
            state.set_error("JSONParserErr", "the line is not a JSON object")
            return True
        state.add_parsed(stage.extract(state.line).items())
        return True

    return step


def _unpack(state: _State) -> bool:
    """promtail's `pack`: string values become labels, `_entry` is the original line."""
    decoded = _json_object(state.line)
    if not isinstance(decoded, dict):
        state.set_error("JSONParserErr", "the line is not a JSON object")
        return True
    entry = decoded.pop("_entry", None)
    state.add_parsed((key, value) for key, value in decoded.items() if isinstance(value, str))
    if isinstance(entry, str):
        state.line = entry
    return True


def _json_object(line: str) -> Any:
    try:
        return msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None


def _drop_keep_step(stage: DropLabels | KeepLabels) -> _Step:
    names = frozenset(stage.names)
    matchers = stage.matchers
    drop = isinstance(stage, DropLabels)

    def step(state: _State) -> bool:
        selected = {
            name
            for name, value in state.labels.items()
            if name in names or any(m.name == name and _matches(m, value) for m in matchers)
        }
        kept = {name: value for name, value in state.labels.items() if (name in selected) != drop}
        state.labels = kept
        return True

    return step


def _label_format_step(stage: LabelFormat) -> _Step:
    """Every item reads the labels as they were before this stage; a rename removes its source."""

    def step(state: _State) -> bool:
        before = dict(state.labels)
        snapshot = _State(state.event)
        snapshot.labels = before
        for name, source in stage.items:
            if isinstance(source, str):
                value = snapshot.lookup(source, aliases=True)
                if value is None:
                    continue
                state.labels.pop(source, None)
                state.labels[name] = value
            else:
                state.labels[name] = source.render(lambda key: snapshot.lookup(key, aliases=True), state.line)
        return True

    return step


def _unwrap_step(unwrap: Unwrap) -> _Step:
    """The sample value from a label, which then leaves the series labels (as Loki's unwrap does)."""

    def step(state: _State) -> bool:
        raw = state.lookup(unwrap.label, aliases=False)
        state.labels.pop(unwrap.label, None)
        if not raw:
            return False
        state.value = _convert(raw, unwrap.conversion)
        if state.value is None:
            state.set_error("SampleExtractionErr", f"cannot read {raw!r} as a {unwrap.conversion.value}")
        return True

    return step


def _convert(raw: str, conversion: Conversion | ValueKind) -> float | None:
    text = raw.strip()
    if conversion in (Conversion.DURATION, ValueKind.DURATION):
        nanoseconds = parse_duration(text)
        return None if nanoseconds is None else nanoseconds / NS_PER_SECOND
    if conversion in (Conversion.BYTES, ValueKind.BYTES):
        return parse_bytes(text)
    try:
        return float(text)
    except ValueError:
        return None


def _label_test(expr: LabelExpr, state: _State) -> bool:
    if isinstance(expr, LabelAnd):
        return all(_label_test(child, state) for child in expr.children)
    if isinstance(expr, LabelOr):
        return any(_label_test(child, state) for child in expr.children)
    if isinstance(expr, LabelMatcher):
        return _matches(expr, state.lookup(expr.name, aliases=True) or "")
    return _number_test(expr, state)


def _number_test(expr: NumberFilter, state: _State) -> bool:
    """Loki's numeric filter: a line already in error passes, an unreadable value marks an error and passes."""
    if ERROR_LABEL in state.labels:
        return True
    raw = state.lookup(expr.name, aliases=True)
    if raw is None:
        return False
    value = _convert(raw, expr.kind)
    if value is None:
        state.set_error("LabelFilterErr", f"cannot read {raw!r} as a {expr.kind.value}")
        return True
    return _COMPARE[expr.op](value, expr.value)


_COMPARE: Final[Mapping[CompareOp, Callable[[float, float], bool]]] = {
    CompareOp.EQ: lambda a, b: a == b,
    CompareOp.NEQ: lambda a, b: a != b,
    CompareOp.GT: lambda a, b: a > b,
    CompareOp.GTE: lambda a, b: a >= b,
    CompareOp.LT: lambda a, b: a < b,
    CompareOp.LTE: lambda a, b: a <= b,
}


def _matches(matcher: LabelMatcher, value: str) -> bool:
    if matcher.op is MatchOp.EQ:
        return value == matcher.value
    if matcher.op is MatchOp.NEQ:
        return value != matcher.value
    assert matcher.regex is not None, "the parser compiles every =~ and !~"
    found = matcher.regex.found_in(value)
    return found if matcher.op is MatchOp.RE else not found


def _pattern_match(parts: tuple[PatternPart, ...], line: str) -> list[tuple[str, str]]:
    """Loki's pattern matcher: a leading literal must start the line, a capture runs to the next literal
    (or to the end when that literal is missing or it is the last part); `<_>` captures nothing."""
    if not line or not parts:
        return []
    rest = line
    if not parts[0].capture:
        if not rest.startswith(parts[0].text):
            return []
        rest, parts = rest[len(parts[0].text) :], parts[1:]
    found: list[tuple[str, str]] = []
    for index in range(0, len(parts), 2):
        capture = parts[index]
        literal = parts[index + 1].text if index + 1 < len(parts) else None
        cut = -1 if literal is None else rest.find(literal)
        value = rest if cut < 0 else rest[:cut]
        if capture.text != "_":
            found.append((capture.text, value))
        if cut < 0 or literal is None:
            break
        rest = rest[cut + len(literal) :]
    return found


def _flatten(value: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    """Attributes as Loki-style label names: nested keys joined with `_`, values as text."""
    for key, item in value.items():
        name = _sanitize(f"{prefix}{key}")
        if isinstance(item, Mapping):
            yield from _flatten(item, f"{name}_")
        elif isinstance(item, str):
            yield name, item
        elif item is not None:
            yield name, msgspec.json.encode(item).decode()


def _sanitize(name: str) -> str:
    """A valid label name, as Loki's parsers make one: other characters become `_`."""
    clean = "".join(char if char in _LABEL_CHARS else "_" for char in name)
    return f"_{clean}" if clean[:1].isdigit() else clean


# -- metric trees -----------------------------------------------------------------------------

_Key: TypeAlias = tuple[tuple[str, str], ...]
_Vector: TypeAlias = list[dict[_Key, float]]  # one {series labels: value} per step


@dataclasses.dataclass
class _Scalars:
    """A scalar result: one value per step."""

    values: list[float]


class _Evaluator:
    def __init__(self, steps: Sequence[int], source: SampleSource) -> None:
        self.steps = steps
        self.source = source

    def evaluate(self, expr: MetricExpr) -> _Vector | _Scalars:
        if isinstance(expr, Literal):
            return _Scalars([expr.value] * len(self.steps))
        if isinstance(expr, VectorLiteral):
            return [{(): expr.value} for _ in self.steps]
        if isinstance(expr, BinaryOp):
            return _binary(expr.op, self.evaluate(expr.left), self.evaluate(expr.right))
        if isinstance(expr, RangeAggregation):
            return self._range(expr)
        inner = self.evaluate(expr.inner)
        if isinstance(inner, _Scalars):
            raise QueryError(f"{expr.op} needs a vector, got a scalar", code="invalid_query")
        return [_aggregate(expr, vector) for vector in inner]

    def _range(self, aggregation: RangeAggregation) -> _Vector:
        series: dict[_Key, list[tuple[int, float, int]]] = {}
        for sample in self.source(aggregation):
            key = _group_key(sample.labels, aggregation.grouping)
            value = 1.0 if sample.value is None else sample.value
            series.setdefault(key, []).append((sample.timestamp, value, len(sample.line.encode())))
        function = _RANGE_FUNCTIONS[aggregation.function]
        seconds = aggregation.range_ns / NS_PER_SECOND
        unwrapped = aggregation.unwrap is not None
        out: _Vector = [{} for _ in self.steps]
        for key, points in series.items():
            points.sort(key=lambda point: point[0])
            times = [point[0] for point in points]
            for index, step in enumerate(self.steps):
                end = step - aggregation.offset_ns
                low = bisect.bisect_right(times, end - aggregation.range_ns)
                high = bisect.bisect_right(times, end)
                if low < high:
                    window = _Window(points[low:high], seconds, unwrapped, aggregation.param)
                    out[index][key] = function(window)
        return out


class _Window(NamedTuple):
    """The samples of one series inside one step's range."""

    points: list[tuple[int, float, int]]  # (timestamp, value, line bytes)
    seconds: float
    unwrapped: bool
    param: float | None

    @property
    def values(self) -> list[float]:
        return [point[1] for point in self.points]


def _rate(window: _Window) -> float:
    """Lines per second, or the sum of unwrapped values per second (Loki's `rate` on unwrap)."""
    total = sum(window.values) if window.unwrapped else len(window.points)
    return total / window.seconds


def _quantile(q: float, values: list[float]) -> float:
    """Prometheus' quantile: linear interpolation between the closest ranks."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


_RANGE_FUNCTIONS: Final[Mapping[str, Callable[[_Window], float]]] = {
    "count_over_time": lambda w: float(len(w.points)),
    "rate": _rate,
    "bytes_over_time": lambda w: float(sum(point[2] for point in w.points)),
    "bytes_rate": lambda w: sum(point[2] for point in w.points) / w.seconds,
    "sum_over_time": lambda w: math.fsum(w.values),
    "avg_over_time": lambda w: statistics.fmean(w.values),
    "max_over_time": lambda w: max(w.values),
    "min_over_time": lambda w: min(w.values),
    "first_over_time": lambda w: w.values[0],
    "last_over_time": lambda w: w.values[-1],
    "stddev_over_time": lambda w: statistics.pstdev(w.values),
    "stdvar_over_time": lambda w: statistics.pvariance(w.values),
    "quantile_over_time": lambda w: _quantile(w.param or 0.0, w.values),
}


def _group_key(labels: Mapping[str, str], grouping: Grouping | None) -> _Key:
    """The labels a series keeps under `by`/`without` (all of them without a grouping)."""
    kept: Iterable[tuple[str, str]]
    if grouping is None:
        kept = labels.items()
    elif grouping.without:
        kept = ((name, value) for name, value in labels.items() if name not in grouping.labels)
    else:
        kept = ((name, value) for name, value in labels.items() if name in grouping.labels)
    return tuple(sorted((name, value) for name, value in kept if value != ""))


def _aggregate(expr: VectorAggregation, vector: dict[_Key, float]) -> dict[_Key, float]:
    """One step of a vector aggregation; topk/bottomk keep the chosen series' own labels."""
    groups: dict[_Key, list[tuple[_Key, float]]] = {}
    grouping = expr.grouping or Grouping(())
    for key, value in vector.items():
        groups.setdefault(_group_key(dict(key), grouping), []).append((key, value))
    if expr.op in ("topk", "bottomk"):
        chosen: dict[_Key, float] = {}
        largest = expr.op == "topk"
        for members in groups.values():
            members.sort(key=lambda member: (-member[1] if largest else member[1], member[0]))
            chosen.update(members[: expr.param or 0])
        return chosen
    combine = _VECTOR_FUNCTIONS[expr.op]
    return {group: combine([value for _, value in members]) for group, members in groups.items()}


_VECTOR_FUNCTIONS: Final[Mapping[str, Callable[[list[float]], float]]] = {
    "sum": math.fsum,
    "avg": statistics.fmean,
    "min": min,
    "max": max,
    "count": lambda values: float(len(values)),
}


def _binary(op: str, left: _Vector | _Scalars, right: _Vector | _Scalars) -> _Vector | _Scalars:
    """Arithmetic per step: scalar with scalar, each series with a scalar, or series with equal labels."""
    if isinstance(left, _Scalars):
        if isinstance(right, _Scalars):
            return _Scalars([_arithmetic(op, a, b) for a, b in zip(left.values, right.values, strict=True)])
        return [
            {key: _arithmetic(op, a, value) for key, value in vector.items()}
            for a, vector in zip(left.values, right, strict=True)
        ]
    if isinstance(right, _Scalars):
        return [
            {key: _arithmetic(op, value, b) for key, value in vector.items()}
            for vector, b in zip(left, right.values, strict=True)
        ]
    return [
        {key: _arithmetic(op, value, other[key]) for key, value in vector.items() if key in other}
        for vector, other in zip(left, right, strict=True)
    ]


def _arithmetic(op: str, a: float, b: float) -> float:
    """IEEE arithmetic as Go does it: x/0 is ±Inf (NaN for 0/0), x%0 is NaN, overflow is Inf."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
        return a / b
    if op == "%":
        return math.nan if b == 0 else math.fmod(a, b)
    try:
        return math.pow(a, b)
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan
