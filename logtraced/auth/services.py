"""The daemon's auth services in one object: opened at start, flushed periodically, closed at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from logtraced.auth.db import Clock, Database
from logtraced.auth.keys import KeyStore
from logtraced.auth.ratelimit import RateLimiter, Tier
from logtraced.auth.tokens import TokenStore
from logtraced.auth.usage import UsageRecorder
from logtraced.config import Config

FLUSH_EVERY_SECONDS = 1.0


@dataclass
class AuthServices:
    """Keys, tokens, rate limits and usage over one SQLite connection owned by the event loop."""

    db: Database
    keys: KeyStore
    tokens: TokenStore
    limiter: RateLimiter
    usage: UsageRecorder
    _flusher: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, config: Config, clock: Clock = time.time) -> AuthServices:
        config.data_path.mkdir(parents=True, exist_ok=True)
        db = Database.open(config.data_path)
        keys = KeyStore(db, clock)
        tiers = {
            name: Tier(name, tier.ingest_per_hour, tier.query_per_hour, tier.overflow)
            for name, tier in config.auth.tiers.items()
        }
        return cls(
            db=db,
            keys=keys,
            tokens=TokenStore(db, keys, clock, config.auth.token_ttl_seconds),
            limiter=RateLimiter(db, tiers, clock),
            usage=UsageRecorder(db, clock),
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
