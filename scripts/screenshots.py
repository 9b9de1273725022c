"""README screenshots of every console page, and the search page's first-render time, from a real daemon.

    python scripts/screenshots.py --out docs/screenshots                  # the README's images
    python scripts/screenshots.py --out /tmp/shots --events 200000 --measure 7 --json
    python scripts/screenshots.py --out /tmp/shots --data-dir /tmp/c10m-data --org default \
        --end 2026-12-01T04:35:00Z --measure 5 --json        # an existing store: no demo events, no images

Starts `logtraced serve` in a temporary directory, sends demo events spread over the last hour
through the HTTP API, mints an admin key, signs in with Debian's Chromium (Playwright) at
1280x800 and saves one PNG per page. `--measure N` then loads the search page N times (last
hour, no filter) and reports when it had drawn the histogram and the first page of rows: the
`search-rendered` performance mark, in ms from navigation start.

`--data-dir` serves an existing store instead (the daemon writes its WAL and state database
there, so pass a directory of its own, e.g. a hard-linked copy of bench/query.py's index: tantivy
never rewrites a segment file in place).  The key is minted in `--org`, and the measured hour is
the one ending at `--end` (the data set's newest event) rather than now.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logtraced.api.ui import load_assets  # noqa: E402
from tests.api.conftest import mint_key  # noqa: E402
from tests.harness import DaemonProcess, wait_until  # noqa: E402

SERVICES = ["payment-gateway", "checkout", "auth", "search", "inventory"]
LEVELS = ["info"] * 14 + ["debug"] * 3 + ["warn"] * 2 + ["error"]
MESSAGES = [
    "Connection timeout on db-primary-03",
    "GET /api/v1/orders 200 in 23 ms",
    "payment authorised for order {n}",
    "cache miss for key user:{n}",
    "retrying upstream call (attempt 2)",
    "Ошибка соединения с базой данных",
]
BATCH = 5000


def demo_events(count: int, span_seconds: float) -> list[dict[str, Any]]:
    rng = random.Random(7)
    now = time.time()
    events = []
    for n in range(count):
        # Busier towards the end of the hour, so the histogram has a shape.
        age = span_seconds * (1 - rng.random() ** 0.6)
        events.append(
            {
                "@timestamp": now - age,
                "level": rng.choice(LEVELS),
                "service": rng.choice(SERVICES),
                "host": f"web-{rng.randint(1, 4)}",
                "message": rng.choice(MESSAGES).format(n=n),
                "http": {"status": rng.choice([200, 200, 200, 201, 404, 500])},
                "trace_id": f"{rng.getrandbits(64):016x}",
            }
        )
    return events


def load(daemon: DaemonProcess, writer: str, reader: str, events: list[dict[str, Any]]) -> None:
    bearer = {"Authorization": f"Bearer {writer}"}
    for start in range(0, len(events), BATCH):
        status, _, body = daemon.request("POST", "/v1/logs/ingest", {"logs": events[start : start + BATCH]}, bearer)
        assert status == 202, body

    def indexed() -> bool:
        query = {"from": "-2h", "limit": 1}
        status, _, body = daemon.request("POST", "/v1/logs/query", query, {"Authorization": f"Bearer {reader}"})
        return status == 200 and body["total"] >= len(events)

    wait_until(indexed, timeout=600, interval=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--measure", type=int, default=0, help="first-render timings to take")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--data-dir", type=Path, help="serve this existing store; no demo events, no images")
    parser.add_argument("--org", default="acme")
    parser.add_argument("--end", help="ISO-8601 end of the measured hour (default: now)")
    args = parser.parse_args()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    fragment = "#/search?range=1h"
    if args.end:
        end_ms = int(datetime.fromisoformat(args.end.replace("Z", "+00:00")).timestamp() * 1000)
        fragment = f"#/search?from={end_ms - 3_600_000}&to={end_ms}"
    with tempfile.TemporaryDirectory() as root:
        daemon = DaemonProcess(args.data_dir or Path(root) / "data").start()
        try:
            admin = mint_key(daemon.data_dir, "admin", "read:logs", "write:logs", org=args.org, name="console")
            if args.data_dir is None:
                shipper = mint_key(daemon.data_dir, "write:logs", org=args.org, name="fluent-bit")
                load(daemon, shipper.secret, admin.secret, demo_events(args.events, 3600))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(daemon.url("/"))
                page.screenshot(path=str(args.out / "sign-in.png"))
                page.fill("#key", admin.secret)
                page.click("form.signin button[type=submit]")
                page.wait_for_selector("body[data-state=ready]")
                timings = measure(page, daemon, args.measure, fragment)
                hits = page.text_content(".hits") if timings else None
                if args.data_dir is None:
                    shots(page, args.out)
                browser.close()
        finally:
            daemon.stop()
    shipped = {n: a for n, a in load_assets().items() if n.endswith((".js", ".css"))}
    report = {
        "events": args.events if args.data_dir is None else f"the store in {args.data_dir}",
        "measured": fragment,
        "hits": hits,
        "first_render_ms": timings,
        "first_render_median_ms": statistics.median(timings) if timings else None,
        "assets_bytes": sum(len(a.body) for a in shipped.values()),
        "assets_gzip_bytes": sum(len(a.gzipped or a.body) for a in shipped.values()),
        "assets_gzip_bytes_check": sum(len(gzip.compress(a.body, 9)) for a in shipped.values()),
    }
    print(json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))


def measure(page: Any, daemon: DaemonProcess, repeat: int, fragment: str) -> list[float]:
    """Full page loads of the search page (one hour, no filter); the key stays in session storage."""
    timings = []
    for _ in range(repeat):
        page.goto(daemon.url("/ui/health-check-blank"), wait_until="commit")
        page.goto(daemon.url("/ui/" + fragment))
        page.wait_for_selector("body[data-state=ready]")
        timings.append(round(page.evaluate("performance.getEntriesByName('search-rendered')[0].startTime"), 1))
    return timings


def shots(page: Any, out: Path) -> None:
    def visit(fragment: str, name: str, *, full: bool = False) -> None:
        page.evaluate("document.body.dataset.state = ''")
        page.evaluate("f => { location.hash = f }", fragment)
        page.wait_for_selector("body[data-state=ready]")
        page.wait_for_timeout(300)  # let the sidebar's counts arrive before the picture
        page.screenshot(path=str(out / f"{name}.png"), full_page=full)

    visit("#/search?q=level:error or level:warn&range=1h&tz=Europe/Moscow", "search")
    page.click("tr.row >> nth=0 >> button.expand")
    page.screenshot(path=str(out / "search-expanded.png"))
    visit("#/insights?window=1h&baseline=24h", "insights")
    visit("#/settings/api-access", "api-access")
    visit("#/analytics/api-consumption", "api-consumption", full=True)
    visit("#/health", "health")
    page.set_viewport_size({"width": 420, "height": 860})
    visit("#/search?range=1h", "search-narrow")


if __name__ == "__main__":
    main()
