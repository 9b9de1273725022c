"""The JSON pipeline (`{"pipeline": [...]}`): parsed into ordered stages over the query AST, and run.

Stages keep their order because a `where` after a `parse` stage may test labels that only exist once
the parse has run.  Only the filters before the first parse (`Pipeline.prefilter`, the whole query
when nothing is parsed) can be narrowed by the index; the backend runs `verify.build_verifier` on
each candidate for the rest.  Label names that are event fields (`level`, `service`, ...) stay the
event's own; other names are read from labels before attributes.  Operators:
`$eq $neq $contains $notcontains $regex $notregex $gt $lt $gte $lte` take `[field, value]`;
`$and` and `$or` take a list of queries, `$not` a list whose AND it negates, `$kql` KQL text.  A query object with
several operators means their AND.  `body` and `message` name the same field.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import msgspec

from logtraced.errors import QueryError
from logtraced.query.ast import (
    EVENT_FIELDS,
    KEYWORD_FIELDS,
    MAX_DEPTH,
    MESSAGE,
    RANGE_OPS,
    TIMESTAMP,
    Node,
    Not,
    Op,
    Scalar,
    and_,
    canonical_field,
    compare,
    or_,
)
from logtraced.query.evaluate import EventLike, Stemmer, as_number, build_matcher, compile_regex
from logtraced.query.kql import parse_kql
from logtraced.query.logql_stages import LogqlStage
from logtraced.query.timerange import parse_instant

_COMPARISONS: dict[str, tuple[Op, bool]] = {
    "$eq": (Op.EQ, False),
    "$neq": (Op.EQ, True),
    "$contains": (Op.CONTAINS, False),
    "$notcontains": (Op.CONTAINS, True),
    "$regex": (Op.REGEX, False),
    "$notregex": (Op.REGEX, True),
    "$gt": (Op.GT, False),
    "$gte": (Op.GTE, False),
    "$lt": (Op.LT, False),
    "$lte": (Op.LTE, False),
}
_STAGE_TYPES = ("filter", "where", "parse", "aggregate")
EXTRACTED_SUFFIX = "_extracted"
AGGREGATE_FUNCTIONS = ("count", "rate")
KQL_OPERATOR = "$kql"


class ParserKind(enum.Enum):
    """How a parse stage turns a field's text into labels."""

    JSON = "json"
    LOGFMT = "logfmt"
    REGEXP = "regexp"


@dataclasses.dataclass(frozen=True)
class Filter:
    """A `filter` or `where` stage: events the node does not match stop here."""

    node: Node


@dataclasses.dataclass(frozen=True)
class Parse:
    """A `parse` stage: labels extracted from one field's text for later stages to test.

    `labels` maps each label name to where its value comes from (a dotted path into the JSON, a
    logfmt key or a regex group); empty means every key or named group.
    """

    parser: ParserKind
    field: str
    labels: tuple[tuple[str, str], ...] = ()
    pattern: str | None = None
    regex: Any = dataclasses.field(default=None, compare=False, repr=False)

    def extract(self, text: str) -> dict[str, str]:
        """The labels found in `text`; text the parser cannot read yields no labels.

        A label named like an event field (`env`, `org`, `service`, ...) is renamed
        `<name>_extracted`, as Loki does: a log line must not be able to present itself as another
        environment, organisation or service, and later stages can still test it by that name.
        """
        if self.parser is ParserKind.JSON:
            found = _select(_json_values(text), self.labels, nested=True)
        elif self.parser is ParserKind.LOGFMT:
            found = _select(_logfmt_values(text), self.labels, nested=False)
        else:
            match = self.regex.search(text)
            groups = {} if match is None else {k: v for k, v in match.groupdict().items() if v is not None}
            found = _select(groups, self.labels, nested=False)
        return {f"{name}{EXTRACTED_SUFFIX}" if name in EVENT_FIELDS else name: value for name, value in found.items()}


