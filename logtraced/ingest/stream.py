"""The TCP glue every stream protocol shares: accept, decode with the protocol's codec, submit, acknowledge, push back.

One asyncio Protocol per connection (what the listener shares lives in `StreamListener`).
When the writer falls behind, reading stops, so the sender's socket buffer fills and the
sender slows down, as Logstash and Beats expect; nothing is dropped.  Once a connection has
read `TURN_BYTES` the loop takes a turn before it reads more (`_yield_turn`): libuv reads a
socket that keeps up as many as 32 times in one go, and four busy senders held the loop for
hundreds of milliseconds, so the WAL's fsync results, the indexer's durable marks and queries
waited that long.  A reply a protocol asks
for (forward's ack, beats' ACK) is written only once its events are fsynced, in order; one
with no events behind it (a handshake's answer) goes out at once unless an earlier reply
waits.  While replies wait, the codec's `keepalive()` is written every `keepalive_seconds`
(beats' ACK 0).  When a codec says the connection cannot go on, reading stops and the
connection closes once the replies for what it did store are written.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import cast

from logtraced.config import StreamListenerConfig
from logtraced.errors import StorageError
from logtraced.ingest.codec import Decoded, StreamCodec
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.log import WarningLimiter, get_logger
from logtraced.model import Tenant

# Bytes a connection reads before the loop takes a turn (a few hundred events; ~2 ms of decoding).
# Small reads, a sender that does not keep the socket full, cost no pause.
TURN_BYTES = 64 * 1024


class StreamListener:
    """Accepts connections on one TCP listener of one protocol and owns what they share."""

    network = "tcp"

    def __init__(
        self,
        name: str,
        config: StreamListenerConfig,
        pipeline: IngestPipeline,
        codec: Callable[[], StreamCodec],
        *,
        keepalive_seconds: float = 0.0,
    ) -> None:
        self.name = name
        self.config = config
        self.pipeline = pipeline
        self.codec = codec
        self.keepalive_seconds = keepalive_seconds  # 0: the codec has no keep-alive
        self.tenant = Tenant(config.org, config.environment)
        self.connections: set[StreamConnection] = set()
        self.log = get_logger(name)
        self.warnings = WarningLimiter(self.log)
        self.server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    async def start(self) -> int:
        """Listen and return the bound port (the config may say 0)."""
        loop = asyncio.get_running_loop()
        self.pipeline.protocol(self.name)  # health lists the listener before its first event
        self.server = await loop.create_server(
            lambda: StreamConnection(self),
            self.config.host,
            self.config.port,
            ssl=self._tls_context(),
            backlog=1024,
            reuse_address=True,
        )
        port: int = self.server.sockets[0].getsockname()[1]
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


class StreamConnection(asyncio.Protocol):
    """One sender: decodes its bytes, hands events to the pipeline per read, replies once they are durable."""

    def __init__(self, listener: StreamListener) -> None:
        self.listener = listener
        self.codec = listener.codec()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.source: dict[str, object] = {}
        self.paused = False
        self.yielding = False
        self.read_this_turn = 0
        self.last_data = time.monotonic()
        self.idle_timer: asyncio.TimerHandle | None = None
        self.keepalive_timer: asyncio.TimerHandle | None = None
        self.replies: asyncio.Task[None] | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio subclasses
        listener = self.listener
        if len(listener.connections) >= listener.config.max_connections:
            listener.warnings.warn(f"{listener.name}_connection_limit", limit=listener.config.max_connections)
            transport.abort()
            return
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""
        self.source = {"address": peer[0], "port": peer[1]} if self.peer else {}
        listener.connections.add(self)
        listener.pipeline.connection_opened(listener.name)
        self._arm_idle_timer()
        opening = self.codec.opening()
        if opening:
            transport.write(opening)
        if listener.pipeline.full:
            self._pause()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # the codec gave up on this stream; what is left of it cannot be framed
        self.last_data = time.monotonic()
        self._deliver(self.codec.feed(data), len(data))
        self.read_this_turn += len(data)
        if self.read_this_turn >= TURN_BYTES:
            self._yield_turn()

    def _yield_turn(self) -> None:
        """Stop reading until the loop has run what became ready meanwhile (fsync results, other clients)."""
        transport = self._readable_transport()
        if transport is None:
            return
        self.yielding = True
        transport.pause_reading()
        asyncio.get_running_loop().call_soon(self._take_turn)

    def _take_turn(self) -> None:
        self.yielding = False
        self.read_this_turn = 0
        self._read_again()

    def _read_again(self) -> None:
        """Resume reading unless backpressure, a pending turn or the end of the stream still says no."""
        transport = self._readable_transport()
        if transport is not None:
            transport.resume_reading()

    def _readable_transport(self) -> asyncio.Transport | None:
        """The transport, unless backpressure, a pending turn or the end of the stream stops reading."""
        transport = self.transport
        if self.paused or self.yielding or self.closing or transport is None or transport.is_closing():
            return None
        return transport

    def eof_received(self) -> bool:
        """The sender finished writing: store what is buffered, answer what is owed, then close."""
        self._deliver(self.codec.close(), 0)
        if self.transport is None or self.transport.get_extra_info("sslcontext") is not None:
            return False  # TLS cannot stay half-open
        self._close_after_replies()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        if exc is not None:
            self.listener.warnings.warn(
                f"{self.listener.name}_connection_reset", error=type(exc).__name__, peer=self.peer
            )
        self.finish()

    def finish(self) -> None:
        """Store whatever partial frame is buffered, then close: nothing a sender wrote is discarded."""
        listener = self.listener
        if self not in listener.connections:
            return
        listener.connections.discard(self)
        listener.pipeline.connection_closed(listener.name)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        if self.keepalive_timer is not None:
            self.keepalive_timer.cancel()
        self._deliver(self.codec.close(), 0)
        if self.transport is not None:
            self.transport.close()

    def _deliver(self, decoded: Decoded, size: int) -> None:
        listener = self.listener
        pipeline = listener.pipeline
        pipeline.count_input(listener.name, decoded, listener.warnings, peer=self.peer)
        if self.source:
            decoded.mark_source(self.source)
        seq = pipeline.submit(decoded.events, decoded.tenant or listener.tenant, size, listener.name)
        if decoded.reply:
            self._reply_when_durable(seq if decoded.events else None, decoded.reply)
        if decoded.close:
            self._close_after_replies()
            return
        if pipeline.full and not self.paused:
            self._pause()

    def _reply_when_durable(self, seq: int | None, reply: bytes) -> None:
        """Acknowledge only what is fsynced (seq None: nothing to wait for), in the order the sender sent it."""
        previous = self.replies
        if seq is None and (previous is None or previous.done()):
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(reply)
            return

        async def send() -> None:
            if previous is not None:
                await previous
            if seq is not None:
                try:
                    await self.listener.pipeline.durable(seq)
                except StorageError:
                    if self.transport is not None:
                        self.transport.abort()  # never acknowledge what may not be on disk
                    return
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(reply)

        self.replies = asyncio.get_running_loop().create_task(send())
        interval = self.listener.keepalive_seconds
        if interval > 0 and self.keepalive_timer is None:
            self.keepalive_timer = asyncio.get_running_loop().call_later(interval, self._keepalive)

    def _keepalive(self) -> None:
        """Tell a sender whose replies wait on the disk to keep waiting, until none is left."""
        self.keepalive_timer = None
        transport = self.transport
        if self.replies is None or self.replies.done() or transport is None or transport.is_closing():
            return
        data = self.codec.keepalive()
        if data:
            transport.write(data)
        self.keepalive_timer = asyncio.get_running_loop().call_later(self.listener.keepalive_seconds, self._keepalive)

    def _close_after_replies(self) -> None:
        """Read nothing more; close once the replies owed for what was stored are written."""
        transport = self.transport
        if transport is None or self.closing:
            return
        self.closing = True
        if not transport.is_closing():
            transport.pause_reading()
        pending = self.replies
        if pending is None or pending.done():
            transport.close()
        else:
            pending.add_done_callback(lambda _: transport.close())

    def _pause(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.paused = True
        self.transport.pause_reading()
        listener = self.listener
        listener.warnings.warn(f"{listener.name}_backpressure", backlog_events=listener.pipeline.backlog.events)
        listener.pipeline.when_drained(self._resume)

    def _resume(self) -> None:
        self.paused = False
        self._read_again()

    def _arm_idle_timer(self) -> None:
        timeout = self.listener.config.idle_timeout_seconds
        if timeout <= 0:
            return
        self.idle_timer = asyncio.get_running_loop().call_later(timeout, self._check_idle)

    def _check_idle(self) -> None:
        """A client that connects and never sends must not hold a slot forever."""
        idle = time.monotonic() - self.last_data
        timeout = self.listener.config.idle_timeout_seconds
        if self.paused or idle < timeout:
            self.idle_timer = asyncio.get_running_loop().call_later(
                timeout - idle if not self.paused else timeout, self._check_idle
            )
            return
        self.listener.warnings.warn(f"{self.listener.name}_idle_timeout", idle_seconds=round(idle), peer=self.peer)
        self.finish()
