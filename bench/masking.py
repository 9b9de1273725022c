#!/usr/bin/env python3
"""PII masking throughput on seeded ~300-byte events, about 10% of them carrying personal data.

Reports events per second for the Masker over the mixed set, over the events without personal data
and over those with it, next to the cost the same events already pay before the WAL write
(msgspec encoding), measured in the same run.  It also times the candidate scan alone over every
masked string: the module's pattern (one leading character class, then lookbehinds) in the stdlib
`re`, and the plain alternation of the same shapes in `re` and in `re2` (which has no lookbehind):
the figures behind the module's choice of engine and pattern layout.

    python bench/masking.py [--events N] [--repeat R] [--seed S] [--rules email,phone,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402
import re2  # noqa: E402

from logtraced.ingest.masking import (  # noqa: E402
    DEFAULT_RULES,
    EMAIL_PATTERN,
    Masker,
    Rule,
    numeric_pattern,
    numeric_shapes,
)
from logtraced.model import Event  # noqa: E402

SERVICES = ("payment-gateway", "api-gateway", "user-service", "notification-service", "auth", "billing")
LEVELS = ("info",) * 7 + ("warn", "error", "debug")
WORDS = "connection timeout upstream request completed failed retry user order cache miss hit database".split()
RUSSIAN = "запрос обработан ошибка подключения к базе клиент заказ оплата отменён повтор через".split()
PII = (
    "оплата картой 4111 1111 1111 1111 отклонена",
    "client ivan.petrov@example.ru registered",
    "перезвонить по номеру +7 (912) 345-67-89",
    "ИНН 7707083893 не найден",
    "СНИЛС 112-233-445 95 подтверждён",
    "паспорт серия 45 06 123456 проверен",
    "card 5555-5555-5555-4444 charged",
    "тел. 8 912 345 67 89, email anna@mail.ru",
)


def generate(count: int, seed: int) -> tuple[list[Event], int]:
    """Events of about 300 bytes (message plus nested attributes); returns them and how many carry PII."""
    rng = random.Random(seed)
    events = []
    with_pii = 0
    for index in range(count):
        words = " ".join(rng.choice(RUSSIAN if rng.random() < 0.3 else WORDS) for _ in range(rng.randrange(4, 7)))
        message = f"{words} id={rng.randrange(10**9)} took {rng.randrange(1, 5000)}ms"
        attributes: dict[str, Any] = {
            "http": {"method": rng.choice(("GET", "POST")), "status": rng.choice((200, 200, 404, 500))},
            "path": f"/api/v1/orders/{rng.randrange(10**6)}",
            "trace_id": f"{rng.getrandbits(64):016x}",
            "user": {"region": rng.choice(("msk", "spb", "ekb"))},
        }
        if rng.random() < 0.1:
            with_pii += 1
            if rng.random() < 0.5:
                message = f"{rng.choice(PII)} {message}"
            else:
                attributes["user"]["contact"] = rng.choice(PII)
        events.append(
            Event(
                timestamp=1_718_000_000_000_000_000 + index * 1_000_000,
                message=message,
                level=rng.choice(LEVELS),
                service=rng.choice(SERVICES),
                host=f"web-{rng.randrange(40):02d}",
                attributes=attributes,
            )
        )
    return events, with_pii


def strings_of(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_of(item)


def median_rate(run: Callable[[], int], prepare: Callable[[], None], repeat: int) -> tuple[float, int]:
    """Items per second of the median of `repeat` runs, with `prepare` (fresh copies) outside the timing."""
    seconds = []
    items = 0
    for _ in range(repeat):
        prepare()
        began = time.perf_counter()
        items = run()
        seconds.append(time.perf_counter() - began)
    return items / statistics.median(seconds), items


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", default=",".join(DEFAULT_RULES), help="comma-separated rules to enable")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    rules = tuple(Rule(name) for name in args.rules.split(",") if name)
    originals, with_pii = generate(args.events, args.seed)
    encoded = [msgspec.msgpack.encode(event) for event in originals]
    decoder = msgspec.msgpack.Decoder(Event)
    masker = Masker(rules)
    work: dict[str, list[Event]] = {}

    def fresh() -> None:
        work["all"] = [decoder.decode(data) for data in encoded]

    def mask_all() -> int:
        masker.mask_events(work["all"])
        return len(work["all"])

    def encode_all() -> int:
        encode = msgspec.msgpack.Encoder().encode
        for event in work["all"]:
            encode(event)
        return len(work["all"])

    masked_rate, _ = median_rate(mask_all, fresh, args.repeat)
    encode_rate, _ = median_rate(encode_all, fresh, args.repeat)

    split: dict[str, list[bytes]] = {"clean": [], "pii": []}
    for data in encoded:
        hits = masker.mask_events([decoder.decode(data)]).total()
        split["pii" if hits else "clean"].append(data)

    def rate_of(group: str) -> float:
        def load() -> None:
            work[group] = [decoder.decode(data) for data in split[group]]

        def run() -> int:
            masker.mask_events(work[group])
            return len(work[group])

        return median_rate(run, load, args.repeat)[0]

    strings = [text for event in originals for text in strings_of([event.message, event.attributes])]
    plain = "|".join(
        f"(?P<{shape.group}>[{shape.first}](?:{shape.rest}))" for shape in numeric_shapes(frozenset(rules))
    )
    layouts = (
        ("re", re, numeric_pattern(frozenset(rules))),
        ("re_alternation", re, plain),
        ("re2_alternation", re2, plain),
    )
    scans = {}
    for name, engine, pattern in layouts:
        email_search = engine.compile(EMAIL_PATTERN).search
        numeric_search = engine.compile(pattern).search

        def scan(email: Any = email_search, numeric: Any = numeric_search) -> int:
            for text in strings:
                if "@" in text:
                    email(text)
                if len(text) >= 10:
                    numeric(text)
            return len(strings)

        scans[f"scan_{name}_strings_per_s"] = round(median_rate(scan, lambda: None, args.repeat)[0])

    result = {
        "events": args.events,
        "events_with_pii": with_pii,
        "bytes_per_event": round(sum(len(msgspec.json.encode(event)) for event in originals) / args.events, 1),
        "rules": [rule.value for rule in rules],
        "masked_events_per_s": round(masked_rate),
        "clean_events_per_s": round(rate_of("clean")),
        "pii_events_per_s": round(rate_of("pii")),
        "baseline_msgpack_encode_per_s": round(encode_rate),
        "strings_per_event": round(len(strings) / args.events, 1),
        **scans,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['events']} events of {result['bytes_per_event']} B, {with_pii} with PII: "
            f"masked {result['masked_events_per_s']:,}/s (clean {result['clean_events_per_s']:,}/s, "
            f"with PII {result['pii_events_per_s']:,}/s); "
            f"msgpack encode {result['baseline_msgpack_encode_per_s']:,}/s; "
            f"scan strings/s: re {result['scan_re_strings_per_s']:,}, "
            f"plain alternation re {result['scan_re_alternation_strings_per_s']:,}, "
            f"re2 {result['scan_re2_alternation_strings_per_s']:,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
