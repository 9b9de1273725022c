"""The UDP glue every datagram protocol shares: decode each datagram with the protocol's decoder, submit, count.

UDP cannot push back, so when the backlog is full a datagram is refused and counted.  A reply
the decoder asks for (a heartbeat's echo) goes straight back to the sender.  A decoder that
holds state between datagrams (GELF's chunk assembler) passes `housekeeping`, called every
`housekeeping_seconds` to expire that state and report what it dropped.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from logtraced.config import DatagramListenerConfig
from logtraced.ingest.codec import DatagramDecoder, Decoded
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.log import WarningLimiter, get_logger
from logtraced.model import Tenant


class DatagramListener(asyncio.DatagramProtocol):
    """Listens on one UDP port for one protocol; every datagram is either stored or counted as dropped."""

    network = "udp"

    def __init__(
        self,
        name: str,
        config: DatagramListenerConfig,
        pipeline: IngestPipeline,
        decode: DatagramDecoder,
        *,
        housekeeping: Callable[[], Decoded] | None = None,
        housekeeping_seconds: float = 1.0,
    ) -> None:
        self.name = name
        self.config = config
        self.pipeline = pipeline
        self.decode = decode
        self.housekeeping = housekeeping
        self.housekeeping_seconds = housekeeping_seconds
        self.housekeeping_timer: asyncio.TimerHandle | None = None
        self.tenant = Tenant(config.org, config.environment)
        self.transport: asyncio.DatagramTransport | None = None
        self.log = get_logger(name)
        self.warnings = WarningLimiter(self.log)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.pipeline.protocol(self.name)  # health lists the listener before its first datagram
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.receive_buffer_bytes)
        sock.bind((self.config.host, self.config.port))
        transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.transport = transport
        port: int = sock.getsockname()[1]
        if self.housekeeping is not None:
            self.housekeeping_timer = loop.call_later(self.housekeeping_seconds, self._housekeep)
        return port

    def _housekeep(self) -> None:
        assert self.housekeeping is not None
        self.pipeline.count_input(self.name, self.housekeeping(), self.warnings, peer="")
        self.housekeeping_timer = asyncio.get_running_loop().call_later(self.housekeeping_seconds, self._housekeep)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        pipeline = self.pipeline
        peer = f"{addr[0]}:{addr[1]}"
        if pipeline.full:
            pipeline.drop_datagram(self.name)
            self.warnings.warn(f"{self.name}_dropped_backpressure", backlog_events=pipeline.backlog.events, peer=peer)
            return
        decoded = self.decode(data, (str(addr[0]), int(addr[1])))
        pipeline.count_input(self.name, decoded, self.warnings, peer=peer)
        decoded.mark_source({"address": addr[0], "port": addr[1]})
        pipeline.submit(decoded.events, decoded.tenant or self.tenant, len(data), self.name)
        if decoded.reply and self.transport is not None:
            self.transport.sendto(decoded.reply, addr)

    def error_received(self, exc: Exception) -> None:
        self.warnings.warn(f"{self.name}_socket_error", error=type(exc).__name__)

    async def stop(self) -> None:
        if self.housekeeping_timer is not None:
            self.housekeeping_timer.cancel()
        if self.transport is not None:
            self.transport.close()
