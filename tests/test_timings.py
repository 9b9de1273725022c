"""The duration histogram /metrics exposes: buckets are cumulative, bounds inclusive, +Inf counts everything."""

from __future__ import annotations

from logtraced.timings import Timings


def test_cumulative_buckets_count_each_observation_once() -> None:
    timings = Timings((0.01, 0.1, 1.0))
    for seconds in (0.001, 0.01, 0.05, 0.5, 7.0):
        timings.observe(seconds)
    assert timings.cumulative() == [("0.01", 2), ("0.1", 3), ("1.0", 4), ("+Inf", 5)]
    assert timings.count == 5 and round(timings.total, 6) == 7.561


def test_empty_histogram_has_every_bucket_at_zero() -> None:
    assert Timings((0.5,)).cumulative() == [("0.5", 0), ("+Inf", 0)]
