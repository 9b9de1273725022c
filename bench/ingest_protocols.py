#!/usr/bin/env python3
"""Stream protocols until searchable: forward, beats, syslog and GELF beside JSON lines over TCP, in the same run.

The same seeded ~300-byte events (bench/datagen.py) are written as each shipper writes them
and sent over several connections to a fresh real daemon (default settings) per protocol; the
time runs from the first byte sent until the index counts every event.  JSON lines over TCP is
the baseline measured in the same run; each protocol's ratio to it is the figure to compare.
The CPU time the receiving process and the indexer process spent per event is reported too:
unlike the rates, it hardly moves when other work shares the machine.

* `json_tcp`: Logstash json_lines (the baseline).
* `forward`: Fluent Bit's default Forward mode, `[tag, [[EventTime, record]...], {chunk}]`.
* `forward_packed`: PackedForward (entries as one bin), `forward_gzip`: CompressedPackedForward.
  Forward requests carry 1 000 entries and a `chunk`; each sender reads its acks.
* `beats`: Filebeat's windows of 2 048 events in one zlib frame (level 3), two windows in flight.
* `syslog`: RFC 5424 octet-counted, structured data for the fields, as rsyslog forwards it.
* `gelf`: GELF 1.1 NUL-delimited over TCP with `_`-prefixed fields, as Docker's driver writes them.

    python bench/ingest_protocols.py --events 500000 --connections 4 --repeat 3 [--json]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datagen import shipper_events  # noqa: E402
from ingest_tcp import stored_events  # noqa: E402

from logtraced.model import Tenant  # noqa: E402
from logtraced.storage.tantivy.store import TantivyStore  # noqa: E402
from tests.harness import DaemonProcess  # noqa: E402
from tests.ingest.lumberjack_client import encode_window, parse_acks  # noqa: E402

FORWARD_ENTRIES = 1000
BEATS_WINDOW = 2048
BEATS_PIPELINING = 2
SEVERITY = {"DEBUG": 7, "INFO": 6, "WARN": 4, "ERROR": 3}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
encode = msgspec.msgpack.encode


def seconds(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["@timestamp"].replace("Z", "+00:00")).timestamp()


def event_time(event: dict[str, Any]) -> msgspec.msgpack.Ext:
    """The event's `@timestamp` as EventTime (ext 0: seconds, nanoseconds), exactly."""
    moment = datetime.fromisoformat(event["@timestamp"].replace("Z", "+00:00"))
    return msgspec.msgpack.Ext(0, struct.pack(">II", int(moment.timestamp()), moment.microsecond * 1000))


# --- each protocol's bytes, one list of writes per connection, and how its replies are read ----------------


class Plan:
    """What one connection writes (in order) and how many replies it must read back before it is done."""

    def __init__(self, writes: list[bytes], replies: Callable[[socket.socket], None] | None = None) -> None:
        self.writes = writes
        self.replies = replies


def json_tcp(events: list[dict[str, Any]]) -> Plan:
    return Plan([b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events)])


def forward_record(event: dict[str, Any]) -> dict[str, Any]:
    record = {key: value for key, value in event.items() if key not in ("@timestamp", "@version")}
    record["log"] = record.pop("message")
    return record


