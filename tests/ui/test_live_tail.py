"""Live tail in a real browser: Server-Sent Events read by fetch() with the key in a header, in order,
one tenant only, and a reconnect that replays what arrived while the stream was down."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from tests.api.conftest import Api, marker
from tests.harness import pump
from tests.ui.conftest import Console

TAIL_ROUTE = "**/v1/logs/tail?*"


def tail_messages(console: Console, token: str) -> list[str]:
    return [m for m in console.page.locator("tr.row td.message").all_text_contents() if token in m]


def test_tail_shows_new_events_in_order_and_never_another_tenants(console: Console, api: Api) -> None:
    key = api.create_key("write:logs", "read:logs")
    stranger = api.create_key("write:logs", "read:logs")
    token = marker()
    requests: list[Any] = []
    console.page.on("request", lambda request: "/v1/logs/tail" in request.url and requests.append(request))
    console.sign_in(key, f"#/search?q={token}&range=15m")
    console.wait_ready()
    page = console.page
    page.click("#live")
    page.wait_for_selector(".tail-state[data-state=live]")
    assert page.get_attribute("#live", "aria-pressed") == "true"
    for i in range(3):
        assert api.ingest(key, {"logs": [{"message": f"{token} live {i}", "level": "warn"}]})[0] == 202
        assert api.ingest(stranger, {"logs": [{"message": f"{token} stranger {i}"}]})[0] == 202
    page.wait_for_function(
        "t => [...document.querySelectorAll('tr.row td.message')].filter(td => td.textContent.includes(t)).length >= 3",
        arg=token,
    )
    assert tail_messages(console, token) == [f"{token} live {i}" for i in (2, 1, 0)]  # newest at the top
    assert page.text_content(".hits") == "3 hits"

    request = requests[0]
    assert key.secret not in request.url and "filter=" + token in request.url
    assert request.headers["authorization"] == f"Bearer {key.secret}"
    console.shot("live-tail")

    # The page keeps the newest 1000 rows however many arrive.
    burst = [{"message": f"{token} burst {i:04d}"} for i in range(1200)]
    assert api.ingest(key, {"logs": burst})[0] == 202
    page.wait_for_function(
        "t => document.querySelector('tr.row td.message').textContent === t", arg=f"{token} burst 1199"
    )
    assert page.locator("tr.row").count() == 1000

    page.click("#live")
    assert page.get_attribute("#live", "aria-pressed") == "false"
    assert page.get_attribute(".tail-state", "data-state") == "stopped"
    assert len(requests) == 1


def test_tail_reconnects_from_the_newest_event_after_a_drop(console: Console, api: Api) -> None:
    key = api.create_key("write:logs", "read:logs")
    token = marker()
    assert api.ingest(key, {"logs": [{"message": f"{token} before"}]})[0] == 202
    console.sign_in(key, f"#/search?q={token}&range=15m")
    console.wait_ready()
    page = console.page
    page.wait_for_selector(f"tr.row td.message:has-text('{token} before')")
    refused: list[str] = []

    def refuse_once(route: Any) -> None:
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        assert api.ingest(key, {"logs": [{"message": f"{token} while down"}]})[0] == 202
        route.abort()

    console.expect_errors("net::ERR_FAILED")
    page.route(TAIL_ROUTE, refuse_once)
    page.click("#live")
    page.wait_for_selector(".tail-state[data-state=dropped]")
    page.wait_for_selector(".tail-state[data-state=live]")
    page.wait_for_selector(f"tr.row td.message:has-text('{token} while down')")
    assert "from=" in refused[0]
    assert api.ingest(key, {"logs": [{"message": f"{token} after"}]})[0] == 202
    page.wait_for_selector(f"tr.row td.message:has-text('{token} after')")
    assert tail_messages(console, token) == [f"{token} {m}" for m in ("after", "while down", "before")]


class CuttingProxy:
    """A TCP relay in front of the daemon whose open connections the test can cut, as a network drop would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            cut, self.open = self.open, []
        for end in cut:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def test_tail_resumes_from_the_newest_event_after_the_connection_is_cut(console: Console, api: Api) -> None:
    key = api.create_key("write:logs", "read:logs")
    token = marker()
    proxy = CuttingProxy(api.daemon.http_port)
    try:
        page = console.page
        page.goto(f"http://127.0.0.1:{proxy.port}/ui/#/search?q={token}&range=15m")
        page.fill("#key", key.secret)
        page.click("form.signin button[type=submit]")
        console.wait_ready()
        page.click("#live")
        page.wait_for_selector(".tail-state[data-state=live]")
        assert api.ingest(key, {"logs": [{"message": f"{token} first"}]})[0] == 202
        page.wait_for_selector(f"tr.row td.message:has-text('{token} first')")
        requests: list[str] = []
        page.on("request", lambda request: "/v1/logs/tail" in request.url and requests.append(request.url))
        console.expect_errors("net::ERR_")  # the stream the relay cut
        proxy.cut()
        assert api.ingest(key, {"logs": [{"message": f"{token} while cut"}]})[0] == 202
        page.wait_for_selector(f"tr.row td.message:has-text('{token} while cut')")
        assert api.ingest(key, {"logs": [{"message": f"{token} after"}]})[0] == 202
        page.wait_for_selector(f"tr.row td.message:has-text('{token} after')")
        assert tail_messages(console, token) == [f"{token} {m}" for m in ("after", "while cut", "first")]
        assert "from=" in requests[0]
    finally:
        proxy.close()
