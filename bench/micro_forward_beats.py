"""Micro-benchmark of the Forward and Beats codecs, and of the ways to find where a msgpack request ends.

Seeded Fluent Bit style records (the shared datagen events, EventTime, v2 metadata) are sent as
Forward, PackedForward and CompressedPackedForward requests of `--batch` records, and seeded
Filebeat events as compressed lumberjack windows; each stream is fed to the codec whole and in
64 KiB reads.  Baselines in the same run: a bare msgspec decode of the same bytes (the floor for
the codecs), and, for framing alone, the strategies the forward codec could use to find the end
of one large request arriving in 64 KiB reads:

* scanner: `ValueScanner`, skipping complete values in C (runs of them at once) and walking
  only the spine of the value that the read cut;
* decode-retry: a full msgspec decode of the whole buffer after every read, catching truncation;
* raw-retry: the same with a `msgspec.Raw` decode (no objects built);
* python-walk: the scanner with both C skips turned off (every header walked in Python once).

    python bench/micro_forward_beats.py [--batch N] [--requests R] [--repeat K] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import random
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datagen import shipper_events  # noqa: E402
from logtraced.ingest import msgpackstream  # noqa: E402
from logtraced.ingest.beats import BeatsConnection  # noqa: E402
from logtraced.ingest.forward import ForwardConnection  # noqa: E402

CHUNK = 65536
encode = msgspec.msgpack.encode


def fluent_bit_records(count: int, seed: int) -> list[Any]:
    records = []
    for index, event in enumerate(shipper_events(count, seed, logstash=False)):
        event.pop("timestamp")
        moment = msgspec.msgpack.Ext(0, struct.pack(">II", 1_718_000_000 + index // 100, index * 997 % 10**9))
        record: dict[str, Any] = {"log": event.pop("message")}
        record.update(event)
        records.append([[moment, {}], record])
    return records


def reads(stream: bytes) -> list[bytes]:
    return [stream[pos : pos + CHUNK] for pos in range(0, len(stream), CHUNK)]


def best_of(repeat: int, run: Callable[[], int]) -> tuple[float, int]:
    """Median seconds of `repeat` runs and the count the run returned."""
    times, count = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def forward_streams(batch: int, requests: int, seed: int) -> dict[str, list[bytes]]:
    streams: dict[str, list[bytes]] = {"forward": [], "packed": [], "compressed": []}
    for index in range(requests):
        records = fluent_bit_records(batch, seed + index)
        body = b"".join(encode(record) for record in records)
        option = {"chunk": f"chunk-{index}", "size": batch}
        streams["forward"].append(encode(["kube.app", records, option]))
        streams["packed"].append(encode(["kube.app", body, option]))
        streams["compressed"].append(encode(["kube.app", gzip.compress(body, 1), {**option, "compressed": "gzip"}]))
    return streams


def beats_stream(batch: int, requests: int, seed: int) -> bytes:
    windows = []
    for index in range(requests):
        frames = bytearray()
        for seq, event in enumerate(shipper_events(batch, seed + index, logstash=True), 1):
            event["@metadata"] = {"beat": "filebeat", "type": "_doc", "version": "8.13.4"}
            payload = msgspec.json.encode(event)
            frames += b"2J" + struct.pack(">II", seq, len(payload)) + payload
        packed = zlib.compress(bytes(frames), 3)
        windows.append(b"2W" + struct.pack(">I", batch) + b"2C" + struct.pack(">I", len(packed)) + packed)
    return b"".join(windows)


def run_forward(stream: bytes, chunks: list[bytes] | None) -> int:
    conn = ForwardConnection()
    events = 0
    for piece in chunks if chunks is not None else [stream]:
        for batch in conn.feed(piece):
            events += len(batch.events)
            conn.ack(batch)
    return events


def run_beats(stream: bytes, chunks: list[bytes] | None) -> int:
    conn = BeatsConnection()
    events = 0
    for piece in chunks if chunks is not None else [stream]:
        for window in conn.feed(piece):
            events += len(window.events)
            conn.ack(window)
    return events


def frame_scanner(chunks: list[bytes]) -> int:
    scanner, buffer, found = msgpackstream.ValueScanner(), bytearray(), 0
    for piece in chunks:
        buffer += piece
        while (length := scanner.scan(buffer)) >= 0:
            del buffer[:length]
            scanner.reset()
            found += 1
    return found


def frame_retry(decoder: msgspec.msgpack.Decoder[Any]) -> Callable[[list[bytes]], int]:
    def run(chunks: list[bytes]) -> int:
        buffer, found = bytearray(), 0
        for piece in chunks:
            buffer += piece
            while buffer:
                try:
                    decoder.decode(buffer)
                    length = len(buffer)
                except msgspec.DecodeError as error:
                    text = str(error)
                    if "truncated" in text:
                        break
                    trailing = msgpackstream._TRAILING.search(text)
                    assert trailing is not None
                    length = int(trailing.group(1))
                del buffer[:length]
                found += 1
        return found

    return run


def frame_python_walk(chunks: list[bytes]) -> int:
    skips = msgpackstream._c_skip, msgpackstream._bulk_skip
    msgpackstream._c_skip = lambda view, pos, end: None
    msgpackstream._bulk_skip = lambda view, pos, end, count: None
    try:
        return frame_scanner(chunks)
    finally:
        msgpackstream._c_skip, msgpackstream._bulk_skip = skips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2000, help="records per request / events per window")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    random.seed(args.seed)
    results: dict[str, Any] = {"batch": args.batch, "requests": args.requests, "codecs": {}, "framing": {}}

    requests = forward_streams(args.batch, args.requests, args.seed)
    streams_beats = beats_stream(args.batch, args.requests, args.seed)
    decoder = msgspec.msgpack.Decoder()
    seconds, records = best_of(args.repeat, lambda: sum(len(decoder.decode(r)[1]) for r in requests["forward"]))
    results["codecs"]["msgspec_decode_floor"] = {"events_per_s": round(records / seconds)}
    for name, parts in requests.items():
        stream = b"".join(parts)
        for mode, chunks in (("whole", None), ("64KiB", reads(stream))):
            seconds, events = best_of(args.repeat, functools.partial(run_forward, stream, chunks))
            results["codecs"][f"forward_{name}_{mode}"] = {
                "events_per_s": round(events / seconds),
                "mb_per_s": round(len(stream) / seconds / 1e6, 1),
                "bytes": len(stream),
            }
    for mode, chunks in (("whole", None), ("64KiB", reads(streams_beats))):
        seconds, events = best_of(args.repeat, functools.partial(run_beats, streams_beats, chunks))
        results["codecs"][f"beats_compressed_{mode}"] = {"events_per_s": round(events / seconds)}

    # Framing only: one request of 10x the batch, in 64 KiB reads (the case Fluent Bit's big chunks make).
    big = encode(["kube.app", fluent_bit_records(args.batch * 10, args.seed), {"chunk": "big"}])
    big_packed_str = b"\x93" + encode("kube.app") + b"\xdb" + struct.pack(">I", len(big)) + big + encode({})
    for label, request in (("forward", big), ("packed_str", big_packed_str)):
        chunks = reads(request)
        strategies: dict[str, Callable[[list[bytes]], int]] = {
            "scanner": frame_scanner,
            "raw_retry": frame_retry(msgspec.msgpack.Decoder(msgspec.Raw)),
            "python_walk": frame_python_walk,
        }
        if label == "forward":  # a full decode cannot frame Fluentd's str-packed entries (not UTF-8)
            strategies["decode_retry"] = frame_retry(msgspec.msgpack.Decoder())
        for name, strategy in strategies.items():
            seconds, found = best_of(args.repeat, functools.partial(strategy, chunks))
            assert found == 1, (label, name, found)
            results["framing"][f"{label}_{name}"] = {"ms": round(seconds * 1000, 2), "bytes": len(request)}

    if args.json:
        print(json.dumps(results, indent=2))
        return
    for section in ("codecs", "framing"):
        for name, figures in results[section].items():
            print(f"{section:8} {name:32} {figures}")


if __name__ == "__main__":
    main()
