"""Fixed-bucket duration histograms that the daemon's parts fill and /metrics reads at scrape time.

A leaf like model.py: the ingest pipeline (WAL fsyncs) and the writer link (indexer commits)
record here without depending on the Prometheus client, and api/metrics.py turns a snapshot
into a histogram family.  Observations cost one bisect and two additions.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Final

# From a cached fsync (well under a millisecond) to a disk or an indexer stalling for seconds.
DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Timings:
    """How many observations fell at or under each upper bound (not cumulative), their count and sum."""

    def __init__(self, bounds: Sequence[float] = DURATION_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' `le` buckets: (upper bound as text, observations at or under it), ending with +Inf."""
        running = 0
        buckets: list[tuple[str, int]] = []
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets
