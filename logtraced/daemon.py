"""Daemon lifecycle: start the indexer and the listeners, serve, then drain, commit and close on a signal.

Shared state lives in one `DaemonState` object handed to every component (no module
globals).  Shutdown order matters for durability: stop accepting, flush partial frames
into the WAL, fsync, let the indexer commit, exit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import msgspec

from logtraced.auth.services import AuthServices, tiers_from_config
from logtraced.config import Config, load_config
from logtraced.errors import ConfigError
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.tcp import TcpReceiver
from logtraced.ingest.udp import UdpReceiver
from logtraced.log import configure_logging, get_logger
from logtraced.storage import indexer
from logtraced.storage.partitions import PartitionLayout
from logtraced.storage.reader import IndexReader
from logtraced.storage.wal import WalWriter

# Config sections that SIGHUP applies to the running daemon; everything else needs a restart.
RELOADABLE = ("log", "query", "auth")
SHUTDOWN_BUDGET_SECONDS = 10.0
# Descriptors kept for index files, the WAL, the HTTP port and SQLite beyond one per TCP connection.
FILE_DESCRIPTOR_RESERVE = 1024
INDEXER_DRAIN_SECONDS = 7.0
INDEXER_RESTART_DELAY_SECONDS = 1.0
# A small switch interval keeps threads that hand back the GIL (fsync, queries) from waiting long on the loop.
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


@dataclass
class Ports:
    """The ports actually bound (the config may say 0 for 'any free port')."""

    tcp: int | None = None
    udp: int | None = None
    http: int | None = None


@dataclass
class IndexerStatus:
    restarts: int = 0
    last_commit_ms: float = 0.0
    last_commit_at: float = 0.0
    failure: str = ""
    alive: bool = False


@dataclass
class DaemonState:
    """Everything the components share, created once per run."""

    config: Config
    config_path: str | None
    pipeline: IngestPipeline
    reader: IndexReader
    auth: AuthServices
    started_at: float = field(default_factory=time.time)
    ports: Ports = field(default_factory=Ports)
    indexer: IndexerStatus = field(default_factory=IndexerStatus)
    ready: bool = False
    config_overrides: Mapping[str, Any] = field(default_factory=dict)


class IndexerLink:
    """Starts the indexer process, relays durable marks to it and its commits back; restarts it if it dies."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.context = multiprocessing.get_context("spawn")
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.state: DaemonState | None = None
        self.durable_seq = 0
        self.log = get_logger("daemon")
        self.stopping = False

    def start(self) -> None:
        parent, child = self.context.Pipe(duplex=True)
        self.process = self.context.Process(
            target=indexer.run, args=(self.config, child), name="logtraced-indexer", daemon=True
        )
        self.process.start()
        child.close()
        self.conn = parent
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_readable)
        if self.state is not None:
            self.state.indexer.alive = True
        if self.durable_seq:
            self.send_durable(self.durable_seq)

    def send_durable(self, seq: int) -> None:
        self.durable_seq = seq
        if self.conn is not None:
            try:
                self.conn.send_bytes(indexer.encode_message(indexer.Durable(seq)))
            except (BrokenPipeError, OSError):
                pass  # the process died; _on_readable notices and restarts it

    def _on_readable(self) -> None:
        assert self.conn is not None and self.state is not None
        try:
            while self.conn.poll(0):
                self._handle(indexer.decode_message(self.conn.recv_bytes()))
        except (EOFError, OSError):
            self._on_exit()

    def _handle(self, message: indexer.IndexerMessage) -> None:
        state = self.state
        assert state is not None
        if isinstance(message, indexer.Committed):
            state.reader.on_commit()
            state.pipeline.on_committed(message.seq, message.documents, message.expired, message.rejected)
            state.indexer.last_commit_ms = message.commit_ms
            state.indexer.last_commit_at = time.time()
        elif isinstance(message, indexer.RetentionDeleted):
            state.reader.drop(message.keys)
        elif isinstance(message, indexer.Failed):
            state.indexer.failure = message.reason

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.conn is not None and self.state is not None
        loop.remove_reader(self.conn.fileno())
        self.conn.close()
        self.conn = None
        self.state.indexer.alive = False
        if self.stopping:
            return
        self.state.indexer.restarts += 1
        self.log.error("indexer_exited", exitcode=self.process.exitcode if self.process else None, restarting=True)
        loop.call_later(INDEXER_RESTART_DELAY_SECONDS, self.start)

    async def stop(self, seq: int, deadline_seconds: float) -> None:
        """Ask for a final commit through `seq` and wait for the process to exit."""
        self.stopping = True
        if self.conn is not None:
            try:
                self.conn.send_bytes(indexer.encode_message(indexer.Shutdown(seq, deadline_seconds)))
            except (BrokenPipeError, OSError):
                pass
        process = self.process
        if process is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, process.join, deadline_seconds + 1.0)
        if process.is_alive():
            self.log.warning("indexer_kill_after_deadline")
            process.kill()
        if self.conn is not None:
            self._on_readable()


