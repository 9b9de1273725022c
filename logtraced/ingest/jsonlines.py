"""JSON lines over TCP and UDP (Logstash json/json_lines, Fluent Bit tcp/udp, python-logstash, any program).

The framing rules are in `framing.py` and the field spellings in `events.py`; this module
turns their output into what the stream and datagram glue need, and registers the listeners.
"""

from __future__ import annotations

import time

from logtraced.config import Config
from logtraced.events import TAG_JSON_PARSE_FAILURE, events_from_frame
from logtraced.ingest.codec import Decoded
from logtraced.ingest.datagram import DatagramListener
from logtraced.ingest.framing import Frame, StreamFramer, split_datagram
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.receiver import Receiver
from logtraced.ingest.stream import StreamListener


class JsonLinesCodec:
    """One TCP connection's frames, as events; a partial last line is stored when the sender closes."""

    def __init__(self, max_line_bytes: int) -> None:
        self.framer = StreamFramer(max_line_bytes)

    def opening(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> Decoded:
        return decode_frames(self.framer.feed(data))

    def close(self) -> Decoded:
        return decode_frames(self.framer.close())

    def keepalive(self) -> bytes:
        return b""


def decode_frames(frames: list[Frame]) -> Decoded:
    """Every frame becomes events; frames that are not JSON are kept as raw-text events and counted."""
    decoded = Decoded()
    if not frames:
        return decoded
    received_ns = time.time_ns()
    for data, truncated in frames:
        decoded.events.extend(events_from_frame(data, received_ns, truncated=truncated))
        decoded.truncated += truncated
    decoded.parse_failures = sum(1 for event in decoded.events if TAG_JSON_PARSE_FAILURE in event.tags)
    return decoded


def decode_datagram(data: bytes, sender: tuple[str, int]) -> Decoded:
    """One JSON document, or several lines, per datagram."""
    return decode_frames(split_datagram(data))


def receivers(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    found: list[Receiver] = []
    if config.tcp.enabled:
        max_line = config.tcp.max_line_bytes
        found.append(StreamListener("tcp", config.tcp, pipeline, lambda: JsonLinesCodec(max_line)))
    if config.udp.enabled:
        found.append(DatagramListener("udp", config.udp, pipeline, decode_datagram))
    return found
