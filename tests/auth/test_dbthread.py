"""Tests for the database thread: jobs run off the loop in order, errors reach the caller, the sentinel closes last."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from logtraced.auth.db import Database
from logtraced.auth.dbthread import DatabaseThread
from logtraced.errors import InvalidInput, StorageError


def insert(value: int) -> Callable[[Database], int]:
    """A job that writes one row of a scratch table and returns the value."""

    def job(db: Database) -> int:
        with db.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS scratch (value INTEGER)")
            cur.execute("INSERT INTO scratch VALUES (?)", (value,))
        return value

    return job


def stored(db: Database) -> list[int]:
    return [int(row[0]) for row in db.fetch_all("SELECT value FROM scratch ORDER BY rowid")]


class TestJobs:
    """Jobs run on the thread's own connection, one at a time, in submission order."""

    async def test_runs_on_its_own_thread(self, writer: DatabaseThread) -> None:
        ident = await writer.run(lambda db: threading.get_ident())
        assert ident != threading.get_ident()

    async def test_results_come_back_in_submission_order(self, writer: DatabaseThread, db: Database) -> None:
        results = await asyncio.gather(*(writer.run(insert(n)) for n in range(50)))
        assert results == list(range(50))
        assert stored(db) == list(range(50))

    async def test_a_read_queued_after_a_write_sees_it(self, writer: DatabaseThread) -> None:
        write = asyncio.ensure_future(writer.run(insert(7)))
        read = asyncio.ensure_future(writer.run(stored))
        assert (await write, await read) == (7, [7])


class TestErrors:
    """A failing job fails only its caller, as a domain error; the thread keeps serving."""

    async def test_sqlite_failure_is_a_storage_error(self, writer: DatabaseThread) -> None:
        with pytest.raises(StorageError) as caught:
            await writer.run(lambda db: db.fetch_all("SELECT * FROM no_such_table"))
        assert (caught.value.status, caught.value.code, caught.value.retry_after) == (503, "storage_unavailable", 30)
        assert await writer.run(insert(1)) == 1

    async def test_raw_sqlite3_error_is_a_storage_error(self, writer: DatabaseThread) -> None:
        def job(db: Database) -> None:
            raise sqlite3.OperationalError("database is locked")

        with pytest.raises(StorageError, match="database is locked"):
            await writer.run(job)

    async def test_domain_errors_pass_unchanged(self, writer: DatabaseThread) -> None:
        def job(db: Database) -> None:
            raise InvalidInput("bad scope")

        with pytest.raises(InvalidInput, match="bad scope"):
            await writer.run(job)

    async def test_open_failure_is_raised_by_start(self, tmp_path: Path) -> None:
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        thread = DatabaseThread(lambda: Database.open(blocker), "test")
        with pytest.raises(StorageError):
            await thread.start()
        with pytest.raises(StorageError, match="closed"):
            await thread.run(stored)

    async def test_too_many_waiting_jobs_are_refused(self, tmp_path: Path) -> None:
        thread = DatabaseThread(lambda: Database.open(tmp_path), "test", max_pending=1)
        await thread.start()
        release = threading.Event()
        busy = asyncio.ensure_future(thread.run(lambda db: release.wait()))
        await asyncio.sleep(0)
        with pytest.raises(StorageError, match="not keeping up"):
            await thread.run(stored)
        release.set()
        assert await busy is True
        await thread.close()


class TestShutdown:
    """close() queues the sentinel behind pending jobs: they all run, then the connection closes."""

    async def test_pending_jobs_run_before_the_connection_closes(self, tmp_path: Path) -> None:
        thread = DatabaseThread(lambda: Database.open(tmp_path), "test")
        await thread.start()
        release = threading.Event()
        first = asyncio.ensure_future(thread.run(lambda db: release.wait()))
        pending = [asyncio.ensure_future(thread.run(insert(n))) for n in range(20)]
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(thread.close())
        await asyncio.sleep(0)
        release.set()
        await closing
        assert await first is True
        assert [await job for job in pending] == list(range(20))
        with Database.open(tmp_path) as db:
            assert stored(db) == list(range(20))

    async def test_run_after_close_is_refused(self, tmp_path: Path) -> None:
        thread = DatabaseThread(lambda: Database.open(tmp_path), "test")
        await thread.start()
        await thread.close()
        with pytest.raises(StorageError, match="closed"):
            await thread.run(stored)

    async def test_close_twice(self, writer: DatabaseThread) -> None:
        await writer.close()
        await writer.close()


class TestWriteLockElsewhere:
    """A reader connection answers while another process holds the write lock (WAL mode)."""

    async def test_reader_is_not_blocked_by_a_held_write_lock(
        self, tmp_path: Path, writer: DatabaseThread, reader: DatabaseThread
    ) -> None:
        await writer.run(insert(1))
        other = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO scratch VALUES (2)")
            # Were the reader blocked, this would wait on a lock this very thread holds.
            assert await reader.run(stored) == [1]
        finally:
            other.execute("COMMIT")
            other.close()
        assert await reader.run(stored) == [1, 2]

    async def test_reader_refuses_writes(self, reader: DatabaseThread) -> None:
        with pytest.raises(StorageError, match="readonly"):
            await reader.run(insert(1))
