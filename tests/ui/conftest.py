"""A real Chromium (Debian's, never a downloaded one) driving the console of a real daemon."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api import conftest as api_fixtures
from tests.api.conftest import Api, Key
from tests.harness import wait_until

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}

playwright_sync = pytest.importorskip("playwright.sync_api")
# The API tests' daemon fixtures, so the console is tested against the same kind of daemon.
api_session = api_fixtures.api_session
api = api_fixtures.api


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: scripts/test installs it (apt-get install chromium)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


class Console:
    """One browser tab on the console, with every console error and CSP violation it logged."""

    def __init__(self, page: Any, api: Api, shots: Path) -> None:
        self.page = page
        self.api = api
        self.shots = shots
        self.errors: list[str] = []
        self.expected: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def expect_errors(self, text: str) -> None:
        """Browser console errors containing `text` are the test's doing (a cut connection), whenever they arrive."""
        self.expected.append(text)

    def url(self, fragment: str = "") -> str:
        return self.api.daemon.url("/ui/") + fragment

    def sign_in(self, key: Key, fragment: str = "") -> None:
        """Sign in on the page of `fragment` (the search page when empty), as a shared link would open it."""
        self.page.goto(self.url(fragment) if fragment else self.api.daemon.url("/"))
        self.page.fill("#key", key.secret)
        self.page.click("form.signin button[type=submit]")
        self.page.wait_for_selector(f"header.top:not([hidden]) .whoami:has-text('{key.org}')")

    def open(self, fragment: str) -> None:
        """Navigate inside the signed-in tab and wait for the page to say it is ready."""
        self.page.evaluate("document.body.dataset.state = ''")
        self.page.evaluate("f => { location.hash = f }", fragment)
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_selector("body[data-state=ready]")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def console(browser: Any, api: Api, tmp_path: Path) -> Iterator[Console]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    tab = Console(page, api, shots)
    yield tab
    context.close()
    assert [error for error in tab.errors if not any(text in error for text in tab.expected)] == []


def searchable(api: Api, key: Key, kql: str, count: int) -> None:
    """Wait until the index answers `kql` with `count` events (ingest is durable before it is searchable)."""

    def found() -> bool:
        status, _, body = api.request("POST", "/v1/logs/query", key=key, body={"filter": kql, "from": "-7d"})
        return status == 200 and body["total"] == count

    wait_until(found)


def ago_iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - seconds)) + "Z"
