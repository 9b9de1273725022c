"""TCP receiver: newline-delimited or back-to-back JSON from Logstash, Fluent Bit and plain programs.

One asyncio Protocol per connection (global state in `TcpReceiver`, per-connection state in
`TcpConnection`).  When the indexer falls behind, reading stops, so the sender's socket
buffer fills and the sender slows down, as Logstash expects; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import cast

from logtraced.config import TcpConfig
from logtraced.events import events_from_frame
from logtraced.ingest.framing import Frame, StreamFramer
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.log import WarningLimiter, get_logger
from logtraced.model import Event, Tenant

READ_CHUNK_HINT = 256 * 1024


class TcpReceiver:
    """Accepts connections on one listener and owns what they share."""

    name = "tcp"
    network = "tcp"

    def __init__(self, config: TcpConfig, pipeline: IngestPipeline) -> None:
        self.config = config
        self.pipeline = pipeline
        self.tenant = Tenant(config.org, config.environment)
        self.connections: set[TcpConnection] = set()
        self.log = get_logger("tcp")
        self.warnings = WarningLimiter(self.log)
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen and return the bound port (the config may say 0)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: TcpConnection(self),
            self.config.host,
            self.config.port,
            ssl=self._tls_context(),
            backlog=1024,
            reuse_address=True,
        )
        port: int = self.server.sockets[0].getsockname()[1]
        self.log.info("tcp_listening", host=self.config.host, port=port, tls=bool(self.config.tls_cert_file))
        return port

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.config.tls_cert_file:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert_file, self.config.tls_key_file)
        return context

    async def stop(self) -> None:
        """Stop accepting, then flush and close every open connection (their partial frames included)."""
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.finish()
        if self.server is not None:
            await self.server.wait_closed()


class TcpConnection(asyncio.Protocol):
    """One sender: frames its bytes, hands events to the pipeline per read."""

    def __init__(self, receiver: TcpReceiver) -> None:
        self.receiver = receiver
        self.framer = StreamFramer(receiver.config.max_line_bytes)
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.last_data = time.monotonic()
        self.idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio subclasses
        receiver = self.receiver
        if len(receiver.connections) >= receiver.config.max_connections:
            receiver.warnings.warn("tcp_connection_limit", limit=receiver.config.max_connections)
            transport.abort()
            return
        self.transport = transport
        receiver.connections.add(self)
        counters = receiver.pipeline.counters
        counters.tcp_connections += 1
        counters.tcp_connections_total += 1
        self._arm_idle_timer()
        if receiver.pipeline.full:
            self._pause()

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        self._deliver(self.framer.feed(data), len(data))

    def eof_received(self) -> bool:
        self._deliver(self.framer.close(), 0)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        if exc is not None:
            self.receiver.warnings.warn("tcp_connection_reset", error=type(exc).__name__)
        self.finish()

    def finish(self) -> None:
        """Store whatever partial frame is buffered, then close: nothing a sender wrote is discarded."""
        receiver = self.receiver
        if self not in receiver.connections:
            return
        receiver.connections.discard(self)
        receiver.pipeline.counters.tcp_connections -= 1
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self._deliver(self.framer.close(), 0)
        if self.transport is not None:
            self.transport.close()

    def _deliver(self, frames: list[Frame], size: int) -> None:
        if not frames:
            return
        receiver = self.receiver
        received_ns = time.time_ns()
        events: list[Event] = []
        for data, truncated in frames:
            events.extend(events_from_frame(data, received_ns, truncated=truncated))
        self._count_bad_input(events, frames)
        pipeline = receiver.pipeline
        pipeline.submit(events, receiver.tenant, size, "tcp")
        if pipeline.full and not self.paused:
            self._pause()

    def _count_bad_input(self, events: list[Event], frames: list[Frame]) -> None:
        counters = self.receiver.pipeline.counters
        truncated = sum(1 for frame in frames if frame.truncated)
        if truncated:
            counters.truncated += truncated
            self.receiver.warnings.warn("tcp_line_truncated", max_line_bytes=self.receiver.config.max_line_bytes)
        failures = sum(1 for event in events if event.tags and "_jsonparsefailure" in event.tags)
        if failures:
            counters.parse_failures += failures
            self.receiver.warnings.warn("tcp_json_parse_failure", stored_as="raw message")

    def _pause(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.paused = True
        self.transport.pause_reading()
        self.receiver.warnings.warn("tcp_backpressure", backlog_events=self.receiver.pipeline.backlog.events)
        self.receiver.pipeline.when_drained(self._resume)

    def _resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _arm_idle_timer(self) -> None:
        timeout = self.receiver.config.idle_timeout_seconds
        if timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        self.idle_timer = loop.call_later(timeout, self._check_idle)

    def _check_idle(self) -> None:
        """A client that connects and never sends must not hold a slot forever."""
        idle = time.monotonic() - self.last_data
        timeout = self.receiver.config.idle_timeout_seconds
        if self.paused or idle < timeout:
            self.idle_timer = asyncio.get_running_loop().call_later(
                timeout - idle if not self.paused else timeout, self._check_idle
            )
            return
        self.receiver.warnings.warn("tcp_idle_timeout", idle_seconds=round(idle))
        self.finish()
