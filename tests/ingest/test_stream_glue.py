"""The shared socket glue driven in-process (a fake transport or a real socket, a real pipeline and WAL), and each
protocol's adapter.

The glue's promises: a reply is written only once its events are fsynced, in order; a reply
with nothing to wait for goes out at once; a codec that gives up closes the connection only
after the replies it owes; while replies wait, the codec's keep-alive is written; a datagram
decoder's housekeeping runs on a timer and its counts reach the protocol's counters; one busy
sender reads at most a turn's worth per turn of the loop.
"""

from __future__ import annotations

import asyncio
import socket
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvloop

from logtraced.config import Config, DatagramListenerConfig, load_config
from logtraced.ingest.beats import BeatsLimits
from logtraced.ingest.beats_receiver import BeatsCodec
from logtraced.ingest.codec import Decoded
from logtraced.ingest.datagram import DatagramListener
from logtraced.ingest.forward import ForwardLimits
from logtraced.ingest.forward_receiver import ForwardCodec, decode_heartbeat, shared_key_resolver
from logtraced.ingest.gelf_receiver import GelfCodec, GelfDatagrams
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.ingest.stream import TURN_BYTES, StreamConnection, StreamListener
from logtraced.ingest.syslog_receiver import SyslogCodec, SyslogDatagrams
from logtraced.model import Event, Tenant
from logtraced.storage.wal import WalWriter
from tests.ingest.lumberjack_client import encode_window, parse_acks


