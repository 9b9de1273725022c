"""Tests for access tokens minted from API keys: format, expiry, revocation and purging."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logtraced.auth.db import Database
from logtraced.auth.dbthread import DatabaseThread
from logtraced.auth.keyring import Keyring
from logtraced.auth.keys import KeyStore
from logtraced.auth.tokens import EXPIRED_GRACE_SECONDS, TokenStore
from logtraced.errors import LogtracedError

from . import FakeClock, at, database_bytes

TTL = 86_400


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2024-03-15T10:00:00"))


@pytest.fixture
async def keys(reader: DatabaseThread, writer: DatabaseThread, clock: FakeClock) -> AsyncIterator[Keyring]:
    keyring = Keyring(reader, writer, clock)
    await keyring.load()
    yield keyring
    await keyring.close()


@pytest.fixture
def tokens(reader: DatabaseThread, writer: DatabaseThread, keys: Keyring, clock: FakeClock) -> TokenStore:
    return TokenStore(reader, writer, keys, clock, ttl_seconds=TTL)


@pytest.fixture
async def refresh(keys: Keyring) -> str:
    return (await keys.create("acme", "production", ["read:logs", "write:logs"], "enterprise", "grafana"))[1]


def token_rows(db: Database) -> int:
    (count,) = db.fetch_one("SELECT count(*) FROM access_tokens") or (0,)
    return int(count)


class TestMint:
    """A read:logs key buys a token that lives for the configured TTL."""

    async def test_format_and_expiry(self, tokens: TokenStore, refresh: str, clock: FakeClock) -> None:
        token, expires_at = await tokens.mint(refresh)
        assert re.fullmatch(r"lta_[0-9a-f]{40}", token)
        assert expires_at == int(clock.now) + TTL

    async def test_key_without_read_scope(self, tokens: TokenStore, keys: Keyring) -> None:
        _, shipper = await keys.create("acme", "production", ["write:logs"], "standard", "shipper")
        with pytest.raises(LogtracedError) as caught:
            await tokens.mint(shipper)
        assert (caught.value.status, caught.value.code) == (403, "insufficient_scope")
        assert "read:logs" in caught.value.message

    @pytest.mark.parametrize("secret", ["lt_live_" + "0" * 32, "nonsense"])
    async def test_unknown_refresh_token(self, tokens: TokenStore, secret: str) -> None:
        with pytest.raises(LogtracedError) as caught:
            await tokens.mint(secret)
        assert (caught.value.status, caught.value.code) == (401, "invalid_token")

    async def test_revoked_refresh_token(self, tokens: TokenStore, keys: Keyring, refresh: str) -> None:
        (record,) = await keys.list("acme")
        await keys.revoke(record.id, "acme")
        with pytest.raises(LogtracedError, match="not a valid API key"):
            await tokens.mint(refresh)

    async def test_only_the_hash_is_stored(self, tmp_path: Path, tokens: TokenStore, refresh: str) -> None:
        token, _ = await tokens.mint(refresh)
        assert token.encode() not in database_bytes(tmp_path)
        assert token.removeprefix("lta_").encode() not in database_bytes(tmp_path)


class TestAuthenticate:
    """A live token names its key's tenant; an expired one says so; unknown ones are None."""

    async def test_principal(self, tokens: TokenStore, keys: Keyring, refresh: str) -> None:
        token, _ = await tokens.mint(refresh)
        principal = await tokens.authenticate(token)
        assert principal is not None
        (record,) = await keys.list("acme")
        assert (principal.key_id, principal.org, principal.environment, principal.tier, principal.via) == (
            record.id,
            "acme",
            "production",
            "enterprise",
            "token",
        )
        assert principal.scopes == frozenset({"read:logs", "write:logs"})

    @pytest.mark.parametrize("token", ["lta_" + "0" * 40, "lta_", "lt_live_" + "0" * 32])
    async def test_unknown(self, tokens: TokenStore, token: str) -> None:
        assert await tokens.authenticate(token) is None

    async def test_expiry_follows_the_clock(self, tokens: TokenStore, refresh: str, clock: FakeClock) -> None:
        token, expires_at = await tokens.mint(refresh)
        clock.now = expires_at - 0.001
        assert await tokens.authenticate(token) is not None
        clock.now = expires_at
        with pytest.raises(LogtracedError) as caught:
            await tokens.authenticate(token)
        assert (caught.value.status, caught.value.code) == (401, "token_expired")
        assert caught.value.message == "Authorization token is expired"

    async def test_revoking_the_key_elsewhere_kills_its_tokens(
        self, tmp_path: Path, tokens: TokenStore, keys: Keyring, refresh: str, clock: FakeClock
    ) -> None:
        token, _ = await tokens.mint(refresh)
        (record,) = await keys.list("acme")
        with Database.open(tmp_path) as cli:
            assert KeyStore(cli, clock).revoke(record.id, "acme")
        assert await tokens.authenticate(token) is None


class TestPurge:
    """Minting removes rows expired beyond the grace period and rows of revoked keys."""

    async def test_expired_rows_stay_through_the_grace_then_go(
        self, db: Database, tokens: TokenStore, refresh: str, clock: FakeClock
    ) -> None:
        old, _ = await tokens.mint(refresh)
        clock.advance(TTL + EXPIRED_GRACE_SECONDS)
        await tokens.mint(refresh)
        assert token_rows(db) == 2
        with pytest.raises(LogtracedError, match="expired"):
            await tokens.authenticate(old)
        clock.advance(1)
        await tokens.mint(refresh)
        assert token_rows(db) == 2
        assert await tokens.authenticate(old) is None

    async def test_rows_of_revoked_keys_go(self, db: Database, tokens: TokenStore, keys: Keyring, refresh: str) -> None:
        await tokens.mint(refresh)
        (record,) = await keys.list("acme")
        await keys.revoke(record.id, "acme")
        _, other = await keys.create("acme", "production", ["read:logs"], "standard", "other")
        await tokens.mint(other)
        assert token_rows(db) == 1
