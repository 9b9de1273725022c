"""One SQLite connection owned by one thread and fed by a queue, so the event loop only awaits futures.

The state database is shared with the `logtraced keys` CLI, which may hold its write lock for
as long as the busy timeout (5 s).  A sqlite3 call made on the loop would stall every request
for that long, so each connection lives on its own thread (the shape of datasette's
`database.py`): the loop puts a job (a function of the `Database`) on the queue and awaits a
future that the thread settles with the job's result or exception.  Jobs run one at a time in
the order they were submitted, so a write submitted after another is applied after it, and a
shutdown sentinel queued behind pending jobs closes the connection only once they have run.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

from logtraced.auth.db import Database
from logtraced.errors import StorageError

T = TypeVar("T")
Job = Callable[[Database], Any]

# Jobs waiting at once: the loop submits one per request at most, so more means the database is stuck.
MAX_PENDING_JOBS: Final = 1_000
# Seconds a client should wait before retrying when the state database cannot answer.
STORAGE_RETRY_SECONDS: Final = 30


class _Stop:
    """The shutdown sentinel: the thread closes its connection when it takes this from the queue."""


_STOP: Final = _Stop()


class DatabaseThread:
    """A thread that opens one `Database`, runs submitted jobs on it in order, and closes it on `close`."""

    def __init__(self, open_database: Callable[[], Database], name: str, max_pending: int = MAX_PENDING_JOBS) -> None:
        self._open = open_database
        self._name = name
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[tuple[Job, asyncio.Future[Any]] | _Stop] = queue.SimpleQueue()
        self._pending = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start the thread and wait until its connection is open; an open failure is raised here."""
        self._loop = loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._finished = loop.create_future()
        self._thread = threading.Thread(target=self._serve, args=(opened,), name=self._name, daemon=True)
        self._thread.start()
        try:
            await opened
        except BaseException:
            self._closing = True
            raise

    async def run(self, job: Callable[[Database], T]) -> T:
        """Run `job(database)` on the thread after every job submitted before it; sqlite3 errors become StorageError."""
        if self._loop is None or self._closing:
            raise StorageError(f"the state database ({self._name}) is closed", retry_after=STORAGE_RETRY_SECONDS)
        if self._pending >= self._max_pending:
            raise StorageError(
                f"the state database ({self._name}) has {self._pending} jobs waiting; it is not keeping up",
                retry_after=STORAGE_RETRY_SECONDS,
            )
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending += 1
        self._queue.put((job, future))
        try:
            return await future
        finally:
            self._pending -= 1

    async def close(self) -> None:
        """Queue the sentinel behind pending jobs and wait until they have run and the connection is closed."""
        if self._finished is None or self._closing:
            return
        self._closing = True
        self._queue.put(_STOP)
        await self._finished

    def _serve(self, opened: asyncio.Future[None]) -> None:
        """The thread's body: open, then run jobs until the sentinel arrives; always close."""
        try:
            database = self._open()
        except Exception as exc:  # noqa: BLE001 - the opener's failure belongs to the awaiting caller
            self._settle(opened, None, _as_domain_error(exc))
            self._settle(self._finished, None, None)
            return
        self._settle(opened, None, None)
        try:
            self._run_jobs(database)
        finally:
            database.close()
            self._settle(self._finished, None, None)

    def _run_jobs(self, database: Database) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                return
            job, future = item
            try:
                result = job(database)
            except Exception as exc:  # noqa: BLE001 - handed to the caller, which decides
                self._settle(future, None, _as_domain_error(exc))
            else:
                self._settle(future, result, None)

    def _settle(self, future: asyncio.Future[Any] | None, result: Any, error: BaseException | None) -> None:
        """Hand an outcome to the loop; the loop may be gone at interpreter exit, then nobody waits."""
        if future is None or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(_resolve, future, result, error)
        except RuntimeError:
            pass


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the loop: a caller that stopped waiting (cancelled, timed out) has nothing to receive."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _as_domain_error(exc: Exception) -> Exception:
    """sqlite3 failures become StorageError (503, Retry-After); other domain errors and bugs pass as they are."""
    if isinstance(exc, sqlite3.Error):
        return StorageError(f"state database: {exc}", retry_after=STORAGE_RETRY_SECONDS)
    if isinstance(exc, StorageError) and exc.retry_after is None:
        exc.retry_after = STORAGE_RETRY_SECONDS
    return exc
