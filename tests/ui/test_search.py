"""Search in a real browser: a unique token found, the histogram's total, rows, filters, zoom, isolation."""

from __future__ import annotations

from tests.api.conftest import Api, marker
from tests.ui.conftest import Console, ago_iso, searchable


def test_search_finds_token_with_histogram_rows_filters_and_zoom(console: Console, api: Api) -> None:
    key = api.create_key("write:logs", "read:logs")
    stranger = api.create_key("write:logs", "read:logs")
    token = marker()
    old = [
        {"message": f"{token} cache miss {i}", "level": "info", "service": "cache", "@timestamp": ago_iso(50 * 60)}
        for i in range(2)
    ]
    new = [
        {
            "message": f"{token} payment failed {i}",
            "level": "error" if i < 2 else "info",
            "service": "payments",
            "@timestamp": ago_iso(4 * 60 + i),
            "http": {"status": 500 + i},
        }
        for i in range(6)
    ]
    assert api.ingest(key, {"logs": old + new})[0] == 202
    assert api.ingest(stranger, {"logs": [{"message": f"{token} other tenant secret", "level": "error"}]})[0] == 202
    searchable(api, key, token, 8)
    searchable(api, stranger, token, 1)

    console.sign_in(key)
    console.open(f"#/search?q={token}&range=1h")
    page = console.page
    assert page.text_content(".hits") == "8 hits"
    assert page.get_attribute(".level-summary", "data-total") == "8"
    assert page.text_content(".level-summary [data-level=error]") == "error 2"
    assert page.text_content(".level-summary [data-level=info]") == "info 6"
    assert page.locator(".histogram canvas").count() == 1
    messages = page.locator("tr.row td.message").all_text_contents()
    assert messages[0] == f"{token} payment failed 0"  # newest first
    assert len(messages) == 8 and not any("other tenant" in m for m in messages)
    console.shot("search")

    page.click("tr.row >> nth=0 >> button.expand")
    detail = page.locator("tr.detail:not([hidden]) pre.json")
    assert '"service": "payments"' in detail.text_content()
    assert '"status": 500' in detail.text_content()
    console.shot("search-expanded")

    page.evaluate("document.body.dataset.state = ''")
    page.click("tr.detail:not([hidden]) table.fields tr:has(th:has-text('service')) button.include")
    console.wait_ready()
    assert page.input_value("#query") == f'{token} and service:"payments"'
    assert page.text_content(".hits") == "6 hits"

    page.evaluate("document.body.dataset.state = ''")
    page.click(
        "aside.sidebar details:has(summary:has-text('level')) li:has(button.value:has-text('error')) button.exclude"
    )
    console.wait_ready()
    assert page.input_value("#query") == f'{token} and service:"payments" and not level:"error"'
    assert page.text_content(".hits") == "4 hits"
    assert "range=1h" in page.url

    # Drag across the last fifth of the hour: only the events of four minutes ago stay.
    page.fill("#query", token)
    page.evaluate("document.body.dataset.state = ''")
    page.press("#query", "Enter")
    console.wait_ready()
    box = page.locator(".histogram .u-over").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.8, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, y, steps=5)
    page.mouse.move(box["x"] + box["width"] - 1, y, steps=5)
    page.evaluate("document.body.dataset.state = ''")
    page.mouse.up()
    console.wait_ready()
    assert "from=" in page.url and "to=" in page.url
    assert page.text_content(".hits") == "6 hits"
    assert page.input_value("#range") == "abs"
