"""The one error the HTTP dialect decoders raise when a whole request body must be refused.

Each dialect (Elasticsearch `_bulk`, Loki push, OTLP/HTTP) answers a refused body in its own
shape, but the routes, counters and warnings need the same three facts from all of them: a
stable snake_case `cause` to count by, the HTTP `status` the dialect's clients expect, and a
human message that never quotes the payload.  Problems with one item of an otherwise readable
body are not errors: each decoder reports them per item, so the rest of the body still lands.
"""

from __future__ import annotations

from typing import Final

from logtraced.errors import DecodeError

# Causes shared by every dialect, named once so counters agree across them.
UNSUPPORTED_CONTENT_TYPE: Final = "unsupported_content_type"
MALFORMED_JSON: Final = "malformed_json"
MALFORMED_PROTOBUF: Final = "malformed_protobuf"
MALFORMED_SNAPPY: Final = "malformed_snappy"
DECOMPRESSED_TOO_LARGE: Final = "decompressed_too_large"
INVALID_BODY: Final = "invalid_body"
TOO_MANY_EVENTS: Final = "too_many_events"


class BodyRejected(DecodeError):
    """A request body none of which can be accepted; nothing of it may be stored."""

    def __init__(self, cause: str, message: str, *, status: int = 400) -> None:
        super().__init__(message, code=cause)
        self.cause = cause
        self.http_status = status  # the dialect's own status, which may lie outside errors.Status (406)

    def __repr__(self) -> str:
        return f"BodyRejected({self.cause!r}, {self.message!r}, status={self.http_status})"


def media_type(content_type: str) -> str:
    """The bare, lowercased media type of a Content-Type header value (parameters dropped)."""
    return content_type.partition(";")[0].strip().lower()
