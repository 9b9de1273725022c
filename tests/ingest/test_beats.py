"""Tests for the sans-IO Lumberjack v2 codec, driven by a client written from the spec (no Filebeat binary here)."""

from __future__ import annotations

import json
import random
import socket
import threading
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from logtraced.events import TAG_JSON_PARSE_FAILURE
from logtraced.ingest import beats
from logtraced.ingest.beats import BeatsConnection, BeatsError, BeatsLimits, BeatsWindow
from logtraced.model import Event
from tests.ingest.lumberjack_client import (
    U32,
    LumberjackClient,
    compressed_frame,
    encode_window,
    json_frame,
    kv_frame,
    parse_acks,
    window_frame,
)

RECEIVED = 1_800_000_000_000_000_000


def filebeat_event(index: int, **extra: Any) -> dict[str, Any]:
    """An event as Filebeat 8 writes it to output.logstash."""
    event = {
        "@timestamp": f"2024-05-01T10:00:{index % 60:02d}.{index % 1000:03d}Z",
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.13.4"},
        "message": f"GET /item/{index} 200",
        "log": {"offset": index * 100, "file": {"path": "/var/log/nginx/access.log"}},
        "input": {"type": "filestream"},
        "host": {"name": "web-07", "os": {"family": "debian"}},
        "agent": {"type": "filebeat", "version": "8.13.4", "name": "web-07", "id": "a1b2"},
        "ecs": {"version": "8.0.0"},
    }
    event.update(extra)
    return event


def feed_in_chunks(
    data: bytes, sizes: Sequence[int], conn: BeatsConnection | None = None
) -> tuple[BeatsConnection, list[BeatsWindow]]:
    conn = conn or BeatsConnection()
    windows: list[BeatsWindow] = []
    pos, step = 0, 0
    while pos < len(data):
        size = sizes[step % len(sizes)]
        windows += conn.feed(data[pos : pos + size], RECEIVED)
        pos += size
        step += 1
    return conn, windows


def messages(windows: Sequence[BeatsWindow]) -> list[str]:
    return [event.message for window in windows for event in window.events]


def failure(data: bytes, conn: BeatsConnection | None = None) -> BeatsError:
    conn = conn or BeatsConnection()
    with pytest.raises(BeatsError) as caught:
        conn.feed(data, RECEIVED)
    return caught.value


