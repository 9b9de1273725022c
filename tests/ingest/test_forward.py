"""Tests for the sans-IO Fluentd Forward codec: real fluent-logger bytes, Fluent Bit frames, any chunking, bad input."""

from __future__ import annotations

import gzip
import hashlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import pytest
from fluent import sender as fluent_sender

from logtraced.events import TAG_NOT_OBJECT
from logtraced.ingest import forward
from logtraced.ingest.forward import (
    ForwardBatch,
    ForwardConnection,
    ForwardError,
    ForwardLimits,
    heartbeat_reply,
)
from logtraced.model import Event, Tenant

RECEIVED = 1_800_000_000_000_000_000
T = 1_700_000_000  # seconds
Ext = msgspec.msgpack.Ext
encode = msgspec.msgpack.encode


def event_time(seconds: int, nanos: int = 0) -> Ext:
    return Ext(0, struct.pack(">II", seconds, nanos))


def packed(entries: Sequence[Any]) -> bytes:
    """Entries back to back, as PackedForward carries them."""
    return b"".join(encode(entry) for entry in entries)


def feed_in_chunks(data: bytes, sizes: Sequence[int], conn: ForwardConnection | None = None) -> list[ForwardBatch]:
    conn = conn or ForwardConnection()
    batches: list[ForwardBatch] = []
    pos, step = 0, 0
    while pos < len(data):
        size = sizes[step % len(sizes)]
        batches += conn.feed(data[pos : pos + size], RECEIVED)
        pos += size
        step += 1
    conn.close()
    return batches


def events_of(batches: Sequence[ForwardBatch]) -> list[Event]:
    return [event for batch in batches for event in batch.events]


def one_event(request: Any) -> Event:
    (batch,) = ForwardConnection().feed(encode(request), RECEIVED)
    (event,) = batch.events
    return event


def failure(data: bytes, conn: ForwardConnection | None = None) -> ForwardError:
    conn = conn or ForwardConnection()
    with pytest.raises(ForwardError) as caught:
        conn.feed(data, RECEIVED)
    return caught.value


# --- bytes from the real fluent-logger sender -------------------------------------------------


