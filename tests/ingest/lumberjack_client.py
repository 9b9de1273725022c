"""A Lumberjack v2 test client, written from the protocol specification.

No Filebeat (or other Beat) binary can be installed on these machines, so this client stands
in for go-lumber, the library every Beat sends with.  It was written from the lumberjack
PROTOCOL.md (logstash-plugins/logstash-input-beats) and the frame layout of go-lumber's v2
client, not from logtraced's code: `'2' 'W' count`, then either plain `'2' 'J' seq len json`
frames or one `'2' 'C' len zlib(...)` frame holding all of them, sequence numbers 1..count
in every window; then it reads 6-byte `'2' 'A' seq` ACKs until seq == count, treating ACKs
below count (seq 0 is Logstash's keep-alive) as "keep waiting" and one above as an error.
It also writes v1 `'1' 'D'` key/value frames.
"""

from __future__ import annotations

import json
import socket
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

U32 = struct.Struct(">I")


def window_frame(count: int, version: bytes = b"2") -> bytes:
    return version + b"W" + U32.pack(count)


def json_frame(seq: int, payload: bytes) -> bytes:
    return b"2J" + U32.pack(seq) + U32.pack(len(payload)) + payload


def kv_frame(seq: int, pairs: Mapping[str, str], version: bytes = b"1") -> bytes:
    body = bytearray(version + b"D" + U32.pack(seq) + U32.pack(len(pairs)))
    for key, value in pairs.items():
        for text in (key.encode(), value.encode()):
            body += U32.pack(len(text)) + text
    return bytes(body)


def compressed_frame(frames: bytes, level: int = 3) -> bytes:
    payload = zlib.compress(frames, level)
    return b"2C" + U32.pack(len(payload)) + payload


def encode_window(events: Sequence[Any], *, compression_level: int = 3, first_seq: int = 1, raw: bool = False) -> bytes:
    """One window as go-lumber writes it: W, then the J frames, compressed in one C frame when level > 0.

    `raw` sends each item as already-encoded JSON bytes (to send text that is not JSON).
    """
    frames = b"".join(
        json_frame(first_seq + index, item if raw else json.dumps(item, separators=(",", ":")).encode())
        for index, item in enumerate(events)
    )
    if compression_level > 0:
        frames = compressed_frame(frames, compression_level)
    return window_frame(len(events)) + frames


def parse_acks(data: bytes) -> list[int]:
    """The sequence numbers of the 6-byte ACK frames in `data`."""
    if len(data) % 6:
        raise ValueError(f"{len(data)} bytes are not whole ACK frames")
    acks = []
    for pos in range(0, len(data), 6):
        if data[pos : pos + 2] != b"2A":
            raise ValueError(f"not an ACK frame: {data[pos : pos + 6]!r}")
        acks.append(U32.unpack_from(data, pos + 2)[0])
    return acks


class LumberjackClient:
    """A blocking client on one TCP connection, sending windows like go-lumber's sync client."""

    def __init__(self, address: tuple[str, int], *, compression_level: int = 3, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.compression_level = compression_level
        self.acks_seen: list[int] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, events: Sequence[Any], *, chunk_sizes: Iterable[int] = ()) -> int:
        """Write one window (in pieces of `chunk_sizes`, cycled, when given) and return its size."""
        data = encode_window(events, compression_level=self.compression_level)
        sizes = list(chunk_sizes)
        if not sizes:
            self.sock.sendall(data)
            return len(events)
        pos, step = 0, 0
        while pos < len(data):
            size = sizes[step % len(sizes)]
            self.sock.sendall(data[pos : pos + size])
            pos += size
            step += 1
        return len(events)

    def await_ack(self, count: int) -> int:
        """Read ACKs until one acknowledges `count` (go-lumber's AwaitACK); an ACK above count is an error."""
        seq = 0
        while seq < count:
            frame = self._read_exactly(6)
            seq = parse_acks(frame)[0]
            self.acks_seen.append(seq)
        if seq > count:
            raise ValueError(f"ACK {seq} is above the window's {count} events")
        return seq

    def _read_exactly(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            piece = self.sock.recv(size - len(data))
            if not piece:
                raise ConnectionError("the server closed the connection")
            data += piece
        return bytes(data)
