"""The search page's other tools in a real browser: the JSON pipeline mode, query history, time zones,
absolute ranges, paging by cursor, context, the three views, the field sidebar, a narrow window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.api.conftest import Api, Key, marker
from tests.ui.conftest import Console, ago_iso, searchable


def run(console: Console, action: str, *args: str) -> None:
    """Do one page action that starts a search and wait until its results are drawn."""
    console.page.evaluate("document.body.dataset.state = ''")
    getattr(console.page, action)(*args)
    console.wait_ready()


def seeded(api: Api, events: list[dict[str, object]]) -> tuple[Key, str]:
    key = api.create_key("write:logs", "read:logs")
    token = marker()
    for event in events:
        event["message"] = f"{token} {event['message']}"
    assert api.ingest(key, {"logs": events})[0] == 202
    searchable(api, key, token, len(events))
    return key, token


def test_pipeline_mode_and_query_history(console: Console, api: Api) -> None:
    levels = ["error", "info", "info", "warn"]
    key, token = seeded(api, [{"message": f"step {i}", "level": level} for i, level in enumerate(levels)])
    console.sign_in(key, f"#/search?q={token}&range=1h")
    console.wait_ready()
    page = console.page
    assert page.text_content(".hits") == "4 hits"
    page.fill("#query", f"{token} and level:info")
    run(console, "press", "#query", "Enter")
    assert page.text_content(".hits") == "2 hits"

    page.select_option("#mode", "pipeline")
    stages = [{"type": "filter", "query": {"$kql": token}}, {"type": "where", "query": {"$eq": ["level", "error"]}}]
    page.fill("#query", json.dumps(stages))
    run(console, "press", "#query", "Enter")
    assert "mode=pipeline" in page.url
    assert page.locator("tr.row td.message").all_text_contents() == [f"{token} step 0"]
    assert page.get_attribute(".level-summary", "data-total") == "1"

    # History: newest first with Ctrl+Up, back down with Ctrl+Down, past the newest is empty.
    page.fill("#query", "")
    page.press("#query", "Control+ArrowUp")
    assert json.loads(page.input_value("#query")) == stages
    page.press("#query", "Control+ArrowUp")
    assert page.input_value("#query") == f"{token} and level:info"
    page.press("#query", "Control+ArrowUp")  # the oldest (the first query came from the link, not typed)
    assert page.input_value("#query") == f"{token} and level:info"
    page.press("#query", "Control+ArrowDown")
    assert json.loads(page.input_value("#query")) == stages
    page.press("#query", "Control+ArrowDown")
    assert page.input_value("#query") == ""


def test_time_zone_and_absolute_range(console: Console, api: Api) -> None:
    old, recent = ago_iso(40 * 60), ago_iso(5 * 60)
    key, token = seeded(api, [{"message": "old", "@timestamp": old}, {"message": "recent", "@timestamp": recent}])
    console.sign_in(key, f"#/search?q={token}&range=1h")
    console.wait_ready()
    page = console.page
    utc = datetime.strptime(recent, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert page.locator("tr.row td.time").first.text_content() == f"{utc:%Y-%m-%d %H:%M:%S}.000"

    run(console, "select_option", "#zone", "Europe/Moscow")
    moscow = utc.astimezone(ZoneInfo("Europe/Moscow"))
    assert moscow.utcoffset() == timedelta(hours=3)
    assert page.locator("tr.row td.time").first.text_content() == f"{moscow:%Y-%m-%d %H:%M:%S}.000"
    assert page.text_content("table.results th.time-col") == "Time (Europe/Moscow)"
    assert "tz=Europe%2FMoscow" in page.url or "tz=Europe/Moscow" in page.url

    # An absolute range typed in Moscow time: from 50 to 20 minutes ago holds only the old event.
    page.select_option("#range", "abs")
    console.wait_ready()
    start = (datetime.now(UTC) - timedelta(minutes=50)).astimezone(ZoneInfo("Europe/Moscow"))
    end = (datetime.now(UTC) - timedelta(minutes=20)).astimezone(ZoneInfo("Europe/Moscow"))
    page.fill("#from", f"{start:%Y-%m-%dT%H:%M}")
    run(console, "fill", "#to", f"{end:%Y-%m-%dT%H:%M}")
    assert page.text_content(".hits") == "1 hit"
    assert page.locator("tr.row td.message").all_text_contents() == [f"{token} old"]
    assert "from=" in page.url and "to=" in page.url
    page.reload()
    console.wait_ready()
    assert page.text_content(".hits") == "1 hit"  # the link reproduces the view
    assert page.input_value("#zone") == "Europe/Moscow"


def test_load_more_views_and_field_sidebar(console: Console, api: Api) -> None:
    events = [
        {"message": f"n{i:03d}", "service": "api" if i % 3 else "worker", "@timestamp": ago_iso(600 - i)}
        for i in range(150)
    ]
    key, token = seeded(api, events)
    console.sign_in(key, f"#/search?q={token}&range=1h")
    console.wait_ready()
    page = console.page
    assert page.text_content(".hits") == "150 hits"
    assert page.locator("tr.row").count() == 100
    page.click("button.more")
    page.wait_for_function("() => document.querySelectorAll('tr.row').length === 150")
    messages = page.locator("tr.row td.message").all_text_contents()
    assert messages == [f"{token} n{i:03d}" for i in reversed(range(150))]  # no gap, no repeat at the seam
    assert page.is_hidden("button.more")

    service = page.locator("aside.sidebar details:has(summary:has-text('service')) li")
    assert [item.locator("button.value").text_content() for item in service.all()] == ["api", "worker"]
    assert [item.locator(".count").text_content() for item in service.all()] == ["100", "50"]

    page.click(".views button[data-view=json]")
    assert "view=json" in page.url
    first = json.loads(page.locator("pre.json-event").first.text_content() or "")
    assert first["message"] == f"{token} n149" and first["service"] == "api"
    assert page.locator("pre.json-event").count() == 150
    page.click(".views button[data-view=raw]")
    raw = (page.text_content("pre.raw") or "").splitlines()
    assert raw[:2] == [f"{token} n149", f"{token} n148"] and len(raw) == 150
    page.click(".views button[data-view=table]")
    assert page.locator("tr.row").count() == 150


def test_context_shows_the_events_around_one(console: Console, api: Api) -> None:
    key = api.create_key("write:logs", "read:logs")
    token = marker()
    events = [{"message": f"{token} c{i}", "@timestamp": ago_iso(300 - i)} for i in range(30)]
    events[15]["message"] = f"{token} chosen"
    assert api.ingest(key, {"logs": events})[0] == 202
    searchable(api, key, token, 30)
    console.sign_in(key, f"#/search?q=chosen and {token}&range=1h")
    console.wait_ready()
    page = console.page
    page.click("tr.row >> nth=0 >> button.expand")
    page.click("tr.detail:not([hidden]) button.show-context")
    items = page.locator("ol.context-list li")
    items.first.wait_for()
    texts = [text.rsplit(token, 1)[-1] for text in items.all_text_contents()]
    # Ten after (newest first), the chosen one, ten before; nothing of the filter is applied.
    assert texts == [f" c{i}" for i in range(25, 15, -1)] + [" chosen"] + [f" c{i}" for i in range(14, 4, -1)]
    assert (page.text_content("ol.context-list li.current") or "").endswith(f"{token} chosen")
    console.shot("context")


def test_a_narrow_window_still_searches(console: Console, api: Api) -> None:
    key, token = seeded(api, [{"message": f"narrow {i}", "level": "warn"} for i in range(3)])
    page = console.page
    page.set_viewport_size({"width": 480, "height": 900})
    console.sign_in(key)
    console.wait_ready()
    page.fill("#query", token)
    run(console, "press", "#query", "Enter")
    assert page.text_content(".hits") == "3 hits"
    assert page.evaluate("document.documentElement.scrollWidth") <= 480  # nothing pushes the page sideways
    for selector in ("#query", "#range", "#zone", "#live", "header.top nav", "tr.row"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 480, selector
    page.click("tr.row >> nth=0 >> button.expand")
    assert page.is_visible("tr.detail:not([hidden]) pre.json")
    console.shot("search-narrow")


def test_the_new_keys_copy_button_puts_the_secret_on_the_clipboard(console: Console, api: Api) -> None:
    admin = api.create_key("admin")
    page = console.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api.daemon.url("/").rstrip("/"))
    console.sign_in(admin, "#/settings/api-access")
    page.wait_for_selector("table.data tbody tr")
    page.fill("#key-name", "copied")
    page.click("form.create-key button[type=submit]")
    secret = page.text_content("code.secret")
    page.click(".secret-box button.copy")
    page.wait_for_selector(".secret-box button.copy:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.click(".secret-box button:has-text('I have stored it')")
    assert page.locator("code.secret").count() == 0  # shown once
