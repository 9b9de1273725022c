"""Exact checks behind a sampled baseline: did a pattern the sample never saw occur in the whole baseline, how often.

A baseline read as a sample says which patterns were there and at what rate, but a pattern can
occur outside the events read.  Before such a pattern is called new, the whole baseline period is
searched for the events holding every literal word of the pattern (an index lookup, through the
caller's tenant view like any search), and the messages found are fitted to the pattern with the
rule the comparison uses (`patterns.fits`).  One fitting event anywhere in the baseline and the
pattern is not new; its events there are then counted exactly, so its rate compares exactly too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from logtraced.analysis.patterns import WILDCARD, fits
from logtraced.query.ast import MESSAGE, Compare, Op
from logtraced.query.evaluate import words
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import NO_DEADLINE, SearchRequest, TenantView

# Candidates (events holding the pattern's words) read per search page.
PAGE_EVENTS: Final = 1000
# The most candidates one check reads.  Events holding every word of a pattern without fitting it
# are rare (a pattern's words mostly occur in that pattern), so this bounds a pathological case:
# past it, a pattern none of them fits is reported new, and a fitting one has a lower-bound count.
MAX_CANDIDATES: Final = 10_000
READ_FIELDS: Final = frozenset({"timestamp", "message"})


@dataclass(frozen=True)
class Occurrences:
    """Baseline events that fit a pattern: `count` of them, exact when every candidate was read."""

    count: int
    exact: bool


def baseline_occurrences(
    view: TenantView,
    pipeline: Pipeline,
    start_ns: int,
    end_ns: int,
    template: str,
    *,
    deadline: float = NO_DEADLINE,
) -> Occurrences:
    """How many events of [start_ns, end_ns) matching `pipeline` fit `template` (see the module docstring)."""
    candidates = _with_words(pipeline, template)
    found = read = 0
    after: bytes | None = None
    while read < MAX_CANDIDATES:
        limit = min(PAGE_EVENTS, MAX_CANDIDATES - read)
        request = SearchRequest(start_ns, end_ns, candidates, limit, after=after, deadline=deadline, fields=READ_FIELDS)
        page = view.search(request)
        read += len(page.rows)
        found += sum(1 for row in page.rows if fits(template, row.event.message))
        if not page.more or page.cursor is None:
            return Occurrences(found, True)
        after = page.cursor
    return Occurrences(found, False)


def _with_words(pipeline: Pipeline, template: str) -> Pipeline:
    """`pipeline` narrowed to events whose message holds every word of the template's literal text.

    A template of no words (only `<_>` and punctuation) narrows nothing: a word query of none
    matches no event.
    """
    text = " ".join(token for token in template.replace(WILDCARD, " ").split())
    if not words(text):
        return pipeline
    return Pipeline((*pipeline.stages, Filter(Compare(Op.MATCH, MESSAGE, text))), pipeline.logql)
