"""The daemon's API keys: an in-memory copy of the key table, kept fresh from a database thread.

Every request is authenticated, and the `logtraced keys` CLI may hold the state database's
write lock for seconds, so the loop never reads keys from SQLite itself.  It looks a secret's
hash up in memory.  The copy is refreshed on the reader thread (its own connection; in WAL mode
a reader is never blocked by the CLI's write lock): a refresh asks `PRAGMA data_version`, which
changes whenever another connection has committed, and reloads the whole table only then.

Exact behaviour, so that a key created or revoked by the CLI takes effect on the next request:
- every authentication starts a refresh (refreshes requested while one runs share the next one,
  so a request is always answered from a refresh that started after it arrived) and waits for it;
- a key found in memory waits at most `FRESH_WAIT_SECONDS`; if the reader is slower than that,
  the request is answered from the previous refresh, so a revocation is never served stale for
  more than one refresh;
- a key not in memory waits at most `MISS_WAIT_SECONDS`, then fails with StorageError (503
  storage_unavailable) rather than hang; a failed refresh fails such a request the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Final

from logtraced.auth.db import Clock, Database
from logtraced.auth.dbthread import STORAGE_RETRY_SECONDS, DatabaseThread
from logtraced.auth.keys import SECRET_PATTERN, KeyRecord, KeyStore, hash_secret
from logtraced.errors import StorageError
from logtraced.log import WarningLimiter, get_logger

# Normally a refresh answers in well under a millisecond; these bound a slow or stuck reader.
FRESH_WAIT_SECONDS: Final = 0.2
MISS_WAIT_SECONDS: Final = 2.0


class _Snapshot:
    """What one refresh read: the connection's data_version and, when it changed, the whole table."""

    def __init__(self, version: int, keys: dict[bytes, KeyRecord] | None) -> None:
        self.version = version
        self.keys = keys


class Keyring:
    """Authenticates API keys from memory and creates, lists and revokes them through the database threads."""

    def __init__(
        self,
        reader: DatabaseThread,
        writer: DatabaseThread,
        clock: Clock = time.time,
        *,
        fresh_wait_seconds: float = FRESH_WAIT_SECONDS,
        miss_wait_seconds: float = MISS_WAIT_SECONDS,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._fresh_wait = fresh_wait_seconds
        self._miss_wait = miss_wait_seconds
        self._by_hash: dict[bytes, KeyRecord] = {}
        self._by_id: dict[str, KeyRecord] = {}
        self._version: int | None = None
        self._waiters: list[asyncio.Future[bool]] = []
        self._refresher: asyncio.Task[None] | None = None
        self._warnings = WarningLimiter(get_logger("auth"))

    async def load(self) -> None:
        """Read the table before serving, so the first requests find their keys in memory."""
        await self._refresh_once()

    async def authenticate(self, secret: str) -> KeyRecord | None:
        """The active key for a bearer secret, or None for a malformed, unknown or revoked one."""
        if not SECRET_PATTERN.fullmatch(secret):
            return None
        digest = hash_secret(secret)
        return await self._fresh_lookup(lambda: self._by_hash.get(digest))

    async def active(self, key_id: str) -> KeyRecord | None:
        """The key with this id if it is active now; access tokens die with their key."""
        return await self._fresh_lookup(lambda: self._by_id.get(key_id))

    async def create(
        self, org: str, environment: str, scopes: Iterable[str], tier: str, name: str
    ) -> tuple[KeyRecord, str]:
        """Mint a key on the writer thread; its first use finds it through the refresh that request starts."""
        scope_list = list(scopes)
        return await self._writer.run(
            lambda db: KeyStore(db, self._clock).create(org, environment, scope_list, tier, name)
        )

    async def list(self, org: str | None) -> list[KeyRecord]:
        """Keys of one organisation (all when None), oldest first, read on the reader thread."""
        return await self._reader.run(lambda db: KeyStore(db, self._clock).list(org))

    async def revoke(self, key_id: str, org: str | None) -> bool:
        """Revoke on the writer thread, then refresh, so the key is refused before the caller hears 204."""
        changed = await self._writer.run(lambda db: KeyStore(db, self._clock).revoke(key_id, org))
        if changed:
            await self._wait_for_refresh(self._miss_wait)
        return changed

    async def close(self) -> None:
        """Stop a refresh still running, before the reader thread goes away."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher

    async def _fresh_lookup(self, find: Callable[[], KeyRecord | None]) -> KeyRecord | None:
        """`find()` after a refresh that started now, waiting long only when memory does not know the key."""
        known = find() is not None
        refreshed = await self._wait_for_refresh(self._fresh_wait if known else self._miss_wait)
        record = find()
        if record is None and not refreshed:
            raise StorageError(
                "the state database did not answer in time; the key could not be checked",
                retry_after=STORAGE_RETRY_SECONDS,
            )
        return record if record is not None and record.active else None

    async def _wait_for_refresh(self, timeout: float) -> bool:
        """Ask for a refresh starting after now and wait up to `timeout`; True when it completed."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_while_wanted())
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False

    async def _refresh_while_wanted(self) -> None:
        """One refresh per round for everyone who asked before it started, until nobody is waiting."""
        while self._waiters:
            waiters, self._waiters = self._waiters, []
            try:
                await self._refresh_once()
                outcome = True
            except StorageError as exc:
                self._warnings.warn("key_refresh_failed", error=exc.message)
                outcome = False
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(outcome)

    async def _refresh_once(self) -> None:
        seen = self._version
        snapshot = await self._reader.run(lambda db: _read_changes(db, seen))
        self._version = snapshot.version
        if snapshot.keys is not None:
            self._by_hash = snapshot.keys
            self._by_id = {record.id: record for record in snapshot.keys.values()}


def _read_changes(db: Database, seen_version: int | None) -> _Snapshot:
    """On the reader thread: the table only when data_version moved since the last refresh.

    data_version is read before the table, so a commit landing in between is caught by the
    next refresh rather than missed.
    """
    version = db.data_version()
    if version == seen_version:
        return _Snapshot(version, None)
    return _Snapshot(version, KeyStore(db).load())
