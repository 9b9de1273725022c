"""The Insights page in a real browser: new and rising patterns against a baseline, errors first, and a
click that searches for a pattern's sample."""

from __future__ import annotations

import random
import string

from tests.api.conftest import Api
from tests.ui.conftest import Console, ago_iso, searchable

HOUR = 3600


def test_new_and_rising_patterns_errors_first_and_a_click_searches_the_sample(console: Console, api: Api) -> None:
    key = api.create_key("write:logs", "read:logs")
    word = "insight" + "".join(random.choices(string.ascii_lowercase, k=10))  # letters: a pattern keeps it
    events = [
        {"message": f"heartbeat {n} ok {word}", "level": "info", "@timestamp": ago_iso(25 * HOUR - 300 - n * HOUR)}
        for n in range(24)
    ]
    events += [
        {"message": f"slow query {n} ms {word}", "level": "warn", "@timestamp": ago_iso(25 * HOUR - 300 - n * 2 * HOUR)}
        for n in range(12)
    ]
    minutes = [60 * (n + 1) for n in range(30)]
    events.append({"message": f"heartbeat 99 ok {word}", "level": "info", "@timestamp": ago_iso(minutes[0])})
    events += [
        {"message": f"slow query {n} ms {word}", "level": "warn", "@timestamp": ago_iso(m)}
        for n, m in enumerate(minutes)
    ]
    events += [
        {"message": f"cache warmed in {n} s {word}", "level": "info", "@timestamp": ago_iso(m)}
        for n, m in enumerate(minutes[:5])
    ]
    payload = "<img src=x onerror=alert(1)>"
    events += [
        {"message": f"payment {n} declined by bank {payload} {word}", "level": "error", "@timestamp": ago_iso(m)}
        for n, m in enumerate(minutes[:2])
    ]
    assert api.ingest(key, {"logs": events})[0] == 202
    searchable(api, key, word, len(events))

    console.sign_in(key, f"#/insights?q={word}&window=1h&baseline=24h")
    console.wait_ready()
    page = console.page
    new = page.locator(".insights-new tr.insight")
    assert new.count() == 2
    first = new.nth(0)
    assert first.locator(".level").text_content() == "error"
    assert (first.locator(".pattern-link").text_content() or "").startswith("payment <_> declined by bank <img src=x")
    assert first.locator(".sample").text_content() == f"e.g. payment 0 declined by bank {payload} {word}"
    assert first.locator("td[data-col=count]").text_content() == "2"
    assert page.locator(".insights-new img").count() == 0  # the payload is text, not an element
    assert new.nth(1).locator(".pattern-link").text_content() == f"cache warmed in <_> s {word}"
    rising = page.locator(".insights-rising tr.insight")
    assert rising.count() == 1
    assert rising.locator(".pattern-link").text_content() == f"slow query <_> ms {word}"
    assert rising.locator("td[data-col=count]").text_content() == "30"
    assert rising.locator("td[data-col=baseline]").text_content() == "12"
    assert rising.locator("td[data-col=ratio]").text_content() == "×60"  # 30/h against 12 in 24 h
    console.shot("insights")

    page.evaluate("document.body.dataset.state = ''")
    first.locator(".pattern-link").click()
    console.wait_ready()
    assert "#/search?" in page.url and "range=1h" in page.url
    assert page.input_value("#query") == f'{word} and "payment 0 declined by bank {payload} {word}"'
    assert page.text_content(".hits") == "1 hit"
    assert page.locator("tr.row td.message").all_text_contents() == [f"payment 0 declined by bank {payload} {word}"]