class FakeTransport:
    """What the glue uses of an asyncio transport, recording it."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("10.0.0.9", 40000) if name == "peername" else default


class ScriptedCodec:
    """Answers each feed with the next Decoded of a script."""

    def __init__(self, script: list[Decoded], keepalive: bytes = b"") -> None:
        self.script = script
        self.keepalive_bytes = keepalive

    def opening(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> Decoded:
        return self.script.pop(0)

    def close(self) -> Decoded:
        return Decoded()

    def keepalive(self) -> bytes:
        return self.keepalive_bytes


def config(tmp_path: Path) -> Config:
    return load_config(None, environ={}, overrides={"data_dir": str(tmp_path)})


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[IngestPipeline]:
    """A pipeline whose group fsync is not running: replies wait until the test calls `flush()`."""
    cfg = config(tmp_path)
    ingest = IngestPipeline(cfg, WalWriter(cfg.data_path / "wal", cfg.wal.segment_bytes), lambda seq: None)
    yield ingest
    ingest.wal.close()


def connect(
    pipeline: IngestPipeline, codec: ScriptedCodec, *, keepalive_seconds: float = 0.0
) -> tuple[StreamConnection, FakeTransport]:
    listener = StreamListener("test", pipeline.config.tcp, pipeline, lambda: codec, keepalive_seconds=keepalive_seconds)
    connection = StreamConnection(listener)
    transport = FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def events(*messages: str) -> list[Event]:
    return [Event(time.time_ns(), message) for message in messages]


class TestReplies:
    async def test_a_reply_waits_for_the_fsync_and_replies_keep_their_order(self, pipeline: IngestPipeline) -> None:
        codec = ScriptedCodec([Decoded(events("a"), reply=b"ack-1"), Decoded(events("b"), reply=b"ack-2")])
        connection, transport = connect(pipeline, codec)
        connection.data_received(b"one")
        connection.data_received(b"two")
        await settle()
        assert transport.written == []  # written to the WAL, not yet fsynced: nothing acknowledged
        await pipeline.flush()
        await settle()
        assert transport.written == [b"ack-1", b"ack-2"]

    async def test_a_reply_without_events_goes_out_at_once(self, pipeline: IngestPipeline) -> None:
        connection, transport = connect(pipeline, ScriptedCodec([Decoded(reply=b"pong")]))
        connection.data_received(b"ping")
        assert transport.written == [b"pong"]

    async def test_a_reply_without_events_still_waits_behind_an_earlier_one(self, pipeline: IngestPipeline) -> None:
        codec = ScriptedCodec([Decoded(events("a"), reply=b"ack-1"), Decoded(reply=b"ack-empty")])
        connection, transport = connect(pipeline, codec)
        connection.data_received(b"one")
        connection.data_received(b"two")
        await settle()
        assert transport.written == []
        await pipeline.flush()
        await settle()
        assert transport.written == [b"ack-1", b"ack-empty"]

    async def test_a_codec_that_gives_up_closes_after_the_replies_it_owes(self, pipeline: IngestPipeline) -> None:
        codec = ScriptedCodec([Decoded(events("a"), reply=b"ack-1", close="malformed", rejected={"malformed": 1})])
        connection, transport = connect(pipeline, codec)
        connection.data_received(b"good then garbage")
        assert (transport.reading, transport.closed) == (False, False)
        connection.data_received(b"more garbage")  # ignored: the stream cannot be framed any more
        await pipeline.flush()
        await settle()
        assert transport.written == [b"ack-1"]
        assert transport.closed
        assert pipeline.protocols["test"].causes == {"malformed": 1}

    async def test_half_close_stays_open_for_the_replies(self, pipeline: IngestPipeline) -> None:
        connection, transport = connect(pipeline, ScriptedCodec([Decoded(events("a"), reply=b"ack-1")]))
        connection.data_received(b"one")
        assert connection.eof_received() is True
        assert not transport.closed
        await pipeline.flush()
        await settle()
        assert transport.written == [b"ack-1"]
        assert transport.closed

    async def test_keepalive_is_written_while_a_reply_waits_and_stops_after(self, pipeline: IngestPipeline) -> None:
        codec = ScriptedCodec([Decoded(events("a"), reply=b"ack-1")], keepalive=b"still-here")
        connection, transport = connect(pipeline, codec, keepalive_seconds=0.01)
        connection.data_received(b"one")
        await asyncio.sleep(0.06)
        assert transport.written and set(transport.written) == {b"still-here"}
        await pipeline.flush()
        await settle()
        assert transport.written[-1] == b"ack-1"
        count = len(transport.written)
        await asyncio.sleep(0.04)
        assert len(transport.written) == count
        connection.finish()


class TestFairReading:
    """Once a connection has read TURN_BYTES the loop takes a turn, so one busy sender cannot hold it."""

    async def test_reading_pauses_for_one_turn_after_a_turns_worth(self, pipeline: IngestPipeline) -> None:
        codec = ScriptedCodec([Decoded(events("a")), Decoded(events("b"))])
        connection, transport = connect(pipeline, codec)
        connection.data_received(b"x" * (TURN_BYTES - 1))
        assert transport.reading  # small reads pause nothing
        connection.data_received(b"x")
        assert not transport.reading
        await asyncio.sleep(0)
        assert transport.reading

    async def test_the_turn_does_not_undo_backpressure(self, pipeline: IngestPipeline) -> None:
        pipeline.backlog.max_events = 1
        connection, transport = connect(pipeline, ScriptedCodec([Decoded(events("a", "b"))]))
        connection.data_received(b"x" * TURN_BYTES)
        await settle()
        assert connection.paused and not transport.reading  # the backlog is full: reading stays stopped
        pipeline.on_committed(pipeline.wal.written_seq, 2, 0, 0)
        assert transport.reading

    def test_a_sender_that_keeps_up_gets_a_turns_worth_per_turn_of_uvloop(self, tmp_path: Path) -> None:
        """libuv reads a ready socket up to 32 times in one go; the loop must run other work in between."""
        loop = uvloop.new_event_loop()
        try:
            reads = loop.run_until_complete(_reads_of_a_busy_sender(config(tmp_path)))
        finally:
            loop.close()
        by_turn: dict[int, list[int]] = {}
        for turn, size in reads:
            by_turn.setdefault(turn, []).append(size)
        assert len(by_turn) > 8
        # Within a turn, reading stops once the reads reach TURN_BYTES: all but the last stay below it.
        assert max(sum(sizes[:-1]) for sizes in by_turn.values()) < TURN_BYTES


class _TurnCounter:
    """Counts turns of the loop: a callback that schedules itself again runs once per turn."""

    def __init__(self) -> None:
        self.turns = 0
        self.running = True

    def tick(self) -> None:
        self.turns += 1
        if self.running:
            asyncio.get_running_loop().call_soon(self.tick)


class _TurnRecordingCodec(ScriptedCodec):
    def __init__(self, counter: _TurnCounter, reads: list[tuple[int, int]]) -> None:
        super().__init__([])
        self.counter, self.reads = counter, reads

    def feed(self, data: bytes) -> Decoded:
        self.reads.append((self.counter.turns, len(data)))
        return Decoded()

    def close(self) -> Decoded:
        return Decoded()


async def _reads_of_a_busy_sender(cfg: Config) -> list[tuple[int, int]]:
    """(the loop's turn count, bytes) of each read while a thread writes 32 MiB as fast as the socket takes it."""
    ingest = IngestPipeline(cfg, WalWriter(cfg.data_path / "wal", cfg.wal.segment_bytes), lambda seq: None)
    counter, reads = _TurnCounter(), []
    local = msgspec.structs.replace(cfg.tcp, host="127.0.0.1", port=0)
    listener = StreamListener("test", local, ingest, lambda: _TurnRecordingCodec(counter, reads))
    port = await listener.start()

    def send() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"x" * (32 << 20))

    counter.tick()
    await asyncio.get_running_loop().run_in_executor(None, send)
    counter.running = False
    await listener.stop()
    ingest.wal.close()
    return reads