async def serve(
    config: Config,
    config_path: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
) -> DaemonState:
    """Run until SIGTERM/SIGINT; returns the final state (tests read counters from it)."""
    log = get_logger("daemon")
    data_dir = config.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    wal = WalWriter(data_dir / "wal", config.wal.segment_bytes)
    link = IndexerLink(config)
    pipeline = IngestPipeline(config, wal, link.send_durable)
    auth = AuthServices.open(config)
    state = DaemonState(config, config_path, pipeline, IndexReader(PartitionLayout(data_dir)), auth)
    state.config_overrides = dict(config_overrides or {})
    link.state = state
    link.durable_seq = wal.written_seq
    link.start()
    pipeline.start()
    await auth.start()
    stop = asyncio.Event()
    _install_signals(state, stop)
    listeners = await _start_listeners(state)
    state.ready = True
    log.info(
        "daemon_ready",
        tcp_port=state.ports.tcp,
        udp_port=state.ports.udp,
        http_port=state.ports.http,
        data_dir=str(data_dir),
    )
    _notify_systemd("READY=1")
    await stop.wait()
    started = time.monotonic()
    log.info("daemon_stopping")
    _notify_systemd("STOPPING=1")
    state.ready = False
    await _stop_listeners(listeners)
    await pipeline.stop()
    remaining = SHUTDOWN_BUDGET_SECONDS - (time.monotonic() - started) - 1.0
    await link.stop(pipeline.durable_seq, min(INDEXER_DRAIN_SECONDS, max(remaining, 1.0)))
    wal.close()
    await auth.close()
    log.info(
        "daemon_stopped",
        seconds=round(time.monotonic() - started, 3),
        events_accepted=pipeline.counters.events_accepted,
    )
    return state


async def _start_listeners(state: DaemonState) -> list[Any]:
    config = state.config
    listeners: list[Any] = []
    if config.tcp.enabled:
        tcp = TcpReceiver(config.tcp, state.pipeline)
        state.ports.tcp = await tcp.start()
        listeners.append(tcp)
    if config.udp.enabled:
        udp = UdpReceiver(config.udp, state.pipeline)
        state.ports.udp = await udp.start()
        listeners.append(udp)
    if config.http.enabled:
        from logtraced.api.app import HttpServer

        http = HttpServer(state)
        state.ports.http = await http.start()
        listeners.append(http)
    return listeners


async def _stop_listeners(listeners: list[Any]) -> None:
    for listener in listeners:
        result = listener.stop()
        if asyncio.iscoroutine(result):
            await result


def _install_signals(state: DaemonState, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, state)


def _reload(state: DaemonState) -> None:
    """SIGHUP: re-read the file (environment and flags still win) and apply the sections that can change live.

    `log`, `query` and the rate-limit tiers of `auth` apply at once; a change anywhere else is
    reported as needing a restart and not applied, so the running daemon stays consistent.
    """
    log = get_logger("daemon")
    try:
        fresh = load_config(state.config_path, overrides=state.config_overrides)
    except ConfigError as exc:
        log.error("reload_failed", error=str(exc))
        return
    changed = [name for name in RELOADABLE if getattr(fresh, name) != getattr(state.config, name)]
    pending = [
        field.name
        for field in msgspec.structs.fields(Config)
        if field.name not in RELOADABLE and getattr(fresh, field.name) != getattr(state.config, field.name)
    ]
    configure_logging(fresh.log)
    state.auth.limiter.replace_tiers(tiers_from_config(fresh))
    state.config = msgspec.structs.replace(state.config, **{name: getattr(fresh, name) for name in RELOADABLE})
    log.info("config_reloaded", applied=changed, needs_restart=pending)


def _notify_systemd(message: str) -> None:
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (Type=notify)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def run(config: Config, config_path: str | None = None, config_overrides: Mapping[str, Any] | None = None) -> None:
    """Blocking entry point used by `logtraced serve`."""
    import sys

    import uvloop

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    configure_logging(config.log)
    _raise_open_file_limit(config.tcp.max_connections)
    uvloop.run(serve(config, config_path, config_overrides))


def _raise_open_file_limit(connections: int) -> None:
    """Thousands of senders need thousands of descriptors: lift the soft limit toward the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FILE_DESCRIPTOR_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if hard != resource.RLIM_INFINITY and hard < wanted:
        get_logger("daemon").warning("open_file_limit_low", hard_limit=hard, max_connections=connections)