def forward_requests(events: list[dict[str, Any]], mode: str) -> Plan:
    requests = []
    for start in range(0, len(events), FORWARD_ENTRIES):
        batch = events[start : start + FORWARD_ENTRIES]
        entries = [[event_time(e), forward_record(e)] for e in batch]
        if mode == "forward":
            payload = encode(entries)
            chunk = base64.b64encode(hashlib.sha512(payload).digest()[:16]).decode()
            requests.append(encode(["app.bench", entries, {"chunk": chunk, "size": len(batch)}]))
            continue
        packed = b"".join(encode(entry) for entry in entries)
        chunk = base64.b64encode(hashlib.sha512(packed).digest()[:16]).decode()
        options: dict[str, Any] = {"chunk": chunk, "size": len(batch)}
        if mode == "forward_gzip":
            packed = gzip.compress(packed, 1)
            options["compressed"] = "gzip"
        requests.append(encode(["app.bench", packed, options]))
    count = len(requests)

    def read_acks(sock: socket.socket) -> None:
        decoder = msgspec.msgpack.Decoder()
        ack = len(encode({"ack": "x" * 24}))  # every chunk is 24 base64 characters
        need = ack * count
        data = bytearray()
        while len(data) < need:
            piece = sock.recv(1 << 16)
            if not piece:
                raise ConnectionError(f"forward closed after {len(data) // ack} of {count} acks")
            data += piece
        decoder.decode(bytes(data[:ack]))

    return Plan(requests, read_acks)


def beats_windows(events: list[dict[str, Any]]) -> Plan:
    windows = []
    for start in range(0, len(events), BEATS_WINDOW):
        batch = [
            {**e, "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.13.4"}}
            for e in events[start : start + BEATS_WINDOW]
        ]
        windows.append(encode_window(batch, compression_level=3))
    return Plan(windows, None)


def syslog_frames(events: list[dict[str, Any]]) -> Plan:
    frames = []
    for e in events:
        record = (
            f"<{16 * 8 + SEVERITY[e['level']]}>1 {e['@timestamp']} {e['host']['name']} {e['service']} - - "
            f'[http@32473 status="{e["http"]["status"]}" method="{e["http"]["method"]}" trace_id="{e["trace_id"]}"] '
            f"{e['message']}"
        ).encode()
        frames.append(str(len(record)).encode() + b" " + record)
    return Plan([b"".join(frames)])


def gelf_frames(events: list[dict[str, Any]]) -> Plan:
    frames = []
    for e in events:
        payload = {
            "version": "1.1",
            "host": e["host"]["name"],
            "short_message": e["message"],
            "timestamp": round(seconds(e), 6),
            "level": SEVERITY[e["level"]],
            "_service": e["service"],
            "_http_status": e["http"]["status"],
            "_http_method": e["http"]["method"],
            "_trace_id": e["trace_id"],
        }
        frames.append(json.dumps(payload, separators=(",", ":")).encode() + b"\x00")
    return Plan([b"".join(frames)])


PROTOCOLS: dict[str, tuple[str, Callable[[list[dict[str, Any]]], Plan]]] = {
    "json_tcp": ("tcp", json_tcp),
    "forward": ("forward", lambda events: forward_requests(events, "forward")),
    "forward_packed": ("forward", lambda events: forward_requests(events, "forward_packed")),
    "forward_gzip": ("forward", lambda events: forward_requests(events, "forward_gzip")),
    "beats": ("beats", beats_windows),
    "syslog": ("syslog", syslog_frames),
    "gelf": ("gelf", gelf_frames),
}


# --- sending and timing ---------------------------------------------------------------------------------


def send_plan(port: int, plan: Plan, beats: bool) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        if beats:
            send_beats(sock, plan.writes)
            return
        reader = None
        if plan.replies is not None:
            reader = threading.Thread(target=plan.replies, args=(sock,))
            reader.start()
        for write in plan.writes:
            view = memoryview(write)
            for start in range(0, len(view), 1 << 20):
                sock.sendall(view[start : start + (1 << 20)])
        if reader is not None:
            reader.join()


