"""The daemon's auth services in one object: opened at start, flushed periodically, closed at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from logtraced.auth.db import Clock, Database
from logtraced.auth.dbthread import DatabaseThread
from logtraced.auth.keyring import Keyring
from logtraced.auth.ratelimit import RateLimiter, Tier
from logtraced.auth.tokens import TokenStore
from logtraced.auth.usage import UsageRecorder
from logtraced.config import Config
from logtraced.errors import StorageError
from logtraced.log import WarningLimiter, get_logger

FLUSH_EVERY_SECONDS = 1.0
# Not LOGTRACED_*: every variable with that prefix is read as a configuration key.
TEST_CLOCK_VARIABLE = "TEST_LOGTRACED_CLOCK_FILE"


class OffsetClock:
    """Test-only: wall time plus the offset (seconds) written in a file, so tests move a running daemon's clock.

    Token expiry and UTC hour windows cannot be tested against the real daemon in real
    time; the test rewrites the file and the very next reading sees the new offset (the file
    is read on every call: a modification time may not change between two quick rewrites).
    A missing, empty or unreadable file means no offset.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def __call__(self) -> float:
        try:
            offset = float(self._path.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return time.time() + offset


def clock_from_environment(environ: Mapping[str, str] = os.environ) -> Clock:
    """The real clock, unless a test named an offset file in TEST_LOGTRACED_CLOCK_FILE."""
    path = environ.get(TEST_CLOCK_VARIABLE)
    return OffsetClock(Path(path)) if path else time.time


def tiers_from_config(config: Config) -> dict[str, Tier]:
    return {
        name: Tier(name, tier.ingest_per_hour, tier.query_per_hour, tier.overflow)
        for name, tier in config.auth.tiers.items()
    }


@dataclass
class AuthServices:
    """Keys, tokens, rate limits and usage; SQLite only on two threads, never on the event loop.

    The writer thread owns the one write connection (key changes, token minting, counter
    flushes), so writes are applied in the order they were made.  The reader thread has its own
    connection for reads (key refreshes, token lookups, listings, reports): in WAL mode it is
    never blocked by a write lock, whether ours, queued behind a flush, or the CLI's.
    """

    reader: DatabaseThread
    writer: DatabaseThread
    keys: Keyring
    tokens: TokenStore
    limiter: RateLimiter
    usage: UsageRecorder
    clock: Clock = time.time
    _flusher: asyncio.Task[None] | None = field(default=None, repr=False)
    _warnings: WarningLimiter = field(default_factory=lambda: WarningLimiter(get_logger("auth")), repr=False)

    @classmethod
    def build(cls, config: Config, clock: Clock | None = None) -> AuthServices:
        """Wire the services; nothing is opened until `start`.  Without a clock, `clock_from_environment` picks one."""
        clock = clock if clock is not None else clock_from_environment()
        data_path = config.data_path
        writer = DatabaseThread(lambda: Database.open(data_path), "logtraced-state-writer")
        reader = DatabaseThread(lambda: Database.open(data_path, query_only=True), "logtraced-state-reader")
        keys = Keyring(reader, writer, clock)
        return cls(
            reader=reader,
            writer=writer,
            keys=keys,
            tokens=TokenStore(reader, writer, keys, clock, config.auth.token_ttl_seconds),
            limiter=RateLimiter(writer, tiers_from_config(config), clock),
            usage=UsageRecorder(reader, writer, clock),
            clock=clock,
        )

    async def start(self) -> None:
        """Open the threads (the writer first: it creates and migrates the file), load keys and counters, flush."""
        await self.writer.start()
        await self.reader.start()
        await self.keys.load()
        await self.limiter.load()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_SECONDS)
            await self._flush()

    async def _flush(self) -> None:
        """Write counters and usage; a failure (the CLI held the lock too long) leaves them for the next flush."""
        for flush in (self.limiter.flush, self.usage.flush):
            try:
                await flush()
            except StorageError as exc:
                self._warnings.warn("state_flush_failed", error=exc.message)

    async def close(self) -> None:
        """Stop the periodic flush, write what is pending, then stop the threads behind their queued work."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._flush()
        await self.keys.close()
        await self.writer.close()
        await self.reader.close()