def capture(send: Callable[[int], None], connections: int = 1) -> bytes:
    """Bytes a sender writes to a plain TCP server on a loopback ephemeral port, connection after connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    received = bytearray()

    def accept() -> None:
        for _ in range(connections):
            conn, _ = server.accept()
            with conn:
                while piece := conn.recv(65536):
                    received.extend(piece)

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        send(server.getsockname()[1])
    finally:
        thread.join(timeout=10)
        server.close()
    return bytes(received)


@pytest.fixture(scope="module")
def fluent_logger_bytes() -> bytes:
    def send(port: int) -> None:
        precise = fluent_sender.FluentSender("app", host="127.0.0.1", port=port, nanosecond_precision=True)
        precise.emit_with_time("web", fluent_sender.EventTime(T, 123456789), {"message": "hello", "level": "WARN"})
        precise.emit_with_time("web", T + 1, {"log": "integer time", "n": 1})
        precise.emit_with_time("db", 1_700_000_002.5, {"msg": "float time", "host": "db-1"})
        precise.emit("web", {"message": "now", "nested": {"list": [1, 2, {"deep": True}]}, "bin": b"\xff\x00"})
        precise.close()
        plain = fluent_sender.FluentSender("plain", host="127.0.0.1", port=port)
        plain.emit_with_time(None, T, {"message": "second connection, no label"})
        plain.close()

    data = capture(send, connections=2)
    assert data, "fluent-logger sent nothing"
    return data


class TestFluentLogger:
    """fluent.sender.FluentSender's own bytes (Message mode, EventTime or integer time)."""

    def test_every_event_and_field(self, fluent_logger_bytes: bytes) -> None:
        batches = ForwardConnection().feed(fluent_logger_bytes, RECEIVED)
        assert [batch.tag for batch in batches] == ["app.web", "app.web", "app.db", "app.web", "plain"]
        assert all(batch.chunk is None for batch in batches)
        hello, integer, floating, now, plain = events_of(batches)
        assert hello.timestamp == T * 10**9 + 123456789
        assert (hello.message, hello.level, hello.service) == ("hello", "warn", "app.web")
        assert hello.attributes == {"fluent.tag": "app.web"}
        assert integer.timestamp == (T + 1) * 10**9
        assert integer.message == "integer time"
        assert integer.attributes == {"n": 1, "fluent.tag": "app.web"}
        assert floating.timestamp == 1_700_000_002_500_000_000
        assert (floating.message, floating.host) == ("float time", "db-1")
        assert now.attributes["nested"] == {"list": [1, 2, {"deep": True}]}
        assert now.attributes["bin"] == "\\xff\x00"  # bin values become text, undecodable bytes escaped
        assert plain.message == "second connection, no label"

    @pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000])
    def test_any_chunk_size_gives_the_same_events(self, fluent_logger_bytes: bytes, size: int) -> None:
        whole = events_of(ForwardConnection().feed(fluent_logger_bytes, RECEIVED))
        assert events_of(feed_in_chunks(fluent_logger_bytes, [size])) == whole

    def test_every_split_point(self, fluent_logger_bytes: bytes) -> None:
        whole = events_of(ForwardConnection().feed(fluent_logger_bytes, RECEIVED))
        for cut in range(1, len(fluent_logger_bytes)):
            conn = ForwardConnection()
            first = conn.feed(fluent_logger_bytes[:cut], RECEIVED)
            rest = conn.feed(fluent_logger_bytes[cut:], RECEIVED)
            assert events_of(first + rest) == whole, cut

    def test_fluent_handler_for_the_logging_module(self) -> None:
        import logging

        from fluent import handler as fluent_handler

        def send(port: int) -> None:
            log_handler = fluent_handler.FluentHandler("svc.log", host="127.0.0.1", port=port)
            log_handler.setFormatter(fluent_handler.FluentRecordFormatter({"level": "%(levelname)s"}))
            logger = logging.Logger("forward-test")
            logger.addHandler(log_handler)
            logger.warning({"message": "from logging", "user": "ann"})
            log_handler.close()

        (event,) = events_of(ForwardConnection().feed(capture(send), RECEIVED))
        assert (event.message, event.level, event.service) == ("from logging", "warn", "svc.log")
        assert event.attributes["user"] == "ann"


# --- the four modes as Fluent Bit and Fluentd write them ---------------------------------------


def fluent_bit_records(count: int, *, metadata: bool = True) -> list[Any]:
    records = []
    for index in range(count):
        moment = event_time(T + index, index * 1000 + 7)
        record = {"log": f"line {index}", "stream": "stdout", "kubernetes": {"pod_name": f"web-{index % 3}"}}
        records.append([[moment, {}], record] if metadata else [moment, record])
    return records


