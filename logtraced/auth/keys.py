"""API keys: mint them, store only their hash, list and revoke them in the state database.

A key is `lt_live_` (production) or `lt_test_` (staging, development) followed by 128 random
bits in hex.  With that much entropy a plain SHA-256 is as good as a slow password hash and
lets authentication be a dictionary lookup.  The secret itself is returned once by `create`
and never written anywhere.

`KeyStore` is plain synchronous SQL over one `Database`: the CLI calls it directly, the daemon
only on its database threads.  Authentication in the daemon is `auth.keyring.Keyring`, an
in-memory copy of this table.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from logtraced.auth.db import Clock, Database
from logtraced.errors import InvalidInput

ENVIRONMENTS = ("production", "staging", "development")
SCOPES = frozenset({"write:logs", "read:logs", "admin"})
ORG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
SECRET_PATTERN = re.compile(r"lt_(?:live|test)_[0-9a-f]{32}")
# Four hex digits after the marker tell keys apart in a listing and reveal 16 of 128 bits.
DISPLAY_HEX_DIGITS = 4
NAME_MAX_CHARS = 200

_COLUMNS = "id, display_prefix, org, environment, scopes, tier, name, created_at, revoked_at"


class KeyRecord(msgspec.Struct, frozen=True):
    """Everything known about a key except its secret."""

    id: str
    display_prefix: str
    org: str
    environment: str
    scopes: frozenset[str]
    tier: str
    name: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        """A revoked key stays listed (for audit) but never authenticates."""
        return self.revoked_at is None


def hash_secret(secret: str) -> bytes:
    """The only form in which secrets reach the database; shared with access tokens."""
    return hashlib.sha256(secret.encode()).digest()


def _secret_marker(environment: str) -> str:
    """Production keys say `live` so a leaked one is recognisable as dangerous at a glance."""
    return "lt_live_" if environment == "production" else "lt_test_"


class KeyStore:
    """API keys of every organisation, persisted in the shared state database."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    def create(self, org: str, environment: str, scopes: Iterable[str], tier: str, name: str) -> tuple[KeyRecord, str]:
        """Mint a key and return its record and its secret; the secret cannot be recovered later."""
        scope_set = frozenset(scopes)
        _validate(org, environment, scope_set, tier, name)
        marker = _secret_marker(environment)
        secret = marker + secrets.token_hex(16)
        record = KeyRecord(
            id="key_" + secrets.token_hex(6),
            display_prefix=secret[: len(marker) + DISPLAY_HEX_DIGITS] + "…",
            org=org,
            environment=environment,
            scopes=scope_set,
            tier=tier,
            name=name,
            created_at=self._clock(),
        )
        with self._db.transaction() as cur:
            cur.execute(
                f"INSERT INTO api_keys (key_hash, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (hash_secret(secret), *_to_row(record)),
            )
        return record, secret

    def list(self, org: str | None) -> list[KeyRecord]:
        """Keys of one organisation, or of all when `org` is None (operator use), oldest first."""
        where, params = ("WHERE org = ?", (org,)) if org is not None else ("", ())
        rows = self._db.fetch_all(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, id", params)
        return [_from_row(row) for row in rows]

    def revoke(self, key_id: str, org: str | None) -> bool:
        """Revoke a key, confined to `org` unless None; False when no active key matched."""
        where, params = ("AND org = ?", (org,)) if org is not None else ("", ())
        with self._db.transaction() as cur:
            cur.execute(
                f"UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL {where}",
                (self._clock(), key_id, *params),
            )
            return cur.rowcount > 0

    def load(self) -> dict[bytes, KeyRecord]:
        """Every key, revoked ones included, by the hash of its secret: what the daemon keeps in memory."""
        rows = self._db.fetch_all(f"SELECT key_hash, {_COLUMNS} FROM api_keys")
        return {bytes(row[0]): _from_row(row[1:]) for row in rows}


def _validate(org: str, environment: str, scopes: frozenset[str], tier: str, name: str) -> None:
    """Refuse a bad key up front; the message names the offending value for the operator."""
    problem = _problem(org, environment, scopes, tier, name)
    if problem is not None:
        raise InvalidInput(problem)


def _problem(org: str, environment: str, scopes: frozenset[str], tier: str, name: str) -> str | None:
    """The first thing wrong with a key request, checked in the order an operator would fix them."""
    if not ORG_PATTERN.fullmatch(org):
        return f"organisation {org!r} is not a slug ([a-z0-9][a-z0-9_-]{{0,62}})"
    if environment not in ENVIRONMENTS:
        return f"environment {environment!r} is not one of {', '.join(ENVIRONMENTS)}"
    if not scopes or not scopes <= SCOPES:
        return f"scopes must be a non-empty subset of {', '.join(sorted(SCOPES))}"
    if not tier.strip():
        return "tier must not be empty"
    if len(name) > NAME_MAX_CHARS:
        return f"name is longer than {NAME_MAX_CHARS} characters"
    return None


def _to_row(record: KeyRecord) -> tuple[Any, ...]:
    """Scopes are stored sorted and space-separated, so equal sets give equal rows."""
    scopes = " ".join(sorted(record.scopes))
    return (
        record.id,
        record.display_prefix,
        record.org,
        record.environment,
        scopes,
        record.tier,
        record.name,
        record.created_at,
        record.revoked_at,
    )


def _from_row(row: tuple[Any, ...]) -> KeyRecord:
    """The inverse of _to_row, for rows selected with _COLUMNS."""
    key_id, prefix, org, environment, scopes, tier, name, created_at, revoked_at = row
    return KeyRecord(key_id, prefix, org, environment, frozenset(scopes.split()), tier, name, created_at, revoked_at)
