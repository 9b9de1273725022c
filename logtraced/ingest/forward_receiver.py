"""Fluentd forward listeners: the sans-IO `forward.ForwardConnection` behind the shared TCP glue, and the UDP heartbeat.

Fluent Bit's and Fluentd's `forward` outputs, fluent-logger libraries and Docker's fluentd
log driver send here (TCP 24224).  Every request's `chunk` is acked only once its events are
fsynced (`Decoded.reply`); a request that cannot be stored ends the connection after the
acks of the requests before it are written, so the sender resends only what was not acked.

Shared key.  With `forward.require_shared_key`, the connection opens with HELO and the
sender's PING digest is checked against every key of `forward.shared_keys`; the first that
matches selects its organisation and environment.  The keys are held in clear because the
digest, sha512(salt + hostname + nonce + key), can only be checked by someone holding the
key itself: logtraced's API keys are stored as hashes, so an API key cannot be a shared key.
"""

from __future__ import annotations

from collections.abc import Callable

from logtraced.config import Config, ForwardConfig
from logtraced.ingest.codec import Decoded
from logtraced.ingest.datagram import DatagramListener
from logtraced.ingest.forward import (
    ForwardBatch,
    ForwardConnection,
    ForwardError,
    ForwardLimits,
    Resolver,
    heartbeat_reply,
)
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.receiver import Receiver
from logtraced.ingest.stream import StreamListener
from logtraced.model import Tenant

NOT_A_HEARTBEAT = "not_a_heartbeat"  # a UDP datagram longer than Fluentd's one-byte heartbeat


class ForwardCodec:
    """One forward connection as the stream glue drives it."""

    def __init__(self, limits: ForwardLimits, resolve: Resolver | None, self_hostname: str) -> None:
        self.connection = ForwardConnection(limits, resolve=resolve, self_hostname=self_hostname)

    def opening(self) -> bytes:
        return self.connection.data_to_send()  # HELO when a shared key is required

    def feed(self, data: bytes) -> Decoded:
        connection = self.connection
        try:
            batches = connection.feed(data)
        except ForwardError as error:
            decoded = self._decoded(error.batches)
            decoded.reject(error.cause)
            decoded.close = error.cause
            return decoded
        return self._decoded(batches)

    def close(self) -> Decoded:
        try:
            self.connection.close()
        except ForwardError as error:
            decoded = Decoded()
            decoded.reject(error.cause)  # incomplete_message: nothing of it stored, the sender resends
            return decoded
        return Decoded()

    def keepalive(self) -> bytes:
        return b""

    def _decoded(self, batches: list[ForwardBatch]) -> Decoded:
        """Every completed request's events, then the handshake answer and the acks, in that order."""
        connection = self.connection
        reply = connection.data_to_send()  # PONG: ahead of any ack, the sender waits for it first
        if len(batches) == 1:
            events = batches[0].events
        else:
            events = [event for batch in batches for event in batch.events]
        for batch in batches:
            reply += connection.ack(batch)
        return Decoded(events=events, reply=reply, tenant=connection.tenant)


def shared_key_resolver(forward: ForwardConfig) -> Resolver | None:
    """The handshake's key check over `forward.shared_keys`, or None when no shared key is required."""
    if not forward.require_shared_key:
        return None
    candidates = [(shared.key, Tenant(shared.org, shared.environment)) for shared in forward.shared_keys]

    def resolve(check: Callable[[str], bool]) -> Tenant | None:
        for key, tenant in candidates:
            if check(key):
                return tenant
        return None

    return resolve


def decode_heartbeat(datagram: bytes, sender: tuple[str, int]) -> Decoded:
    """Fluentd's UDP heartbeat is echoed; anything else is counted and gets no answer."""
    reply = heartbeat_reply(datagram)
    if reply is None:
        decoded = Decoded()
        decoded.reject(NOT_A_HEARTBEAT)
        return decoded
    return Decoded(reply=reply)


def receivers(config: Config, pipeline: IngestPipeline) -> list[Receiver]:
    forward = config.forward
    found: list[Receiver] = []
    if forward.enabled:
        limits = ForwardLimits(forward.max_frame_bytes, forward.max_decompressed_bytes)
        resolve = shared_key_resolver(forward)
        hostname = forward.self_hostname
        found.append(StreamListener("forward", forward, pipeline, lambda: ForwardCodec(limits, resolve, hostname)))
    heartbeat = forward.datagram()
    if heartbeat.enabled:
        found.append(DatagramListener("forward_udp", heartbeat, pipeline, decode_heartbeat))
    return found