class TestModes:
    def test_forward_mode_with_retained_metadata_and_ack(self) -> None:
        request = ["kube.var.log", fluent_bit_records(3), {"chunk": "p8n9gmxTQVC8/nh2wlKKeQ==", "size": 3}]
        conn = ForwardConnection()
        (batch,) = conn.feed(encode(request), RECEIVED)
        assert batch.chunk == "p8n9gmxTQVC8/nh2wlKKeQ=="
        assert batch.entries == 3
        assert [event.message for event in batch.events] == ["line 0", "line 1", "line 2"]
        assert batch.events[2].timestamp == (T + 2) * 10**9 + 2007
        assert batch.events[0].attributes == {
            "stream": "stdout",
            "kubernetes": {"pod_name": "web-0"},
            "fluent.tag": "kube.var.log",
        }
        assert msgspec.msgpack.decode(conn.ack(batch)) == {"ack": "p8n9gmxTQVC8/nh2wlKKeQ=="}

    def test_no_chunk_means_no_reply(self) -> None:
        conn = ForwardConnection()
        (batch,) = conn.feed(encode(["t", fluent_bit_records(1, metadata=False)]), RECEIVED)
        assert batch.chunk is None
        assert conn.ack(batch) == b""

    def test_a_binary_chunk_is_echoed_as_binary(self) -> None:
        conn = ForwardConnection()
        (batch,) = conn.feed(encode(["t", fluent_bit_records(1), {"chunk": b"\x01\x02"}]), RECEIVED)
        assert conn.ack(batch) == encode({"ack": b"\x01\x02"})

    @pytest.mark.parametrize("as_str", [False, True], ids=["bin", "str"])
    @pytest.mark.parametrize("size", [None, 40, 39, 41], ids=["no-size", "size", "size-low", "size-high"])
    def test_packed_forward(self, as_str: bool, size: int | None) -> None:
        stream = packed(fluent_bit_records(40, metadata=False))
        entries = stream.decode("latin-1") if as_str else stream
        option = {"size": size} if size is not None else {}
        if as_str:
            # Fluentd's out_forward sends the entries as a msgpack str that is not UTF-8.
            body = b"\xdb" + struct.pack(">I", len(stream)) + stream
            request = b"\x93" + encode("td.app") + body + encode(option)
            del entries
        else:
            request = encode(["td.app", entries, option])
        (batch,) = ForwardConnection().feed(request, RECEIVED)
        assert [event.message for event in batch.events] == [f"line {index}" for index in range(40)]

    def test_compressed_packed_forward_with_several_gzip_members(self) -> None:
        records = fluent_bit_records(30)
        members = gzip.compress(packed(records[:10])) + gzip.compress(packed(records[10:]))
        request = encode(["app", members, {"compressed": "gzip", "chunk": "c1", "size": 30, "fluent_signal": 0}])
        conn = ForwardConnection()
        batches = feed_in_chunks(request, [17], conn)
        (batch,) = batches
        assert len(batch.events) == 30
        assert batch.events[29].message == "line 29"
        assert batch.option["fluent_signal"] == 0
        assert conn.ack(batch) == encode({"ack": "c1"})

    def test_compressed_text_means_uncompressed(self) -> None:
        request = encode(["app", packed(fluent_bit_records(2)), {"compressed": "text"}])
        (batch,) = ForwardConnection().feed(request, RECEIVED)
        assert len(batch.events) == 2

    def test_empty_entries_still_ack(self) -> None:
        conn = ForwardConnection()
        entries: Any
        for entries in ([], b"", gzip.compress(b"")):
            option = {"chunk": "e", "compressed": "gzip"} if entries else {"chunk": "e"}
            (batch,) = conn.feed(encode(["t", entries, option]), RECEIVED)
            assert batch.events == []
            assert conn.ack(batch) == encode({"ack": "e"})

    def test_message_mode_with_option(self) -> None:
        conn = ForwardConnection()
        (batch,) = conn.feed(encode(["app", event_time(T, 5), {"message": "m"}, {"chunk": "x"}]), RECEIVED)
        assert batch.events[0].timestamp == T * 10**9 + 5
        assert batch.chunk == "x"

    def test_many_requests_back_to_back_in_random_chunks(self) -> None:
        rng = random.Random(7)
        requests: list[list[Any]] = []
        for index in range(60):
            records = fluent_bit_records(rng.randrange(0, 20), metadata=bool(index % 2))
            mode = index % 4
            if mode == 0:
                requests.append(["f", records, {"chunk": f"c{index}"}])
            elif mode == 1:
                requests.append(["p", packed(records), {"chunk": f"c{index}", "size": len(records)}])
            elif mode == 2:
                requests.append(["g", gzip.compress(packed(records)), {"compressed": "gzip", "chunk": f"c{index}"}])
            else:
                requests.append(["m", T, {"message": f"single {index}"}, {"chunk": f"c{index}"}])
        stream = b"".join(encode(request) for request in requests)
        whole = ForwardConnection().feed(stream, RECEIVED)
        assert [batch.chunk for batch in whole] == [f"c{index}" for index in range(60)]
        for _ in range(20):
            sizes = [rng.randrange(1, 4000) for _ in range(10)]
            batches = feed_in_chunks(stream, sizes)
            assert [batch.chunk for batch in batches] == [batch.chunk for batch in whole]
            assert events_of(batches) == events_of(whole)

    def test_a_large_request_in_small_reads(self) -> None:
        records = fluent_bit_records(20_000)
        request = encode(["big", records, {"chunk": "big"}])
        (batch,) = feed_in_chunks(request, [65536])
        assert len(batch.events) == 20_000
        assert batch.size == len(request)

    def test_heartbeat_nil_is_ignored(self) -> None:
        data = b"\xc0" + encode(["t", T, {"message": "after"}]) + b"\xc0"
        (batch,) = ForwardConnection().feed(data, RECEIVED)
        assert batch.events[0].message == "after"

    def test_udp_heartbeat_is_echoed(self) -> None:
        assert heartbeat_reply(b"\x00") == b"\x00"
        assert heartbeat_reply(b"") == b""
        assert heartbeat_reply(b"\x00\x00") is None


