"""The paging position both built-in backends order by, (timestamp, event id), as the opaque bytes of a cursor."""

from __future__ import annotations

import struct
from typing import Final

from logtraced.errors import InvalidCursor

SortKey = tuple[int, int]  # (timestamp ns, event id)
_CURSOR: Final = struct.Struct(">qq")
_LIMITS: Final = (-(2**63), 2**63 - 1)


def encode_cursor(key: SortKey) -> bytes:
    return _CURSOR.pack(*key)


def decode_cursor(cursor: bytes) -> SortKey:
    """A cursor a backend wrote; anything else is InvalidCursor (a client may have edited it)."""
    if len(cursor) != _CURSOR.size:
        raise InvalidCursor("the cursor is not one this server issued")
    timestamp, identifier = _CURSOR.unpack(cursor)
    if timestamp in _LIMITS or identifier in _LIMITS:
        raise InvalidCursor("the cursor is not one this server issued")
    return timestamp, identifier