class TestWindows:
    @pytest.mark.parametrize("level", [0, 3, 9], ids=["plain", "compressed", "best"])
    def test_window_is_handed_over_whole_and_acked_with_its_last_seq(self, level: int) -> None:
        conn = BeatsConnection()
        (window,) = conn.feed(encode_window([filebeat_event(i) for i in range(5)], compression_level=level), RECEIVED)
        assert (window.last_seq, window.frames, window.version) == (5, 5, 2)
        assert messages([window]) == [f"GET /item/{i} 200" for i in range(5)]
        assert parse_acks(conn.ack(window)) == [5]

    def test_sequence_numbers_running_across_windows(self) -> None:
        conn = BeatsConnection()
        data = encode_window([{"message": "a"}, {"message": "b"}], first_seq=101)
        data += encode_window([{"message": "c"}], first_seq=103, compression_level=0)
        first, second = conn.feed(data, RECEIVED)
        assert [parse_acks(conn.ack(first)), parse_acks(conn.ack(second))] == [[102], [103]]

    def test_sequence_numbers_that_roll_over_ack_the_last_frame(self) -> None:
        conn = BeatsConnection()
        frames = json_frame(2**32 - 1, b'{"message":"last before wrap"}') + json_frame(0, b'{"message":"wrapped"}')
        (window,) = conn.feed(window_frame(2) + frames, RECEIVED)
        assert parse_acks(conn.ack(window)) == [0]
        assert window.last_seq == 0

    def test_pipelined_windows_are_acked_in_order(self) -> None:
        conn = BeatsConnection()
        data = b"".join(encode_window([{"message": f"w{n}e{i}"} for i in range(3)]) for n in range(3))
        windows = conn.feed(data, RECEIVED)
        assert len(windows) == 3
        assert conn.unacked == 3
        with pytest.raises(ValueError):
            conn.ack(windows[1])
        assert [parse_acks(conn.ack(window)) for window in windows] == [[3], [3], [3]]
        with pytest.raises(ValueError):
            conn.ack(windows[0])  # once only
        assert conn.unacked == 0

    def test_empty_window_is_acked_with_zero(self) -> None:
        conn = BeatsConnection()
        (window,) = conn.feed(window_frame(0), RECEIVED)
        assert (window.events, window.last_seq) == ([], 0)
        assert conn.ack(window) == b"2A\x00\x00\x00\x00"

    def test_keepalive_only_while_windows_await_their_ack(self) -> None:
        conn = BeatsConnection()
        assert conn.keepalive() is None
        (window,) = conn.feed(encode_window([{"message": "m"}]), RECEIVED)
        assert conn.keepalive() == b"2A\x00\x00\x00\x00"
        conn.ack(window)
        assert conn.keepalive() is None

    def test_several_compressed_frames_in_one_window(self) -> None:
        frames = [json_frame(i + 1, json.dumps({"message": f"m{i}"}).encode()) for i in range(6)]
        data = window_frame(6)
        for start, stop in ((0, 2), (2, 5), (5, 6)):  # 2 + 3 + 1 frames
            data += compressed_frame(b"".join(frames[start:stop]))
        (window,) = BeatsConnection().feed(data, RECEIVED)
        assert messages([window]) == [f"m{i}" for i in range(6)]

    def test_plain_and_compressed_frames_mixed(self) -> None:
        data = window_frame(3) + json_frame(1, b'{"message":"plain"}')
        data += compressed_frame(json_frame(2, b'{"message":"packed"}')) + json_frame(3, b'{"message":"plain again"}')
        (window,) = BeatsConnection().feed(data, RECEIVED)
        assert messages([window]) == ["plain", "packed", "plain again"]
        assert window.last_seq == 3

    @pytest.mark.parametrize("level", [0, 3])
    def test_every_split_point(self, level: int) -> None:
        data = encode_window([filebeat_event(i) for i in range(3)], compression_level=level)
        data += encode_window([{"message": "second"}], compression_level=level)
        whole = messages(BeatsConnection().feed(data, RECEIVED))
        for cut in range(1, len(data)):
            conn = BeatsConnection()
            windows = conn.feed(data[:cut], RECEIVED) + conn.feed(data[cut:], RECEIVED)
            assert messages(windows) == whole, cut
            assert [window.last_seq for window in windows] == [3, 1]

    def test_random_chunkings_of_many_windows(self) -> None:
        rng = random.Random(11)
        data = b"".join(
            encode_window(
                [filebeat_event(i) for i in range(rng.randrange(0, 40))], compression_level=rng.choice([0, 3])
            )
            for _ in range(30)
        )
        conn, expected = feed_in_chunks(data, [len(data)])
        for _ in range(20):
            _, windows = feed_in_chunks(data, [rng.randrange(1, 3000) for _ in range(7)])
            assert messages(windows) == messages(expected)
            assert [w.last_seq for w in windows] == [w.last_seq for w in expected]

    def test_a_large_compressed_window_in_small_reads(self) -> None:
        data = encode_window([filebeat_event(i) for i in range(2048)])
        conn, windows = feed_in_chunks(data, [1460])
        (window,) = windows
        assert window.frames == 2048
        assert parse_acks(conn.ack(window)) == [2048]


