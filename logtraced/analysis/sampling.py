"""Bounded reads for analysis: the newest matching events of a period, read page by page through a tenant view.

Mining reads documents, so its cost follows the number of events read, never the size of the
store: each read stops at a maximum and says whether more matched.  Reads go through the
caller's `TenantView` like every search, so analysis cannot see another tenant's events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from logtraced.model import Event
from logtraced.query.pipeline import Pipeline
from logtraced.storage.backend import NO_DEADLINE, SearchRequest, TenantView

# Events per search page: every page restarts the backend's ordered reading from a small chunk,
# so one page of the whole bound (100 000 by default) costs a fraction of ten pages of 10 000.
PAGE_EVENTS: Final = 100_000


@dataclass
class Sample:
    """Events read from a period; `covered_ns` is the span they stand for (see `newest_events`)."""

    events: list[Event]
    sampled: bool  # more events matched than were read
    covered_ns: int


def newest_events(
    view: TenantView,
    pipeline: Pipeline,
    start_ns: int,
    end_ns: int,
    max_events: int,
    *,
    deadline: float = NO_DEADLINE,
    fields: frozenset[str] | None = None,
) -> Sample:
    """Up to `max_events` matching events of [start_ns, end_ns), newest first, carrying `fields` (None: all).

    When more matched, the events read cover only the end of the period, from the oldest one read:
    rates computed from them divide by that span, not by the whole period.
    """
    events: list[Event] = []
    after: bytes | None = None
    more = True
    while more and len(events) < max_events:
        request = SearchRequest(
            start_ns,
            end_ns,
            pipeline,
            min(PAGE_EVENTS, max_events - len(events)),
            after=after,
            deadline=deadline,
            fields=fields,
        )
        page = view.search(request)
        events.extend(row.event for row in page.rows)
        more, after = page.more and page.cursor is not None, page.cursor
    if not more or not events:
        return Sample(events, False, end_ns - start_ns)
    return Sample(events, True, max(end_ns - events[-1].timestamp, 1))


def spread_events(
    view: TenantView,
    pipeline: Pipeline,
    start_ns: int,
    end_ns: int,
    max_events: int,
    slices: int,
    *,
    deadline: float = NO_DEADLINE,
    fields: frozenset[str] | None = None,
) -> Sample:
    """Up to `max_events` events spread over `slices` equal parts of the period, the newest of each.

    A baseline read newest-first would only describe its last minutes; a share per slice keeps a
    day's baseline a day's, whatever the traffic shape.
    """
    slices = max(1, min(slices, max_events, end_ns - start_ns))
    share = max_events // slices
    events: list[Event] = []
    sampled, covered = False, 0
    for part in range(slices):
        low = start_ns + (end_ns - start_ns) * part // slices
        high = start_ns + (end_ns - start_ns) * (part + 1) // slices
        sample = newest_events(view, pipeline, low, high, share, deadline=deadline, fields=fields)
        events.extend(sample.events)
        sampled = sampled or sample.sampled
        covered += sample.covered_ns
    return Sample(events, sampled, covered)
