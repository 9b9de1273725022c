"""The receivers a daemon runs: every protocol's listeners, built from the config through one list of factories.

Adding a protocol touches its own module, its config section and the `FACTORIES` list below;
the daemon starts and stops whatever this module builds, in order, and knows no protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from logtraced.config import Config
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.tcp import TcpReceiver
from logtraced.ingest.udp import UdpReceiver


class Receiver(Protocol):
    """One bound listener of one protocol."""

    name: str  # the protocol, as counters and logs name it
    network: str  # "tcp" or "udp"

    async def start(self) -> int:
        """Bind and listen; return the bound port (the config may say 0)."""
        ...

    async def stop(self) -> None:
        """Stop accepting, store whatever partial input is buffered, close."""
        ...


ReceiverFactory = Callable[[Config, IngestPipeline], list[Receiver]]


def _json_lines(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    receivers: list[Receiver] = []
    if config.tcp.enabled:
        receivers.append(TcpReceiver(config.tcp, pipeline))
    if config.udp.enabled:
        receivers.append(UdpReceiver(config.udp, pipeline))
    return receivers


FACTORIES: Final[tuple[ReceiverFactory, ...]] = (_json_lines,)


def build_receivers(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    """Every enabled listener of every protocol, not yet started."""
    return [receiver for factory in FACTORIES for receiver in factory(config, pipeline)]