# --- time, record and tag mapping --------------------------------------------------------------


class TestMapping:
    @pytest.mark.parametrize(
        ("moment", "expected"),
        [
            (T, T * 10**9),
            (1_700_000_000.25, 1_700_000_000_250_000_000),
            (event_time(T, 999_999_999), T * 10**9 + 999_999_999),
            ([event_time(T, 1), {}], T * 10**9 + 1),
            ([T], T * 10**9),
            (0, RECEIVED),
            (event_time(0, 0), RECEIVED),
            (0.0, RECEIVED),
        ],
        ids=["int", "float", "event-time", "with-metadata", "one-item-list", "zero", "zero-event-time", "zero-float"],
    )
    def test_forward_time(self, moment: Any, expected: int) -> None:
        assert one_event(["t", [[moment, {"message": "m"}]]]).timestamp == expected

    def test_event_time_in_ext8_form(self) -> None:
        ext8 = b"\xc7\x08\x00" + struct.pack(">II", T, 42)
        request = b"\x92" + encode("t") + b"\x91\x92" + ext8 + encode({"message": "m"})
        (batch,) = ForwardConnection().feed(request, RECEIVED)
        assert batch.events[0].timestamp == T * 10**9 + 42

    def test_group_markers_and_nil_records_are_skipped(self) -> None:
        entries = [
            [-1, {"group": "start"}],
            [[event_time(0xFFFFFFFF), {}], {}],
            [T, None],
            [T, {"message": "kept"}],
            [[event_time(0xFFFFFFFE), {}], {}],
            [-2, {}],
        ]
        (batch,) = ForwardConnection().feed(encode(["t", entries, {"chunk": "g"}]), RECEIVED)
        assert [event.message for event in batch.events] == ["kept"]
        assert batch.entries == 6

    def test_record_time_key_wins_over_forward_time(self) -> None:
        event = one_event(["t", T, {"message": "m", "time": "2024-05-01T10:00:00.123456789Z"}])
        assert event.timestamp == 1_714_557_600_123_456_789
        assert "time" not in event.attributes

    def test_unparseable_record_time_falls_back_to_forward_time(self) -> None:
        event = one_event(["t", T, {"message": "m", "time": "yesterday"}])
        assert event.timestamp == T * 10**9
        assert event.attributes["time"] == "yesterday"

    def test_tag_is_the_service_unless_the_record_names_one(self) -> None:
        assert one_event(["kube.web", T, {"log": "x"}]).service == "kube.web"
        named = one_event(["kube.web", T, {"log": "x", "service": {"name": "checkout"}}])
        assert named.service == "checkout"
        assert named.attributes["fluent.tag"] == "kube.web"

    def test_fluent_bit_record_spellings(self) -> None:
        event = one_event(
            [
                "tail.0",
                event_time(T),
                {"log": "GET /", "level": "ERROR", "hostname": "node-1", "tags": ["a"], "kubernetes": {"ns": "x"}},
            ]
        )
        assert (event.message, event.level, event.host, event.tags) == ("GET /", "error", "node-1", ["a"])
        assert event.attributes == {"kubernetes": {"ns": "x"}, "fluent.tag": "tail.0"}

    def test_metadata_is_kept(self) -> None:
        event = one_event(["t", [[[event_time(T), {"otlp": {"trace_id": b"\x01\x02"}}], {"message": "m"}]]])
        assert event.attributes["fluent.metadata"] == {"otlp": {"trace_id": "\x01\x02"}}

    @pytest.mark.parametrize(
        ("record", "message"),
        [("a string", '"a string"'), ([1, 2], "[1,2]"), (42, "42"), (b"\x00bin", '"\\u0000bin"')],
    )
    def test_a_record_that_is_not_a_map_is_stored_as_text(self, record: Any, message: str) -> None:
        event = one_event(["t", T, record])
        assert (event.message, event.tags, event.timestamp) == (message, [TAG_NOT_OBJECT], T * 10**9)
        assert (event.service, event.attributes) == ("t", {"fluent.tag": "t"})

    def test_unusual_values_are_made_storable(self) -> None:
        nested_time = event_time(T, 5)
        record: dict[Any, Any] = {"message": "m", 2: "int key", True: "bool key", "ext": Ext(9, b"ab")}
        record.update({"when": nested_time, None: "nil key"})
        event = one_event(["t", T, record])
        assert event.attributes["2"] == "int key"
        assert event.attributes["true"] == "bool key"
        assert event.attributes["null"] == "nil key"
        assert event.attributes["ext"] == {"ext_type": 9, "data": "YWI="}
        assert event.attributes["when"] == "2023-11-14T22:13:20.000000005Z"
        msgspec.json.encode(event.attributes)  # the index can store it

    def test_strings_that_are_not_utf8(self) -> None:
        bad = b"\xa3\xff\xfeA"  # fixstr of 3 bytes, not UTF-8
        record = b"\x82" + encode("message") + bad + encode("k") + bad
        request = b"\x93" + encode("t") + encode(T) + record
        (batch,) = ForwardConnection().feed(request, RECEIVED)
        (event,) = batch.events
        assert event.message == "\ufffd\ufffdA"
        assert event.attributes["k"] == "\ufffd\ufffdA"

    def test_a_bad_entry_among_good_ones_in_packed_forward(self) -> None:
        bad = b"\x92" + encode(T) + b"\x81" + encode("message") + b"\xa2\xc3\x28"
        stream = packed(fluent_bit_records(3, metadata=False)) + bad + packed(fluent_bit_records(2, metadata=False))
        (batch,) = ForwardConnection().feed(encode(["t", stream, {"size": 6}]), RECEIVED)
        assert [event.message for event in batch.events] == [
            "line 0",
            "line 1",
            "line 2",
            "\ufffd(",
            "line 0",
            "line 1",
        ]

    def test_deep_nesting_is_cut_where_the_index_stops(self) -> None:
        deep: Any = "leaf"
        for _ in range(300):
            deep = {"d": deep}
        event = one_event(["t", T, {"message": "m", "deep": deep}])
        depth, value = 0, event.attributes["deep"]
        while isinstance(value, dict):
            value = value["d"]
            depth += 1
        assert value == "[nested too deep]"
        assert depth < 128
        msgspec.json.encode(event.attributes)