class TestResend:
    """The sender resends an unacknowledged window; each connection hands a window over exactly once."""

    def test_cut_mid_window_hands_over_nothing_and_the_resend_is_whole(self) -> None:
        data = encode_window([filebeat_event(i) for i in range(10)], compression_level=0)
        cut = len(data) * 2 // 3
        first = BeatsConnection()
        assert first.feed(data[:cut], RECEIVED) == []
        with pytest.raises(BeatsError) as caught:
            first.close()
        assert caught.value.cause == beats.INCOMPLETE_WINDOW
        second = BeatsConnection()
        _, windows = feed_in_chunks(data, [1], second)
        (window,) = windows
        assert window.frames == 10
        assert parse_acks(second.ack(window)) == [10]

    def test_unacked_complete_window_is_handed_over_again_on_the_new_connection_only(self) -> None:
        data = encode_window([{"message": f"m{i}"} for i in range(4)])
        first = BeatsConnection()
        (window,) = first.feed(data, RECEIVED)
        # The glue never acked (crash before durable); the sender reconnects and resends.
        second = BeatsConnection()
        (again,) = second.feed(data, RECEIVED)
        assert messages([window]) == messages([again])
        assert second.feed(b"", RECEIVED) == []
        assert second.unacked == 1

    def test_a_byte_at_a_time_hands_each_window_over_once(self) -> None:
        data = encode_window([{"message": "a"}, {"message": "b"}]) * 3
        _, windows = feed_in_chunks(data, [1])
        assert messages(windows) == ["a", "b"] * 3

    def test_close_between_windows_is_quiet(self) -> None:
        conn = BeatsConnection()
        conn.feed(encode_window([{"message": "m"}]), RECEIVED)
        conn.close()


