"""Fixtures: one real daemon for the API tests, keys minted by the `logtraced keys` CLI, and a movable clock."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logtraced.auth.ratelimit import HOUR_SECONDS
from logtraced.auth.services import TEST_CLOCK_VARIABLE
from logtraced.model import Tenant
from tests.conftest import Store
from tests.harness import DaemonProcess, backend_environment

# Small limits so tests reach them quickly; `standard` and `enterprise` keep the seed's figures.
CONFIG = """
[http]
max_body_bytes = 4194304
client_timeout_seconds = 3.0

[index]
commit_interval_ms = 200
# The documents' examples are dated 2024: keep every day so they are stored, not expired.
retention_days = 36500

[auth.tiers.standard]
ingest_per_hour = 10000
query_per_hour = 2000

[auth.tiers.enterprise]
ingest_per_hour = 50000
query_per_hour = 10000
overflow = true

[auth.tiers.tiny]
ingest_per_hour = 3
query_per_hour = 2

[auth.tiers.tiny_overflow]
ingest_per_hour = 2
query_per_hour = 1
overflow = true
"""
MAX_BODY_BYTES = 4_194_304
CLIENT_TIMEOUT_SECONDS = 3.0
ALL_SCOPES = ("write:logs", "read:logs", "admin")


@dataclass(frozen=True)
class Key:
    """A key minted by the CLI: its secret, id and tenant."""

    secret: str
    id: str
    org: str
    environment: str

    @property
    def tenant(self) -> Tenant:
        return Tenant(self.org, self.environment)

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


class Clock:
    """The daemon's auth clock offset (LOGTRACED_TEST_CLOCK_FILE); reset to 0 after every test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        self.set(0.0)

    def set(self, offset: float) -> None:
        self.offset = offset
        self.path.write_text(repr(offset))

    def now(self) -> float:
        """What the daemon's clock reads now."""
        return time.time() + self.offset

    def move_to_seconds_before_next_hour(self, seconds: float) -> int:
        """Move the clock to `seconds` before the next top of an hour; return that hour's epoch."""
        boundary = (int(time.time()) // HOUR_SECONDS + 2) * HOUR_SECONDS
        self.set(boundary - seconds - time.time())
        return boundary


class Api:
    """The daemon under test plus the helpers every API test needs."""

    def __init__(self, daemon: DaemonProcess, config_path: Path, clock: Clock) -> None:
        self.daemon = daemon
        self.config_path = config_path
        self.clock = clock
        self.store = Store(daemon.data_dir)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`python -m logtraced <args>` against the daemon's config and data directory."""
        return run_cli(self.daemon.data_dir, self.config_path, *args)

    def create_key(
        self,
        *scopes: str,
        org: str | None = None,
        environment: str = "production",
        tier: str | None = None,
        name: str = "",
    ) -> Key:
        """Mint a key with the CLI while the daemon runs, in a fresh organisation unless one is named."""
        return mint_key(
            self.daemon.data_dir,
            *scopes,
            org=org,
            environment=environment,
            tier=tier,
            name=name,
            config_path=self.config_path,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        key: Key | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        all_headers = {**(key.bearer if key is not None else {}), **(headers or {})}
        return self.daemon.request(method, path, body=body, raw=raw, headers=all_headers)

    def ingest(
        self, key: Key, body: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        return self.request("POST", "/v1/logs/ingest", key=key, body=body, raw=raw, headers=headers)


def run_cli(data_dir: Path, config_path: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m logtraced <args> [--config FILE] --data-dir DIR`, as an operator would type it."""
    command = [sys.executable, "-m", "logtraced", *args, "--data-dir", str(data_dir)]
    if config_path is not None:
        command += ["--config", str(config_path)]
    environment = {**os.environ, **backend_environment()}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)


def mint_key(
    data_dir: Path,
    *scopes: str,
    org: str | None = None,
    environment: str = "production",
    tier: str | None = None,
    name: str = "",
    config_path: Path | None = None,
) -> Key:
    """`logtraced keys create` for `data_dir`; runs whether or not a daemon is using it.

    The directory is made first, as an operator's first install makes it: the CLI refuses a data
    directory that does not exist (a mistyped path must not start a new, empty store).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    org = org or "org-" + uuid.uuid4().hex[:10]
    args = ["keys", "create", "--org", org, "--environment", environment, "--json"]
    for scope in scopes or ("write:logs", "read:logs"):
        args += ["--scope", scope]
    if tier is not None:
        args += ["--tier", tier]
    if name:
        args += ["--name", name]
    done = run_cli(data_dir, config_path, *args)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return Key(created["secret"], created["id"], org, environment)


@pytest.fixture(scope="session")
def api_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    config_path = root / "logtraced.toml"
    config_path.write_text(CONFIG)
    clock = Clock(root / "clock-offset")
    daemon = DaemonProcess(
        root / "data", "--config", str(config_path), env={TEST_CLOCK_VARIABLE: str(clock.path)}
    ).start()
    yield Api(daemon, config_path, clock)
    daemon.kill()


@pytest.fixture
def api(api_session: Api) -> Iterator[Api]:
    """The shared daemon, with its clock back at real time after each test."""
    yield api_session
    api_session.clock.set(0.0)


@pytest.fixture
def writer(api: Api) -> Key:
    """A standard-tier key that may ingest and read, in an organisation of its own."""
    return api.create_key("write:logs", "read:logs")


def marker() -> str:
    """A word no other test sends, to find this test's events in the store."""
    return "m" + uuid.uuid4().hex[:12]


def gzipped(value: Any) -> bytes:
    return gzip.compress(json.dumps(value).encode())