# --- shared-key handshake ----------------------------------------------------------------------

KEYS = {"alpha-key": Tenant("acme", "prod"), "beta-key": Tenant("globex", "staging")}
NONCE = bytes(range(16))


def resolver(keys: dict[str, Tenant] = KEYS) -> forward.Resolver:
    def resolve(check: Callable[[str], bool]) -> Tenant | None:
        for key, tenant in keys.items():
            if check(key):
                return tenant
        return None

    return resolve


def ping(shared_key: str, *, hostname: bytes = b"client-1", salt: bytes = b"0123456789abcdef") -> bytes:
    """A PING as the spec describes it; salt and hostname packed as str, as Fluent Bit does."""
    digest = hashlib.sha512(salt + hostname + NONCE + shared_key.encode()).hexdigest()
    items = [b"PING", hostname, salt, digest.encode(), b"", b""]
    out = bytearray(b"\x96")
    for item in items:
        out += (
            b"\xd9" + bytes((len(item),)) + item if len(item) < 256 else b"\xda" + struct.pack(">H", len(item)) + item
        )
    return bytes(out)


class TestHandshake:
    def test_helo_then_pong_then_events(self) -> None:
        conn = ForwardConnection(resolve=resolver(), self_hostname="logtraced-1", nonce=NONCE)
        helo = msgspec.msgpack.decode(conn.data_to_send())
        assert helo == ["HELO", {"nonce": NONCE, "auth": "", "keepalive": True}]
        salt = b"\x00\xff" * 8  # Fluent Bit's salt is 16 random bytes sent as a str
        assert conn.feed(ping("beta-key", salt=salt), RECEIVED) == []
        pong = msgspec.msgpack.decode(conn.data_to_send())
        expected = hashlib.sha512(salt + b"logtraced-1" + NONCE + b"beta-key").hexdigest()
        assert pong == ["PONG", True, "", "logtraced-1", expected]
        assert (conn.authenticated, conn.tenant) == (True, Tenant("globex", "staging"))
        (batch,) = conn.feed(encode(["t", T, {"message": "authenticated"}]), RECEIVED)
        assert batch.events[0].message == "authenticated"

    def test_handshake_in_pieces_with_data_in_the_same_read(self) -> None:
        conn = ForwardConnection(resolve=resolver(), nonce=NONCE)
        conn.data_to_send()
        stream = ping("alpha-key") + encode(["t", T, {"message": "m"}])
        batches = feed_in_chunks(stream, [5], conn)
        assert conn.tenant == Tenant("acme", "prod")
        assert [event.message for event in events_of(batches)] == ["m"]

    def test_wrong_key_is_refused_with_a_pong(self) -> None:
        conn = ForwardConnection(resolve=resolver(), nonce=NONCE)
        conn.data_to_send()
        error = failure(ping("guessed"), conn)
        assert error.cause == forward.AUTH_FAILED
        assert msgspec.msgpack.decode(conn.data_to_send()) == ["PONG", False, "shared_key mismatch", "", ""]
        assert conn.tenant is None
        with pytest.raises(ForwardError):
            conn.feed(encode(["t", T, {"message": "after refusal"}]), RECEIVED)

    def test_resolver_that_claims_a_tenant_without_a_match_is_refused(self) -> None:
        conn = ForwardConnection(resolve=lambda check: Tenant("x", "y"), nonce=NONCE)
        assert failure(ping("alpha-key"), conn).cause == forward.AUTH_FAILED

    @pytest.mark.parametrize(
        "first",
        [encode(["t", T, {"message": "no ping"}]), encode(["PING", "h", "s"]), encode("PING"), b"\xc0"],
        ids=["event", "short-ping", "string", "nil"],
    )
    def test_anything_but_a_ping_first_fails_the_handshake(self, first: bytes) -> None:
        conn = ForwardConnection(resolve=resolver(), nonce=NONCE)
        conn.data_to_send()
        assert failure(first, conn).cause == forward.HANDSHAKE_FAILED
        assert msgspec.msgpack.decode(conn.data_to_send())[:3] == ["PONG", False, "invalid ping message"]

    def test_random_nonce_by_default(self) -> None:
        first = msgspec.msgpack.decode(ForwardConnection(resolve=resolver()).data_to_send())
        second = msgspec.msgpack.decode(ForwardConnection(resolve=resolver()).data_to_send())
        assert len(first[1]["nonce"]) == 16
        assert first[1]["nonce"] != second[1]["nonce"]

    def test_no_handshake_without_resolver(self) -> None:
        assert ForwardConnection().data_to_send() == b""