class TestDatagramHousekeeping:
    async def test_housekeeping_counts_reach_the_protocol_counters(self, pipeline: IngestPipeline) -> None:
        calls: list[float] = []

        def housekeeping() -> Decoded:
            calls.append(time.monotonic())
            return Decoded(rejected={"expired": 1})

        settings = DatagramListenerConfig(host="127.0.0.1", port=0)
        listener = DatagramListener(
            "test_udp", settings, pipeline, lambda d, s: Decoded(), housekeeping=housekeeping, housekeeping_seconds=0.01
        )
        await listener.start()
        try:
            await asyncio.sleep(0.08)
        finally:
            await listener.stop()
        assert len(calls) >= 2
        assert pipeline.protocols["test_udp"].causes["expired"] == len(calls)


# --- the adapters, without sockets ---------------------------------------------------------------

encode = msgspec.msgpack.encode


class TestForwardCodec:
    def test_acks_follow_the_requests_of_a_read_and_an_error_keeps_them(self) -> None:
        codec = ForwardCodec(ForwardLimits(), None, "logtraced")
        good = encode(["app", [[int(time.time()), {"message": "m"}]], {"chunk": "c1"}])
        decoded = codec.feed(good + encode(["app", int(time.time()), {"message": "n"}, {"chunk": "c2"}]) + b"\xc1")
        assert [event.message for event in decoded.events] == ["m", "n"]
        assert decoded.reply == encode({"ack": "c1"}) + encode({"ack": "c2"})
        assert (decoded.close, decoded.rejected) == ("malformed_msgpack", {"malformed_msgpack": 1})

    def test_a_request_cut_at_close_is_counted(self) -> None:
        codec = ForwardCodec(ForwardLimits(), None, "logtraced")
        assert codec.feed(encode(["app", int(time.time()), {"message": "m"}])[:-2]).events == []
        assert codec.close().rejected == {"incomplete_message": 1}

    def test_shared_keys_resolve_their_tenant(self) -> None:
        forward = load_config(
            None,
            environ={},
            overrides={"forward.require_shared_key": True, "forward.shared_keys": [{"key": "k1", "org": "acme"}]},
        ).forward
        resolve = shared_key_resolver(forward)
        assert resolve is not None
        assert resolve(lambda key: key == "k1") == Tenant("acme", "production")
        assert resolve(lambda key: False) is None
        assert shared_key_resolver(load_config(None, environ={}).forward) is None

    def test_heartbeat(self) -> None:
        assert decode_heartbeat(b"\x00", ("h", 1)).reply == b"\x00"
        assert decode_heartbeat(b"long datagram", ("h", 1)).rejected == {"not_a_heartbeat": 1}


class TestBeatsCodec:
    def test_a_window_gives_its_ack_and_the_keepalive_is_ack_zero(self) -> None:
        codec = BeatsCodec(BeatsLimits())
        assert codec.keepalive() == b""
        decoded = codec.feed(encode_window([{"message": "a"}, {"message": "b"}]))
        assert [event.message for event in decoded.events] == ["a", "b"]
        assert parse_acks(decoded.reply) == [2]
        assert parse_acks(codec.keepalive()) == [0]

    def test_pipelined_windows_and_a_bad_frame(self) -> None:
        codec = BeatsCodec(BeatsLimits())
        decoded = codec.feed(encode_window([{"message": "a"}]) + encode_window([{"message": "b"}] * 3) + b"9X")
        assert parse_acks(decoded.reply) == [1, 3]
        assert decoded.rejected == {"unsupported_version": 1}
        assert decoded.close == "unsupported_version"

    def test_a_window_cut_at_close_is_counted(self) -> None:
        codec = BeatsCodec(BeatsLimits())
        data = encode_window([{"message": "a"}] * 4, compression_level=0)
        assert codec.feed(data[:-5]).events == []
        assert codec.close().rejected == {"incomplete_window": 1}


