"""Opens the configured storage backend: its read side (daemon, CLI) and its write side (the writer process)."""

from __future__ import annotations

from logtraced.config import Config
from logtraced.storage.backend import LogStore, StoreWriter
from logtraced.storage.tantivy.store import TantivyStore
from logtraced.storage.tantivy.writer import TantivyWriter


def open_store(config: Config) -> LogStore:
    return TantivyStore(config.data_path)


def open_writer(config: Config) -> StoreWriter:
    return TantivyWriter(config)