class TestEventMapping:
    def test_filebeat_event(self) -> None:
        fields = {"fields": {"team": "payments"}, "tags": ["nginx", "prod"], "log.level": "warning"}
        (window,) = BeatsConnection().feed(encode_window([filebeat_event(7, **fields)]), RECEIVED)
        (event,) = window.events
        assert event.timestamp == 1_714_557_607_007_000_000
        assert (event.message, event.host, event.level, event.tags) == (
            "GET /item/7 200",
            "web-07",
            "warn",
            ["nginx", "prod"],
        )
        assert event.service == ""
        assert "@metadata" not in event.attributes
        assert event.attributes["agent"] == {"type": "filebeat", "version": "8.13.4", "name": "web-07", "id": "a1b2"}
        assert event.attributes["log"] == {"offset": 700, "file": {"path": "/var/log/nginx/access.log"}}
        assert event.attributes["host"] == {"os": {"family": "debian"}}
        assert event.attributes["ecs"] == {"version": "8.0.0"}
        assert event.attributes["fields"] == {"team": "payments"}
        assert event.attributes["input"] == {"type": "filestream"}

    def test_winlogbeat_event(self) -> None:
        event_json = {
            "@timestamp": "2024-05-01T10:00:00.000Z",
            "@metadata": {"beat": "winlogbeat", "version": "8.13.4"},
            "message": "An account was successfully logged on.",
            "log": {"level": "information"},
            "winlog": {
                "channel": "Security",
                "event_id": "4624",
                "provider_name": "Microsoft-Windows-Security-Auditing",
            },
            "event": {"code": "4624", "kind": "event", "provider": "Microsoft-Windows-Security-Auditing"},
            "host": {"name": "DC01"},
            "service": {"name": "eventlog"},
        }
        (window,) = BeatsConnection().feed(encode_window([event_json]), RECEIVED)
        (event,) = window.events
        assert (event.level, event.host, event.service) == ("info", "DC01", "eventlog")
        assert event.attributes["winlog"]["event_id"] == "4624"
        assert "log" not in event.attributes

    def test_event_without_timestamp_gets_the_time_received(self) -> None:
        (window,) = BeatsConnection().feed(encode_window([{"message": "no time"}]), RECEIVED)
        assert window.events[0].timestamp == RECEIVED

    def test_bad_json_is_kept_as_a_parse_failure_and_the_connection_goes_on(self) -> None:
        conn = BeatsConnection()
        data = encode_window([b'{"message":"ok"}', b'{"message": broken', b"\xff\xfe not utf8"], raw=True)
        (window,) = conn.feed(data, RECEIVED)
        ok, broken, binary = window.events
        assert ok.message == "ok"
        assert (broken.message, broken.tags) == ('{"message": broken', [TAG_JSON_PARSE_FAILURE])
        assert binary.tags == [TAG_JSON_PARSE_FAILURE]
        assert window.parse_failures == 2
        assert parse_acks(conn.ack(window)) == [3]
        (after,) = conn.feed(encode_window([{"message": "after"}]), RECEIVED)
        assert messages([after]) == ["after"]

    def test_empty_json_payload_counts_as_a_frame(self) -> None:
        conn = BeatsConnection()
        (window,) = conn.feed(window_frame(2) + json_frame(1, b"") + json_frame(2, b'{"message":"m"}'), RECEIVED)
        assert (window.frames, messages([window])) == (2, ["m"])

    def test_json_array_frame_gives_an_event_per_element(self) -> None:
        (window,) = BeatsConnection().feed(
            window_frame(1) + json_frame(1, b'[{"message":"a"},{"message":"b"}]'), RECEIVED
        )
        assert messages([window]) == ["a", "b"]
        assert window.frames == 1

    def test_v1_key_value_frames(self) -> None:
        conn = BeatsConnection()
        frames = kv_frame(1, {"line": "first line", "host": "old-box", "file": "/var/log/app.log", "offset": "0"})
        frames += kv_frame(2, {"message": "explicit", "line": "kept as attribute"})
        (window,) = conn.feed(window_frame(2, b"1") + frames, RECEIVED)
        first, second = window.events
        assert (first.message, first.host) == ("first line", "old-box")
        assert first.attributes == {"file": "/var/log/app.log", "offset": "0"}
        assert (second.message, second.attributes) == ("explicit", {"line": "kept as attribute"})
        assert conn.ack(window) == b"1A" + U32.pack(2)

    def test_v1_frames_compressed_and_split(self) -> None:
        frames = b"".join(kv_frame(i + 1, {"line": f"l{i}", "k": "v" * 300}) for i in range(5))
        data = window_frame(5, b"1") + compressed_frame(frames)
        for size in (1, 7, 100):
            _, windows = feed_in_chunks(data, [size])
            assert messages(windows) == [f"l{i}" for i in range(5)]
        _, windows = feed_in_chunks(window_frame(5, b"1") + frames, [3])
        assert messages(windows) == [f"l{i}" for i in range(5)]


def zlib_bomb(size: int) -> bytes:
    return zlib.compress(b"2J" + U32.pack(1) + U32.pack(size) + b" " * size, 9)


