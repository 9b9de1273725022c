"""One narrow interface to ClickHouse (query, command, insert) over a server's HTTP API or the embedded engine.

Everything above this module speaks SQL with `{name:Type}` placeholders and a dict of values;
each transport binds them its own way (clickhouse-connect sends them as server-side parameters,
chdb takes them escaped), so no user text is ever formatted into a statement.  Failures of the
transport become `ClickHouseUnavailable` (retry later), failures of a statement `ClickHouseError`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec

from logtraced.config import Config
from logtraced.errors import StorageError

Params = dict[str, str | int | float]
Settings = dict[str, str | int | float]
Rows = list[list[Any]]

CHDB_SCHEME: Final = "chdb://"
# ClickHouse quotes 64-bit integers in JSON by default; ids and timestamps must stay numbers.
_JSON_SETTINGS: Final[Settings] = {"output_format_json_quote_64bit_integers": 0}
_TSV_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


class ClickHouseUnavailable(StorageError):
    """ClickHouse could not be reached or did not answer; nothing was stored or read, try again later."""

    default_code = "clickhouse_unavailable"


class ClickHouseError(StorageError):
    """ClickHouse refused a statement."""

    default_code = "clickhouse_error"


class Client(Protocol):
    """What the store and the writer need of ClickHouse."""

    def query(self, sql: str, params: Params | None = None, settings: Settings | None = None) -> Rows:
        """Rows of a SELECT, each a list of column values (Int64 as int, Array as list)."""
        ...

    def command(self, sql: str, params: Params | None = None) -> None:
        """A statement without rows (DDL, ALTER)."""
        ...

    def insert(self, table: str, rows: bytes, settings: Settings) -> None:
        """JSONEachRow rows into `table`; returns once ClickHouse acknowledged them."""
        ...

    def close(self) -> None: ...


class _Result(msgspec.Struct):
    data: Rows


_decode_result: Final = msgspec.json.Decoder(_Result).decode


def embedded_path(config: Config) -> Path | None:
    """The directory of the embedded engine when `clickhouse.url` is chdb://PATH (relative to data_dir)."""
    url = config.clickhouse.url
    if not url.startswith(CHDB_SCHEME):
        return None
    path = Path(url[len(CHDB_SCHEME) :])
    return path if path.is_absolute() else config.data_path / path


def _with_settings(sql: str, settings: Settings | None) -> str:
    """SETTINGS clause text; setting values are logtraced's own numbers and names, never user text."""
    if not settings:
        return sql
    return sql + " SETTINGS " + ", ".join(f"{name} = {_setting_literal(value)}" for name, value in settings.items())


def _setting_literal(value: str | int | float) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


class ChdbClient:
    """ClickHouse's engine in this process, on one directory (chdb allows a single directory per process)."""

    def __init__(self, path: Path) -> None:
        import chdb

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        open_directory: Any = chdb.connect  # chdb ships no type hints
        self._conn = open_directory(str(path))
        self._error: type[Exception] = chdb.ChdbError
        # One statement at a time: chdb keeps query parameters on the connection, so concurrent
        # statements (relayed reads beside the writer's inserts) would see each other's values.
        # Each statement still runs on all cores inside the engine.
        self._lock = threading.Lock()

    def query(self, sql: str, params: Params | None = None, settings: Settings | None = None) -> Rows:
        result = self._run(_with_settings(sql, {**(settings or {}), **_JSON_SETTINGS}), "JSONCompact", params)
        data = result.bytes()
        if not data:
            return []
        try:
            return _decode_result(data).data
        except msgspec.DecodeError:
            raise ClickHouseError(_streamed_error(data)) from None

    def command(self, sql: str, params: Params | None = None) -> None:
        self._run(sql, "CSV", params)

    def insert(self, table: str, rows: bytes, settings: Settings) -> None:
        statement = _with_settings(f"INSERT INTO {table}", settings) + " FORMAT JSONEachRow\n"
        self._run(statement + rows.decode(), "CSV", None)

    def _run(self, sql: str, fmt: str, params: Params | None) -> Any:
        bound = {name: _escaped(value) for name, value in (params or {}).items()}
        with self._lock:
            try:
                return self._conn.query(sql, fmt, params=bound)
            except (self._error, RuntimeError) as exc:
                self._discard_leftover()
                raise ClickHouseError(_first_line(exc)) from None

    def _discard_leftover(self) -> None:
        """chdb keeps what a failed statement had begun to write (a timeout mid-answer) and prepends it to the
        next statement's answer; one throwaway statement takes it."""
        try:
            self._conn.query("SELECT 1", "CSV")
        except (self._error, RuntimeError):
            pass

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _streamed_error(data: bytes) -> str:
    """The error ClickHouse appends to an answer it had begun to stream (a timeout mid-statement, say)."""
    text = data.decode(errors="replace")
    at = text.rfind("Code: ")
    return _first_line(RuntimeError(text[at:] if at >= 0 else "ClickHouse sent a malformed answer"))


def _escaped(value: str | int | float) -> str | int | float:
    """chdb parses parameter values in ClickHouse's escaped text format: backslashes and controls must be escaped."""
    return value.translate(_TSV_ESCAPES) if isinstance(value, str) else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


class HttpClient:
    """A ClickHouse server through clickhouse-connect (HTTP, compression, server-side query parameters)."""

    def __init__(self, config: Config) -> None:
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        self._operational = OperationalError
        self._database_error = DatabaseError
        section = config.clickhouse
        try:
            self._client = clickhouse_connect.get_client(
                dsn=section.url,
                username=section.user,
                password=section.password,
                compress=True,
                autogenerate_session_id=False,
            )
        except OperationalError as exc:
            raise ClickHouseUnavailable(f"cannot reach ClickHouse at {section.url}: {_first_line(exc)}") from None

    def query(self, sql: str, params: Params | None = None, settings: Settings | None = None) -> Rows:
        result = self._call(lambda: self._client.query(sql, parameters=params or {}, settings=settings or {}))
        return [list(row) for row in result.result_rows]

    def command(self, sql: str, params: Params | None = None) -> None:
        self._call(lambda: self._client.command(sql, parameters=params or {}))

    def insert(self, table: str, rows: bytes, settings: Settings) -> None:
        self._call(lambda: self._client.raw_insert(table, insert_block=rows, settings=settings, fmt="JSONEachRow"))

    def _call(self, run: Any) -> Any:
        try:
            return run()
        except self._operational as exc:
            raise ClickHouseUnavailable(_first_line(exc)) from None
        except self._database_error as exc:
            raise ClickHouseError(_first_line(exc)) from None

    def close(self) -> None:
        self._client.close()
