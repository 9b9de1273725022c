"""Micro-benchmark of the event loop's ingest hot path: framing, normalisation and the WAL record.

Feeds seeded, generated ~300-byte Logstash json_lines events through StreamFramer in
64 KiB chunks, then events_from_frame and the WAL's record encoding, and reports events per second
for each stage.  A plain msgspec decode of the same lines runs in the same process as the
baseline, so a figure can be judged against the floor the machine sets.

    python bench/micro_normalise.py [--events N] [--repeat R] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec

from logtraced.events import events_from_frame
from logtraced.ingest.framing import StreamFramer
from logtraced.model import Tenant
from logtraced.storage.wal import encode_record

CHUNK_BYTES = 65536
TENANT = Tenant("default", "production")
WORDS = (
    "GET POST PUT DELETE user order item cart session token cache miss hit slow query "
    "timeout retry upstream backend payment invoice shipped created updated failed ok"
).split()
LEVELS = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")
SERVICES = ("shop-api", "billing", "auth", "search", "gateway")


def generate_stream(count: int, seed: int) -> bytes:
    """Logstash 8 style events (microsecond @timestamp, ECS host object), one per line."""
    rng = random.Random(seed)
    start = datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC)
    lines = []
    for index in range(count):
        moment = start + timedelta(microseconds=index * 997 + rng.randrange(1000))
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 12)))
        event = {
            "@timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "@version": "1",
            "message": f"{words} id={rng.randrange(10**6)} took={rng.randrange(1, 900)}ms",
            "host": {"name": f"web-{rng.randrange(32):02d}"},
            "level": rng.choice(LEVELS),
            "service": rng.choice(SERVICES),
            "tags": ["prod", "beats_input_codec_plain_applied"],
            "status": rng.choice((200, 200, 201, 404, 500)),
            "duration_ms": round(rng.uniform(0.1, 900.0), 3),
            "path": f"/api/v1/{rng.choice(WORDS)}/{rng.randrange(10**5)}",
        }
        lines.append(msgspec.json.encode(event))
    return b"\n".join(lines) + b"\n"


def chunks_of(stream: bytes) -> list[bytes]:
    return [stream[pos : pos + CHUNK_BYTES] for pos in range(0, len(stream), CHUNK_BYTES)]


def run_baseline(stream: bytes, chunks: list[bytes]) -> int:
    """Floor: split on newlines and decode each line, with no framing or mapping at all."""
    decode = msgspec.json.Decoder().decode
    return sum(1 for line in stream.split(b"\n") if line and decode(line) is not None)


def run_framing(stream: bytes, chunks: list[bytes]) -> int:
    framer = StreamFramer(1 << 20)
    frames = sum(len(framer.feed(chunk)) for chunk in chunks)
    return frames + len(framer.close())


def run_normalise(stream: bytes, chunks: list[bytes]) -> int:
    framer = StreamFramer(1 << 20)
    count = 0
    for chunk in chunks:
        received = time.time_ns()
        for frame in framer.feed(chunk):
            count += len(events_from_frame(frame.data, received, truncated=frame.truncated))
    return count


def run_full(stream: bytes, chunks: list[bytes]) -> int:
    framer = StreamFramer(1 << 20)
    count = 0
    for sequence, chunk in enumerate(chunks):
        received = time.time_ns()
        batch = []
        for frame in framer.feed(chunk):
            batch.extend(events_from_frame(frame.data, received, truncated=frame.truncated))
        encode_record(sequence, TENANT, batch)
        count += len(batch)
    return count


def best_rate(stage: Callable[[bytes, list[bytes]], int], stream: bytes, repeat: int) -> float:
    """Events per second of the fastest of `repeat` runs (the least disturbed one)."""
    chunks = chunks_of(stream)
    best = float("inf")
    count = 0
    for _ in range(repeat):
        began = time.perf_counter()
        count = stage(stream, chunks)
        best = min(best, time.perf_counter() - began)
    return count / best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    stream = generate_stream(args.events, args.seed)
    result = {
        "events": args.events,
        "bytes_per_event": round(len(stream) / args.events, 1),
        "baseline_decode_per_s": round(best_rate(run_baseline, stream, args.repeat)),
        "framing_per_s": round(best_rate(run_framing, stream, args.repeat)),
        "framing_normalise_per_s": round(best_rate(run_normalise, stream, args.repeat)),
        "framing_normalise_encode_per_s": round(best_rate(run_full, stream, args.repeat)),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['events']} events of {result['bytes_per_event']} B: "
            f"framing {result['framing_per_s']:,}/s, "
            f"+normalise {result['framing_normalise_per_s']:,}/s, "
            f"+encode {result['framing_normalise_encode_per_s']:,}/s "
            f"(baseline split+decode {result['baseline_decode_per_s']:,}/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
