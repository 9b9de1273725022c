"""Opens the configured storage backend: its read side (daemon, CLI) and its write side (the writer process).

The ClickHouse backend is imported only when configured, so a Tantivy install never loads its clients.
"""

from __future__ import annotations

from logtraced.config import Config
from logtraced.storage.backend import LogStore, StoreWriter


def open_store(config: Config) -> LogStore:
    if config.storage.backend == "clickhouse":
        from logtraced.storage.clickhouse import connect

        return connect.open_store(config)
    from logtraced.storage.tantivy.store import TantivyStore

    return TantivyStore(config.data_path)


def open_writer(config: Config) -> StoreWriter:
    if config.storage.backend == "clickhouse":
        from logtraced.storage.clickhouse import connect

        return connect.open_writer(config)
    from logtraced.storage.tantivy.writer import TantivyWriter

    return TantivyWriter(config)


def check_backend(config: Config) -> None:
    """Before `serve` starts anything: the backend must be one this logtraced can run on (ClickHouse schema)."""
    if config.storage.backend == "clickhouse":
        from logtraced.storage.clickhouse import connect

        connect.check_schema(config)