# --- every bad input ----------------------------------------------------------------------------


def gzip_bomb(size: int) -> bytes:
    return gzip.compress(b"\x00" * size, 9)


BAD_REQUESTS: list[tuple[str, bytes]] = [
    (forward.MALFORMED_MSGPACK, b"\xc1"),
    (forward.MALFORMED_MSGPACK, encode("x")[:0] + b"\x92\xa1t\xc1"),
    (forward.INVALID_MESSAGE, encode({"tag": "t"})),
    (forward.INVALID_MESSAGE, encode("just a string")),
    (forward.INVALID_MESSAGE, encode(["t"])),
    (forward.INVALID_MESSAGE, encode(["t", [], {}, {}])),
    (forward.INVALID_MESSAGE, encode(["t", T])),
    (forward.INVALID_MESSAGE, encode(["t", T, {}, {}, {}])),
    (forward.INVALID_MESSAGE, encode([7, T, {"message": "m"}])),
    (forward.INVALID_MESSAGE, encode(["t", T, {"message": "m"}, "option"])),
    (forward.INVALID_MESSAGE, encode(["t", T, {"message": "m"}, {"chunk": 5}])),
    (forward.INVALID_ENTRY, encode(["t", [[T]]])),
    (forward.INVALID_ENTRY, encode(["t", [[T, {}, 1]]])),
    (forward.INVALID_ENTRY, encode(["t", ["entry"]])),
    (forward.INVALID_ENTRY, encode(["t", "yesterday", {"message": "m"}])),
    (forward.INVALID_ENTRY, encode(["t", None, {"message": "m"}])),
    (forward.INVALID_ENTRY, encode(["t", -5, {"message": "m"}])),
    (forward.INVALID_ENTRY, encode(["t", 2**40, {"message": "m"}])),
    (forward.INVALID_ENTRY, encode(["t", float("nan"), {"message": "m"}])),
    (forward.INVALID_ENTRY, encode(["t", Ext(5, b"12345678"), {"message": "m"}])),
    (forward.INVALID_ENTRY, encode(["t", Ext(0, b"1234"), {"message": "m"}])),
    (forward.INVALID_ENTRY, encode(["t", [[[T, {}, 3], {}]]])),
    (forward.INVALID_ENTRY, encode(["t", packed([[T, {"message": "m"}], "not an entry"])])),
    (forward.MALFORMED_MSGPACK, encode(["t", packed([[T, {"message": "m"}]])[:-1]])),
    (forward.MALFORMED_MSGPACK, encode(["t", b"\xc1\xc1"])),
    (forward.UNSUPPORTED_COMPRESSION, encode(["t", b"", {"compressed": "zstd"}])),
    (forward.MALFORMED_GZIP, encode(["t", b"not gzip at all", {"compressed": "gzip"}])),
    (forward.MALFORMED_GZIP, encode(["t", gzip.compress(packed([[T, {}]]))[:-9], {"compressed": "gzip"}])),
    (forward.MALFORMED_GZIP, encode(["t", gzip.compress(packed([[T, {}]])) + b"junk", {"compressed": "gzip"}])),
]


