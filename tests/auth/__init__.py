"""Tests of API keys, access tokens, rate limits and usage accounting, on real SQLite files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


def at(iso: str) -> float:
    """Epoch seconds of a UTC ISO timestamp, so tests read as wall-clock moments."""
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


class FakeClock:
    """A clock the test moves by hand; stores call it like time.time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def database_bytes(data_dir: Path) -> bytes:
    """Everything SQLite has on disk for the state file, WAL included, to grep for secrets."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("state.sqlite3*")))
