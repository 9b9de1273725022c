"""ClickHouse's engine through chdb: one directory per session (chdb opens one per process), a database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from logtraced.config import Config, load_config
from logtraced.model import Event, Tenant
from logtraced.storage.backend import StoreWriter
from logtraced.storage.clickhouse import schema
from logtraced.storage.clickhouse.client import ChdbClient
from logtraced.storage.clickhouse.store import ClickHouseStore
from logtraced.storage.clickhouse.writer import ClickHouseWriter
from logtraced.storage.wal import WalWriter
from logtraced.storage.writer import WalApplier

pytest.importorskip("chdb")


class Backend:
    """A fresh database in the session's embedded engine: its store, and writers over it."""

    def __init__(self, client: ChdbClient) -> None:
        self.client = client
        self.target = schema.Target("t_" + uuid.uuid4().hex[:12])
        schema.migrate(client, self.target)
        self.store = ClickHouseStore(client, self.target)

    def writer(self) -> ClickHouseWriter:
        """A writer as a restarted writer process makes it: it learns what is stored from the table."""
        return ClickHouseWriter(self.client, self.target)

    def count(self) -> int:
        return int(self.client.query(f"SELECT count() FROM {self.target.events}")[0][0])


@pytest.fixture(scope="session")
def chdb_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbClient]:
    client = ChdbClient(tmp_path_factory.mktemp("chdb"))
    yield client
    client.close()


@pytest.fixture
def backend(chdb_client: ChdbClient) -> Iterator[Backend]:
    made = Backend(chdb_client)
    yield made
    chdb_client.command(f"DROP DATABASE `{made.target.database}`")


def make_config(data_dir: Path, retention_days: int = 36500) -> Config:
    overrides = {"data_dir": str(data_dir), "index.retention_days": retention_days, "storage.backend": "clickhouse"}
    return load_config(None, overrides=overrides)


def write_wal(cfg: Config, batches: list[tuple[Tenant, list[Event]]]) -> int:
    """Append the batches to a real WAL (as the daemon does); returns the last sequence number."""
    wal = WalWriter(cfg.data_path / "wal", cfg.wal.segment_bytes)
    for tenant, events in batches:
        for event in events:
            event.org, event.env = tenant.org, tenant.env
        wal.append(tenant, events)
    wal.sync()
    seq = wal.written_seq
    wal.close()
    return seq


def apply_wal(cfg: Config, store: StoreWriter, through: int) -> WalApplier:
    """Apply the WAL with the real applier (ids, retention, commit, segment deletion) as the writer process does."""
    applier = WalApplier(cfg, store)
    applier.apply_until(through, float("inf"))
    applier.commit()
    return applier
