"""Time values from requests (relative, ISO-8601, epoch in any unit) become nanoseconds with an injected clock."""

from __future__ import annotations

import pytest

from logtraced.errors import QueryError
from logtraced.query.timerange import TimeRange, parse_instant, parse_time, resolve_range, rfc3339_ns

S = 1_000_000_000
NOW = 1_710_496_800 * S  # 2024-03-15T10:00:00Z
T = 1_710_496_800 * S


class TestRelative:
    """`now`, `now-1h` and bare offsets are relative to the clock passed in."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("now", NOW),
            ("NOW", NOW),
            (" now ", NOW),
            ("-15m", NOW - 15 * 60 * S),
            ("-24h", NOW - 24 * 3600 * S),
            ("-7d", NOW - 7 * 86400 * S),
            ("-30s", NOW - 30 * S),
            ("-500ms", NOW - S // 2),
            ("-2w", NOW - 14 * 86400 * S),
            ("now-1h", NOW - 3600 * S),
            ("now - 1h", NOW - 3600 * S),
            ("now+5m", NOW + 300 * S),
            ("+5m", NOW + 300 * S),
            ("-1H", NOW - 3600 * S),
        ],
    )
    def test_relative(self, value: str, expected: int) -> None:
        assert parse_time(value, now_ns=NOW) == expected


class TestAbsolute:
    """ISO-8601 and epoch numbers by Loki's width rule (plus ms and us widths) are absolute."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2024-03-15T10:00:00Z", T),
            ("2024-03-15T10:00:00z", T),
            ("2024-03-15 10:00:00", T),
            ("2024-03-15T10:00:00", T),
            ("2024-03-15T13:00:00+03:00", T),
            ("2024-03-15T07:00:00-0300", T),
            ("2024-03-15T13:00:00+03", T),
            ("2024-03-15T10:00Z", T),
            ("2024-03-15", T - 10 * 3600 * S),
            ("2024-03-15T10:00:00.123456789Z", T + 123_456_789),
            ("2024-03-15T10:00:00.5Z", T + S // 2),
            ("2024-03-15T10:00:00,25Z", T + S // 4),
            ("2024-03-15T10:00:00.1234567891Z", T + 123_456_789),
            ("1710496800", T),
            ("0", 0),
            ("1710496800123", T + 123_000_000),
            ("1710496800123456", T + 123_456_000),
            ("1710496800123456789", T + 123_456_789),
            ("1710496800.5", T + S // 2),
            ("1710496800.123456789", T + 123_456_789),
            (1710496800, T),
            (1710496800000, T),
            (1710496800123456789, T + 123_456_789),
            (1710496800.25, T + S // 4),
        ],
    )
    def test_absolute(self, value: str | int | float, expected: int) -> None:
        assert parse_instant(value) == expected
        assert parse_time(value, now_ns=0) == expected


class TestErrors:
    """Anything else is QueryError(code="invalid_time")."""

    @pytest.mark.parametrize(
        "value",
        [
            "yesterday",
            "-15",
            "15m",
            "",
            "now-",
            "now-1y",
            "2024-02-30",
            "2024-03-15T25:00:00Z",
            "1e10",
            "nan",
            ".",
            True,
            -5,
        ],
    )
    def test_invalid(self, value: str | int) -> None:
        with pytest.raises(QueryError) as caught:
            parse_time(value, now_ns=NOW)
        assert caught.value.code == "invalid_time"

    @pytest.mark.parametrize("value", ["99999999999999999999", "2300-01-01T00:00:00Z", "1600-01-01"])
    def test_out_of_range(self, value: str) -> None:
        with pytest.raises(QueryError, match="out of range"):
            parse_instant(value)

    def test_relative_is_not_an_instant(self) -> None:
        with pytest.raises(QueryError):
            parse_instant("-15m")


class TestRfc3339:
    """Exactly the strings the index stores as dates instead of words (checked against tantivy 0.27)."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-03-15T10:00:00Z", T),
            ("2024-03-15t10:00:00z", T),
            ("2024-03-15 10:00:00Z", T),
            ("2024-03-15_10:00:00Z", T),
            ("2024-03-15T13:00:00+03:00", T),
            ("2024-03-15T10:00:00.000000000000001Z", T),
            ("2024-03-15T10:00:00", None),
            ("2024-03-15", None),
            ("2024-03-15T10:00Z", None),
            ("2024-03-15T10:00:00.Z", None),
            ("2024-03-15T10:00:60Z", None),
            ("2024-02-30T10:00:00Z", None),
            ("2024-03-15T10:00:00-0300", None),
            ("2024-03-15T10:00:00+24:00", None),
            (" 2024-03-15T10:00:00Z", None),
            ("1600-01-01T00:00:00Z", None),
            ("2024-03-15é10:00:00Z", None),
        ],
    )
    def test_shape(self, text: str, expected: int | None) -> None:
        assert rfc3339_ns(text) == expected


class TestResolveRange:
    """A query window defaults to the lookback before now and refuses start after end."""

    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            (None, None, TimeRange(NOW - 3600 * S, NOW)),
            ("-24h", None, TimeRange(NOW - 86400 * S, NOW)),
            (None, "now-1h", TimeRange(NOW - 7200 * S, NOW - 3600 * S)),
            ("1710496000", "1710496800", TimeRange(T - 800 * S, T)),
            ("-5m", "-5m", TimeRange(NOW - 300 * S, NOW - 300 * S)),
        ],
    )
    def test_window(self, start: str | None, end: str | None, expected: TimeRange) -> None:
        assert resolve_range(start, end, now_ns=NOW, default_lookback_ns=3600 * S) == expected

    def test_start_after_end(self) -> None:
        with pytest.raises(QueryError, match="after end") as caught:
            resolve_range("now", "-1h", now_ns=NOW, default_lookback_ns=3600 * S)
        assert caught.value.code == "invalid_time"
