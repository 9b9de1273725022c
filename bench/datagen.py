"""Seeded ~300-byte log events shared by the ingest benchmarks, so their figures describe the same data."""

from __future__ import annotations

import random
import time
from typing import Any

SERVICES = ["payment-gateway", "api-gateway", "user-service", "notification-service", "auth", "search"]
LEVELS = ["INFO"] * 7 + ["WARN", "ERROR", "DEBUG"]
WORDS = "connection timeout upstream request completed failed retry user order cache miss hit database".split()


def shipper_events(count: int, seed: int, *, logstash: bool) -> list[dict[str, Any]]:
    """Events spread over the last hour; `logstash` spells them as Logstash does (`@timestamp`, ECS host)."""
    rng = random.Random(seed)
    now = time.time()
    events = []
    for i in range(count):
        ts = now - rng.random() * 3600
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"
        words = " ".join(rng.choice(WORDS) for _ in range(6))
        host = f"web-{rng.randint(1, 40):02d}"
        event: dict[str, Any] = {"@timestamp": stamp, "@version": "1"} if logstash else {"timestamp": stamp}
        event.update(
            {
                "message": f"{words} id={i} took {rng.randint(1, 5000)}ms",
                "level": rng.choice(LEVELS),
                "service": rng.choice(SERVICES),
                "host": {"name": host} if logstash else host,
                "http": {"status": rng.choice([200, 200, 200, 404, 500]), "method": "GET"},
                "trace_id": f"{rng.getrandbits(64):016x}",
            }
        )
        events.append(event)
    return events
