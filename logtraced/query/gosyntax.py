"""Reads the Go spellings LogQL inherits: string literals, durations (`1h30m`, `1.5s`) and byte sizes (`10KB`).

LogQL strings are Go string literals (`"a\\tb"` with Go escapes, or raw backquoted text).  Loki reads a
duration with Go's `time.ParseDuration` and falls back to Prometheus' `d`, `w` and `y` units, and a
byte size with go-humanize's `ParseBytes` (decimal `KB`, binary `KiB`, case-insensitive), so label filters,
`unwrap duration(...)` / `bytes(...)` and `[range]` accept what Loki accepts.
"""

from __future__ import annotations

from typing import Final

NS_PER_SECOND: Final = 1_000_000_000
DURATION_UNITS_NS: Final = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
    "d": 86400 * NS_PER_SECOND,
    "w": 7 * 86400 * NS_PER_SECOND,
    "y": 365 * 86400 * NS_PER_SECOND,
}
_BYTE_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1024**4,
    "tib": 1024**4,
    "p": 1000**5,
    "pb": 1000**5,
    "pi": 1024**5,
    "pib": 1024**5,
    "e": 1000**6,
    "eb": 1000**6,
    "ei": 1024**6,
    "eib": 1024**6,
}
_DIGITS: Final = frozenset("0123456789.")
_SIMPLE_ESCAPES: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_HEX_WIDTHS: Final = {"x": 2, "u": 4, "U": 8}
_OCTAL: Final = frozenset("01234567")
_HEX: Final = frozenset("0123456789abcdefABCDEF")


class GoStringError(ValueError):
    """A string literal Go would reject; `offset` is where in the text it went wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def read_go_string(text: str, start: int) -> tuple[str, int]:
    """The value of the Go string literal opening at `start` (`"..."` or backquoted) and the offset after it.

    `\\x` and octal escapes are bytes, as in Go, so `"\\xc3\\xa9"` is `é`; bytes that do not form
    UTF-8 become U+FFFD.
    """
    quote = text[start]
    end = text.find("`", start + 1) if quote == "`" else -1
    if quote == "`":
        if end < 0:
            raise GoStringError("unterminated raw string", start)
        return text[start + 1 : end], end + 1
    out = bytearray()
    pos = start + 1
    while pos < len(text) and text[pos] != '"':
        char = text[pos]
        if char == "\n":
            break
        if char != "\\":
            out += char.encode("utf-8", "surrogatepass")
            pos += 1
            continue
        pos = _escape(text, pos, out)
    if pos >= len(text) or text[pos] != '"':
        raise GoStringError("unterminated string", start)
    return out.decode("utf-8", "replace"), pos + 1


def _escape(text: str, pos: int, out: bytearray) -> int:
    """Appends the escape at `pos` (a backslash) to `out`; returns the offset after it."""
    kind = text[pos + 1 : pos + 2]
    if kind in _SIMPLE_ESCAPES or kind == '"':
        out += _SIMPLE_ESCAPES.get(kind, kind).encode()
        return pos + 2
    if kind in _HEX_WIDTHS:
        digits = text[pos + 2 : pos + 2 + _HEX_WIDTHS[kind]]
        if len(digits) != _HEX_WIDTHS[kind] or not set(digits) <= _HEX:
            raise GoStringError(f"invalid \\{kind} escape", pos)
        value = int(digits, 16)
        if kind == "x":
            out.append(value)
        elif value > 0x10FFFF or 0xD800 <= value < 0xE000:
            raise GoStringError(f"invalid code point in \\{kind} escape", pos)
        else:
            out += chr(value).encode()
        return pos + 2 + len(digits)
    digits = text[pos + 1 : pos + 4]
    if len(digits) == 3 and set(digits) <= _OCTAL and int(digits, 8) < 256:
        out.append(int(digits, 8))
        return pos + 4
    raise GoStringError(f"unknown escape sequence \\{kind}", pos)


def parse_duration(text: str) -> int | None:
    """Nanoseconds of a duration such as `1h30m`, `1.5s` or `-250ms`; None if it is not one.

    A bare `0` is a duration (as in Go); any other number needs a unit.
    """
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    total, pos = 0.0, 0
    while pos < len(body):
        start = pos
        while pos < len(body) and body[pos] in _DIGITS:
            pos += 1
        number = body[start:pos]
        unit_start = pos
        while pos < len(body) and body[pos] not in _DIGITS:
            pos += 1
        factor = DURATION_UNITS_NS.get(body[unit_start:pos])
        if factor is None or not _is_decimal(number):
            return None
        total += float(number) * factor
    if not body:
        return None
    nanoseconds = round(total)
    return -nanoseconds if text.startswith("-") else nanoseconds


def parse_bytes(text: str) -> float | None:
    """Bytes in a size such as `10KB`, `1.5 MiB` or `42`; None if it is not one."""
    stripped = text.strip()
    end = 0
    while end < len(stripped) and stripped[end] in _DIGITS:
        end += 1
    number, unit = stripped[:end], stripped[end:].strip().lower()
    factor = _BYTE_UNITS.get(unit)
    if factor is None or not _is_decimal(number):
        return None
    return float(number) * factor


def _is_decimal(number: str) -> bool:
    """Digits with at most one point and at least one digit (`1`, `1.5`, `.5`, `5.`)."""
    return number.count(".") <= 1 and any(char.isdigit() for char in number)
