"""Opens the ClickHouse backend for each role: the writer process (owner), readers, `serve`'s schema check.

Embedded (chdb://PATH): the writer process opens the directory, creates the schema on a fresh
database and relays reads (relay.py); every other process reads through the relay.  Server
(http(s)://): every process has its own clickhouse-connect client.
"""

from __future__ import annotations

from logtraced.config import Config
from logtraced.storage.clickhouse import schema
from logtraced.storage.clickhouse.client import ChdbClient, Client, HttpClient, embedded_path
from logtraced.storage.clickhouse.relay import RelayClient, RelayServer
from logtraced.storage.clickhouse.store import ClickHouseStore
from logtraced.storage.clickhouse.writer import ClickHouseWriter


def target(config: Config) -> schema.Target:
    return schema.Target(config.clickhouse.database, config.clickhouse.cluster)


def owner_client(config: Config) -> Client:
    """A client that may write: the embedded engine itself (this process then owns its directory), or a server."""
    path = embedded_path(config)
    return ChdbClient(path) if path is not None else HttpClient(config)


def migrate_schema(client: Client, config: Config) -> tuple[int | None, int]:
    """Create or upgrade the tables; the embedded engine also gets the version mark `serve` reads."""
    found, now = schema.migrate(client, target(config))
    path = embedded_path(config)
    if path is not None:
        schema.write_version_file(path, now)
    return found, now


def open_writer(config: Config) -> ClickHouseWriter:
    """The writer process's side: creates the schema on a fresh database, refuses an unknown one."""
    client = owner_client(config)
    where = target(config)
    found = schema.installed_version(client, where)
    schema.check(found, create_if_absent=True)
    if found is None:
        migrate_schema(client, config)
    path = embedded_path(config)
    if path is None:
        return ClickHouseWriter(client, where, on_close=client.close)
    relay = RelayServer(client, path)

    def close() -> None:
        relay.stop()
        client.close()

    return ClickHouseWriter(client, where, on_close=close)


def open_store(config: Config) -> ClickHouseStore:
    path = embedded_path(config)
    client: Client = RelayClient(path) if path is not None else HttpClient(config)
    return ClickHouseStore(client, target(config))


def check_schema(config: Config) -> None:
    """`serve` refuses a schema it does not know before anything starts; a fresh database is created by the writer."""
    path = embedded_path(config)
    if path is not None:
        schema.check(schema.read_version_file(path), create_if_absent=True)
        return
    client = HttpClient(config)
    try:
        schema.check(schema.installed_version(client, target(config)), create_if_absent=True)
    finally:
        client.close()
