"""A ClickHouse HTTP endpoint backed by the embedded engine, for drills that need a server on a machine without one.

Run as `python -m tests.storage.clickhouse.chdb_http DIR PORT`; prints `ready` once it listens.
It answers what clickhouse-connect sends (statement in the body or the `query` parameter, rows
after an INSERT's first line, `param_*` values, formats, ClickHouse's error codes) on chdb, one
statement at a time.  Of the settings sent with a statement it applies those that change what
logtraced's statements do (time limit, deduplication token, JSON input); the HTTP transport's own
(progress headers and the like) mean nothing to an engine without HTTP and are left out.
"""

from __future__ import annotations

import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import chdb

ENGINE_SETTINGS = frozenset(
    {
        "max_execution_time",
        "insert_deduplication_token",
        "input_format_json_read_objects_as_strings",
        "distributed_foreground_insert",
    }
)
TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE)
TAKES_SETTINGS = re.compile(r"\s*(SELECT|WITH|INSERT)\b", re.IGNORECASE)
INSERT = re.compile(rb"\s*INSERT\b", re.IGNORECASE)
ERROR_CODE = re.compile(r"Code: (\d+)")


def literal(value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def statement(query: dict[str, str], body: bytes) -> tuple[str, str]:
    """The SQL to run (settings placed before a trailing FORMAT, rows after it) and the output format."""
    if "query" in query:
        head, rows = query["query"], body.decode()
    elif INSERT.match(body) and b"\n" in body:
        first, rest = body.split(b"\n", 1)
        head, rows = first.decode(), rest.decode()
    else:
        head, rows = body.decode(), ""
    settings = {name: value for name, value in query.items() if name in ENGINE_SETTINGS}
    clause = ""
    if settings and TAKES_SETTINGS.match(head):
        clause = " SETTINGS " + ", ".join(f"{name} = {literal(value)}" for name, value in settings.items())
    output = query.get("default_format", "TabSeparated")
    found = TRAILING_FORMAT.search(head)
    if found:
        head = head[: found.start()] + clause + " FORMAT " + found.group(1)
        if not rows:
            output = found.group(1)
    else:
        head += clause
    return head + ("\n" + rows if rows else ""), output


def serve(directory: str, port: int) -> None:
    engine: Any = chdb.connect(directory)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Quiet: the drill reads the daemon's log, not this one's."""

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if url.path == "/ping":
                self.answer(200, b"Ok.\n", {})
                return
            sql, output = statement(query, body)
            params = {name[len("param_") :]: value for name, value in query.items() if name.startswith("param_")}
            try:
                with lock:
                    result = engine.query(sql, output, params=params).bytes()
            except Exception as exc:  # every engine error goes back as ClickHouse's HTTP error answer
                text = str(exc)
                code = ERROR_CODE.search(text)
                self.answer(500, text.encode(), {"X-ClickHouse-Exception-Code": code.group(1) if code else "1"})
                return
            self.answer(200, result or b"", {"X-ClickHouse-Format": output, "X-ClickHouse-Timezone": "UTC"})

        do_GET = do_POST

        def answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