BAD_STREAMS: list[tuple[str, bytes]] = [
    (beats.UNSUPPORTED_VERSION, b"3W" + U32.pack(1)),
    (beats.UNSUPPORTED_VERSION, b"\x00\x00"),
    (beats.UNSUPPORTED_VERSION, window_frame(1) + b"xJ"),
    (beats.UNKNOWN_FRAME_TYPE, b"2X"),
    (beats.UNKNOWN_FRAME_TYPE, b"2A" + U32.pack(1)),
    (beats.UNKNOWN_FRAME_TYPE, window_frame(1) + compressed_frame(b"2Q")),
    (beats.FRAME_TOO_LARGE, window_frame(1) + b"2J" + U32.pack(1) + U32.pack(2000)),
    (beats.FRAME_TOO_LARGE, window_frame(1) + b"2C" + U32.pack(2000)),
    (beats.FRAME_TOO_LARGE, window_frame(1) + b"1D" + U32.pack(1) + U32.pack(1000)),
    (beats.FRAME_TOO_LARGE, window_frame(1) + b"1D" + U32.pack(1) + U32.pack(1) + U32.pack(2000)),
    (beats.WINDOW_TOO_LARGE, window_frame(101)),
    (beats.WINDOW_TOO_LARGE, encode_window([{"message": "x" * 900}, {"message": "y" * 900}], compression_level=0)),
    (beats.DECOMPRESSED_TOO_LARGE, window_frame(1) + b"2C" + U32.pack(len(zlib_bomb(5000))) + zlib_bomb(5000)),
    (beats.MALFORMED_ZLIB, window_frame(1) + b"2C" + U32.pack(8) + b"not zlib"),
    (beats.MALFORMED_ZLIB, window_frame(1) + b"2C" + U32.pack(10) + zlib.compress(json_frame(1, b"{}"))[:10]),
    (beats.TRUNCATED_COMPRESSED_FRAME, window_frame(1) + compressed_frame(json_frame(1, b'{"message":"m"}')[:-2])),
    (beats.TRUNCATED_COMPRESSED_FRAME, window_frame(1) + compressed_frame(b"2")),
    (beats.TRUNCATED_COMPRESSED_FRAME, window_frame(1) + compressed_frame(kv_frame(1, {"line": "x"})[:-1])),
    (beats.UNEXPECTED_FRAME, window_frame(1) + compressed_frame(window_frame(1))),
    (beats.UNEXPECTED_FRAME, window_frame(1) + compressed_frame(compressed_frame(json_frame(1, b"{}")))),
    (beats.DATA_OUTSIDE_WINDOW, json_frame(1, b"{}")),
    (beats.DATA_OUTSIDE_WINDOW, kv_frame(1, {"line": "x"})),
    (beats.DATA_OUTSIDE_WINDOW, window_frame(1) + compressed_frame(json_frame(1, b"{}") + json_frame(2, b"{}"))),
    (beats.UNEXPECTED_WINDOW, window_frame(2) + json_frame(1, b"{}") + window_frame(2)),
]
LIMITS = BeatsLimits(max_frame_bytes=1000, max_decompressed_bytes=1000, max_window_events=100, max_window_bytes=1500)


class TestBadInput:
    @pytest.mark.parametrize(("cause", "data"), BAD_STREAMS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD_STREAMS)])
    def test_cause(self, cause: str, data: bytes) -> None:
        assert failure(data, BeatsConnection(LIMITS)).cause == cause

    @pytest.mark.parametrize(("cause", "data"), BAD_STREAMS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD_STREAMS)])
    def test_cause_byte_by_byte(self, cause: str, data: bytes) -> None:
        conn = BeatsConnection(LIMITS)
        with pytest.raises(BeatsError) as caught:
            for index in range(len(data)):
                conn.feed(data[index : index + 1], RECEIVED)
        assert caught.value.cause == cause

    def test_zlib_bomb_with_default_limits_is_refused_before_inflating_it_all(self) -> None:
        bomb = zlib.compress(b"\x00" * (300 << 20), 9)
        assert len(bomb) < 1 << 20
        data = window_frame(1) + b"2C" + U32.pack(len(bomb)) + bomb
        assert failure(data).cause == beats.DECOMPRESSED_TOO_LARGE

    def test_windows_completed_before_the_error_are_kept(self) -> None:
        good = encode_window([{"message": "good"}])
        error = failure(good + good + b"9W")
        assert error.cause == beats.UNSUPPORTED_VERSION
        assert [messages([window]) for window in error.windows] == [["good"], ["good"]]

    def test_errors_are_sticky(self) -> None:
        conn = BeatsConnection()
        first = failure(b"2X", conn)
        with pytest.raises(BeatsError) as again:
            conn.feed(encode_window([{"message": "m"}]), RECEIVED)
        assert again.value is first

    def test_close_with_a_partial_frame_and_no_window(self) -> None:
        conn = BeatsConnection()
        conn.feed(b"2", RECEIVED)
        with pytest.raises(BeatsError) as caught:
            conn.close()
        assert caught.value.cause == beats.INCOMPLETE_WINDOW

    def test_causes_are_exported_constants(self) -> None:
        exported = {value for name, value in vars(beats).items() if name.isupper() and isinstance(value, str)}
        assert {cause for cause, _ in BAD_STREAMS} | {beats.INCOMPLETE_WINDOW} <= exported


