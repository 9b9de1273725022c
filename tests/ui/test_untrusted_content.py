"""Log content is untrusted: markup, script URLs and direction tricks in events render as inert text."""

from __future__ import annotations

from tests.api.conftest import Api, marker
from tests.ui.conftest import Console, searchable

PAYLOADS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    "<svg onload=\"window.__pwned = 'svg'\"></svg>",
    "<a href=\"javascript:window.__pwned='link'\">click</a>",
    "invoice\u202egnp.exe and zero\u200bwidth",
]


def test_xss_payloads_and_direction_tricks_render_as_text(console: Console, api: Api) -> None:
    key = api.create_key("write:logs", "read:logs")
    token = marker()
    events = [
        {
            "message": f"{token} {payload}",
            "level": "error",
            "service": payload[:20],
            "<b onmouseover=alert(1)>field</b>": payload,
            "url": "javascript:window.__pwned='attr'",
        }
        for payload in PAYLOADS
    ]
    assert api.ingest(key, {"logs": events})[0] == 202
    searchable(api, key, token, len(PAYLOADS))
    console.sign_in(key)
    console.open(f"#/search?q={token}")
    page = console.page
    for button in page.locator("button.expand").all():
        button.click()
    page.locator("aside.sidebar details.field summary").first.wait_for()
    console.shot("untrusted-content")
    messages = page.locator("tr.row td.message").all_text_contents()
    for payload in PAYLOADS[:4]:
        assert f"{token} {payload}" in messages
    assert page.locator("tr.row td.message .cc").all_text_contents() == ["U+202E", "U+200B"]
    assert page.locator("tr.detail th:has-text('<b onmouseover=alert(1)>field</b>')").count() == len(PAYLOADS)
    for view in ("JSON", "RAW"):
        page.click(f".views button:text-is('{view}')")
        assert page.locator("main pre").first.text_content()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main script, main img, main svg, main a[href^='javascript'], main b").count() == 0
