"""JSON lines over TCP and UDP (Logstash json/json_lines, Fluent Bit tcp/udp, python-logstash, any program).

The framing rules are in `framing.py` and the field spellings in `events.py`; this module
turns their output into what the stream and datagram glue need, and registers the listeners.
"""

from __future__ import annotations

import time

from logtraced.config import Config, FieldMap
from logtraced.events import TAG_JSON_PARSE_FAILURE, TAG_NO_MESSAGE, events_from_frame
from logtraced.ingest.codec import Decoded
from logtraced.ingest.datagram import DatagramListener
from logtraced.ingest.framing import Frame, StreamFramer, split_datagram
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.receiver import Receiver
from logtraced.ingest.stream import StreamListener


class JsonLinesCodec:
    """One TCP connection's frames, as events; a partial last line is stored when the sender closes."""

    def __init__(self, max_line_bytes: int, fields: FieldMap) -> None:
        self.framer = StreamFramer(max_line_bytes)
        self.fields = fields

    def opening(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> Decoded:
        return decode_frames(self.framer.feed(data), self.fields)

    def close(self) -> Decoded:
        return decode_frames(self.framer.close(), self.fields)

    def keepalive(self) -> bytes:
        return b""


def decode_frames(frames: list[Frame], fields: FieldMap) -> Decoded:
    """Every frame becomes events; frames that are not JSON are kept as raw-text events and counted."""
    decoded = Decoded()
    if not frames:
        return decoded
    received_ns = time.time_ns()
    mapped = fields or None  # asked once here, not once an event
    for data, truncated in frames:
        decoded.events.extend(events_from_frame(data, received_ns, truncated=truncated, fields=mapped))
        decoded.truncated += truncated
    for event in decoded.events:
        if event.tags:
            decoded.parse_failures += TAG_JSON_PARSE_FAILURE in event.tags
            decoded.no_message += TAG_NO_MESSAGE in event.tags
    return decoded


def receivers(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    found: list[Receiver] = []
    if config.tcp.enabled:
        tcp = config.tcp
        found.append(StreamListener("tcp", tcp, pipeline, lambda: JsonLinesCodec(tcp.max_line_bytes, tcp.fields)))
    if config.udp.enabled:
        udp_fields = config.udp.fields

        def decode_datagram(data: bytes, sender: tuple[str, int]) -> Decoded:
            """One JSON document, or several lines, per datagram."""
            return decode_frames(split_datagram(data), udp_fields)

        found.append(DatagramListener("udp", config.udp, pipeline, decode_datagram))
    return found
