"""What a protocol's sans-IO decoder hands the socket glue: events, what was wrong with the input, what to answer.

Every stream protocol (JSON lines, forward, beats, syslog, GELF) is a `StreamCodec` per
connection and every datagram protocol a `DatagramDecoder`; the glue in `stream.py` and
`datagram.py` does the rest the same way for all of them (tenancy, submit, backpressure,
acknowledgements after the fsync, counters, warnings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from logtraced.model import Event, Tenant


@dataclass(slots=True)
class Decoded:
    """The outcome of feeding some bytes to a decoder."""

    events: list[Event] = field(default_factory=list)
    truncated: int = 0  # frames cut at the size bound: stored, tagged _truncated
    parse_failures: int = 0  # frames stored as raw text, tagged as the protocol's parse failure
    no_message: int = 0  # events stored with no message found in any known spelling (tagged _nomessage)
    parse_failure_cause: str = "json_parse_failure"  # how warnings name those (`<listener>_<cause>`)
    flagged: dict[str, int] = field(default_factory=dict)  # stored, but tagged for a fault, by cause
    rejected: dict[str, int] = field(default_factory=dict)  # input refused (not stored), by cause
    reply: bytes = b""  # sent back once these events are durable (forward ack, beats ACK), in order
    close: str = ""  # a cause after which the connection cannot go on (framing lost)
    tenant: Tenant | None = None  # a credential carried by the protocol chose this tenant

    def reject(self, cause: str, count: int = 1) -> None:
        if count:
            self.rejected[cause] = self.rejected.get(cause, 0) + count

    def flag(self, cause: str, count: int = 1) -> None:
        if count:
            self.flagged[cause] = self.flagged.get(cause, 0) + count

    def mark_source(self, source: dict[str, object]) -> None:
        """Keep the sender's address on every event (`source.address`, `source.port`), as Logstash keeps its
        `host` and `port`, so a misconfigured shipper can be found; an event's own `source` is left as sent.

        One dict is shared by the events of a read: it is never changed after this."""
        for event in self.events:
            event.attributes.setdefault("source", source)


class StreamCodec(Protocol):
    """One connection's decoder: bytes in as they arrive, at any split."""

    def opening(self) -> bytes:
        """Bytes to send as soon as the connection is up (a handshake's greeting), or nothing."""
        ...

    def feed(self, data: bytes) -> Decoded: ...

    def close(self) -> Decoded:
        """The sender is gone: whatever partial input is buffered, as events where it can be."""
        ...

    def keepalive(self) -> bytes:
        """What to write while replies wait on the disk, so the sender keeps waiting (beats' ACK 0), or nothing.

        The glue calls it every `keepalive_seconds` of its listener, only while a reply is pending.
        """
        ...


# One datagram and its sender's address in, its events (and any reply to send straight back) out.
DatagramDecoder = Callable[[bytes, tuple[str, int]], Decoded]
