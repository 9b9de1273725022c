"""Tests for the state database, API key storage, the daemon's keyring, and the principal checks."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logtraced.auth.db import MIGRATIONS, Database
from logtraced.auth.dbthread import DatabaseThread
from logtraced.auth.keyring import Keyring
from logtraced.auth.keys import KeyStore, hash_secret
from logtraced.auth.principal import Principal, check_environment, require_scope
from logtraced.errors import LogtracedError, StorageError

from . import FakeClock, at, database_bytes


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2024-03-15T10:00:00"))


@pytest.fixture
def store(db: Database, clock: FakeClock) -> KeyStore:
    return KeyStore(db, clock)


@pytest.fixture
async def keyring(reader: DatabaseThread, writer: DatabaseThread, clock: FakeClock) -> AsyncIterator[Keyring]:
    ring = Keyring(reader, writer, clock)
    await ring.load()
    yield ring
    await ring.close()


class TestStateDatabase:
    """The state file is created in WAL mode, migrated once, and refuses a newer schema."""

    def test_creates_file_in_wal_mode_at_current_version(self, tmp_path: Path, db: Database) -> None:
        assert db.path == tmp_path / "state.sqlite3"
        assert db.fetch_one("PRAGMA journal_mode") == ("wal",)
        assert db.fetch_one("PRAGMA user_version") == (len(MIGRATIONS),)

    def test_reopening_keeps_data(self, tmp_path: Path, clock: FakeClock) -> None:
        with Database.open(tmp_path) as first:
            record, secret = KeyStore(first, clock).create("acme", "production", ["read:logs"], "standard", "ci")
        with Database.open(tmp_path) as second:
            assert KeyStore(second, clock).load() == {hash_secret(secret): record}

    def test_newer_schema_is_refused(self, tmp_path: Path) -> None:
        Database.open(tmp_path).close()
        raw = sqlite3.connect(tmp_path / "state.sqlite3")
        raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        raw.close()
        with pytest.raises(StorageError, match="newer"):
            Database.open(tmp_path)

    def test_sqlite_failures_become_storage_errors(self, db: Database) -> None:
        with pytest.raises(StorageError):
            db.fetch_all("SELECT * FROM no_such_table")


class TestKeyFormat:
    """Secrets carry an environment marker and 128 random bits; ids and prefixes are public."""

    def test_production_key_is_live(self, store: KeyStore) -> None:
        record, secret = store.create("acme", "production", ["write:logs"], "standard", "shipper")
        assert re.fullmatch(r"lt_live_[0-9a-f]{32}", secret)
        assert re.fullmatch(r"key_[0-9a-f]{12}", record.id)
        assert record.display_prefix == secret[:12] + "…"

    @pytest.mark.parametrize("environment", ["staging", "development"])
    def test_non_production_keys_are_test(self, store: KeyStore, environment: str) -> None:
        _, secret = store.create("acme", environment, ["write:logs"], "standard", "shipper")
        assert re.fullmatch(r"lt_test_[0-9a-f]{32}", secret)

    def test_record_keeps_what_was_asked(self, store: KeyStore, clock: FakeClock) -> None:
        record, _ = store.create("acme-2", "staging", ["read:logs", "admin"], "gold", "dashboard")
        assert (record.org, record.environment, record.tier, record.name) == ("acme-2", "staging", "gold", "dashboard")
        assert record.scopes == frozenset({"read:logs", "admin"})
        assert record.created_at == clock.now and record.revoked_at is None

    def test_secrets_differ(self, store: KeyStore) -> None:
        secrets = {store.create("acme", "production", ["read:logs"], "standard", "x")[1] for _ in range(20)}
        assert len(secrets) == 20


class TestKeyValidation:
    """A malformed key request is refused with a 400 naming the bad value."""

    @pytest.mark.parametrize(
        ("org", "environment", "scopes", "tier", "fragment"),
        [
            ("Acme", "production", ["read:logs"], "standard", "organisation"),
            ("-acme", "production", ["read:logs"], "standard", "organisation"),
            ("acme\n", "production", ["read:logs"], "standard", "organisation"),
            ("a" * 64, "production", ["read:logs"], "standard", "organisation"),
            ("acme", "prod", ["read:logs"], "standard", "environment"),
            ("acme", "production", [], "standard", "scopes"),
            ("acme", "production", ["delete:logs"], "standard", "scopes"),
            ("acme", "production", ["read:logs"], " ", "tier"),
        ],
    )
    def test_refused(
        self, store: KeyStore, org: str, environment: str, scopes: list[str], tier: str, fragment: str
    ) -> None:
        with pytest.raises(LogtracedError, match=fragment) as caught:
            store.create(org, environment, scopes, tier, "name")
        assert (caught.value.status, caught.value.code) == (400, "invalid_request")
        assert store.list(None) == []

    def test_longest_slug_is_accepted(self, store: KeyStore) -> None:
        record, _ = store.create("a" * 63, "production", ["read:logs"], "standard", "x")
        assert record.org == "a" * 63


class TestHashOnlyStorage:
    """Only the SHA-256 of a secret ever reaches the disk."""

    def test_secret_bytes_are_absent_from_the_database(self, tmp_path: Path, store: KeyStore, db: Database) -> None:
        _, secret = store.create("acme", "production", ["read:logs"], "standard", "x")
        body = secret.removeprefix("lt_live_").encode()
        while_open = database_bytes(tmp_path)
        db.close()
        after_close = database_bytes(tmp_path)
        for content in (while_open, after_close):
            assert secret.encode() not in content
            assert body not in content
        assert hash_secret(secret) in while_open + after_close


class TestKeyringAuthenticate:
    """A live secret yields its record; unknown, malformed and revoked ones yield None."""

    async def test_known_secret(self, keyring: Keyring) -> None:
        record, secret = await keyring.create("acme", "production", ["read:logs"], "standard", "x")
        assert await keyring.authenticate(secret) == record
        assert await keyring.authenticate(secret) == record
        assert await keyring.active(record.id) == record

    @pytest.mark.parametrize(
        "secret",
        ["lt_live_" + "0" * 32, "lt_live_short", "", "Bearer lt_live_" + "0" * 32, "lt_live_" + "A" * 32],
    )
    async def test_unknown_or_malformed(self, keyring: Keyring, secret: str) -> None:
        assert await keyring.authenticate(secret) is None

    async def test_revoked_through_the_keyring_at_once(self, keyring: Keyring) -> None:
        record, secret = await keyring.create("acme", "production", ["read:logs"], "standard", "x")
        assert await keyring.authenticate(secret) is not None
        assert await keyring.revoke(record.id, "acme") is True
        assert await keyring.authenticate(secret) is None
        assert await keyring.active(record.id) is None

    async def test_list_and_revoke_stay_in_the_org(self, keyring: Keyring) -> None:
        record, secret = await keyring.create("acme", "production", ["read:logs"], "standard", "x")
        assert await keyring.list("acme") == [record]
        assert await keyring.list("globex") == []
        assert await keyring.revoke(record.id, "globex") is False
        assert await keyring.authenticate(secret) == record


class TestOtherProcess:
    """Keys created or revoked through another connection (the CLI) are seen by the next authenticate()."""

    async def test_created_elsewhere(self, keyring: Keyring, store: KeyStore) -> None:
        assert await keyring.authenticate("lt_live_" + "1" * 32) is None
        record, secret = store.create("acme", "production", ["write:logs"], "standard", "x")
        assert await keyring.authenticate(secret) == record

    async def test_revoked_elsewhere_drops_the_record(self, keyring: Keyring, store: KeyStore) -> None:
        record, secret = store.create("acme", "production", ["write:logs"], "standard", "x")
        assert await keyring.authenticate(secret) == record
        assert store.revoke(record.id, None) is True
        assert await keyring.authenticate(secret) is None

    async def test_known_keys_authenticate_while_another_process_holds_the_write_lock(
        self, tmp_path: Path, keyring: Keyring, store: KeyStore
    ) -> None:
        record, secret = store.create("acme", "production", ["write:logs"], "standard", "x")
        cli = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
        try:
            cli.execute("BEGIN IMMEDIATE")
            # The lock is held by this very thread: a keyring that needed it could only fail.
            assert await keyring.authenticate(secret) == record
            assert await keyring.authenticate("lt_live_" + "2" * 32) is None
        finally:
            cli.execute("ROLLBACK")
            cli.close()


class TestSlowReader:
    """When the reader thread cannot answer in time, known keys use the last refresh and unknown ones get 503."""

    async def test_bounded_waits(self, reader: DatabaseThread, writer: DatabaseThread, store: KeyStore) -> None:
        record, secret = store.create("acme", "production", ["write:logs"], "standard", "x")
        keyring = Keyring(reader, writer, fresh_wait_seconds=0.01, miss_wait_seconds=0.01)
        await keyring.load()
        release = threading.Event()
        stuck = asyncio.ensure_future(reader.run(lambda db: release.wait()))
        try:
            assert await keyring.authenticate(secret) == record
            with pytest.raises(StorageError) as caught:
                await keyring.authenticate("lt_live_" + "3" * 32)
            assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
                503,
                "storage_unavailable",
                30,
            )
        finally:
            release.set()
            await stuck
            await keyring.close()

    async def test_a_revocation_is_stale_for_at_most_one_refresh(
        self, reader: DatabaseThread, writer: DatabaseThread, store: KeyStore
    ) -> None:
        record, secret = store.create("acme", "production", ["write:logs"], "standard", "x")
        keyring = Keyring(reader, writer, fresh_wait_seconds=0.01)
        await keyring.load()
        release = threading.Event()
        stuck = asyncio.ensure_future(reader.run(lambda db: release.wait()))
        store.revoke(record.id, None)
        assert await keyring.authenticate(secret) == record, "answered from the refresh before the revocation"
        release.set()
        await stuck
        assert await keyring.authenticate(secret) is None
        await keyring.close()


class TestListAndRevoke:
    """Listing and revocation stay inside the organisation they are asked for."""

    def test_list_by_org_and_all(self, store: KeyStore, clock: FakeClock) -> None:
        first, _ = store.create("acme", "production", ["read:logs"], "standard", "a")
        clock.advance(1)
        second, _ = store.create("acme", "staging", ["read:logs"], "standard", "b")
        other, _ = store.create("globex", "production", ["read:logs"], "standard", "c")
        assert store.list("acme") == [first, second]
        assert store.list("globex") == [other]
        assert {r.id for r in store.list(None)} == {first.id, second.id, other.id}

    def test_revoke_outside_org_is_refused(self, store: KeyStore) -> None:
        record, _ = store.create("acme", "production", ["read:logs"], "standard", "a")
        assert store.revoke(record.id, "globex") is False
        assert store.list("acme") == [record]

    def test_revoked_key_stays_listed(self, store: KeyStore, clock: FakeClock) -> None:
        record, _ = store.create("acme", "production", ["read:logs"], "standard", "a")
        clock.advance(60)
        assert store.revoke(record.id, "acme") is True
        assert store.revoke(record.id, "acme") is False
        (listed,) = store.list("acme")
        assert listed.revoked_at == clock.now and not listed.active

    def test_unknown_id(self, store: KeyStore) -> None:
        assert store.revoke("key_000000000000", None) is False


class TestPrincipalChecks:
    """Scope and environment checks refuse with 403 and a stable code."""

    def principal(self, store: KeyStore) -> Principal:
        record, _ = store.create("acme", "staging", ["read:logs"], "standard", "a")
        return Principal.from_key(record)

    def test_from_key(self, store: KeyStore) -> None:
        principal = self.principal(store)
        assert (principal.org, principal.environment, principal.via) == ("acme", "staging", "key")

    def test_missing_scope(self, store: KeyStore) -> None:
        principal = self.principal(store)
        require_scope(principal, "read:logs")
        with pytest.raises(LogtracedError) as caught:
            require_scope(principal, "write:logs")
        assert (caught.value.status, caught.value.code) == (403, "insufficient_scope")
        assert caught.value.message == "this key lacks the scope write:logs"

    def test_other_environment(self, store: KeyStore) -> None:
        principal = self.principal(store)
        check_environment(principal, None)
        check_environment(principal, "staging")
        with pytest.raises(LogtracedError) as caught:
            check_environment(principal, "production")
        assert (caught.value.status, caught.value.code) == (403, "cross_environment")
