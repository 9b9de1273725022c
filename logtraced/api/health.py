"""GET /v1/health: the daemon's own view of whether it can take and index events, for any valid key.

Unlike /readyz (a yes/no for load balancers, unauthenticated), this answers an operator:
how far behind the indexer is, how much disk is left, how fast events arrive.  It is
`healthy`, `degraded` (still accepting, but something needs attention) or `unhealthy`
(events are not becoming searchable, or cannot be stored); each non-healthy status lists
its `reasons`.  200 for healthy and degraded, 503 for unhealthy, so a monitor can alert
on the status code alone.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from logtraced.api.authn import authenticate
from logtraced.api.context import Services, get_state
from logtraced.ingest.pipeline import STORAGE_RESERVE_BYTES

ROUTE: Final = "/v1/health"
# Below this much free space the disk is worth a warning; ingest itself stops at STORAGE_RESERVE_BYTES.
LOW_DISK_BYTES: Final = 16 * STORAGE_RESERVE_BYTES
# An indexer restart keeps the status degraded this long after the restart was first noticed.
RECENT_RESTART_SECONDS: Final = 300.0
# Events waiting with no commit progress for this many commit intervals: the indexer is stuck, not just busy.
STALLED_COMMIT_INTERVALS: Final = 30
# The ingest event loop itself, counted in `workers` next to the indexer's writer threads.
INGEST_LOOP_WORKERS: Final = 1


@dataclass
class Progress:
    """What health remembers between calls, because Services keeps counts and sequences, not moments.

    Both signals are therefore measured from when a health call first noticed them: an
    indexer restart, and a backlog that is waiting while the committed sequence stands still.
    """

    restarts: int = 0
    restart_noticed_at: float = 0.0
    committed_seq: int = 0
    waiting_since: float | None = None

    def restarted_recently(self, restarts: int, now: float) -> bool:
        if restarts != self.restarts:
            self.restarts, self.restart_noticed_at = restarts, now
        return restarts > 0 and now - self.restart_noticed_at < RECENT_RESTART_SECONDS

    def stalled_seconds(self, committed_seq: int, waiting_events: int, now: float) -> float:
        """How long events have waited with no commit progress (0 when nothing waits or commits advance)."""
        if not waiting_events or committed_seq != self.committed_seq:
            self.committed_seq = committed_seq
            self.waiting_since = now if waiting_events else None
            return 0.0
        if self.waiting_since is None:
            self.waiting_since = now
        return now - self.waiting_since


PROGRESS: Final = web.AppKey("health_progress", Progress)


@dataclass(frozen=True)
class Signals:
    """The two conditions only visible over time (see Progress)."""

    restarted_recently: bool
    stalled_seconds: float


@dataclass(frozen=True)
class Storage:
    """The data directory's file system as ingest sees it."""

    writable: bool
    free_bytes: int
    data_dir: str


async def health(request: web.Request) -> web.Response:
    """Any valid key may ask (no scope, no rate limit): monitoring must work with a write-only key."""
    await authenticate(request, scope=None, kind=None)
    state = get_state(request)
    report = build_report(state, request.app[PROGRESS])
    return web.json_response(report, status=503 if report["status"] == "unhealthy" else 200)


def build_report(state: Services, progress: Progress) -> dict[str, Any]:
    """The health document: figures first, then the status and reasons derived from them."""
    pipeline = state.pipeline
    indexer = state.writer
    storage = storage_status(state)
    now = time.time()
    since_commit = round(now - indexer.last_commit_at, 3) if indexer.last_commit_at else None
    signals = Signals(
        progress.restarted_recently(indexer.restarts, now),
        progress.stalled_seconds(pipeline.committed_seq, pipeline.backlog.events, now),
    )
    unhealthy, degraded = _problems(state, storage, signals)
    status = "unhealthy" if unhealthy else "degraded" if degraded else "healthy"
    report: dict[str, Any] = {
        "status": status,
        "workers": INGEST_LOOP_WORKERS + (state.config.index.writer_threads if indexer.alive else 0),
        "ingestion_rps": round(pipeline.ingestion_rate(), 1),
        "uptime_seconds": round(now - state.started_at, 3),
        "queue_depth": pipeline.backlog.events,
        "wal_lag": {
            "records": max(pipeline.wal.written_seq - pipeline.committed_seq, 0),
            "events": pipeline.backlog.events,
            "bytes": pipeline.backlog.size,
        },
        "storage": dataclasses.asdict(storage),
        "indexer": {
            "alive": indexer.alive,
            "restarts": indexer.restarts,
            "last_commit_ms": round(indexer.last_commit_ms, 3),
            "seconds_since_commit": since_commit,
        },
        "counters": {**dataclasses.asdict(pipeline.counters), **pipeline.masking_counters()},
        "protocols": {name: dataclasses.asdict(counters) for name, counters in sorted(pipeline.protocols.items())},
    }
    if status != "healthy":
        report["reasons"] = unhealthy + degraded
    return report


def storage_status(state: Services) -> Storage:
    """Free space and writability of the data directory (a read-only remount shows up here)."""
    path = state.config.data_path
    try:
        free = shutil.disk_usage(path).free
        writable = os.access(path, os.W_OK) and not os.statvfs(path).f_flag & os.ST_RDONLY
    except OSError:
        free, writable = 0, False
    return Storage(writable, free, str(path.resolve()))


def _problems(state: Services, storage: Storage, signals: Signals) -> tuple[list[str], list[str]]:
    """(reasons to be unhealthy, reasons to be degraded), each a sentence an operator can act on."""
    indexer = state.writer
    unhealthy: list[str] = []
    degraded: list[str] = []
    if not indexer.alive:
        unhealthy.append("the indexer process is not running; events are not becoming searchable")
    if indexer.failure:
        unhealthy.append(f"the indexer reported a failure: {indexer.failure}")
    if state.pipeline.wal.failure:
        unhealthy.append(f"the write-ahead log failed ({state.pipeline.wal.failure}); restart after fixing the disk")
    if not storage.writable:
        unhealthy.append(f"the data directory {storage.data_dir} is not writable")
    elif storage.free_bytes < STORAGE_RESERVE_BYTES:
        unhealthy.append(f"only {storage.free_bytes} bytes free; ingest is refused below {STORAGE_RESERVE_BYTES}")
    elif storage.free_bytes < LOW_DISK_BYTES:
        degraded.append(f"only {storage.free_bytes} bytes free in the data directory")
    if state.pipeline.full:
        degraded.append("the ingest backlog is full: standard keys get 429, enterprise keys overflow to the WAL")
    if signals.restarted_recently:
        degraded.append(f"the indexer restarted ({indexer.restarts} restarts since the daemon started)")
    if signals.stalled_seconds > STALLED_COMMIT_INTERVALS * state.config.index.commit_interval_ms / 1000:
        degraded.append(f"events have waited {signals.stalled_seconds:.0f} s without the indexer committing")
    return unhealthy, degraded


def register(app: web.Application) -> None:
    app[PROGRESS] = Progress()
    app.router.add_get(ROUTE, health)
