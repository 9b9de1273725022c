"""The one per-event verifier a backend runs on index candidates, whatever language the pipeline came from.

The index narrows by `Pipeline.prefilter`; everything after it (parsers, label filters, drop/keep,
line_format, ...) needs the event itself.  A backend calls `build_verifier` once per query and the
returned function per candidate, so LogQL stages are honoured exactly as `logql_eval` defines
them and JSON pipeline stages as `Pipeline.matcher` does, and no engine learns either language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import msgspec

from logtraced.model import Event
from logtraced.query.evaluate import Stemmer
from logtraced.query.logql_eval import build_log_pipeline
from logtraced.query.pipeline import Aggregate, Filter, Pipeline

# A verified candidate: the event as the query shows it (LogQL may rewrite its line) and its labels.
Verified: TypeAlias = tuple[Event, dict[str, str]]
Verifier: TypeAlias = Callable[[Event], Verified | None]


def needs_stages(pipeline: Pipeline) -> bool:
    """Whether any stage after the prefilter must see the event (a final JSON `aggregate` needs none)."""
    stages = pipeline.stages
    first_other = next((at for at, stage in enumerate(stages) if not isinstance(stage, Filter)), len(stages))
    return any(not isinstance(stage, Aggregate) for stage in stages[first_other:])


def build_verifier(pipeline: Pipeline, *, stem: Stemmer | None = None) -> Verifier:
    """Runs every stage on a candidate.

    LogQL rows carry every label of the line (stream labels included, after drop/keep), and the
    line after `line_format`/`unpack`; JSON pipeline rows carry the parsed labels only.
    """
    if pipeline.logql:
        run = build_log_pipeline(pipeline, stem=stem)

        def logql(event: Event) -> Verified | None:
            found = run(event)
            if found is None:
                return None
            shown = event if found.line == event.message else msgspec.structs.replace(event, message=found.line)
            return shown, found.labels

        return logql
    matcher = pipeline.matcher(stem=stem)

    def json_pipeline(event: Event) -> Verified | None:
        labels = matcher(event)
        return None if labels is None else (event, labels)

    return json_pipeline
