"""The one exception hierarchy: every failure logtraced raises on purpose is a LogtracedError."""

from __future__ import annotations


class LogtracedError(Exception):
    """Base of every error the daemon raises deliberately, so callers can tell ours from bugs."""


class ConfigError(LogtracedError):
    """A setting is unknown or has a bad value; raised at start, before anything listens."""


class DecodeError(LogtracedError):
    """Input bytes could not be turned into events (the caller decides whether to store them raw)."""


class StorageError(LogtracedError):
    """The write-ahead log or an index could not be written or read."""


class QueryError(LogtracedError):
    """A query is malformed or cannot be run; `position` points into the query text when known."""

    def __init__(self, message: str, *, code: str = "invalid_query", position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.position = position


class ApiError(LogtracedError):
    """An HTTP-facing failure carrying its status and stable machine code; api/errors.py renders it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: object | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details
