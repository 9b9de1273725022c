"""Helpers the shipper-dialect tests share: KQL search through the API, credentials in shippers' schemes, raw HTTP."""

from __future__ import annotations

import base64
import socket
from typing import Any

from tests.api.conftest import Api, Key
from tests.harness import wait_until


def basic(key: Key, user: str = "shipper") -> dict[str, str]:
    """`Authorization: Basic` with the key as the password, as Fluent Bit, Promtail and Beats send it."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key.secret}".encode()).decode()}


def search(api: Api, key: Key, kql: str, count: int) -> list[dict[str, Any]]:
    """Poll `POST /v1/logs/query` until `count` events match `kql` (in the key's tenant), then return them."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        nonlocal found
        status, _, body = api.request(
            "POST", "/v1/logs/query", key=key, body={"filter": kql, "from": "0", "limit": 1000}
        )
        assert status == 200, body
        found = body["logs"]
        return len(found) >= count

    wait_until(enough)
    return found


def declared_too_large(api: Api, method: str, path: str, key: Key, length: int, content_type: str) -> bytes:
    """Send only the headers of a request declaring `length` body bytes; return the whole answer as read.

    The body is never sent, so an answer proves the daemon refused it from Content-Length alone.
    """
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key.secret}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", api.daemon.http_port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False
