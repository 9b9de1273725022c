"""Tests for sans-IO framing: any mix of senders' delimiters, any chunking, bounded memory."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator, Sequence

import msgspec
import pytest

from logtraced.ingest.framing import Frame, StreamFramer, split_datagram

LARGE = 1 << 20
WHITESPACE = b" \t\r"


def framed(stream: bytes, limit: int = LARGE, sizes: Sequence[int] = ()) -> tuple[list[Frame], int]:
    """Frames and truncated count of `stream` fed in chunks of `sizes` (cycled), then closed."""
    framer = StreamFramer(limit)
    frames: list[Frame] = []
    pos = 0
    step = 0
    while pos < len(stream):
        size = sizes[step % len(sizes)] if sizes else len(stream)
        frames += framer.feed(stream[pos : pos + size])
        pos += size
        step += 1
    frames += framer.close()
    return frames, framer.truncated_count


def reference(stream: bytes, limit: int) -> tuple[list[Frame], int]:
    """The framing rules written as plainly as possible, one whole line at a time."""
    frames = []
    for line in stream.split(b"\n"):
        for piece in pieces(line[:-1] if line.endswith(b"\r") else line):
            frames.append(Frame(piece[:limit], len(piece) > limit))
    return frames, sum(frame.truncated for frame in frames)


def pieces(line: bytes) -> Iterator[bytes]:
    pos = 0
    while True:
        while pos < len(line) and line[pos] in WHITESPACE:
            pos += 1
        if pos == len(line):
            return
        end = value_end(line, pos) if line[pos] in b"{[" else None
        if end is None:
            yield line[pos:]
            return
        after = end
        while after < len(line) and line[after] in WHITESPACE:
            after += 1
        if after < len(line) and line[after] not in b"{[":
            yield line[pos:]
            return
        yield line[pos:end]
        pos = after


def value_end(line: bytes, pos: int) -> int | None:
    """Index after the bracket closing the value at `pos`: strings and escapes respected."""
    depth = 0
    in_string = escaped = False
    for index in range(pos, len(line)):
        byte = line[index : index + 1]
        if escaped:
            escaped = False
        elif in_string:
            escaped = byte == b"\\"
            in_string = byte != b'"'
        elif byte == b'"':
            in_string = True
        elif byte in (b"{", b"["):
            depth += 1
        elif byte in (b"}", b"]"):
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def generated_stream(seed: int, pieces_count: int = 400) -> bytes:
    """A seeded mix of everything senders put on one connection, edge cases over-represented."""
    rng = random.Random(seed)
    words = ["a", "}{", '"', "\\", "]", "[", "{", "}", "Привет", "\t", " ", "x" * 40, "\\n", "\x00"]

    def value(depth: int) -> object:
        kind = rng.randrange(6 if depth < 4 else 3)
        if kind == 0:
            return rng.randrange(-1000, 1000)
        if kind in (1, 2):
            return "".join(rng.choice(words) for _ in range(rng.randrange(6)))
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {f"k{i}": value(depth + 1) for i in range(rng.randrange(4))}

    separators = [b"\n", b"\r\n", b"", b" ", b"\t", b"\n\n", b" \r\n", b"\r"]
    texts = [b"plain text", b"  indented", b"{unbalanced", b'"scalar"', b"42", b"\xff\xfe\x00", b"}{", b"]"]
    out = []
    for _ in range(pieces_count):
        kind = rng.randrange(10)
        if kind < 6:
            out.append(msgspec.json.encode({"message": value(0), "n": value(1)}))
        elif kind < 8:
            out.append(msgspec.json.encode([value(1) for _ in range(rng.randrange(3))]))
        else:
            out.append(rng.choice(texts))
        out.append(rng.choice(separators))
    return b"".join(out)


class TestFrames:
    """Each sender's framing yields exactly its documents and lines."""

    @pytest.mark.parametrize(
        ("stream", "expected"),
        [
            pytest.param(b'{"a":1}\n{"b":2}\n', [b'{"a":1}', b'{"b":2}'], id="json-lines"),
            pytest.param(b'{"a":1}\r\n{"b":2}\r\n', [b'{"a":1}', b'{"b":2}'], id="crlf"),
            pytest.param(b'\n\n{"a":1}\n \t\r\n\n', [b'{"a":1}'], id="blank-lines"),
            pytest.param(b'{"a":1}{"b":2}{"c":3}', [b'{"a":1}', b'{"b":2}', b'{"c":3}'], id="json-stream"),
            pytest.param(b'{"a":1} {"b":2}\t{"c":3}', [b'{"a":1}', b'{"b":2}', b'{"c":3}'], id="spaced"),
            pytest.param(b'[{"a":1},{"b":2}]', [b'[{"a":1},{"b":2}]'], id="array-is-one-frame"),
            pytest.param(b'[{"a":1}][{"b":2}]\n', [b'[{"a":1}]', b'[{"b":2}]'], id="arrays-back-to-back"),
            pytest.param(b'{"a":1}[2]{"c":3}', [b'{"a":1}', b"[2]", b'{"c":3}'], id="mixed-values"),
            pytest.param(b'{"a":"}{"}{"b":"]["}', [b'{"a":"}{"}', b'{"b":"]["}'], id="brackets-in-strings"),
            pytest.param(b'{"a":"\\"}{"}{"b":1}', [b'{"a":"\\"}{"}', b'{"b":1}'], id="escaped-quote"),
            pytest.param(b'{"a":"\\\\"}{"b":1}', [b'{"a":"\\\\"}', b'{"b":1}'], id="escaped-backslash"),
            pytest.param(b"hello world\nsecond\n", [b"hello world", b"second"], id="text-lines"),
            pytest.param(b"  indented\n", [b"indented"], id="leading-whitespace"),
            pytest.param(b'  {"a":1}  \n', [b'{"a":1}'], id="padded-value"),
            pytest.param(b"tail\t \n", [b"tail\t "], id="text-keeps-trailing-whitespace"),
            pytest.param(b'{"a":1} trailing\n', [b'{"a":1} trailing'], id="value-then-text"),
            pytest.param(b'{"a":1}}\n', [b'{"a":1}}'], id="extra-closer"),
            pytest.param(b'{"a":[1}\n{"b":2}\n', [b'{"a":[1}', b'{"b":2}'], id="unbalanced-line"),
            pytest.param(b'"s"{"a":1}\n42\n', [b'"s"{"a":1}', b"42"], id="scalars"),
            pytest.param(b'{"a":1}\n{"b":', [b'{"a":1}', b'{"b":'], id="partial-last-flushed"),
            pytest.param(b"no newline at all", [b"no newline at all"], id="text-flushed-on-close"),
            pytest.param(b"abc\rdef\r\n", [b"abc\rdef"], id="inner-cr-kept"),
            pytest.param(b"abc\r\r\nx\r\n", [b"abc\r", b"x"], id="only-one-cr-dropped"),
            pytest.param(b"\x00\xff\xfe}{\n", [b"\x00\xff\xfe}{"], id="binary"),
            pytest.param(b'{"a":"\xff\x00"}{"b":1}', [b'{"a":"\xff\x00"}', b'{"b":1}'], id="invalid-utf8-value"),
            pytest.param(b"", [], id="empty"),
        ],
    )
    def test_frames(self, stream: bytes, expected: list[bytes]) -> None:
        frames, truncated = framed(stream)
        assert frames == [Frame(data, False) for data in expected]
        assert truncated == 0
        assert framed(stream, sizes=[1]) == (frames, 0)


