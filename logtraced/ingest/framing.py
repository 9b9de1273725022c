"""Sans-IO framing: the bytes of a TCP stream or a UDP datagram, cut into frames.

A frame is one JSON document or one raw text line.  Senders disagree on delimiters:
Logstash's json_lines and Fluent Bit's json_lines end each object with a newline, while
Logstash's default `json` codec and Fluent Bit's json_stream write objects back to back
(`{..}{..}`) and Fluent Bit's `json` format writes whole arrays.  All of them may arrive on
the same port, so the rules are:

* a newline always ends a frame (JSON never needs a raw newline), and a CR before it is dropped;
* within a line, a JSON object or array that is complete and followed (after optional
  whitespace) by another `{` or `[` is a frame of its own;
* anything else on a line (text, a scalar, a value followed by text, an unbalanced value)
  is one frame up to the end of the line; leading whitespace and whitespace after the last
  value are not part of a frame, and blank lines yield nothing.

The result does not depend on where chunk boundaries fall.  A frame longer than
`max_frame_bytes` is cut: its first `max_frame_bytes` bytes are emitted as soon as the
excess is seen, marked truncated, and the rest of it is skipped without being buffered.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

import msgspec

_OPENERS: Final = frozenset(b"{[")
_QUOTE: Final = ord('"')
_BACKSLASH: Final = ord("\\")
_WHITESPACE: Final = re.compile(rb"[ \t\r]*")  # JSON whitespace other than the newline
# Outside strings: everything up to the next bracket, or to the quote of a string that does
# not end before the data does.  Inside such a string: up to the next quote or backslash.
_TO_BRACKET: Final = re.compile(rb'(?:[^"{}\[\]]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.DOTALL)
_STRING_STOP: Final = re.compile(rb'["\\]')

# A closing brace, optional whitespace, an opening bracket: maybe two values on one line.
# A line that starts with `{`, ends with `}`, is not too long and has no such place is one
# frame whatever it holds, which is what makes the fast path safe.  (Its first value is an
# object, so only a `}` can end it.)
_SPLIT_HINT: Final = re.compile(rb"\}[ \t\r]*[{\[]")

# Skips over one JSON value in C without building it: a candidate piece that it accepts is
# a complete value, so its brackets close exactly at its end and need no scan in Python.
_VALIDATOR: Final = msgspec.json.Decoder(msgspec.Raw)

# Where the current frame is.  LEAD: before it (skipping whitespace); VALUE: inside a JSON
# value; AFTER: a complete value was seen, waiting to learn whether another value or text
# follows; TEXT: the frame runs to the end of the line.
_LEAD: Final = 0
_VALUE: Final = 1
_AFTER: Final = 2
_TEXT: Final = 3


class Frame(NamedTuple):
    """One frame's bytes; `truncated` when they are only the first max_frame_bytes of it."""

    data: bytes
    truncated: bool


