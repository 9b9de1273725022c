#!/usr/bin/env python3
"""What the stored copy of each event would cost under other block compressions than the docstore's lz4.

Tantivy's docstore compresses blocks of stored documents with lz4 in this tantivy-py build (its
`zstd-compression` feature is not compiled in: an index asking for zstd is refused when opened).
This compresses what a partition stores of each event (bench/query.py's generator; the event's
msgpack with its timestamp and id zeroed, `schema.EVENT`) in blocks of 16, 64 and 256 KiB with lz4
and zstd, so the storage budget can be weighed against what a different store of the events would
save.

    python bench/docstore.py [--events 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cramjam
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import generate_segment  # noqa: E402

from logtraced.model import NS_PER_DAY  # noqa: E402

BLOCKS = (16 * 1024, 64 * 1024, 256 * 1024)
CODECS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": lambda block: bytes(cramjam.lz4.compress_block(block)),
    "zstd-3": lambda block: bytes(cramjam.zstd.compress(block, level=3)),
    "zstd-9": lambda block: bytes(cramjam.zstd.compress(block, level=9)),
}


def compressed_bytes(documents: list[bytes], block_bytes: int, codec: Callable[[bytes], bytes]) -> int:
    """Bytes of `documents` packed in order into blocks of about `block_bytes`, each compressed alone."""
    total, block = 0, bytearray()
    for document in documents:
        block += document
        if len(block) >= block_bytes:
            total += len(codec(bytes(block)))
            block.clear()
    return total + (len(codec(bytes(block))) if block else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    events = sorted(generate_segment(7, 0, 0, NS_PER_DAY, args.events, "default"), key=lambda event: event.timestamp)
    documents = [msgspec.msgpack.encode(msgspec.structs.replace(event, timestamp=0, id=0)) for event in events]
    raw = sum(len(document) for document in documents)
    rows = [
        {
            "block_kib": block // 1024,
            "codec": name,
            "bytes_per_event": round(compressed_bytes(documents, block, codec) / len(documents), 1),
        }
        for block in BLOCKS
        for name, codec in CODECS.items()
    ]
    report = {"events": len(documents), "stored_bytes_per_event": round(raw / len(documents), 1), "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['events']} events, {report['stored_bytes_per_event']} stored bytes each")
    for row in rows:
        print(f"{row['block_kib']:>4} KiB {row['codec']:<7} {row['bytes_per_event']:>6} B/event")


if __name__ == "__main__":
    main()
