"""Open the auth state database (`state.sqlite3`) and migrate its schema; every auth store shares it.

The daemon and the `logtraced keys` CLI open the same file from different processes at the
same time, so the database runs in WAL mode (readers never block the writer) with a busy
timeout (a writer waits for the other process instead of failing at once).  Each process
owner holds exactly one `Database`; the stores in this package borrow it and never close it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

from logtraced.errors import StorageError

Clock: TypeAlias = Callable[[], float]
"""The time source every store takes (epoch seconds), so tests can move time."""

FILE_NAME = "state.sqlite3"
BUSY_TIMEOUT_MS = 5_000

# Each entry is one schema version; user_version counts how many have been applied.
# Append new versions, never edit old ones: a database on disk may be at any of them.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            key_hash BLOB NOT NULL UNIQUE,
            display_prefix TEXT NOT NULL,
            org TEXT NOT NULL,
            environment TEXT NOT NULL,
            scopes TEXT NOT NULL,
            tier TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        ) STRICT""",
        "CREATE INDEX api_keys_by_org ON api_keys (org)",
        """CREATE TABLE access_tokens (
            token_hash BLOB PRIMARY KEY,
            key_id TEXT NOT NULL REFERENCES api_keys (id),
            org TEXT NOT NULL,
            environment TEXT NOT NULL,
            scopes TEXT NOT NULL,
            expires_at INTEGER NOT NULL
        ) STRICT""",
        "CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at)",
        "CREATE INDEX access_tokens_by_key ON access_tokens (key_id)",
        """CREATE TABLE rate_counters (
            key_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            window_start INTEGER NOT NULL,
            used INTEGER NOT NULL,
            PRIMARY KEY (key_id, kind)
        ) STRICT""",
        """CREATE TABLE usage_hourly (
            org TEXT NOT NULL,
            key_id TEXT NOT NULL,
            hour INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            events INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            rejections INTEGER NOT NULL,
            overflow_events INTEGER NOT NULL,
            PRIMARY KEY (org, hour, key_id)
        ) STRICT""",
    ),
    # Usage split by the kind of request and 429s counted apart; rows written before keep their
    # totals and read as zero in the new columns (their split was never recorded).
    (
        "ALTER TABLE usage_hourly ADD COLUMN ingest_requests INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE usage_hourly ADD COLUMN query_requests INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE usage_hourly ADD COLUMN throttled INTEGER NOT NULL DEFAULT 0",
    ),
)


class Database:
    """One process's connection to the state file; wraps sqlite3 failures as StorageError."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._conn = connection
        self.path = path

    @classmethod
    def open(cls, data_dir: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, query_only: bool = False) -> Database:
        """Open (creating if needed) `<data_dir>/state.sqlite3`, switch to WAL and migrate.

        `query_only` makes a connection that refuses writes once migrated: the daemon's reader
        connection, which must never take the write lock it exists to avoid waiting for.
        """
        path = data_dir / FILE_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: every write goes through transaction(), reads see the latest commit.
            conn = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        db = cls(conn, path)
        try:
            db._configure(busy_timeout_ms)
            db._migrate()
            if query_only:
                conn.execute("PRAGMA query_only = ON")
        except BaseException:
            conn.close()
            raise
        return db

    def _configure(self, busy_timeout_ms: int) -> None:
        """Set the busy timeout first, so switching to WAL waits for the other process."""
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            (mode,) = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot configure {self.path}: {exc}") from exc
        if str(mode).lower() != "wal":
            raise StorageError(f"{self.path}: WAL journal mode refused (got {mode})")

    def _migrate(self) -> None:
        """Apply missing schema versions under a write lock, so two processes never both migrate."""
        if self._user_version() == len(MIGRATIONS):
            return
        with self.transaction() as cur:
            version = self._user_version()
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"{self.path}: schema version {version} is newer than this logtraced ({len(MIGRATIONS)})"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    cur.execute(statement)
            cur.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def _user_version(self) -> int:
        (version,) = self.fetch_one("PRAGMA user_version") or (0,)
        return int(version)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction taken with BEGIN IMMEDIATE, so lock waits happen up front, not mid-way."""
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc
        finally:
            cur.close()

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read statement; in autocommit mode it sees every commit made before it started."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Like fetch_all, for statements that yield at most one row."""
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    def data_version(self) -> int:
        """A number that changes whenever another connection commits; cheap enough to ask per request."""
        (version,) = self.fetch_one("PRAGMA data_version") or (0,)
        return int(version)

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
