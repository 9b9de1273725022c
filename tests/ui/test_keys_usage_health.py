"""Settings > API Access, Analytics > API Consumption and Health in a real browser, with real HTTP clients."""

from __future__ import annotations

import time

from tests.api.conftest import Api, Key, marker
from tests.harness import wait_until
from tests.ui.conftest import Console


def test_create_a_key_use_it_revoke_it_and_see_its_usage(console: Console, api: Api) -> None:
    admin = api.create_key("admin", "read:logs")
    console.sign_in(admin)
    page = console.page
    console.page.evaluate("location.hash = '#/settings/api-access'")
    page.wait_for_selector("table.data tbody tr")
    name = "ship-" + marker()
    page.fill("#key-name", name)
    page.check("input[name=scope][value='read:logs']")
    page.click("form.create-key button[type=submit]")
    secret = page.text_content("code.secret")
    assert secret is not None and secret.startswith("lt_live_")
    page.wait_for_selector(f"table.data tr:has-text('{name}')")
    console.shot("api-access-created")

    # The new key works from an ordinary HTTP client, in the admin's organisation.
    created = Key(secret, "", admin.org, admin.environment)
    assert api.ingest(created, {"logs": [{"message": "from the new key", "level": "info"}]})[0] == 202
    assert api.request("POST", "/v1/logs/query", key=created, body={"filter": "new"})[0] == 200
    status, _, me = api.request("GET", "/v1/whoami", key=created)
    assert status == 200 and me["org"] == admin.org and me["scopes"] == ["read:logs", "write:logs"]

    row = page.locator(f"table.data tbody tr:has-text('{name}')")
    row.locator("button.revoke").click()
    page.click("dialog.confirm button.cancel")
    assert api.request("GET", "/v1/whoami", key=created)[0] == 200  # cancelled: still valid
    row.locator("button.revoke").click()
    console.shot("api-access-confirm")
    page.click("dialog.confirm button.confirm-revoke")
    page.wait_for_selector(f"table.data tbody tr.revoked:has-text('{name}')")
    assert api.ingest(created, {"logs": [{"message": "after revoking"}]})[0] == 401

    # Usage reaches the database within about a second; then the page shows both requests of the key.
    key_id = me["key_id"]
    wait_until(
        lambda: any(
            r["key_id"] == key_id and r["requests"] >= 4 for r in api.request("GET", "/v1/usage", key=admin)[2]["usage"]
        )
    )
    console.open("#/analytics/api-consumption")
    usage_row = page.locator(f"table.data tbody tr[data-key='{key_id}']")
    cells = usage_row.locator("td").all_text_contents()
    assert name in cells[1]
    # One ingest and one query against the standard tier's budgets; two whoami have none (the 401
    # after revoking is nobody's request).
    assert cells[2:6] == ["1 / 10,000", "1 / 2,000", "2", "0"]
    assert page.locator(".chart canvas").count() == 3
    console.shot("api-consumption")

    console.open("#/health")
    assert page.text_content(".health-status") == "healthy"
    assert page.text_content(".health").startswith("healthyIngestion")  # no reasons list, nothing stray
    assert "Events accepted" in page.text_content(".cards")
    console.shot("health")


def test_consumption_splits_ingestion_from_queries_and_shows_429s(console: Console, api: Api) -> None:
    key = api.create_key("write:logs", "read:logs", tier="tiny")
    api.clock.move_to_seconds_before_next_hour(120)
    statuses = [api.ingest(key, {"logs": [{"message": "x"}]})[0] for _ in range(5)]
    statuses += [api.request("POST", "/v1/logs/query", key=key, body={})[0] for _ in range(3)]
    assert statuses == [202, 202, 202, 429, 429, 200, 200, 429]
    console.sign_in(key, "#/analytics/api-consumption?range=7d")  # the search page would spend query budget
    console.wait_ready()
    page = console.page
    row = page.locator(f"table.data tbody tr[data-key='{key.id}']")
    assert row.locator("td[data-col=ingest]").text_content() == "5 / 3"
    assert row.locator("td[data-col=query]").text_content() == "3 / 2"
    assert row.locator("td[data-col=throttled]").text_content() == "3"
    assert page.text_content("dd[data-total='429s']") == "3"
    assert page.text_content("dd[data-total='ingestion-requests']") == "5"
    assert page.input_value("#usage-range") == "7d"
    for chart in ("ingest", "query", "problems"):
        assert page.locator(f".chart[data-chart={chart}] canvas").count() == 1
    assert page.locator(".chart[data-chart=ingest] .u-legend").text_content().count("budget 3/h") == 1
    console.shot("api-consumption-429")

    # A chosen range in UTC: the hour of these requests, then the hour before it, which is empty.
    (hour,) = {r["hour_epoch"] for r in api.request("GET", "/v1/usage", key=key)[2]["usage"]}
    iso = lambda epoch: time.strftime("%Y-%m-%dT%H:%M", time.gmtime(epoch))  # noqa: E731
    page.select_option("#usage-range", "custom")
    console.wait_ready()
    page.fill("#usage-from", iso(hour))
    page.evaluate("document.body.dataset.state = ''")
    page.fill("#usage-to", iso(hour + 3600))
    console.wait_ready()
    assert "from=" in page.url and "range=" not in page.url
    assert row.locator("td[data-col=ingest]").text_content() == "5 / 3"
    page.fill("#usage-from", iso(hour - 3600))
    page.evaluate("document.body.dataset.state = ''")
    page.fill("#usage-to", iso(hour))
    console.wait_ready()
    assert page.locator("table.data tbody tr").count() == 0
    assert page.text_content("dd[data-total='ingestion-requests']") == "0"


def test_a_key_without_admin_is_told_so_and_sees_only_its_own_usage(console: Console, api: Api) -> None:
    reader = api.create_key("read:logs")
    other = api.create_key("read:logs", org=reader.org)
    assert api.request("POST", "/v1/logs/query", key=other, body={})[0] == 200
    assert api.request("POST", "/v1/logs/query", key=reader, body={})[0] == 200
    wait_until(lambda: api.request("GET", "/v1/usage", key=reader)[2]["usage"])
    console.sign_in(reader)
    console.page.evaluate("location.hash = '#/settings/api-access'")
    console.page.wait_for_selector("text=This key has no admin scope")
    console.open("#/analytics/api-consumption")
    keys = {row.get_attribute("data-key") for row in console.page.locator("table.data tbody tr").all()}
    assert keys == {reader.id}


def test_sign_in_refuses_a_bad_key_and_sign_out_forgets_the_key(console: Console, api: Api) -> None:
    page = console.page
    page.goto(api.daemon.url("/"))
    assert page.url.endswith("/ui/")
    page.fill("#key", "lt_live_" + "0" * 32)
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("form.signin .status.error:has-text('not valid')")
    console.errors.clear()  # the refused whoami is a 401 in the browser's console, as it should be
    key = api.create_key("read:logs")
    console.sign_in(key)
    assert page.evaluate("sessionStorage.getItem('logtraced.key')") == key.secret
    assert page.evaluate("document.cookie") == ""
    assert key.secret not in page.url
    page.click("button.signout")
    page.wait_for_selector("form.signin")
    assert page.evaluate("sessionStorage.getItem('logtraced.key')") is None
