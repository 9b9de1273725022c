"""Domain errors: every failure logtraced raises on purpose, each class carrying its status class.

Domain code (auth, query, storage, ingest decoding) raises these and knows nothing of HTTP;
`api/errors.py` maps them once, by class, to each API family's envelope.  `code` is the stable
machine-readable name a client may branch on; `message` is for people.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class Status(enum.IntEnum):
    """What kind of failure an error is; the values are the HTTP statuses the APIs answer with."""

    INVALID = 400
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    REQUEST_TIMEOUT = 408
    TOO_LARGE = 413
    UNSUPPORTED = 415
    LIMITED = 429
    INTERNAL = 500
    UNAVAILABLE = 503
    TIMED_OUT = 504


class LogtracedError(Exception):
    """Base of every error raised deliberately, so callers can tell ours from bugs."""

    status: ClassVar[Status] = Status.INTERNAL
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: object | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        self.retry_after = retry_after  # seconds a client should wait before trying again, when known


class ConfigError(LogtracedError):
    """A setting is unknown or has a bad value; raised at start, before anything listens."""

    default_code = "invalid_config"


class DecodeError(LogtracedError):
    """Input bytes could not be turned into events (the caller decides whether to store them raw)."""

    status = Status.INVALID
    default_code = "malformed_body"


class InvalidInput(LogtracedError):
    """The request is wrong; sending it again unchanged fails again."""

    status = Status.INVALID
    default_code = "invalid_request"


class QueryError(InvalidInput):
    """A query is malformed or cannot be run; `position` points into the query text when known."""

    default_code = "invalid_query"

    def __init__(self, message: str, *, code: str | None = None, position: int | None = None) -> None:
        super().__init__(message, code=code)
        self.position = position


class InvalidCursor(QueryError):
    """A paging cursor this server did not issue, or one used with another query."""

    default_code = "invalid_cursor"


class Unauthenticated(LogtracedError):
    """No credential, or one that is unknown, revoked or expired."""

    status = Status.UNAUTHENTICATED
    default_code = "invalid_api_key"

    def __init__(self, message: str, *, code: str | None = None, credential_sent: bool = True) -> None:
        super().__init__(message, code=code)
        self.credential_sent = credential_sent


class Forbidden(LogtracedError):
    """The credential is valid but may not do this (scope, environment, organisation)."""

    status = Status.FORBIDDEN
    default_code = "forbidden"


class NotFound(LogtracedError):
    status = Status.NOT_FOUND
    default_code = "not_found"


class RequestTimeout(LogtracedError):
    """The client did not send its request in time."""

    status = Status.REQUEST_TIMEOUT
    default_code = "request_timeout"


class PayloadTooLarge(LogtracedError):
    status = Status.TOO_LARGE
    default_code = "payload_too_large"


class UnsupportedMedia(LogtracedError):
    status = Status.UNSUPPORTED
    default_code = "unsupported_media_type"


class RateLimited(LogtracedError):
    """A budget is used up, or the writer is behind: try again after `retry_after` seconds."""

    status = Status.LIMITED
    default_code = "rate_limited"


class StorageError(LogtracedError):
    """The write-ahead log, the state database or an index could not be written or read."""

    status = Status.UNAVAILABLE
    default_code = "storage_unavailable"


class QueryTimeout(LogtracedError):
    """A read ran past its time budget and was abandoned."""

    status = Status.TIMED_OUT
    default_code = "query_timeout"


class StartupError(LogtracedError):
    """The daemon cannot start as configured: a port is taken, the data directory is in use or not writable."""

    default_code = "cannot_start"
