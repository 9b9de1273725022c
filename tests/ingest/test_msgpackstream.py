"""Tests for finding msgpack value ends in a growing buffer, and for the lenient decoder."""

from __future__ import annotations

import random
import struct
from typing import Any

import msgspec
import pytest

from logtraced.ingest.msgpackstream import (
    MAX_DEPTH,
    TOO_DEEP,
    MalformedMsgpack,
    ValueScanner,
    array_items,
    blob_payload,
    count_values,
    decode_lenient,
    json_safe,
    skip,
    value_ends,
)

Ext = msgspec.msgpack.Ext
encode = msgspec.msgpack.encode

# One value of every msgpack format family, each length class included.
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    127,
    -32,
    200,
    -100,
    70_000,
    -70_000,
    2**40,
    -(2**40),
    2**64 - 1,
    1.5,
    "",
    "x" * 31,
    "y" * 200,
    "z" * 70_000,
    b"",
    b"b" * 300,
    b"c" * 70_000,
    Ext(0, b"12345678"),
    Ext(1, b"1"),
    Ext(2, b"12"),
    Ext(3, b"1234"),
    Ext(4, b"1" * 16),
    Ext(5, b"abc"),
    Ext(6, b"a" * 300),
    Ext(7, b"a" * 70_000),
    [],
    list(range(15)),
    list(range(300)),
    list(range(70_000)),
    {},
    {str(i): i for i in range(15)},
    {str(i): i for i in range(300)},
    {"nested": [{"a": [1, {"b": None}]}]},
]


def same(left: Any, right: Any) -> bool:
    """Equality that compares Ext by content (msgspec's Ext compares by identity)."""
    if type(left) is Ext:
        return type(right) is Ext and (left.code, bytes(left.data)) == (right.code, bytes(right.data))
    if type(left) is list:
        return type(right) is list and len(left) == len(right) and all(map(same, left, right))
    if type(left) is dict:
        return type(right) is dict and left.keys() == right.keys() and all(same(v, right[k]) for k, v in left.items())
    return bool(left == right)


class TestScanner:
    def test_every_value_kind_is_found_whole(self) -> None:
        for value in VALUES:
            data = encode(value)
            assert ValueScanner().scan(data + b"\xc0") == len(data), value
            assert skip(data + b"\xc0") == len(data)

    def test_every_prefix_is_incomplete_then_the_rest_completes_it(self) -> None:
        data = encode(VALUES[:30] + [{"k": VALUES[:10]}])
        for cut in [*range(0, 400), *range(400, len(data), 1013)]:
            scanner = ValueScanner()
            assert scanner.scan(data[:cut]) == -1, cut
            assert scanner.scan(data + b"\x01") == len(data), cut

    def test_byte_by_byte_in_a_growing_buffer(self) -> None:
        data = encode([VALUES[:25], {"k": VALUES[:12]}])
        scanner = ValueScanner()
        buffer = bytearray()
        for index, byte in enumerate(data):
            buffer.append(byte)
            assert (scanner.scan(buffer) == len(data)) == (index == len(data) - 1)

    def test_scan_at_an_offset(self) -> None:
        data = b"\x01\x02" + encode(["a", {"b": 1}])
        assert ValueScanner().scan(data, 2) == len(data) - 2

    def test_known_length_grows_with_a_blob_header(self) -> None:
        scanner = ValueScanner()
        assert scanner.scan(b"\x92\xa1t\xc6" + struct.pack(">I", 10_000)) == -1
        assert scanner.known_length == 1 + 2 + 5 + 10_000

    def test_nesting_deeper_than_c_can_go(self) -> None:
        deep = b"\x91" * 5000 + b"\xc0"
        assert skip(deep) == len(deep)
        scanner = ValueScanner()
        assert scanner.scan(deep[:3000]) == -1
        assert scanner.scan(deep) == len(deep)
        assert count_values(deep * 3) == 3

    @pytest.mark.parametrize("data", [b"\xc1", b"\x92\x01\xc1", b"\x81\xc1\x01"])
    def test_invalid_bytes(self, data: bytes) -> None:
        with pytest.raises(MalformedMsgpack):
            ValueScanner().scan(data)
        with pytest.raises(MalformedMsgpack):
            skip(data)

    def test_invalid_byte_after_a_run_of_complete_values(self) -> None:
        entries = b"".join(encode([i, {"k": "v"}]) for i in range(50))
        scanner = ValueScanner()
        assert scanner.scan(b"\xdc\x00\x64" + entries) == -1  # an array of 100, 50 of them here
        with pytest.raises(MalformedMsgpack):
            scanner.scan(b"\xdc\x00\x64" + entries + entries[:20] + b"\xc1" * 30)

    def test_many_small_values_in_reads_of_every_size(self) -> None:
        data = encode(["tag", [[i, {"log": "x" * (i % 13)}] for i in range(2000)], {"chunk": "c"}])
        for size in (1, 5, 64, 999, 4096, 65536):
            scanner, buffer, found = ValueScanner(), bytearray(), -1
            for pos in range(0, len(data), size):
                buffer += data[pos : pos + size]
                found = scanner.scan(buffer)
                assert found in (-1, len(data))
            assert found == len(data), size

    def test_random_bytes_never_raise_anything_else(self) -> None:
        rng = random.Random(3)
        for _ in range(3000):
            data = rng.randbytes(rng.randrange(1, 64))
            try:
                ValueScanner().scan(data)
            except MalformedMsgpack:
                pass


