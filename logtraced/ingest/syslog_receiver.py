"""Syslog listeners: the sans-IO `syslog` parser behind the shared TCP (RFC 6587, RFC 5425 TLS) and UDP (RFC 5426) glue.

rsyslog, syslog-ng, journald forwarders, Python's SysLogHandler and network devices send here
(5514, TCP and UDP).  A record that is not syslog is stored as text tagged
`_syslogparsefailure` and counted; a broken octet count ends the TCP connection (the stream
cannot be re-framed) after the records before it are stored.
"""

from __future__ import annotations

import time

from logtraced.config import Config
from logtraced.ingest.codec import Decoded
from logtraced.ingest.datagram import DatagramListener
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.receiver import Receiver
from logtraced.ingest.stream import StreamListener
from logtraced.ingest.syslog import TAG_PARSE_FAILURE, SyslogFramingError, SyslogStream, parse_datagram
from logtraced.model import Event

PARSE_FAILURE = "parse_failure"  # warnings say `syslog_parse_failure` / `syslog_udp_parse_failure`


class SyslogCodec:
    """One syslog TCP connection as the stream glue drives it; framing is detected from its first byte."""

    def __init__(self, max_message_bytes: int, zone: str) -> None:
        self.stream = SyslogStream(max_message_bytes, zone)
        self._truncated = 0

    def opening(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> Decoded:
        try:
            events = self.stream.feed(data)
        except SyslogFramingError as error:
            decoded = self._decoded(error.events)
            decoded.reject(error.cause)
            decoded.close = error.cause
            return decoded
        return self._decoded(events)

    def close(self) -> Decoded:
        return self._decoded(self.stream.close())

    def keepalive(self) -> bytes:
        return b""

    def _decoded(self, events: list[Event]) -> Decoded:
        truncated = self.stream.truncated_count - self._truncated
        self._truncated = self.stream.truncated_count
        return _counted(Decoded(events=events, truncated=truncated))


class SyslogDatagrams:
    """One message per datagram (RFC 5426); timestamps without a zone are read in `zone`."""

    def __init__(self, zone: str) -> None:
        self.zone = zone

    def __call__(self, datagram: bytes, sender: tuple[str, int]) -> Decoded:
        event = parse_datagram(datagram, time.time_ns(), self.zone)
        decoded = Decoded()
        if event is None:
            decoded.reject("empty_datagram")
            return decoded
        decoded.events.append(event)
        return _counted(decoded)


def _counted(decoded: Decoded) -> Decoded:
    decoded.parse_failure_cause = PARSE_FAILURE
    decoded.parse_failures = sum(1 for event in decoded.events if TAG_PARSE_FAILURE in event.tags)
    return decoded


def receivers(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    syslog = config.syslog
    found: list[Receiver] = []
    zone = syslog.timezone
    if syslog.enabled:
        bound = syslog.max_message_bytes
        found.append(StreamListener("syslog", syslog, pipeline, lambda: SyslogCodec(bound, zone)))
    datagram = syslog.datagram()
    if datagram.enabled:
        found.append(DatagramListener("syslog_udp", datagram, pipeline, SyslogDatagrams(zone)))
    return found
