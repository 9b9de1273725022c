"""UDP receiver: one JSON document (or several lines) per datagram, as Logstash's udp output sends.

UDP cannot push back, so when the backlog is full a datagram is refused and counted.
"""

from __future__ import annotations

import asyncio
import socket
import time

from logtraced.config import UdpConfig
from logtraced.events import events_from_frame
from logtraced.ingest.framing import split_datagram
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.log import WarningLimiter, get_logger
from logtraced.model import Event, Tenant


class UdpReceiver(asyncio.DatagramProtocol):
    """Listens on one UDP port; every datagram is either stored or counted as dropped."""

    name = "udp"
    network = "udp"

    def __init__(self, config: UdpConfig, pipeline: IngestPipeline) -> None:
        self.config = config
        self.pipeline = pipeline
        self.tenant = Tenant(config.org, config.environment)
        self.transport: asyncio.DatagramTransport | None = None
        self.log = get_logger("udp")
        self.warnings = WarningLimiter(self.log)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.receive_buffer_bytes)
        sock.bind((self.config.host, self.config.port))
        transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.transport = transport
        port: int = sock.getsockname()[1]
        self.log.info("udp_listening", host=self.config.host, port=port)
        return port

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        pipeline = self.pipeline
        if pipeline.full:
            pipeline.counters.udp_dropped += 1
            self.warnings.warn("udp_dropped_backpressure", backlog_events=pipeline.backlog.events)
            return
        received_ns = time.time_ns()
        events: list[Event] = []
        for frame in split_datagram(data):
            events.extend(events_from_frame(frame.data, received_ns, truncated=frame.truncated))
        failures = sum(1 for event in events if "_jsonparsefailure" in event.tags)
        if failures:
            pipeline.counters.parse_failures += failures
            self.warnings.warn("udp_json_parse_failure", stored_as="raw message")
        pipeline.submit(events, self.tenant, len(data), "udp")

    def error_received(self, exc: Exception) -> None:
        self.warnings.warn("udp_socket_error", error=type(exc).__name__)

    async def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
