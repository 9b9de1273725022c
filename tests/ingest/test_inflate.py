"""Bounded inflate: exact output within the limit, a refusal past it, concatenated gzip members only when asked."""

from __future__ import annotations

import gzip
import zlib

import pytest

from logtraced.ingest.inflate import GZIP_WBITS, InflateError, inflate


def test_zlib_within_the_limit() -> None:
    assert inflate(zlib.compress(b"x" * 1000), 1000) == b"x" * 1000


def test_a_bomb_stops_at_the_limit() -> None:
    with pytest.raises(InflateError) as refused:
        inflate(zlib.compress(b"\0" * 50_000_000), 1_000_000)
    assert refused.value.too_large


def test_gzip_members_are_joined_only_when_asked() -> None:
    data = gzip.compress(b"first ") + gzip.compress(b"second")
    assert inflate(data, 100, wbits=GZIP_WBITS, members=True) == b"first second"
    assert inflate(data, 100, wbits=GZIP_WBITS) == b"first "


@pytest.mark.parametrize("data", [b"not compressed at all", zlib.compress(b"y" * 500)[:-6]])
def test_garbage_and_truncation_are_refused_as_malformed(data: bytes) -> None:
    with pytest.raises(InflateError) as refused:
        inflate(data, 10_000)
    assert not refused.value.too_large
