"""Bounded decompression for every protocol: a small bomb can never take more than its limit of memory."""

from __future__ import annotations

import zlib
from typing import Final

ZLIB_WBITS: Final = zlib.MAX_WBITS
GZIP_WBITS: Final = 16 + zlib.MAX_WBITS


class InflateError(Exception):
    """The data does not inflate, or inflates past the limit; each codec turns it into its own error and cause."""

    def __init__(self, detail: str, *, too_large: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.too_large = too_large


def inflate(data: bytes, limit: int, *, wbits: int = ZLIB_WBITS, members: bool = False) -> bytes:
    """Inflate `data` holding at most limit + 1 bytes; with `members`, concatenated streams (gzip members) too.

    Bytes after the (last) stream are ignored, as zlib readers do.
    """
    out = bytearray()
    pending = data
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            while True:
                piece = inflater.decompress(pending, limit + 1 - len(out))
                out += piece
                if len(out) > limit:
                    raise InflateError(f"inflates past {limit} bytes", too_large=True)
                pending = inflater.unconsumed_tail
                if inflater.eof or not (pending or piece):
                    break
        except zlib.error as error:
            raise InflateError(f"does not inflate ({error})", too_large=False) from None
        if not inflater.eof:
            raise InflateError("ends in the middle of its compressed stream", too_large=False)
        pending = inflater.unused_data
        if not (members and pending):
            return bytes(out)
