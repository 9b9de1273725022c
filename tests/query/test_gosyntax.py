"""Go string literals, durations and byte sizes read as Loki reads them."""

from __future__ import annotations

import pytest

from logtraced.query.gosyntax import GoStringError, parse_bytes, parse_duration, read_go_string

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"plain" rest', ("plain", 7)),
        ('"a\\tb\\n\\\\\\"" x', ('a\tb\n\\"', 12)),
        ('"\\xc3\\xa9\\u00e9\\U0001F600\\101"', ("éé😀A", 30)),
        ('`raw \\d "q"`', ('raw \\d "q"', 12)),
    ],
)
def test_go_strings(text: str, expected: tuple[str, int]) -> None:
    assert read_go_string(text, 0) == expected


@pytest.mark.parametrize(("text", "offset"), [('"\\d"', 1), ('"open', 0), ("`open", 0), ('"\\x4"', 1), ('"a\nb"', 0)])
def test_bad_go_strings_name_the_offset(text: str, offset: int) -> None:
    with pytest.raises(GoStringError) as caught:
        read_go_string(text, 0)
    assert caught.value.offset == offset


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", 300 * S),
        ("1h30m", 5400 * S),
        ("1.5s", 1_500_000_000),
        ("250ms", 250_000_000),
        ("10us", 10_000),
        ("2d", 2 * 86400 * S),
        ("1w", 7 * 86400 * S),
        ("-1s", -S),
        ("0", 0),
        ("5", None),
        ("5x", None),
        ("", None),
        ("1.2.3s", None),
    ],
)
def test_durations(text: str, expected: int | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42.0),
        ("1KB", 1000.0),
        ("1kb", 1000.0),
        ("2KiB", 2048.0),
        ("1.5 MB", 1.5e6),
        ("1GiB", 2.0**30),
        ("1x", None),
    ],
)
def test_byte_sizes(text: str, expected: float | None) -> None:
    assert parse_bytes(text) == expected
