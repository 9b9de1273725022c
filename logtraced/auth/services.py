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
from logtraced.auth.keys import KeyStore
from logtraced.auth.ratelimit import RateLimiter, Tier
from logtraced.auth.tokens import TokenStore
from logtraced.auth.usage import UsageRecorder
from logtraced.config import Config

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
    """Keys, tokens, rate limits and usage over one SQLite connection owned by the event loop."""

    db: Database
    keys: KeyStore
    tokens: TokenStore
    limiter: RateLimiter
    usage: UsageRecorder
    clock: Clock = time.time
    _flusher: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, config: Config, clock: Clock | None = None) -> AuthServices:
        """Open the state database; without an explicit clock, `clock_from_environment` picks one."""
        clock = clock if clock is not None else clock_from_environment()
        config.data_path.mkdir(parents=True, exist_ok=True)
        db = Database.open(config.data_path)
        keys = KeyStore(db, clock)
        tiers = tiers_from_config(config)
        return cls(
            db=db,
            keys=keys,
            tokens=TokenStore(db, keys, clock, config.auth.token_ttl_seconds),
            limiter=RateLimiter(db, tiers, clock),
            usage=UsageRecorder(db, clock),
            clock=clock,
        )

    async def start(self) -> None:
        """Counters are flushed by traffic; this task also flushes them when traffic stops."""
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_SECONDS)
            self.limiter.flush()
            self.usage.flush()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.limiter.close()
        self.usage.close()
        self.db.close()
