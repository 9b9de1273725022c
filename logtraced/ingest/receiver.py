"""The contract between the daemon and every listener of every protocol, shared by protocols and the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from logtraced.config import Config
from logtraced.ingest.pipeline import IngestPipeline


class Receiver(Protocol):
    """One bound listener of one protocol."""

    name: str  # the listener, as ports, counters and logs name it ("tcp", "udp", "forward", "syslog_udp", ...)
    network: str  # "tcp" or "udp"

    @property
    def address(self) -> str:
        """Where it listens, as configured (`host:port`), for messages about it."""
        ...

    async def start(self) -> int:
        """Bind and listen; return the bound port (the config may say 0)."""
        ...

    async def stop(self) -> None:
        """Stop accepting, store whatever partial input is buffered, close."""
        ...


# A protocol's entry in the registry: every enabled listener of that protocol, not yet started.
ReceiverFactory = Callable[[Config, IngestPipeline], list[Receiver]]