class StreamFramer:
    """The frames of one TCP connection; one instance per connection, fed chunk by chunk.

    Memory stays bounded by max_frame_bytes plus the chunk being fed, however long a line is.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self._max = max_frame_bytes
        self.truncated_count = 0
        self._reset()

    def _reset(self) -> None:
        """Forget the current frame: the next byte starts a new one."""
        self._phase = _LEAD
        self._kept = bytearray()  # the current frame's first max+1 bytes
        self._length = 0  # the current frame's length so far
        self._value_length = 0  # in AFTER: the length of the complete value
        self._emitted = False  # the current frame was already emitted truncated
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, chunk: bytes) -> list[Frame]:
        """The frames completed by `chunk`."""
        frames: list[Frame] = []
        if b"\n" not in chunk:
            self._advance(chunk, False, frames)
            return frames
        lines = chunk.split(b"\n")
        partial = lines.pop()
        if self._phase != _LEAD:
            self._advance(lines[0], True, frames)
            lines[0] = b""
        self._complete_lines(chunk, lines, frames)
        self._advance(partial, False, frames)
        return frames

    def close(self) -> list[Frame]:
        """The sender closed the stream: a last line without a newline is still a frame."""
        frames: list[Frame] = []
        self._advance(b"", True, frames)
        return frames

    def _complete_lines(self, chunk: bytes, lines: list[bytes], frames: list[Frame]) -> None:
        """Whole lines, each starting fresh: the hot path for newline-delimited JSON."""
        if not lines:
            return
        if b"\r" in chunk:
            # A CR after the closing brace would only be dropped later: drop it now so the
            # line can take the fast path (anything else with a CR is left to _advance).
            lines = [line[:-1] if line[-2:] == b"}\r" else line for line in lines]
        careful = max(map(len, lines)) > self._max or _SPLIT_HINT.search(chunk) is not None
        append = frames.append
        new_frame = tuple.__new__  # Frame(...) runs a Python-level __new__; this is the C one
        for line in lines:
            if line[:1] == b"{" and line[-1:] == b"}" and not (careful and self._needs_scan(line)):
                append(new_frame(Frame, (line, False)))
            elif line:
                self._advance(line, True, frames)

    def _needs_scan(self, line: bytes) -> bool:
        return len(line) > self._max or _SPLIT_HINT.search(line) is not None

    def _advance(self, data: bytes, final: bool, frames: list[Frame]) -> None:
        """Run the frame state machine over `data`, a piece of one line.

        `final` says the line ends with it (a newline or the end of the stream follows).
        """
        pos, end = 0, len(data)
        while True:
            phase = self._phase
            if phase == _LEAD:
                pos = _skip_whitespace(data, pos, end)
                if pos == end:
                    break
                if data[pos] in _OPENERS:
                    pos = self._start_value(data, pos, end, frames)
                else:
                    self._phase = _TEXT
            elif phase == _VALUE:
                stop = self._scan_value(data, pos, end)
                self._keep(data, pos, end if stop < 0 else stop)
                if stop < 0:
                    break
                pos = stop
                self._value_length = self._length
                self._phase = _AFTER
            elif phase == _AFTER:
                after = _skip_whitespace(data, pos, end)
                if after == end:
                    self._keep(data, pos, end)
                    break
                if data[after] in _OPENERS:
                    self._emit_value(frames)
                    pos = self._start_value(data, after, end, frames)
                else:
                    self._phase = _TEXT
            else:
                self._keep(data, pos, end)
                break
            if self._overflowed():
                self._emit_truncated(frames)
        if self._overflowed():
            self._emit_truncated(frames)
        if final:
            self._finish_line(frames)

    def _start_value(self, data: bytes, pos: int, end: int, frames: list[Frame]) -> int:
        """Begin a frame at an opening bracket and return where the state machine resumes.

        Values complete within `data` are found in C; those followed by another value are
        emitted at once (the `{..}{..}` run), the last one waits to see what follows.
        """
        while True:
            self._reset()
            stop = _complete_value_end(data, pos, end)
            if stop < 0:
                self._phase = _VALUE
                return pos
            after = _skip_whitespace(data, stop, end)
            if after == end or data[after] not in _OPENERS or stop - pos > self._max:
                self._keep(data, pos, stop)
                self._value_length = self._length
                self._phase = _AFTER
                return stop
            frames.append(Frame(data[pos:stop], False))
            pos = after

    def _scan_value(self, data: bytes, pos: int, end: int) -> int:
        """Index just past the bracket that closes the current value, or -1 if not in data[pos:end].

        The state (depth, inside a string, after a backslash) carries over between calls, so
        a value split across chunks is scanned once.
        """
        depth, in_string, escaped = self._depth, self._in_string, self._escaped
        found = -1
        while pos < end:
            if escaped:
                pos += 1
                escaped = False
            elif in_string:
                match = _STRING_STOP.search(data, pos, end)
                if match is None:
                    break
                pos = match.end()
                if data[pos - 1] == _BACKSLASH:
                    escaped = True
                else:
                    in_string = False
            else:
                skipped = _TO_BRACKET.match(data, pos, end)
                pos = skipped.end() if skipped else pos
                if pos == end:
                    break
                byte = data[pos]
                pos += 1
                if byte == _QUOTE:
                    in_string = True
                elif byte in _OPENERS:
                    depth += 1
                else:
                    depth -= 1
                    if depth == 0:
                        found = pos
                        break
        self._depth, self._in_string, self._escaped = depth, in_string, escaped
        return found

    def _keep(self, data: bytes, pos: int, stop: int) -> None:
        """Account for data[pos:stop] as part of the current frame, storing at most max+1 bytes."""
        if stop <= pos:
            return
        room = self._max + 1 - len(self._kept)
        if room > 0 and not self._emitted:
            self._kept += data[pos : min(stop, pos + room)]
        self._length += stop - pos

    def _overflowed(self) -> bool:
        """Whether the current frame is known to be longer than max_frame_bytes.

        While a complete value waits to see what follows, whitespace after it may yet be
        dropped, so only the value counts.  Elsewhere one byte over is not proof when it is
        a CR: a newline may follow and drop it.
        """
        if self._emitted:
            return False
        if self._phase == _AFTER:
            return self._value_length > self._max
        if self._length <= self._max:
            return False
        return self._length > self._max + 1 or self._kept[-1:] != b"\r"

    def _emit_truncated(self, frames: list[Frame]) -> None:
        frames.append(Frame(bytes(self._kept[: self._max]), True))
        self.truncated_count += 1
        self._emitted = True
        self._kept = bytearray()

    def _emit_value(self, frames: list[Frame]) -> None:
        """The complete value is a frame; whitespace after it is not part of it."""
        if not self._emitted:
            frames.append(Frame(bytes(self._kept[: self._value_length]), False))

    def _finish_line(self, frames: list[Frame]) -> None:
        phase = self._phase
        if phase == _AFTER:
            self._emit_value(frames)
        elif phase != _LEAD and not self._emitted:
            # Not overflowed, so at most max+1 bytes of which a last CR is dropped here.
            kept = self._kept
            if kept[-1:] == b"\r":
                del kept[-1:]
            frames.append(Frame(bytes(kept), False))
        self._reset()


def _complete_value_end(data: bytes, pos: int, end: int) -> int:
    """End of the JSON value opening at data[pos] if it is valid and complete before `end`, else -1.

    Two candidate ends are tried: the first `}` followed by another value (back-to-back
    objects) and the last closing bracket.  Anything else (invalid JSON, a value cut by the
    chunk) is left to the scanner.
    """
    hint = _SPLIT_HINT.search(data, pos, end)
    last = max(data.rfind(b"}", pos, end), data.rfind(b"]", pos, end)) + 1
    candidates = (hint.start() + 1, last) if hint and hint.start() + 1 < last else (last,)
    view = memoryview(data)
    for stop in candidates:
        if stop <= pos:
            break
        try:
            _VALIDATOR.decode(view[pos:stop])
        except (msgspec.DecodeError, RecursionError):
            continue
        return stop
    return -1


def _skip_whitespace(data: bytes, pos: int, end: int) -> int:
    match = _WHITESPACE.match(data, pos, end)
    return match.end() if match else pos


def split_datagram(datagram: bytes) -> list[Frame]:
    """The frames of one UDP datagram: one document, several lines, or `{..}{..}`.

    A datagram is bounded by the socket's buffer, so nothing in it is truncated.
    """
    framer = StreamFramer(max(len(datagram), 1))
    return framer.feed(datagram) + framer.close()