class TestHelpers:
    @pytest.mark.parametrize("guess_breaker", [0, 1, 255, 256, 257, 1000, 5000])
    def test_count_values(self, guess_breaker: int) -> None:
        data = b"".join(encode([i, {"v": "x" * (i % 7)}]) for i in range(guess_breaker))
        assert count_values(data) == guess_breaker
        assert len(value_ends(data)) == guess_breaker

    def test_count_values_refuses_a_cut_last_value(self) -> None:
        with pytest.raises(MalformedMsgpack):
            count_values(encode([1, 2]) + encode([3, 4])[:-1])
        with pytest.raises(MalformedMsgpack):
            count_values(b"\x01\xc1")

    def test_array_items(self) -> None:
        data = encode(["tag", [1, 2], {"a": 1}])
        items = array_items(data)
        assert items is not None
        assert [msgspec.msgpack.decode(data[a:b]) for a, b in items] == ["tag", [1, 2], {"a": 1}]
        assert array_items(encode({"a": 1})) is None
        with pytest.raises(MalformedMsgpack):
            array_items(encode([1, 2]) + b"\x00")

    def test_blob_payload(self) -> None:
        assert blob_payload(encode(b"\x00\x01")) == b"\x00\x01"
        assert blob_payload(encode("text")) == b"text"
        assert blob_payload(encode([1])) is None
        with pytest.raises(MalformedMsgpack):
            blob_payload(encode("text")[:-1])


class TestLenient:
    def test_agrees_with_msgspec_on_valid_input(self) -> None:
        data = encode(VALUES)
        assert same(decode_lenient(data), msgspec.msgpack.decode(data))

    def test_strings_that_are_not_utf8(self) -> None:
        assert decode_lenient(b"\xa2\xff\x41") == "\ufffdA"
        assert decode_lenient(b"\xa2\xff\x41", raw_strings=True) == b"\xffA"

    def test_unhashable_keys(self) -> None:
        assert decode_lenient(b"\x81\x92\x01\x02\x03") == {(1, 2): 3}
        assert decode_lenient(b"\x81" + encode(Ext(1, b"x")) + b"\x03") == {(1, b"x"): 3}

    def test_depth_is_bounded(self) -> None:
        value = decode_lenient(b"\x91" * 500 + b"\xc0")
        depth = 0
        while type(value) is list:
            value = value[0]
            depth += 1
        assert (depth, value) == (MAX_DEPTH, TOO_DEEP)

    @pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\x01\x02", b"\xa5abc"])
    def test_malformed(self, data: bytes) -> None:
        with pytest.raises(MalformedMsgpack):
            decode_lenient(data)


class TestJsonSafe:
    def test_storable_output(self) -> None:
        value = {
            1: b"\xff",
            None: Ext(0, struct.pack(">II", 1, 2)),
            (1, 2): [Ext(9, b"\x00")],
            "plain": {"k": [1, 2.5, "s", True, None]},
        }
        safe = json_safe(value)
        assert safe == {
            "1": "\\xff",
            "null": "1970-01-01T00:00:01.000000002Z",
            "[1,2]": [{"ext_type": 9, "data": "AA=="}],
            "plain": {"k": [1, 2.5, "s", True, None]},
        }
        msgspec.json.encode(safe)
