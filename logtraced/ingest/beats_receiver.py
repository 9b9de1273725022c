"""The Beats listener: the sans-IO `beats.BeatsConnection` (Lumberjack v2) behind the shared TCP glue.

Filebeat, Winlogbeat and every other Beat's `output.logstash` send here (TCP 5044, optional
TLS).  A window is submitted only once all its data frames have arrived, and its ACK (the
last sequence number) is written only once its events are fsynced, in window order, so a
connection cut mid-window stores nothing of it and the sender's resend is stored once.
While an ACK waits on the disk, an ACK of sequence 0 every `beats.keepalive_seconds` tells
the sender to keep waiting instead of timing out and resending (Logstash does the same).
"""

from __future__ import annotations

from logtraced.config import Config
from logtraced.ingest.beats import BeatsConnection, BeatsError, BeatsLimits, BeatsWindow
from logtraced.ingest.codec import Decoded
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.receiver import Receiver
from logtraced.ingest.stream import StreamListener


class BeatsCodec:
    """One Beats connection as the stream glue drives it."""

    def __init__(self, limits: BeatsLimits) -> None:
        self.connection = BeatsConnection(limits)
        self._keepalive = b""

    def opening(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> Decoded:
        try:
            windows = self.connection.feed(data)
        except BeatsError as error:
            decoded = self._decoded(error.windows)
            decoded.reject(error.cause)
            decoded.close = error.cause
            return decoded
        return self._decoded(windows)

    def close(self) -> Decoded:
        try:
            self.connection.close()
        except BeatsError as error:
            decoded = Decoded()
            decoded.reject(error.cause)  # incomplete_window: nothing of it stored, the sender resends it
            return decoded
        return Decoded()

    def keepalive(self) -> bytes:
        """ACK 0 in the version the sender speaks; the glue writes it only while an ACK is pending."""
        return self._keepalive

    def _decoded(self, windows: list[BeatsWindow]) -> Decoded:
        """The windows' events and their ACKs, which the glue writes once those events are durable."""
        if not windows:
            return Decoded()
        connection = self.connection
        self._keepalive = connection.keepalive() or self._keepalive
        if len(windows) == 1:
            events = windows[0].events
        else:
            events = [event for window in windows for event in window.events]
        reply = b"".join(connection.ack(window) for window in windows)
        return Decoded(
            events=events,
            reply=reply,
            parse_failures=sum(window.parse_failures for window in windows),
        )


def receivers(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    beats = config.beats
    if not beats.enabled:
        return []
    limits = BeatsLimits(
        max_frame_bytes=beats.max_frame_bytes,
        max_decompressed_bytes=beats.max_decompressed_bytes,
        max_window_events=beats.max_window_events,
        max_window_bytes=beats.max_window_bytes,
    )
    return [
        StreamListener("beats", beats, pipeline, lambda: BeatsCodec(limits), keepalive_seconds=beats.keepalive_seconds)
    ]
