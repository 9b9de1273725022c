"""Short-lived access tokens for the query_range API, minted from an API key used as refresh token.

A token (`lta_` + 160 random bits in hex) is stored only as its SHA-256 with a snapshot of
the key's tenant and scopes.  Authentication asks the keyring whether the parent key is still
active, so revoking the key (from any process) invalidates its tokens with it.  Expired rows
are kept for a grace period so a late client is told "expired" (and refreshes) rather than
"unknown"; rows past the grace, and rows of revoked keys, are purged whenever a new token is
minted.

Tokens never change once written, so the daemon keeps the ones it has seen in memory: minting
writes on the writer thread, and an unknown token is looked up once on the reader thread.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Final

import msgspec

from logtraced.auth.db import Clock, Database
from logtraced.auth.dbthread import STORAGE_RETRY_SECONDS, DatabaseThread
from logtraced.auth.keyring import MISS_WAIT_SECONDS, Keyring
from logtraced.auth.keys import KeyRecord, hash_secret
from logtraced.auth.principal import Principal, require_scope
from logtraced.errors import StorageError, Unauthenticated

TOKEN_PATTERN = re.compile(r"lta_[0-9a-f]{40}")
DEFAULT_TTL_SECONDS = 86_400
EXPIRED_GRACE_SECONDS = 7 * 86_400
REFRESH_SCOPE: Final = "read:logs"


class TokenRecord(msgspec.Struct, frozen=True):
    """A token's row: whose it is and until when; the tier comes from the key at each use."""

    key_id: str
    org: str
    environment: str
    scopes: frozenset[str]
    expires_at: int


class TokenStore:
    """Mints and checks access tokens; the database is touched only on its threads."""

    def __init__(
        self,
        reader: DatabaseThread,
        writer: DatabaseThread,
        keys: Keyring,
        clock: Clock = time.time,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        *,
        miss_wait_seconds: float = MISS_WAIT_SECONDS,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._keys = keys
        self._clock = clock
        self._ttl = ttl_seconds
        self._miss_wait = miss_wait_seconds
        self._known: dict[bytes, TokenRecord] = {}

    async def mint(self, refresh_secret: str) -> tuple[str, int]:
        """Exchange an API key holding read:logs for a token; returns it and its expiry (epoch seconds)."""
        key = await self._keys.authenticate(refresh_secret)
        if key is None:
            raise Unauthenticated("the refresh token is not a valid API key", code="invalid_token")
        require_scope(Principal.from_key(key), REFRESH_SCOPE)
        now = int(self._clock())
        token = "lta_" + secrets.token_hex(20)
        digest = hash_secret(token)
        record = _record_for(key, now + self._ttl)
        purge_before = now - EXPIRED_GRACE_SECONDS
        await self._writer.run(lambda db: _insert(db, digest, record, purge_before))
        self._forget_expired(purge_before)
        self._known[digest] = record
        return token, record.expires_at

    async def authenticate(self, token: str) -> Principal | None:
        """The caller behind a token; None when unknown or its key is revoked, 401 when expired."""
        if not TOKEN_PATTERN.fullmatch(token):
            return None
        record = await self._lookup(hash_secret(token))
        if record is None:
            return None
        key = await self._keys.active(record.key_id)
        if key is None:
            return None
        if self._clock() >= record.expires_at:
            raise Unauthenticated("Authorization token is expired", code="token_expired")
        return Principal(record.key_id, record.org, record.environment, record.scopes, key.tier, "token")

    async def _lookup(self, digest: bytes) -> TokenRecord | None:
        """From memory, else from the reader thread (a token minted before a restart); unknown ones are not kept."""
        record = self._known.get(digest)
        if record is not None:
            return record
        try:
            async with asyncio.timeout(self._miss_wait):
                record = await self._reader.run(lambda db: _find(db, digest))
        except TimeoutError:
            raise StorageError(
                "the state database did not answer in time; the token could not be checked",
                retry_after=STORAGE_RETRY_SECONDS,
            ) from None
        if record is not None:
            self._known[digest] = record
        return record

    def _forget_expired(self, purge_before: int) -> None:
        """Memory follows the database's purge, so the cache is bounded like the table."""
        self._known = {digest: r for digest, r in self._known.items() if r.expires_at >= purge_before}


def _record_for(key: KeyRecord, expires_at: int) -> TokenRecord:
    return TokenRecord(key.id, key.org, key.environment, key.scopes, expires_at)


def _insert(db: Database, digest: bytes, record: TokenRecord, purge_before: int) -> None:
    """On the writer thread: purge dead rows and store the new token in one transaction."""
    with db.transaction() as cur:
        cur.execute(
            "DELETE FROM access_tokens WHERE expires_at < ?"
            " OR key_id IN (SELECT id FROM api_keys WHERE revoked_at IS NOT NULL)",
            (purge_before,),
        )
        cur.execute(
            "INSERT INTO access_tokens (token_hash, key_id, org, environment, scopes, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                digest,
                record.key_id,
                record.org,
                record.environment,
                " ".join(sorted(record.scopes)),
                record.expires_at,
            ),
        )


def _find(db: Database, digest: bytes) -> TokenRecord | None:
    """On the reader thread: a token row by hash, whatever the state of its key (the keyring decides)."""
    row = db.fetch_one(
        "SELECT key_id, org, environment, scopes, expires_at FROM access_tokens WHERE token_hash = ?", (digest,)
    )
    if row is None:
        return None
    key_id, org, environment, scopes, expires_at = row
    return TokenRecord(key_id, org, environment, frozenset(scopes.split()), int(expires_at))
