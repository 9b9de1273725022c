#!/usr/bin/env python3
"""Pattern mining time on seeded service logs (some Russian), p50 over repeats, against a plain loop.

The events come from ~40 message families of an HTTP service, a database pool, a payment flow, a
queue consumer and Russian business messages, with numbers, ids, IPs, UUIDs, durations and quoted
values varying, over one hour.  The baseline in the same run is the floor any miner pays in Python:
one loop over the events counting messages by level.  The target on the 2-core machine is a p50 of
at most 1 s for 100 000 events.

    python bench/patterns.py [--events N] [--repeat R] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logtraced.analysis.patterns import mine_patterns  # noqa: E402
from logtraced.model import Event  # noqa: E402

START_NS = 1_718_000_000 * 1_000_000_000
HOUR_NS = 3600 * 1_000_000_000
STEP_NS = 60 * 1_000_000_000
PATHS = ("orders", "users", "cart", "invoices", "products")
USERS = ("alice", "bob", "ivan", "мария", "olga", "petr")

Family = tuple[str, Callable[[random.Random], str]]


def families() -> list[Family]:
    """(level, message maker) pairs; the makers vary what real services vary."""

    def ip(rng: random.Random) -> str:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"

    def hexid(rng: random.Random) -> str:
        return f"{rng.getrandbits(64):016x}"

    def guid(rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128)))

    return [
        ("info", lambda r: f"GET /api/v1/{r.choice(PATHS)}/{r.randrange(10**6)} 200 {r.randrange(900)}ms"),
        ("info", lambda r: f"POST /api/v1/{r.choice(PATHS)} 201 {r.randrange(900)}ms"),
        ("warn", lambda r: f"GET /api/v1/{r.choice(PATHS)}/{r.randrange(10**6)} 404 {r.randrange(90)}ms"),
        ("error", lambda r: f"POST /api/v1/payments 500 {r.randrange(9000)}ms upstream=payment-{r.randrange(4)}"),
        ("info", lambda r: f"user {r.choice(USERS)} logged in from {ip(r)}"),
        ("info", lambda r: f"user {r.randrange(10**6)} logged out after {r.randrange(3600)}s"),
        ("warn", lambda r: f"login failed for user {r.randrange(10**6)} from {ip(r)}: invalid password"),
        ("info", lambda r: f"cache miss for key session:{hexid(r)}"),
        ("debug", lambda r: f"cache hit for key product:{r.randrange(10**5)} ttl={r.randrange(600)}s"),
        ("info", lambda r: f"connection pool stats active={r.randrange(50)} idle={r.randrange(50)} waiting=0"),
        (
            "warn",
            lambda r: f"slow query took {r.randrange(1000, 9000)}ms: SELECT * FROM orders WHERE id = {r.randrange(9)}",
        ),
        ("error", lambda r: f"connection to db-{r.randrange(1, 4):02d}:5432 refused after {r.randrange(5)} retries"),
        ("info", lambda r: f"request {guid(r)} completed in {r.randrange(900)}ms"),
        (
            "info",
            lambda r: (
                f"order {r.randrange(10**7)} created for customer {r.randrange(10**6)} total {r.randrange(10**5)}.00"
            ),
        ),
        ("info", lambda r: f"order {r.randrange(10**7)} shipped via carrier {r.choice(('cdek', 'dhl', 'pochta'))}"),
        (
            "error",
            lambda r: f'payment {hexid(r)} declined: code="{r.choice(("51", "05", "14"))}" reason="insufficient funds"',
        ),
        ("info", lambda r: f"consumer group billing lag={r.randrange(1000)} partition={r.randrange(12)}"),
        ("info", lambda r: f"message {hexid(r)} acknowledged by queue events-{r.randrange(3)}"),
        ("warn", lambda r: f"retrying message {hexid(r)} attempt {r.randrange(1, 5)} of 5"),
        ("fatal", lambda r: f"out of memory: killed process {r.randrange(10**5)} (worker)"),
        ("info", lambda r: f"healthcheck ok in {r.randrange(20)}ms"),
        ("debug", lambda r: f"gc pause {r.randrange(200)}ms heap={r.randrange(4096)}MB"),
        ("info", lambda r: f"Запрос {guid(r)} обработан за {r.randrange(900)} мс"),
        ("error", lambda r: f"Ошибка подключения к базе db-{r.randrange(1, 4):02d} через {r.randrange(5000)} мс"),
        ("info", lambda r: f"Заказ №{r.randrange(10**6)} оформлен, сумма {r.randrange(10**5)} руб."),
        ("info", lambda r: f"Пользователь {r.choice(USERS)} вошёл в систему с адреса {ip(r)}"),
        ("warn", lambda r: f"Платёж {hexid(r)} отклонён банком: недостаточно средств"),
        ("info", lambda r: f"Счёт {r.randrange(10**6)} отправлен клиенту по почте"),
        ("warn", lambda r: f"Очередь отправки писем заполнена на {r.randrange(100)}%"),
        (
            "error",
            lambda r: (
                f"Не удалось сформировать отчёт {r.randrange(10**4)}: превышено время ожидания {r.randrange(60)} с"
            ),
        ),
        ("info", lambda r: f"scheduler: job cleanup-{r.randrange(10)} finished in {r.randrange(60)}s"),
        ("info", lambda r: f"tls handshake with {ip(r)} ok protocol=TLSv1.3"),
        ("warn", lambda r: f"rate limit exceeded for api key {hexid(r)[:8]} on /api/v1/{r.choice(PATHS)}"),
        ("info", lambda r: f"file /var/data/uploads/{r.randrange(10**6)}.pdf uploaded size={r.randrange(10**7)}"),
        (
            "debug",
            lambda r: (
                f"feature flag new-checkout evaluated to {r.choice(('true', 'false'))} for user {r.randrange(10**6)}"
            ),
        ),
        ("info", lambda r: "configuration reloaded"),
        ("info", lambda r: "worker started"),
        ("warn", lambda r: f"certificate for api.example.ru expires in {r.randrange(30)} days"),
    ]


def generate(count: int, seed: int) -> list[Event]:
    """Events over one hour; families drawn with skewed weights, as real traffic is."""
    rng = random.Random(seed)
    makers = families()
    weights = [1.0 / (rank + 1) for rank in range(len(makers))]
    chosen = rng.choices(makers, weights=weights, k=count)
    return [
        Event(timestamp=START_NS + rng.randrange(HOUR_NS), message=make(rng), level=level, service="shop")
        for level, make in chosen
    ]


def baseline(events: list[Event]) -> int:
    """The floor: one Python loop over the events, counting by level."""
    levels: dict[str, int] = {}
    for event in events:
        levels[event.level] = levels.get(event.level, 0) + 1
    return len(levels)


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - began)
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    events = generate(args.events, args.seed)
    patterns = mine_patterns(events, step_ns=STEP_NS, limit=1000)
    mining = timed(lambda: mine_patterns(events, step_ns=STEP_NS, limit=1000), args.repeat)
    floor = timed(lambda: baseline(events), args.repeat)
    result = {
        "events": args.events,
        "families": len(families()),
        "patterns": len(patterns),
        "mine_p50_s": round(statistics.median(mining), 4),
        "mine_min_s": round(min(mining), 4),
        "mine_events_per_s": round(args.events / statistics.median(mining)),
        "baseline_loop_p50_s": round(statistics.median(floor), 4),
        "top": [[pattern.pattern, pattern.count] for pattern in patterns[:5]],
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(
            f"{result['events']} events from {result['families']} families -> {result['patterns']} patterns: "
            f"p50 {result['mine_p50_s']} s ({result['mine_events_per_s']:,} events/s), "
            f"plain loop {result['baseline_loop_p50_s']} s"
        )
        for pattern in patterns:
            print(f"  {pattern.count:6d} {pattern.level:5s} {pattern.pattern}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