def mutations(rng: random.Random, count: int) -> Iterator[bytes]:
    for _ in range(count):
        events = [filebeat_event(i) for i in range(rng.randrange(0, 6))]
        data = bytearray(encode_window(events, compression_level=rng.choice([0, 1])))
        if rng.random() < 0.3:
            data += kv_frame(1, {"line": "x"})
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            del data[rng.randrange(len(data)) :]
        elif kind == 2:
            position = rng.randrange(len(data))
            data[position:position] = rng.randbytes(rng.randrange(1, 20))
        else:
            data = bytearray(rng.choice([b"2", b"1", b""]) + rng.randbytes(rng.randrange(1, 200)))
        yield bytes(data)


class TestFuzz:
    def test_random_and_mutated_input_only_ever_raises_beats_error(self) -> None:
        rng = random.Random(424242)
        limits = BeatsLimits(max_frame_bytes=1 << 16, max_decompressed_bytes=1 << 16, max_window_events=64)
        outcomes = {"ok": 0, "error": 0}
        for data in mutations(rng, 3000):
            conn = BeatsConnection(limits)
            try:
                _, windows = feed_in_chunks(data, [rng.randrange(1, 50)], conn)
                conn.close()
                outcomes["ok"] += 1
            except BeatsError as error:
                assert error.cause in vars(beats).values()
                outcomes["error"] += 1
        assert outcomes["ok"] and outcomes["error"]


# --- over a real socket, the client written from the spec against a minimal glue ------------------


class MiniServer:
    """The call sequence the glue follows, with 'durable' being immediate: feed, store, ack in order."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        self.stored: list[list[Event]] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.connections = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.getsockname()[:2]
        return host, port

    def start(self, connections: int) -> None:
        self.connections = connections
        self.thread.start()

    def _serve(self) -> None:
        for _ in range(self.connections):
            sock, _ = self.server.accept()
            conn = BeatsConnection()
            with sock:
                while data := sock.recv(4096):
                    try:
                        windows = conn.feed(data)
                    except BeatsError as error:
                        windows = error.windows
                        self.errors.append(error.cause)
                    for window in windows:
                        self.stored.append(window.events)
                        sock.sendall(conn.ack(window))
                try:
                    conn.close()
                except BeatsError as error:
                    self.errors.append(error.cause)

    def stop(self) -> None:
        self.thread.join(timeout=10)
        self.server.close()


class TestOverSockets:
    def test_windows_acked_and_a_cut_window_resent(self) -> None:
        server = MiniServer()
        server.start(connections=2)
        try:
            client = LumberjackClient(server.address)
            assert client.await_ack(client.send([filebeat_event(i) for i in range(50)], chunk_sizes=[333])) == 50
            assert client.await_ack(client.send([{"message": "second"}], chunk_sizes=[1])) == 1
            # A window cut off by a dropped connection: half of it, then the socket closes.
            half = encode_window([{"message": f"cut {i}"} for i in range(4)], compression_level=0)
            client.sock.sendall(half[: len(half) // 2])
            client.close()
            retry = LumberjackClient(server.address, compression_level=0)
            assert retry.await_ack(retry.send([{"message": f"cut {i}"} for i in range(4)], chunk_sizes=[9])) == 4
            retry.close()
        finally:
            server.stop()
        assert [len(events) for events in server.stored] == [50, 1, 4]
        assert [event.message for event in server.stored[2]] == [f"cut {i}" for i in range(4)]
        assert server.errors == [beats.INCOMPLETE_WINDOW]