class TestBadInput:
    @pytest.mark.parametrize(("cause", "data"), BAD_REQUESTS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD_REQUESTS)])
    def test_cause(self, cause: str, data: bytes) -> None:
        assert failure(data).cause == cause

    def test_decompression_bomb(self) -> None:
        limits = ForwardLimits(max_decompressed_bytes=1 << 20)
        bomb = gzip_bomb(64 << 20)
        assert len(bomb) < 100_000
        conn = ForwardConnection(limits)
        assert failure(encode(["t", bomb, {"compressed": "gzip"}]), conn).cause == forward.DECOMPRESSED_TOO_LARGE
        just_fits = gzip.compress(packed([[T, {"message": "x" * 1000}]] * 1000))
        (batch,) = ForwardConnection(limits).feed(encode(["t", just_fits, {"compressed": "gzip"}]), RECEIVED)
        assert len(batch.events) == 1000

    def test_bomb_split_over_several_members(self) -> None:
        limits = ForwardLimits(max_decompressed_bytes=1 << 20)
        members = gzip_bomb(600_000) + gzip_bomb(600_000)
        assert failure(encode(["t", members, {"compressed": "gzip"}]), ForwardConnection(limits)).cause == (
            forward.DECOMPRESSED_TOO_LARGE
        )

    def test_frame_too_large_is_refused_as_soon_as_its_length_is_known(self) -> None:
        conn = ForwardConnection(ForwardLimits(max_frame_bytes=1000))
        header = b"\x92" + encode("t") + b"\xc6" + struct.pack(">I", 5000)  # a bin of 5000 bytes follows
        assert failure(header, conn).cause == forward.FRAME_TOO_LARGE

    def test_frame_too_large_without_a_length(self) -> None:
        conn = ForwardConnection(ForwardLimits(max_frame_bytes=1000))
        start = b"\x92" + encode("t") + b"\xdc\xff\xff"  # an array of 65535 entries, each small
        assert conn.feed(start, RECEIVED) == []
        entry = encode([T, {"message": "m"}])
        error = failure(entry * 100, conn)
        assert error.cause == forward.FRAME_TOO_LARGE

    def test_a_request_at_the_limit_is_accepted(self) -> None:
        request = encode(["t", T, {"message": "m"}])
        (batch,) = ForwardConnection(ForwardLimits(max_frame_bytes=len(request))).feed(request, RECEIVED)
        assert batch.events[0].message == "m"

    def test_earlier_requests_of_the_same_read_are_kept(self) -> None:
        good = encode(["t", T, {"message": "good"}, {"chunk": "g"}])
        error = failure(good + good + b"\xc1")
        assert [batch.chunk for batch in error.batches] == ["g", "g"]
        assert error.cause == forward.MALFORMED_MSGPACK

    def test_errors_are_sticky(self) -> None:
        conn = ForwardConnection()
        first = failure(b"\xc1", conn)
        with pytest.raises(ForwardError) as again:
            conn.feed(encode(["t", T, {"message": "m"}]), RECEIVED)
        assert again.value is first

    def test_close_mid_request(self) -> None:
        conn = ForwardConnection()
        request = encode(["t", T, {"message": "m"}])
        assert conn.feed(request[:-3], RECEIVED) == []
        assert conn.buffered == len(request) - 3
        with pytest.raises(ForwardError) as caught:
            conn.close()
        assert caught.value.cause == forward.INCOMPLETE_MESSAGE
        conn.close()  # nothing left: closing again is quiet

    def test_close_between_requests_is_quiet(self) -> None:
        conn = ForwardConnection()
        conn.feed(encode(["t", T, {"message": "m"}]), RECEIVED)
        conn.close()

    def test_causes_are_exported_constants(self) -> None:
        causes = {cause for cause, _ in BAD_REQUESTS}
        exported = {value for name, value in vars(forward).items() if name.isupper() and isinstance(value, str)}
        assert causes <= exported


