"""Tests for access tokens minted from API keys: format, expiry, revocation and purging."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from logtraced.auth.db import Database
from logtraced.auth.keys import KeyStore
from logtraced.auth.tokens import EXPIRED_GRACE_SECONDS, TokenStore
from logtraced.errors import LogtracedError

from . import FakeClock, at, database_bytes

TTL = 86_400


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2024-03-15T10:00:00"))


@pytest.fixture
def keys(db: Database, clock: FakeClock) -> KeyStore:
    return KeyStore(db, clock)


@pytest.fixture
def tokens(db: Database, keys: KeyStore, clock: FakeClock) -> TokenStore:
    return TokenStore(db, keys, clock, ttl_seconds=TTL)


@pytest.fixture
def refresh(keys: KeyStore) -> str:
    return keys.create("acme", "production", ["read:logs", "write:logs"], "enterprise", "grafana")[1]


def token_rows(db: Database) -> int:
    (count,) = db.fetch_one("SELECT count(*) FROM access_tokens") or (0,)
    return int(count)


class TestMint:
    """A read:logs key buys a token that lives for the configured TTL."""

    def test_format_and_expiry(self, tokens: TokenStore, refresh: str, clock: FakeClock) -> None:
        token, expires_at = tokens.mint(refresh)
        assert re.fullmatch(r"lta_[0-9a-f]{40}", token)
        assert expires_at == int(clock.now) + TTL

    def test_key_without_read_scope(self, tokens: TokenStore, keys: KeyStore) -> None:
        _, shipper = keys.create("acme", "production", ["write:logs"], "standard", "shipper")
        with pytest.raises(LogtracedError) as caught:
            tokens.mint(shipper)
        assert (caught.value.status, caught.value.code) == (403, "insufficient_scope")
        assert "read:logs" in caught.value.message

    @pytest.mark.parametrize("secret", ["lt_live_" + "0" * 32, "nonsense"])
    def test_unknown_refresh_token(self, tokens: TokenStore, secret: str) -> None:
        with pytest.raises(LogtracedError) as caught:
            tokens.mint(secret)
        assert (caught.value.status, caught.value.code) == (401, "invalid_token")

    def test_revoked_refresh_token(self, tokens: TokenStore, keys: KeyStore, refresh: str) -> None:
        keys.revoke(keys.list("acme")[0].id, "acme")
        with pytest.raises(LogtracedError, match="not a valid API key"):
            tokens.mint(refresh)

    def test_only_the_hash_is_stored(self, tmp_path: Path, tokens: TokenStore, refresh: str) -> None:
        token, _ = tokens.mint(refresh)
        assert token.encode() not in database_bytes(tmp_path)
        assert token.removeprefix("lta_").encode() not in database_bytes(tmp_path)


class TestAuthenticate:
    """A live token names its key's tenant; an expired one says so; unknown ones are None."""

    def test_principal(self, tokens: TokenStore, keys: KeyStore, refresh: str) -> None:
        token, _ = tokens.mint(refresh)
        principal = tokens.authenticate(token)
        assert principal is not None
        (record,) = keys.list("acme")
        assert (principal.key_id, principal.org, principal.environment, principal.tier, principal.via) == (
            record.id,
            "acme",
            "production",
            "enterprise",
            "token",
        )
        assert principal.scopes == frozenset({"read:logs", "write:logs"})

    @pytest.mark.parametrize("token", ["lta_" + "0" * 40, "lta_", "lt_live_" + "0" * 32])
    def test_unknown(self, tokens: TokenStore, token: str) -> None:
        assert tokens.authenticate(token) is None

    def test_expiry_follows_the_clock(self, tokens: TokenStore, refresh: str, clock: FakeClock) -> None:
        token, expires_at = tokens.mint(refresh)
        clock.now = expires_at - 0.001
        assert tokens.authenticate(token) is not None
        clock.now = expires_at
        with pytest.raises(LogtracedError) as caught:
            tokens.authenticate(token)
        assert (caught.value.status, caught.value.code) == (401, "token_expired")
        assert caught.value.message == "Authorization token is expired"

    def test_revoking_the_key_elsewhere_kills_its_tokens(
        self, tmp_path: Path, tokens: TokenStore, keys: KeyStore, refresh: str, clock: FakeClock
    ) -> None:
        token, _ = tokens.mint(refresh)
        (record,) = keys.list("acme")
        with Database.open(tmp_path) as cli:
            assert KeyStore(cli, clock).revoke(record.id, "acme")
        assert tokens.authenticate(token) is None


class TestPurge:
    """Minting removes rows expired beyond the grace period and rows of revoked keys."""

    def test_expired_rows_stay_through_the_grace_then_go(
        self, db: Database, tokens: TokenStore, refresh: str, clock: FakeClock
    ) -> None:
        old, _ = tokens.mint(refresh)
        clock.advance(TTL + EXPIRED_GRACE_SECONDS)
        tokens.mint(refresh)
        assert token_rows(db) == 2
        with pytest.raises(LogtracedError, match="expired"):
            tokens.authenticate(old)
        clock.advance(1)
        tokens.mint(refresh)
        assert token_rows(db) == 2
        assert tokens.authenticate(old) is None

    def test_rows_of_revoked_keys_go(self, db: Database, tokens: TokenStore, keys: KeyStore, refresh: str) -> None:
        tokens.mint(refresh)
        (record,) = keys.list("acme")
        keys.revoke(record.id, "acme")
        _, other = keys.create("acme", "production", ["read:logs"], "standard", "other")
        tokens.mint(other)
        assert token_rows(db) == 1
