"""Shared fixtures: the real daemon on ephemeral ports in a temporary data directory, and a reader of its index."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from logtraced.config import Config, load_config
from logtraced.model import Event, Tenant
from logtraced.query.ast import MatchAll, Node
from logtraced.query.kql import parse_kql
from logtraced.query.pipeline import Filter, Pipeline
from logtraced.storage.backend import LogStore, SearchRequest
from logtraced.storage.backends import open_store
from logtraced.storage.clickhouse.client import embedded_path
from logtraced.storage.clickhouse.connect import owner_client, target
from logtraced.storage.clickhouse.relay import RelayClient
from logtraced.storage.clickhouse.store import ClickHouseStore
from logtraced.storage.tantivy.partitions import PartitionLayout
from tests.harness import DaemonProcess, backend_args, wait_until

FAST_COMMIT = ("--set", "index.commit_interval_ms=200")
DEFAULT_TENANT = Tenant("default", "production")


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    """`--set key=value` flags as config overrides."""
    return [tuple(value.split("=", 1)) for flag, value in zip(args[::2], args[1::2], strict=True) if flag == "--set"]  # type: ignore[misc]


def _config(data_dir: Path) -> Config:
    return load_config(None, overrides={"data_dir": str(data_dir), **dict(_pairs(backend_args()))})


class Store:
    """Reads the daemon's store from the test process, as a second reader (the CLI) would.

    `owner=True` opens the store as its owner does, for a daemon that has stopped: the embedded
    ClickHouse is then opened by this process itself (one directory per process: use a child).
    """

    def __init__(self, data_dir: Path, *, owner: bool = False) -> None:
        config = _config(data_dir)
        self.config = config
        if owner and config.storage.backend == "clickhouse":
            self.store: LogStore = ClickHouseStore(owner_client(config), target(config))
        else:
            self.store = open_store(config)

    def days(self) -> set[int]:
        """The UTC days that hold events: Tantivy's day-partitions, ClickHouse's active day partitions."""
        if self.config.storage.backend == "tantivy":
            return {partition.day for partition in PartitionLayout(self.config.data_path).existing(DEFAULT_TENANT.org)}
        path = embedded_path(self.config)
        assert path is not None, "the suite runs ClickHouse embedded"
        client = RelayClient(path)
        try:
            rows = client.query(
                "SELECT DISTINCT partition FROM system.parts "
                "WHERE database = {db:String} AND table = 'events' AND active",
                {"db": self.config.clickhouse.database},
            )
        finally:
            client.close()
        return {int(partition) for (partition,) in rows}

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


_AT_REST = """
import sys, msgspec
from pathlib import Path
from tests.conftest import Store
events = Store(Path(sys.argv[1]), owner=True).events(field="message", term=sys.argv[2])
sys.stdout.buffer.write(msgspec.json.encode(events))
"""


def events_at_rest(data_dir: Path, term: str) -> list[Event]:
    """The events of a stopped daemon's store whose message has `term`, read as their owner reads them.

    A child process: it may open the embedded ClickHouse directory, which this process must not
    (chdb opens one directory per process, and other tests may have opened theirs).
    """
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _AT_REST, str(data_dir), term],
        capture_output=True, timeout=120, cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return msgspec.json.decode(done.stdout, type=list[Event])


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
