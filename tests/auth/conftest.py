"""Fixtures shared by the auth tests: a real state database in the test's temporary directory, and its threads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from logtraced.auth.db import Database
from logtraced.auth.dbthread import DatabaseThread


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A connection of the test's own, like the CLI's: to prepare rows and to look at what the threads wrote."""
    with Database.open(tmp_path) as database:
        yield database


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[DatabaseThread]:
    thread = DatabaseThread(lambda: Database.open(tmp_path), "test-writer")
    await thread.start()
    yield thread
    await thread.close()


@pytest.fixture
async def reader(tmp_path: Path, writer: DatabaseThread) -> AsyncIterator[DatabaseThread]:
    """Opened after the writer, as the daemon does: the writer creates and migrates the file."""
    thread = DatabaseThread(lambda: Database.open(tmp_path, query_only=True), "test-reader")
    await thread.start()
    yield thread
    await thread.close()
