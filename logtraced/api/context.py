"""The narrow services the HTTP API is built from, and how route handlers reach them.

The daemon creates one `Services` and hands it to `api.app.build_app`; the api package never
imports the daemon.  `config` is replaced on SIGHUP, so handlers read it per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from logtraced.auth.services import AuthServices
from logtraced.config import Config
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.storage.backend import LogStore
from logtraced.timings import Timings


@dataclass
class WriterStatus:
    """What the daemon knows of the writer process, for health, readiness and /metrics."""

    restarts: int = 0
    last_commit_ms: float = 0.0
    last_commit_at: float = 0.0
    failure: str = ""
    alive: bool = False
    commit_seconds: Timings = field(default_factory=Timings)
    partitions: int = 0  # the store's footprint as of the last commit
    disk_bytes: int = 0


@dataclass
class Services:
    config: Config
    pipeline: IngestPipeline
    store: LogStore
    auth: AuthServices
    writer: WriterStatus = field(default_factory=WriterStatus)
    started_at: float = field(default_factory=time.time)
    ready: bool = False


SERVICES_KEY: web.AppKey[Services] = web.AppKey("services")


def get_state(request: web.Request) -> Services:
    return request.app[SERVICES_KEY]