@dataclasses.dataclass(frozen=True)
class Aggregate:
    """A final `aggregate` stage: matching events counted per `step` (and per `by` labels), as a matrix.

    `count` is the number of events in each step, `rate` that number per second.
    """

    function: str
    by: tuple[str, ...] = ()


# LogQL pipelines add their own stages; `matcher` runs the JSON pipeline's, logql_eval.py runs all of them.
Stage: TypeAlias = Filter | Parse | Aggregate | LogqlStage


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """The stages of one pipeline query, in request order.

    `logql` says whose semantics the stages have: LogQL's parsers mark errors, sanitise names and
    return every label of the line (`query/verify.py` runs them with `logql_eval`), the JSON
    pipeline's return only the parsed labels.
    """

    stages: tuple[Stage, ...]
    logql: bool = False

    @property
    def aggregate(self) -> Aggregate | None:
        """The final aggregation, when the pipeline ends in one."""
        last = self.stages[-1] if self.stages else None
        return last if isinstance(last, Aggregate) else None

    @property
    def prefilter(self) -> Node:
        """The AND of the filters before the first parse: what the index may narrow by."""
        nodes: list[Node] = []
        for stage in self.stages:
            if not isinstance(stage, Filter):
                break
            nodes.append(stage.node)
        return and_(nodes)

    def matcher(self, *, stem: Stemmer | None = None) -> Callable[[EventLike], dict[str, str] | None]:
        """Runs every stage on an event: its parsed labels if it passes them all, else None."""
        steps = [
            (stage, build_matcher(stage.node, stem=stem) if isinstance(stage, Filter) else None)
            for stage in self.stages
            if not isinstance(stage, Aggregate)
        ]

        def run(event: EventLike) -> dict[str, str] | None:
            labels: dict[str, str] = {}
            for stage, test in steps:
                if test is not None:
                    if not test(event, labels):
                        return None
                elif isinstance(stage, Parse):
                    labels.update(stage.extract(_source_text(stage.field, event, labels)))
            return labels

        return run


def parse_pipeline(body: bytes | str | Mapping[str, Any]) -> Pipeline:
    """The pipeline of a request body (raw JSON or already decoded); QueryError if malformed."""
    decoded = _decode(body) if isinstance(body, (bytes, str)) else body
    if not isinstance(decoded, Mapping) or "pipeline" not in decoded:
        raise _error('the body must be an object with a "pipeline" list')
    stages = decoded["pipeline"]
    if not isinstance(stages, list):
        raise _error('"pipeline" must be a list of stages')
    parsed = tuple(_stage(index, stage) for index, stage in enumerate(stages))
    for index, stage in enumerate(parsed[:-1]):
        if isinstance(stage, Aggregate):
            raise _error(f"stage {index} (aggregate): an aggregate stage must be the last stage")
    return Pipeline(parsed)


