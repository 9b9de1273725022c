"""Short-lived access tokens for the query_range API, minted from an API key used as refresh token.

A token (`lta_` + 160 random bits in hex) is stored only as its SHA-256 with a snapshot of
the key's tenant and scopes.  Every authentication joins the parent key, so revoking the key
(from any process) invalidates its tokens at once.  Expired rows are kept for a grace period
so a late client is told "expired" (and refreshes) rather than "unknown"; rows past the grace,
and rows of revoked keys, are purged whenever a new token is minted.
"""

from __future__ import annotations

import re
import secrets
import time

from logtraced.auth.db import Clock, Database
from logtraced.auth.keys import KeyStore, hash_secret
from logtraced.auth.principal import Principal, require_scope
from logtraced.errors import Unauthenticated

TOKEN_PATTERN = re.compile(r"lta_[0-9a-f]{40}")
DEFAULT_TTL_SECONDS = 86_400
EXPIRED_GRACE_SECONDS = 7 * 86_400
REFRESH_SCOPE = "read:logs"


class TokenStore:
    """Mints and checks access tokens in the shared state database."""

    def __init__(
        self, db: Database, keys: KeyStore, clock: Clock = time.time, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        self._db = db
        self._keys = keys
        self._clock = clock
        self._ttl = ttl_seconds

    def mint(self, refresh_secret: str) -> tuple[str, int]:
        """Exchange an API key holding read:logs for a token; returns it and its expiry (epoch seconds)."""
        record = self._keys.authenticate(refresh_secret)
        if record is None:
            raise Unauthenticated("the refresh token is not a valid API key", code="invalid_token")
        require_scope(Principal.from_key(record), REFRESH_SCOPE)
        now = int(self._clock())
        token = "lta_" + secrets.token_hex(20)
        expires_at = now + self._ttl
        with self._db.transaction() as cur:
            cur.execute(
                "DELETE FROM access_tokens WHERE expires_at < ?"
                " OR key_id IN (SELECT id FROM api_keys WHERE revoked_at IS NOT NULL)",
                (now - EXPIRED_GRACE_SECONDS,),
            )
            cur.execute(
                "INSERT INTO access_tokens (token_hash, key_id, org, environment, scopes, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    hash_secret(token),
                    record.id,
                    record.org,
                    record.environment,
                    " ".join(sorted(record.scopes)),
                    expires_at,
                ),
            )
        return token, expires_at

    def authenticate(self, token: str) -> Principal | None:
        """The caller behind a token; None when unknown or its key is revoked, 401 when expired."""
        if not TOKEN_PATTERN.fullmatch(token):
            return None
        row = self._db.fetch_one(
            "SELECT t.key_id, t.org, t.environment, t.scopes, k.tier, t.expires_at"
            " FROM access_tokens t JOIN api_keys k ON k.id = t.key_id"
            " WHERE t.token_hash = ? AND k.revoked_at IS NULL",
            (hash_secret(token),),
        )
        if row is None:
            return None
        key_id, org, environment, scopes, tier, expires_at = row
        if self._clock() >= expires_at:
            raise Unauthenticated("Authorization token is expired", code="token_expired")
        return Principal(key_id, org, environment, frozenset(scopes.split()), tier, "token")
