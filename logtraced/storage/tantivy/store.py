"""The Tantivy backend's read side as a `LogStore`: day-partitions opened lazily, reloaded after each commit."""

from __future__ import annotations

from pathlib import Path

from logtraced.model import Tenant
from logtraced.storage.backend import CountRequest, CountResult, LogStore, SearchPage, SearchRequest
from logtraced.storage.tantivy import reader as labels
from logtraced.storage.tantivy import search
from logtraced.storage.tantivy.partitions import PartitionLayout
from logtraced.storage.tantivy.reader import IndexReader


class TantivyStore(LogStore):
    """Reads the partitions under `<data_dir>/index`; the writer process owns writing them."""

    def __init__(self, data_dir: Path) -> None:
        self._reader = IndexReader(PartitionLayout(data_dir))

    def _search(self, tenant: Tenant, request: SearchRequest) -> SearchPage:
        return search.search(self._reader, tenant, request)

    def _count(self, tenant: Tenant, request: CountRequest) -> CountResult:
        return search.count(self._reader, tenant, request)

    def _label_names(self, tenant: Tenant, start_ns: int, end_ns: int) -> list[str]:
        return labels.label_names(self._reader, tenant, start_ns, end_ns - 1)

    def _label_values(self, tenant: Tenant, name: str, start_ns: int, end_ns: int, limit: int) -> list[str]:
        return labels.label_values(self._reader, tenant, start_ns, end_ns - 1, name, limit)

    def _has_index(self, tenant: Tenant, name: str) -> bool:
        return labels.has_index(self._reader, tenant, name)

    def refresh(self) -> None:
        self._reader.on_commit()

    def forget(self, keys: list[str]) -> None:
        self._reader.drop(keys)
