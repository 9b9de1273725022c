"""Daemon lifecycle: start the writer and the listeners, serve, then drain, commit and close on a signal.

The shared services live in one `api.context.Services` object handed to every component (no
module globals).  Shutdown order matters for durability: stop accepting, flush partial frames
into the WAL, fsync, let the writer commit, exit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import msgspec

from logtraced import heap
from logtraced.api.app import HttpServer
from logtraced.api.context import Services
from logtraced.auth.services import AuthServices, tiers_from_config
from logtraced.config import Config, StreamListenerConfig, listener_sections, load_config
from logtraced.errors import ConfigError, StartupError, StorageError
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.receiver import Receiver
from logtraced.ingest.registry import build_receivers
from logtraced.log import configure_logging, get_logger
from logtraced.storage import writer
from logtraced.storage.backends import check_backend, open_store
from logtraced.storage.datadir import DataDirectory
from logtraced.storage.wal import WalWriter

# Config sections that SIGHUP applies to the running daemon; everything else needs a restart.
RELOADABLE = ("log", "query", "auth")
SHUTDOWN_BUDGET_SECONDS = 10.0
# Descriptors kept for index files, the WAL, the HTTP port and SQLite beyond one per TCP connection.
FILE_DESCRIPTOR_RESERVE = 1024
WRITER_DRAIN_SECONDS = 7.0
WRITER_RESTART_DELAY_SECONDS = 1.0
EXIT_STATUS_WAIT_SECONDS = 1.0
# A small switch interval keeps threads that hand back the GIL (fsync, queries) from waiting long on the loop.
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


class WriterLink:
    """Starts the writer process, relays durable marks to it and its commits back; restarts it if it dies."""

    def __init__(self, config: Config, services: Services) -> None:
        self.config = config
        self.services = services
        self.context = multiprocessing.get_context("spawn")
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.durable_seq = 0
        self.log = get_logger("daemon")
        self.stopping = False

    def start(self) -> None:
        parent, child = self.context.Pipe(duplex=True)
        self.process = self.context.Process(
            target=writer.run, args=(self.config, child), name="logtraced-writer", daemon=True
        )
        self.process.start()
        child.close()
        self.conn = parent
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_readable)
        self.services.writer.alive = True
        if self.durable_seq:
            self.send_durable(self.durable_seq)

    def send_durable(self, seq: int) -> None:
        self.durable_seq = seq
        if self.conn is not None:
            try:
                self.conn.send_bytes(writer.encode_message(writer.Durable(seq)))
            except (BrokenPipeError, OSError):
                pass  # the process died; _on_readable notices and restarts it

    def _on_readable(self) -> None:
        assert self.conn is not None
        try:
            while self.conn.poll(0):
                self._handle(writer.decode_message(self.conn.recv_bytes()))
        except (EOFError, OSError):
            self._on_exit()

    def _handle(self, message: writer.WriterMessage) -> None:
        services = self.services
        if isinstance(message, writer.Committed):
            services.store.refresh()
            services.pipeline.on_committed(message.seq, message.documents, message.expired, message.rejected)
            status = services.writer
            status.last_commit_ms, status.last_commit_at = message.commit_ms, time.time()
            status.commit_seconds.observe(message.commit_ms / 1000)
            status.partitions, status.disk_bytes = message.partitions, message.disk_bytes
            status.failure = ""  # committing again: a reported failure (ClickHouse away, say) is over
        elif isinstance(message, writer.RetentionDeleted):
            services.store.forget(message.keys)
        elif isinstance(message, writer.Failed):
            services.writer.failure = message.reason

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.conn is not None
        loop.remove_reader(self.conn.fileno())
        self.conn.close()
        self.conn = None
        self.services.writer.alive = False
        if self.stopping:
            return
        self.services.writer.restarts += 1
        if self.process is not None:
            self.process.join(EXIT_STATUS_WAIT_SECONDS)  # the pipe closes a moment before the exit is reaped
        code = self.process.exitcode if self.process else None
        killed_by = signal.Signals(-code).name if code is not None and code < 0 else None
        self.log.error("indexer_exited", exitcode=code, signal=killed_by, restarting=True)
        loop.call_later(WRITER_RESTART_DELAY_SECONDS, self.start)

    async def stop(self, seq: int, deadline_seconds: float) -> None:
        """Ask for a final commit through `seq` and wait for the process to exit."""
        self.stopping = True
        if self.conn is not None:
            try:
                self.conn.send_bytes(writer.encode_message(writer.Shutdown(seq, deadline_seconds)))
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


class Server:
    """One run of the daemon, in uvicorn's shape: `start`, `serve` until a signal, `drain`, `stop`."""

    def __init__(
        self, config: Config, config_path: str | None = None, config_overrides: Mapping[str, Any] | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.config_overrides = dict(config_overrides or {})
        self.ports: dict[str, int] = {}  # bound port per listener (the config may say 0: any free port)
        self.log = get_logger("daemon")
        self.stop_requested = asyncio.Event()
        self.listeners: list[Receiver | HttpServer] = []

    async def start(self) -> Services:
        """Lock the data directory, open the WAL, the state database and the store, start the writer, bind every
        listener.  A failure on the way stops what was started and raises StartupError naming what failed."""
        config = self.config
        check_backend(config)
        data_dir = config.data_path
        self.directory = DataDirectory.acquire(data_dir)
        try:
            self.wal = WalWriter(data_dir / "wal", config.wal.segment_bytes)
            auth = AuthServices.build(config)
            await auth.start()
        except StorageError as exc:
            self.directory.release()
            raise StartupError(str(exc)) from exc
        self.link: WriterLink
        pipeline = IngestPipeline(config, self.wal, lambda seq: self.link.send_durable(seq))
        self.services = Services(config, pipeline, open_store(config), auth)
        self.link = WriterLink(config, self.services)
        self.link.durable_seq = self.wal.written_seq
        self.link.start()
        pipeline.start()
        self._install_signals()
        listeners: list[Receiver | HttpServer] = [*build_receivers(config, pipeline)]
        if config.http.enabled:
            listeners.append(HttpServer(self.services))
        for listener in listeners:
            await self._listen(listener)
        self.services.ready = True
        if not await auth.keys.list(None):
            self.log.info(
                "no_api_keys",
                hint=f"create the first key with: logtraced keys create --data-dir {data_dir}",
            )
        self.log.info("daemon_ready", **{f"{name}_port": port for name, port in self.ports.items()},
                      data_dir=str(data_dir))  # fmt: skip
        _notify_systemd("READY=1")
        return self.services

    async def _listen(self, listener: Receiver | HttpServer) -> None:
        """Bind one listener; a port that is taken (or any bind failure) stops the whole start."""
        try:
            port = await listener.start()
        except OSError as exc:
            await self.drain()
            await self.stop()
            reason = exc.strerror or str(exc)
            raise StartupError(f"the {listener.name} listener cannot listen on {listener.address}: {reason}") from exc
        self.listeners.append(listener)
        self.ports[listener.name] = port
        self.log.info(f"{listener.name}_listening", address=listener.address, port=port)

    async def serve(self) -> None:
        """Until SIGTERM or SIGINT."""
        await self.stop_requested.wait()

    async def drain(self) -> None:
        """Stop accepting, store partial frames, fsync, let the writer commit what is durable."""
        started = time.monotonic()
        self.log.info("daemon_stopping")
        _notify_systemd("STOPPING=1")
        self.services.ready = False
        for listener in self.listeners:
            await listener.stop()
        pipeline = self.services.pipeline
        await pipeline.stop()
        remaining = SHUTDOWN_BUDGET_SECONDS - (time.monotonic() - started) - 1.0
        await self.link.stop(pipeline.durable_seq, min(WRITER_DRAIN_SECONDS, max(remaining, 1.0)))
        self.drain_seconds = time.monotonic() - started

    async def stop(self) -> None:
        """Close what is left open: the WAL, the state database, the data directory's lock."""
        self.wal.close()
        await self.services.auth.close()
        self.directory.release()
        self.log.info(
            "daemon_stopped",
            seconds=round(self.drain_seconds, 3),
            events_accepted=self.services.pipeline.counters.events_accepted,
        )

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGINT, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def reload(self) -> None:
        """SIGHUP: re-read the file (environment and flags still win) and apply the sections that can change live.

        `log`, `query` and the rate-limit tiers of `auth` apply at once; a change anywhere else is
        reported as needing a restart and not applied, so the running daemon stays consistent.
        """
        try:
            fresh = load_config(self.config_path, overrides=self.config_overrides)
        except ConfigError as exc:
            self.log.error("reload_failed", error=str(exc))
            return
        current = self.services.config
        changed = [name for name in RELOADABLE if getattr(fresh, name) != getattr(current, name)]
        pending = [
            item.name
            for item in msgspec.structs.fields(Config)
            if item.name not in RELOADABLE and getattr(fresh, item.name) != getattr(current, item.name)
        ]
        configure_logging(fresh.log)
        self.services.auth.limiter.replace_tiers(tiers_from_config(fresh))
        self.services.config = msgspec.structs.replace(current, **{name: getattr(fresh, name) for name in RELOADABLE})
        self.log.info("config_reloaded", applied=changed, needs_restart=pending)


async def serve(
    config: Config,
    config_path: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
) -> Services:
    """Run until SIGTERM/SIGINT; returns the final services (tests read counters from them)."""
    server = Server(config, config_path, config_overrides)
    services = await server.start()
    await server.serve()
    await server.drain()
    await server.stop()
    return services


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
    # Sized for the busiest listener's connections: summing every listener's bound would warn on most hosts.
    _raise_open_file_limit(
        max(s.max_connections for s in listener_sections(config).values() if isinstance(s, StreamListenerConfig))
    )
    heap.settle_after_start()
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