def send_beats(sock: socket.socket, windows: list[bytes]) -> None:
    """go-lumber with `pipelining: 2`: at most two windows wait for their ACK."""
    in_flight = 0
    pending = b""
    for window in windows:
        while in_flight >= BEATS_PIPELINING:
            pending += sock.recv(6 * 16)
            whole = len(pending) - len(pending) % 6
            in_flight -= sum(1 for seq in parse_acks(pending[:whole]) if seq)
            pending = pending[whole:]
        sock.sendall(window)
        in_flight += 1
    while in_flight:
        pending += sock.recv(6 * 16)
        whole = len(pending) - len(pending) % 6
        in_flight -= sum(1 for seq in parse_acks(pending[:whole]) if seq)
        pending = pending[whole:]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_protocol(name: str, events: list[dict[str, Any]], connections: int, data: Path) -> dict[str, float]:
    listener, build = PROTOCOLS[name]
    plans = [build(events[i::connections]) for i in range(connections)]
    wire_bytes = sum(len(write) for plan in plans for write in plan.writes)
    daemon = DaemonProcess(data).start()
    try:
        port = daemon.ports[listener]
        store = TantivyStore(data)
        tenant = Tenant("default", "production")
        assert daemon.process is not None
        loop_pid, indexer_pid = daemon.process.pid, daemon.indexer_pid()
        assert indexer_pid is not None
        loop_cpu, indexer_cpu = cpu_seconds(loop_pid), cpu_seconds(indexer_pid)
        started = time.perf_counter()
        senders = [threading.Thread(target=send_plan, args=(port, plan, name == "beats")) for plan in plans]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        sent = time.perf_counter() - started
        while stored_events(store, tenant) < len(events):
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        loop_cpu, indexer_cpu = cpu_seconds(loop_pid) - loop_cpu, cpu_seconds(indexer_pid) - indexer_cpu
        return {
            "events_per_second": len(events) / elapsed,
            "receiver_cpu_us_per_event": loop_cpu / len(events) * 1e6,
            "indexer_cpu_us_per_event": indexer_cpu / len(events) * 1e6,
            "wire_bytes_per_event": wire_bytes / len(events),
            "send_seconds": sent,
            "searchable_seconds": elapsed,
        }
    finally:
        daemon.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="rounds over every protocol; medians are reported")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--protocol", action="append", choices=list(PROTOCOLS), help="only these (json_tcp always)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    events = shipper_events(args.events, args.seed, logstash=True)
    chosen = ["json_tcp", *[p for p in (args.protocol or PROTOCOLS) if p != "json_tcp"]]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    for _ in range(args.repeat):  # rounds interleave the protocols, so drift on a shared machine hits all alike
        for name in chosen:
            with tempfile.TemporaryDirectory() as directory:
                runs[name].append(run_protocol(name, events, args.connections, Path(directory) / "data"))
    rates = {name: statistics.median(run["events_per_second"] for run in results) for name, results in runs.items()}
    baseline = rates["json_tcp"]
    result = {
        "events": args.events,
        "connections": args.connections,
        "json_line_bytes": sum(len(json.dumps(e, separators=(",", ":"))) + 1 for e in events) / len(events),
        "protocols": {
            name: {
                "events_per_second": rates[name],
                "ratio_to_json_tcp": rates[name] / baseline,
                "wire_bytes_per_event": runs[name][0]["wire_bytes_per_event"],
                "receiver_cpu_us_per_event": statistics.median(r["receiver_cpu_us_per_event"] for r in runs[name]),
                "indexer_cpu_us_per_event": statistics.median(r["indexer_cpu_us_per_event"] for r in runs[name]),
                "runs": [round(run["events_per_second"]) for run in runs[name]],
            }
            for name in chosen
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"events={args.events} conns={args.connections} json line ~{result['json_line_bytes']:.0f} bytes")
    for name, figures in result["protocols"].items():
        print(
            f"{name:15} {figures['events_per_second']:>9,.0f} ev/s  x{figures['ratio_to_json_tcp']:.2f} of json_tcp  "
            f"{figures['wire_bytes_per_event']:.0f} B/event on the wire  "
            f"CPU/event: receiver {figures['receiver_cpu_us_per_event']:.1f} us, "
            f"indexer {figures['indexer_cpu_us_per_event']:.1f} us  runs {figures['runs']}"
        )


if __name__ == "__main__":
    main()
