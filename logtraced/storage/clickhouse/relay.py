"""Reads of the embedded engine, relayed to the one process that may open its directory (the writer process).

chdb lets a single process open a directory.  The writer process owns it, because writing is the
continuous load and it already runs apart from the event loop; it answers reads on a Unix socket
in the data directory (mode 0600).  The daemon, the `logtraced query` CLI and tests read through
`RelayClient`, which speaks the same `Client` interface, so the store does not know which
transport it uses.  While the writer process restarts, reads wait up to `connect_timeout` for its
socket, then fail as `ClickHouseUnavailable` (503), never hang.

Wire format: one framed msgpack request `[sql, params, settings]` per call on a pooled
connection; the answer is `["ok", rows]` or `["error", kind, message]`.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from multiprocessing.connection import Client as connect
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any, Final

import msgspec

from logtraced.errors import LogtracedError, QueryTimeout
from logtraced.log import get_logger
from logtraced.storage.clickhouse.client import (
    ClickHouseError,
    ClickHouseUnavailable,
    Client,
    Params,
    Rows,
    Settings,
)

SOCKET_NAME: Final = "query.sock"
_MAX_SOCKET_PATH: Final = 100  # sockaddr_un holds 108 bytes on Linux, fewer elsewhere
_encode: Final = msgspec.msgpack.Encoder().encode
_decode: Final = msgspec.msgpack.Decoder().decode
_ERRORS: Final[dict[str, type[LogtracedError]]] = {
    "clickhouse": ClickHouseError,
    "unavailable": ClickHouseUnavailable,
    "timeout": QueryTimeout,
}


def socket_path(directory: Path) -> Path:
    path = directory / SOCKET_NAME
    if len(str(path)) > _MAX_SOCKET_PATH:
        raise ClickHouseUnavailable(f"{path} is too long for a Unix socket: use a shorter clickhouse.url path")
    return path


class RelayServer:
    """Answers read statements from other processes with the writer process's own client."""

    def __init__(self, client: Client, directory: Path) -> None:
        self.client = client
        self.path = socket_path(directory)
        self.path.unlink(missing_ok=True)  # left by a writer that was killed
        self.listener = Listener(str(self.path), family="AF_UNIX")
        os.chmod(self.path, 0o600)
        self.log = get_logger("writer")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="chdb-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = self.listener.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._serve, args=(conn,), name="chdb-relay-conn", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    sql, params, settings = _decode(conn.recv_bytes())
                except (EOFError, OSError):
                    return
                conn.send_bytes(_encode(self._answer(sql, params, settings)))

    def _answer(self, sql: str, params: Params, settings: Settings) -> list[Any]:
        try:
            return ["ok", self.client.query(sql, params, settings)]
        except ClickHouseUnavailable as exc:
            return ["error", "unavailable", exc.message]
        except ClickHouseError as exc:
            kind = "timeout" if "TIMEOUT_EXCEEDED" in exc.message else "clickhouse"
            return ["error", kind, exc.message]
        except Exception as exc:  # the reader gets an answer, never a connection closed under it
            self.log.exception("relay_statement_failed")
            return ["error", "clickhouse", f"{type(exc).__name__}: {exc}"]

    def stop(self) -> None:
        self._stopping.set()
        self.listener.close()
        self.path.unlink(missing_ok=True)


class RelayClient:
    """A `Client` for reads that forwards each statement to the process owning the embedded engine."""

    def __init__(self, directory: Path, connect_timeout: float = 15.0) -> None:
        self.directory = directory
        self.connect_timeout = connect_timeout
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()

    def query(self, sql: str, params: Params | None = None, settings: Settings | None = None) -> Rows:
        request = _encode([sql, params or {}, settings or {}])
        while True:
            conn, pooled = self._connection()
            try:
                conn.send_bytes(request)
                answer = _decode(conn.recv_bytes())
                break
            except (EOFError, OSError):
                conn.close()
                if not pooled:
                    raise ClickHouseUnavailable(
                        "the writer process, which owns the embedded ClickHouse, went away"
                    ) from None
                # An idle connection to a writer process that has since restarted: a read is safe to resend.
        self._idle.put(conn)
        if answer[0] == "ok":
            rows: Rows = answer[1]
            return rows
        raise _ERRORS.get(answer[1], ClickHouseError)(answer[2])

    def _connection(self) -> tuple[Connection, bool]:
        """An idle connection (True) or a new one (False), waiting for the socket while the owner restarts."""
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            pass
        path = str(socket_path(self.directory))
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                return connect(path, family="AF_UNIX"), False
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() >= deadline:
                    raise ClickHouseUnavailable(
                        "the embedded ClickHouse is not answering: is the daemon (its writer process) running?"
                    ) from None
                time.sleep(0.05)

    def command(self, sql: str, params: Params | None = None) -> None:
        raise ClickHouseError("statements that change the embedded database run in the process that owns it")

    def insert(self, table: str, rows: bytes, settings: Settings) -> None:
        raise ClickHouseError("inserts into the embedded database run in the process that owns it")

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