def _decode(body: bytes | str) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise _error(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _error(f"the body nests JSON deeper than a pipeline may ({MAX_DEPTH} levels)") from None


def _stage(index: int, raw: Any) -> Stage:
    if not isinstance(raw, Mapping):
        raise _error(f'stage {index}: a stage must be an object with a "type"')
    kind = raw.get("type")
    if kind not in _STAGE_TYPES:
        raise _error(f"stage {index}: unknown stage type {kind!r}; expected filter, where, parse or aggregate")
    where = f"stage {index} ({kind})"
    if kind == "parse":
        return _parse_stage(where, raw)
    if kind == "aggregate":
        return _aggregate_stage(where, raw)
    if "query" not in raw:
        raise _error(f'{where}: missing "query"')
    return Filter(_query(where, raw["query"], 0))


def _query(where: str, raw: Any, depth: int) -> Node:
    """One query object; several operators in it are ANDed."""
    if not isinstance(raw, Mapping) or not raw:
        raise _error(f"{where}: a query must be an object with one operator such as $eq or $and, got {raw!r}")
    if depth >= MAX_DEPTH:
        raise _error(f"{where}: $and/$or/$not nest deeper than {MAX_DEPTH} levels")
    return and_(_operator(where, name, args, depth) for name, args in raw.items())


def _operator(where: str, name: str, args: Any, depth: int) -> Node:
    if name == KQL_OPERATOR:
        # KQL text inside a pipeline, so a KQL search and its per-step counts parse to the same tree.
        if not isinstance(args, str):
            raise _error(f"{where}: operator {KQL_OPERATOR} takes KQL text, got {args!r}")
        return parse_kql(args)
    if name in ("$and", "$or", "$not"):
        if not isinstance(args, list) or not args:
            raise _error(f"{where}: operator {name} takes a non-empty list of queries")
        children = [_query(where, child, depth + 1) for child in args]
        if name == "$or":
            return or_(children)
        return and_(children) if name == "$and" else Not(and_(children))
    if name not in _COMPARISONS:
        known = ", ".join([*_COMPARISONS, "$and", "$or", "$not", KQL_OPERATOR])
        raise _error(f"{where}: unknown operator {name!r}; expected one of {known}")
    if not isinstance(args, list) or len(args) != 2:
        got = len(args) if isinstance(args, list) else type(args).__name__
        raise _error(f"{where}: operator {name} takes exactly 2 arguments [field, value], got {got}")
    op, negated = _COMPARISONS[name]
    node = _comparison(f"{where}: operator {name}", op, args[0], args[1])
    return Not(node) if negated else node


def _comparison(where: str, op: Op, raw_field: Any, raw_value: Any) -> Node:
    if not isinstance(raw_field, str) or not raw_field:
        raise _error(f"{where}: the field must be a non-empty string, got {raw_field!r}")
    if isinstance(raw_value, (list, dict)) or raw_value is None:
        raise _error(f"{where}: the value must be a string, number or boolean, got {raw_value!r}")
    field = canonical_field(raw_field)
    value: Scalar = raw_value
    if field == TIMESTAMP and op not in (Op.CONTAINS, Op.REGEX):
        value = _instant(where, raw_value)
    elif op in RANGE_OPS and (isinstance(raw_value, bool) or as_number(raw_value) is None):
        raise _error(f"{where}: needs a number, got {raw_value!r}")
    elif op in (Op.CONTAINS, Op.REGEX) and not isinstance(raw_value, str):
        value = msgspec.json.encode(raw_value).decode()
    if op is Op.REGEX:
        _check_regex(where, str(value))
    return compare(op, field, value)


def _parse_stage(where: str, raw: Mapping[str, Any]) -> Parse:
    parser_name = raw.get("parser")
    try:
        parser = ParserKind(parser_name)
    except ValueError:
        raise _error(f"{where}: unknown parser {parser_name!r}; expected json, logfmt or regexp") from None
    source = raw.get("field", MESSAGE)
    if not isinstance(source, str) or not source:
        raise _error(f"{where}: field must be a non-empty string, got {source!r}")
    labels = _labels(where, raw.get("labels"))
    if parser is not ParserKind.REGEXP:
        return Parse(parser, canonical_field(source), labels)
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise _error(f'{where}: parser regexp needs a "pattern" string with named groups (?P<name>...)')
    regex = _check_regex(where, pattern)
    if not regex.groupindex:
        raise _error(f"{where}: pattern {pattern!r} has no named groups (?P<name>...)")
    return Parse(parser, canonical_field(source), labels, pattern, regex)


def _aggregate_stage(where: str, raw: Mapping[str, Any]) -> Aggregate:
    function = raw.get("function", "count")
    if function not in AGGREGATE_FUNCTIONS:
        raise _error(f"{where}: unknown function {function!r}; expected one of {', '.join(AGGREGATE_FUNCTIONS)}")
    by = raw.get("by", [])
    if not isinstance(by, list) or not all(isinstance(name, str) and name for name in by):
        raise _error(f'{where}: "by" must be a list of label names, got {by!r}')
    return Aggregate(function, tuple(by))


def _labels(where: str, raw: Any) -> tuple[tuple[str, str], ...]:
    """`{"name": null}` keeps the name as its source; `{"name": "a.b"}` names another source."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise _error(f"{where}: labels must be an object of name -> null or source path")
    pairs: list[tuple[str, str]] = []
    for name, source in raw.items():
        if not name or not (source is None or (isinstance(source, str) and source)):
            raise _error(f"{where}: label {name!r} must map to null or a non-empty string, got {source!r}")
        pairs.append((name, name if source is None else source))
    return tuple(pairs)


def _check_regex(where: str, pattern: str) -> Any:
    try:
        return compile_regex(pattern)
    except QueryError as exc:
        raise QueryError(f"{where}: {exc.message}", code="invalid_regex") from None


def _instant(where: str, value: Any) -> int:
    try:
        return parse_instant(value)
    except QueryError:
        raise _error(f"{where}: invalid timestamp {value!r}; expected ISO-8601 or epoch seconds/ms/ns") from None


def _error(message: str) -> QueryError:
    """Every malformed-pipeline error carries the same code, so the API maps them to one 400."""
    return QueryError(message, code="invalid_pipeline")


# -- label extraction -------------------------------------------------------------------------


def _source_text(field: str, event: EventLike, labels: Mapping[str, str]) -> str:
    """The text a parse stage reads: the message, an earlier label or an attribute string."""
    if field == MESSAGE:
        return event.message
    if field in KEYWORD_FIELDS:
        keyword = getattr(event, field)
        return keyword if isinstance(keyword, str) else ""
    if field in labels:
        return labels[field]
    value: Any = event.attributes
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else ""


def _select(found: Mapping[str, Any], labels: tuple[tuple[str, str], ...], *, nested: bool) -> dict[str, str]:
    """Every extracted value as a label, or only the requested ones under their label names."""
    if not labels:
        return {name: text for name, value in _flatten(found) if (text := _label_text(value)) is not None}
    selected: dict[str, str] = {}
    for name, source in labels:
        text = _label_text(_lookup(found, source) if nested else found.get(source))
        if text is not None:
            selected[name] = text
    return selected


def _json_values(text: str) -> Mapping[str, Any]:
    try:
        decoded = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _logfmt_values(text: str) -> dict[str, str]:
    """`key=value key2="quoted \\" value" flag` pairs; a bare key has an empty value."""
    values: dict[str, str] = {}
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        start = pos
        while pos < end and not text[pos].isspace() and text[pos] != "=":
            pos += 1
        key = text[start:pos]
        value = ""
        if pos < end and text[pos] == "=":
            value, pos = _logfmt_value(text, pos + 1)
        if key:
            values[key] = value
    return values


def _logfmt_value(text: str, pos: int) -> tuple[str, int]:
    if pos < len(text) and text[pos] == '"':
        chars: list[str] = []
        pos += 1
        while pos < len(text) and text[pos] != '"':
            if text[pos] == "\\" and pos + 1 < len(text):
                pos += 1
            chars.append(text[pos])
            pos += 1
        return "".join(chars), pos + 1
    start = pos
    while pos < len(text) and not text[pos].isspace():
        pos += 1
    return text[start:pos], pos


def _lookup(found: Mapping[str, Any], path: str) -> Any:
    """A dotted path into decoded JSON (`a.b`, `items.0`), or a key that itself contains dots."""
    if path in found:
        return found[path]
    value: Any = found
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _flatten(found: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested objects become `outer_inner` names, as Loki's json parser names them."""
    pairs: list[tuple[str, Any]] = []
    for key, value in found.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            pairs.extend(_flatten(value, f"{name}_"))
        else:
            pairs.append((name, value))
    return pairs


def _label_text(value: Any) -> str | None:
    """Labels are strings: JSON scalars and arrays keep their JSON spelling; null is no label."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()
