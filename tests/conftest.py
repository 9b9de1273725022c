"""Shared fixtures: the real daemon on ephemeral ports in a temporary data directory, and a reader of its index."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logtraced.config import load_config
from logtraced.model import Event, Tenant
from logtraced.query.ast import MatchAll, Node
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import SearchRequest
from logtraced.storage.backends import open_store
from tests.harness import DaemonProcess, backend_args, wait_until

FAST_COMMIT = ("--set", "index.commit_interval_ms=200")
DEFAULT_TENANT = Tenant("default", "production")


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    """`--set key=value` flags as config overrides."""
    return [tuple(value.split("=", 1)) for flag, value in zip(args[::2], args[1::2], strict=True) if flag == "--set"]  # type: ignore[misc]


class Store:
    """Reads the daemon's store from the test process, as a second reader (the CLI) would."""

    def __init__(self, data_dir: Path) -> None:
        overrides = {"data_dir": str(data_dir), **dict(_pairs(backend_args()))}
        self.store = open_store(load_config(None, overrides=overrides))

    def events(
        self,
        tenant: Tenant = DEFAULT_TENANT,
        *,
        field: str | None = None,
        term: str | None = None,
        limit: int = 100_000,
        start_ns: int = 0,
        end_ns: int = 2**62,
    ) -> list[Event]:
        self.store.refresh()  # always reload: the daemon commits from another process
        node: Node = MatchAll()
        if field is not None and term is not None:
            quoted = term.replace("\\", "\\\\").replace('"', '\\"')
            node = parse_kql(f'{field}:"{quoted}"')
        request = SearchRequest(start_ns, end_ns, Pipeline((Filter(node),)), limit)
        return [row.event for row in self.store.for_tenant(tenant).search(request).rows]

    def wait_for(self, count: int, timeout: float = 20.0, **query: object) -> list[Event]:
        """Poll until at least `count` events match, then return them (no sleeping on a guess)."""
        found: list[Event] = []

        def enough() -> bool:
            nonlocal found
            found = self.events(**query)  # type: ignore[arg-type]
            return len(found) >= count

        wait_until(enough, timeout)
        return found


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path / "data", *FAST_COMMIT).start()
    yield process
    process.kill()


@pytest.fixture
def store(daemon: DaemonProcess) -> Store:
    return Store(daemon.data_dir)


def now_ns() -> int:
    return time.time_ns()
