"""The ClickHouse backend's read side as a `LogStore`: every read is one or a few confined statements."""

from __future__ import annotations

from logtraced.model import Tenant
from logtraced.storage.backend import CountRequest, CountResult, LogStore, SearchPage, SearchRequest
from logtraced.storage.clickhouse import labels, search
from logtraced.storage.clickhouse.client import Client
from logtraced.storage.clickhouse.schema import Target


class ClickHouseStore(LogStore):
    """Reads the events table; commits are visible at once (an acknowledged INSERT is readable), so refresh is free."""

    def __init__(self, client: Client, target: Target) -> None:
        self._client = client
        self._target = target

    def _search(self, tenant: Tenant, request: SearchRequest) -> SearchPage:
        return search.search(self._client, self._target, tenant, request)

    def _count(self, tenant: Tenant, request: CountRequest) -> CountResult:
        return search.count(self._client, self._target, tenant, request)

    def _label_names(self, tenant: Tenant, start_ns: int, end_ns: int) -> list[str]:
        return labels.label_names(self._client, self._target, tenant, start_ns, end_ns)

    def _label_values(self, tenant: Tenant, name: str, start_ns: int, end_ns: int, limit: int) -> list[str]:
        return labels.label_values(self._client, self._target, tenant, name, start_ns, end_ns, limit)

    def _has_index(self, tenant: Tenant, name: str) -> bool:
        return labels.has_index(self._client, self._target, tenant, name)

    def refresh(self) -> None:
        """Nothing to reload: ClickHouse serves acknowledged inserts to the next statement."""

    def forget(self, keys: list[str]) -> None:
        """Nothing held open: a dropped partition is simply gone for the next statement."""

    def close(self) -> None:
        self._client.close()
