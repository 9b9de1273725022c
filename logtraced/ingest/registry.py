"""The receivers a daemon runs: every protocol's listeners, built from the config through one list of factories.

Adding a protocol touches its own module (a sans-IO codec and a `receivers` factory), its
config section and `FACTORIES` below; the daemon starts and stops whatever this module builds,
in order, and knows no protocol.
"""

from __future__ import annotations

from typing import Final

from logtraced.config import Config
from logtraced.ingest import beats_receiver, forward_receiver, gelf_receiver, jsonlines, syslog_receiver
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.receiver import Receiver, ReceiverFactory

FACTORIES: Final[tuple[ReceiverFactory, ...]] = (
    jsonlines.receivers,
    forward_receiver.receivers,
    beats_receiver.receivers,
    syslog_receiver.receivers,
    gelf_receiver.receivers,
)


def build_receivers(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    """Every enabled listener of every protocol, not yet started."""
    return [receiver for factory in FACTORIES for receiver in factory(config, pipeline)]