# --- fuzz ---------------------------------------------------------------------------------------


def valid_stream(rng: random.Random) -> bytes:
    requests: list[bytes] = []
    for index in range(rng.randrange(1, 6)):
        records = fluent_bit_records(rng.randrange(0, 5), metadata=rng.random() < 0.5)
        choice = rng.randrange(4)
        if choice == 0:
            requests.append(encode(["f", records, {"chunk": str(index)}]))
        elif choice == 1:
            requests.append(encode(["p", packed(records), {"size": len(records)}]))
        elif choice == 2:
            requests.append(encode(["g", gzip.compress(packed(records)), {"compressed": "gzip"}]))
        else:
            requests.append(encode(["m", event_time(T, index), {"message": "x", "n": index}]))
    return b"".join(requests)


def mutations(rng: random.Random, count: int) -> Iterator[bytes]:
    for _ in range(count):
        data = bytearray(valid_stream(rng))
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            del data[rng.randrange(len(data)) :]
        elif kind == 2:
            position = rng.randrange(len(data))
            data[position:position] = rng.randbytes(rng.randrange(1, 20))
        else:
            data = bytearray(rng.randbytes(rng.randrange(1, 300)))
        yield bytes(data)


class TestFuzz:
    def test_random_and_mutated_input_only_ever_raises_forward_error(self) -> None:
        rng = random.Random(20240601)
        limits = ForwardLimits(max_frame_bytes=1 << 16, max_decompressed_bytes=1 << 16)
        outcomes = {"ok": 0, "error": 0}
        for data in mutations(rng, 3000):
            conn = ForwardConnection(limits)
            try:
                feed_in_chunks(data, [rng.randrange(1, 64)], conn)
                outcomes["ok"] += 1
            except ForwardError as error:
                assert error.cause in vars(forward).values()
                outcomes["error"] += 1
        assert outcomes["ok"] and outcomes["error"]

    def test_events_from_mutated_input_are_storable(self) -> None:
        rng = random.Random(99)
        for data in mutations(rng, 1000):
            try:
                batches = ForwardConnection().feed(data, RECEIVED)
            except ForwardError as error:
                batches = error.batches
            for event in events_of(batches):
                msgspec.json.encode(event)

    def test_handshake_fuzz(self) -> None:
        rng = random.Random(5)
        good = ping("alpha-key")
        for _ in range(500):
            data = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            conn = ForwardConnection(resolve=resolver(), nonce=NONCE)
            conn.data_to_send()
            try:
                conn.feed(bytes(data), RECEIVED)
            except ForwardError as error:
                assert error.cause in vars(forward).values()
                if error.cause in (forward.HANDSHAKE_FAILED, forward.AUTH_FAILED):
                    assert msgspec.msgpack.decode(conn.data_to_send())[:2] == ["PONG", False]
            else:
                # Either only bytes the check ignores were changed, or a length grew and it waits for more.
                assert conn.tenant == KEYS["alpha-key"] or conn.buffered