class TestChunking:
    """The frames do not depend on where chunk boundaries fall, and follow the written rules."""

    @pytest.mark.parametrize("seed", range(6))
    @pytest.mark.parametrize("limit", [16, 100, LARGE])
    def test_any_split_gives_the_reference_frames(self, seed: int, limit: int) -> None:
        stream = generated_stream(seed)
        expected = reference(stream, limit)
        rng = random.Random(seed)
        assert framed(stream, limit) == expected
        assert framed(stream, limit, sizes=[1]) == expected
        assert framed(stream, limit, sizes=[rng.randrange(1, 200) for _ in range(50)]) == expected
        assert framed(stream, limit, sizes=[65536]) == expected

    def test_long_lines_in_big_chunks(self) -> None:
        lines = [msgspec.json.encode({"message": "x" * size}) for size in range(0, 3000, 37)]
        stream = b"\n".join(lines) + b"\n"
        for limit in (500, 1000, 2999):
            expected = reference(stream, limit)
            assert framed(stream, limit, sizes=[65536]) == expected
            assert framed(stream, limit, sizes=[777]) == expected


class TestTruncation:
    """An oversized frame is cut at the limit at once, its rest skipped, and framing carries on."""

    @pytest.mark.parametrize(
        ("stream", "expected"),
        [
            pytest.param(b"x" * 10 + b"\n", [(b"x" * 10, False)], id="exactly-the-limit"),
            pytest.param(b"x" * 11 + b"\nok\n", [(b"x" * 10, True), (b"ok", False)], id="one-over"),
            pytest.param(b"x" * 10 + b"\r\n", [(b"x" * 10, False)], id="cr-not-counted"),
            pytest.param(
                b'{"m":"' + b"y" * 30 + b'"}{"b":1}',
                [(b'{"m":"yyyy', True), (b'{"b":1}', False)],
                id="object-ends-at-its-brace",
            ),
            pytest.param(
                b'{"m":"' + b"}" * 30 + b'"} tail\n{"b":1}\n',
                [(b'{"m":"}}}}', True), (b'{"b":1}', False)],
                id="value-then-text-ends-at-newline",
            ),
            pytest.param(
                b'{"a":1}' + b" " * 30 + b"\n",
                [(b'{"a":1}', False)],
                id="whitespace-after-value-does-not-count",
            ),
            pytest.param(
                b'{"a":1}' + b" " * 30 + b"text\n",
                [(b'{"a":1}   ', True)],
                id="whitespace-before-text-counts",
            ),
        ],
    )
    def test_cut(self, stream: bytes, expected: list[tuple[bytes, bool]]) -> None:
        for sizes in ([], [1], [3]):
            frames, truncated = framed(stream, 10, sizes)
            assert frames == [Frame(data, cut) for data, cut in expected]
            assert truncated == sum(cut for _, cut in expected)

    def test_emitted_as_soon_as_known(self) -> None:
        framer = StreamFramer(100)
        assert framer.feed(b"z" * 100) == []
        assert framer.feed(b"z") == [Frame(b"z" * 100, True)]
        assert framer.feed(b"z" * 1000) == []
        assert framer.feed(b'\n{"a":1}\n') == [Frame(b'{"a":1}', False)]
        assert framer.truncated_count == 1

    def test_huge_line_keeps_memory_bounded(self) -> None:
        limit = 64 * 1024
        chunk = b"x" * 65536
        framer = StreamFramer(limit)
        frames: list[Frame] = []
        tracemalloc.start()
        try:
            for _ in range(50 * 16):  # 50 MiB without a newline
                frames += framer.feed(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        frames += framer.feed(b'\n{"after":1}\n')
        assert frames == [Frame(chunk[:limit], True), Frame(b'{"after":1}', False)]
        assert peak < 4 * limit

    def test_rejects_a_limit_below_one(self) -> None:
        with pytest.raises(ValueError, match="max_frame_bytes"):
            StreamFramer(0)


class TestSplitDatagram:
    """A UDP datagram is framed like a stream that ends with it, and never truncated."""

    @pytest.mark.parametrize(
        ("datagram", "expected"),
        [
            pytest.param(b'{"a":1}', [b'{"a":1}'], id="logstash-json-codec"),
            pytest.param(b'{"a":1}\n', [b'{"a":1}'], id="json-lines-codec"),
            pytest.param(b'{"a":1}\n{"b":2}\nthird', [b'{"a":1}', b'{"b":2}', b"third"], id="lines"),
            pytest.param(b'{"a":1}{"b":2}', [b'{"a":1}', b'{"b":2}'], id="back-to-back"),
            pytest.param(b"<13>plain syslog text", [b"<13>plain syslog text"], id="text"),
            pytest.param(b"", [], id="empty"),
        ],
    )
    def test_frames(self, datagram: bytes, expected: list[bytes]) -> None:
        assert split_datagram(datagram) == [Frame(data, False) for data in expected]

    def test_largest_datagram_is_whole(self) -> None:
        datagram = msgspec.json.encode({"message": "m" * 65_480})
        assert split_datagram(datagram) == [Frame(datagram, False)]