class TestSyslogAdapters:
    def test_truncation_and_parse_failures_are_counted_per_read(self) -> None:
        codec = SyslogCodec(16, "UTC")
        first = codec.feed(b"<13>a: " + b"x" * 40 + b"\nnot syslog\n")
        assert (first.truncated, first.parse_failures, first.parse_failure_cause) == (1, 1, "parse_failure")
        assert codec.feed(b"<13>a: ok\n").truncated == 0

    def test_a_bad_octet_count_ends_the_stream(self) -> None:
        decoded = SyslogCodec(1000, "UTC").feed(b"9 <13>a: ok12x y")
        assert [event.message for event in decoded.events] == ["ok"]
        assert (decoded.close, decoded.rejected) == ("bad_octet_count", {"bad_octet_count": 1})

    def test_rsyslog_octet_counted_frames_end_with_its_template_lf(self) -> None:
        record = b"<134>1 2024-01-02T03:04:05Z h app - - - message\n"
        decoded = SyslogCodec(1000, "UTC").feed(str(len(record)).encode() + b" " + record)
        assert [event.message for event in decoded.events] == ["message"]

    def test_datagrams(self) -> None:
        decode = SyslogDatagrams("UTC")
        assert [e.service for e in decode(b"<11>app[1]: boom\x00", ("h", 1)).events] == ["app"]
        assert decode(b"\n", ("h", 1)).rejected == {"empty_datagram": 1}


class TestGelfAdapters:
    def gelf(self, **settings: Any) -> GelfDatagrams:
        return GelfDatagrams(
            load_config(None, environ={}, overrides={f"gelf.{k}": v for k, v in settings.items()}).gelf
        )

    def test_tcp_failures_are_rejected_by_cause_and_missing_short_message_is_flagged(self) -> None:
        decoded = GelfCodec(1 << 20).feed(b'nope\x00{"full_message": "f"}\x00{"short_message": "s"}\x00')
        assert [event.message for event in decoded.events] == ["f", "s"]
        assert decoded.rejected == {"malformed_json": 1}
        assert decoded.flagged == {"missing_short_message": 1}

    def test_chunks_joined_and_expired_ones_counted(self) -> None:
        decode = self.gelf()
        payload = zlib.compress(b'{"short_message": "joined"}')
        half = len(payload) // 2
        chunks = [
            b"\x1e\x0f" + b"id-00001" + bytes([n, 2]) + part for n, part in enumerate((payload[:half], payload[half:]))
        ]
        assert decode(chunks[0], ("10.0.0.1", 1)).events == []
        assert decode(chunks[0], ("10.0.0.1", 1)).rejected == {"duplicate_chunk": 1}
        assert decode(chunks[1], ("10.0.0.2", 1)).events == []  # another sender: another message
        assert [e.message for e in decode(chunks[1], ("10.0.0.1", 1)).events] == ["joined"]
        decode.assembler.expire(time.time_ns() + 10**12)
        assert decode.housekeeping().rejected == {"chunked_message_expired": 1}
        assert decode.housekeeping().rejected == {}

    def test_errors_by_cause(self) -> None:
        decode = self.gelf(max_message_bytes=1000)
        assert decode(b"[1]", ("h", 1)).rejected == {"not_an_object": 1}
        assert decode(zlib.compress(b" " * 5000), ("h", 1)).rejected == {"decompressed_too_large": 1}


def test_the_registry_builds_every_listener_on_a_free_port(tmp_path: Path) -> None:
    from logtraced.ingest.registry import build_receivers

    cfg = config(tmp_path)
    names = [(r.name, r.network) for r in build_receivers(cfg, None)]  # type: ignore[arg-type]
    assert names == [
        ("tcp", "tcp"), ("udp", "udp"), ("forward", "tcp"), ("forward_udp", "udp"), ("beats", "tcp"),
        ("syslog", "tcp"), ("syslog_udp", "udp"), ("gelf", "tcp"), ("gelf_udp", "udp"),
    ]  # fmt: skip
    off = load_config(
        None,
        environ={"LOGTRACED_SYSLOG_UDP_ENABLED": "false", "LOGTRACED_BEATS_ENABLED": "false"},
        overrides={"data_dir": str(tmp_path), "gelf.enabled": False},
    )
    enabled = [r.name for r in build_receivers(off, None)]  # type: ignore[arg-type]
    assert enabled == ["tcp", "udp", "forward", "forward_udp", "syslog"]
