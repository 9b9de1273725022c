"""GELF listeners: the sans-IO `gelf` decoder behind the shared TCP (NUL-delimited) and UDP (chunked, compressed) glue.

Graylog's GELF senders, Docker's `gelf` log driver, pygelf, Logspout and NXLog send here
(12201, TCP and UDP).  A frame or datagram that yields no event is counted by cause and the
connection goes on; a payload without `short_message` is stored, tagged `_nomessage`, and
counted as `missing_short_message`.  Chunked UDP messages are joined by one bounded
`ChunkAssembler` per listener; those never completed are counted when they expire or are
evicted, checked every second.
"""

from __future__ import annotations

import time

from logtraced.config import Config, GelfConfig
from logtraced.ingest.codec import Decoded
from logtraced.ingest.datagram import DatagramListener
from logtraced.ingest.gelf import (
    CAUSE_MISSING_SHORT_MESSAGE,
    TAG_NO_MESSAGE,
    ChunkAssembler,
    GelfError,
    GelfStream,
    decode_datagram,
)
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.receiver import Receiver
from logtraced.ingest.stream import StreamListener
from logtraced.model import Event

# Causes for chunked messages dropped by the assembler (nothing of them is stored).
CHUNKS_EXPIRED = "chunked_message_expired"  # not complete within gelf.chunk_timeout_seconds
CHUNKS_EVICTED = "chunked_message_evicted"  # dropped to stay within the pending bounds
DUPLICATE_CHUNK = "duplicate_chunk"
NS_PER_S = 1_000_000_000


class GelfCodec:
    """One GELF TCP connection (frames end with NUL) as the stream glue drives it."""

    def __init__(self, max_message_bytes: int) -> None:
        self.stream = GelfStream(max_message_bytes)

    def opening(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> Decoded:
        return self._decoded(self.stream.feed(data))

    def close(self) -> Decoded:
        return self._decoded(self.stream.close())

    def keepalive(self) -> bytes:
        return b""

    def _decoded(self, events: list[Event]) -> Decoded:
        decoded = _flagged(Decoded(events=events))
        for cause, count in self.stream.take_failures().items():
            decoded.reject(cause, count)
        return decoded


class GelfDatagrams:
    """GELF over UDP: one bounded chunk assembler for the listener, keyed by each sender's address."""

    def __init__(self, gelf: GelfConfig) -> None:
        self.max_message_bytes = gelf.max_message_bytes
        self.assembler = ChunkAssembler(
            max_pending_messages=gelf.max_pending_messages,
            max_pending_bytes=gelf.max_pending_bytes,
            max_message_bytes=gelf.max_message_bytes,
            timeout_ns=int(gelf.chunk_timeout_seconds * NS_PER_S),
        )
        self._seen = (0, 0, 0)  # the assembler's expired, evicted and duplicates already reported

    def __call__(self, datagram: bytes, sender: tuple[str, int]) -> Decoded:
        decoded = Decoded()
        try:
            event = decode_datagram(
                datagram, self.assembler, time.time_ns(), source=sender, max_message_bytes=self.max_message_bytes
            )
        except GelfError as error:
            decoded.reject(error.cause)
        else:
            if event is not None:
                decoded.events.append(event)
                _flagged(decoded)
        self._report(decoded)
        return decoded

    def housekeeping(self) -> Decoded:
        """Expire chunked messages whose time is up (no datagram may arrive to do it) and count them."""
        decoded = Decoded()
        self.assembler.expire(time.time_ns())
        self._report(decoded)
        return decoded

    def _report(self, decoded: Decoded) -> None:
        assembler = self.assembler
        now = (assembler.expired, assembler.evicted, assembler.duplicates)
        if now != self._seen:
            decoded.reject(CHUNKS_EXPIRED, now[0] - self._seen[0])
            decoded.reject(CHUNKS_EVICTED, now[1] - self._seen[1])
            decoded.reject(DUPLICATE_CHUNK, now[2] - self._seen[2])
            self._seen = now


def _flagged(decoded: Decoded) -> Decoded:
    decoded.flag(CAUSE_MISSING_SHORT_MESSAGE, sum(1 for event in decoded.events if TAG_NO_MESSAGE in event.tags))
    return decoded


def receivers(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    gelf = config.gelf
    found: list[Receiver] = []
    if gelf.enabled:
        bound = gelf.max_message_bytes
        found.append(StreamListener("gelf", gelf, pipeline, lambda: GelfCodec(bound)))
    datagram = gelf.datagram()
    if datagram.enabled:
        decoder = GelfDatagrams(gelf)
        found.append(DatagramListener("gelf_udp", datagram, pipeline, decoder, housekeeping=decoder.housekeeping))
    return found
