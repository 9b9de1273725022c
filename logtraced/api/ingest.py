"""POST /v1/logs/ingest: authenticated JSON batches (LogTrace, Logstash and Fluent Bit http outputs) into the pipeline.

One route takes every shape those senders produce, chosen by Content-Type and the top-level
JSON value (see docs/http-api.md for the exact table):

- `application/json`, an object with a `logs` array: the LogTrace batch;
- `application/json`, an array: Logstash `json_batch`, Fluent Bit `json`;
- `application/json`, any other object: one event (Logstash `json`, one request per event);
- `application/x-ndjson` (and its aliases): one object per line (Fluent Bit `json_lines`).

A batch is atomic: every event is decoded, normalised and checked before anything is
written, so a 4xx means nothing was stored and a retry cannot duplicate.  A 202 means the
batch is fsynced in the write-ahead log, which is also why enterprise keys are still
accepted when the indexer is behind: the WAL on disk is the overflow queue.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web

from logtraced.api.authn import AuthContext, authenticate
from logtraced.api.context import get_state
from logtraced.errors import ApiError, StorageError
from logtraced.events import normalise
from logtraced.ingest.framing import StreamFramer
from logtraced.log import WarningLimiter, get_logger
from logtraced.model import Event, Tenant

if TYPE_CHECKING:
    from logtraced.daemon import DaemonState

ROUTE: Final = "/v1/logs/ingest"
SCOPE: Final = "write:logs"
JSON_TYPE: Final = "application/json"
# Fluent Bit's json_lines sends application/x-ndjson; the others are spellings seen in the wild.
NDJSON_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl"}
)
# aiohttp decodes gzip and deflate bodies as they stream in (bounded chunks, never the whole body at once).
ENCODINGS: Final = frozenset({"", "identity", "gzip", "deflate"})
MAX_REPORTED_PROBLEMS: Final = 10
# Ingest refuses new batches (503) when the data directory's file system has less free space
# than this, keeping room for the indexer to commit what was already acknowledged.
STORAGE_RESERVE_BYTES: Final = 64 * 1024 * 1024
BACKPRESSURE_RETRY_SECONDS: Final = 1
# A failing disk is not fixed in a second: tell well-behaved senders to wait longer.
STORAGE_RETRY_SECONDS: Final = 30
# An fsync normally takes milliseconds; one that never returns must not hold the client forever.
DURABLE_TIMEOUT_SECONDS: Final = 30.0
_BYTE_POSITION: Final = re.compile(r"\(byte (\d+)\)")
_TRAILING: Final = "trailing characters"
_JSON_TYPE_NAMES: Final = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}

WARNINGS: Final = web.AppKey("ingest_warnings", WarningLimiter)


class Problem(msgspec.Struct, frozen=True):
    """Why one event of a batch was refused; `index` counts from 0 in the order sent."""

    index: int
    field: str | None
    problem: str


async def ingest(request: web.Request) -> web.Response:
    """Authenticate, admit, read, decode, validate, append to the WAL, wait for fsync, answer 202."""
    context = await authenticate(request, scope=SCOPE, kind="ingest")
    ndjson = _body_format(request)
    state = get_state(request)
    overflow = _admit(request, state, context)
    body = await read_body(request, state.config.http.max_body_bytes)
    records = decode_batch(body, ndjson=ndjson, max_events=state.config.http.max_batch_events)
    events = to_events(records, context.principal.environment, time.time_ns())
    seq = _submit(request, state, events, Tenant(context.principal.org, context.principal.environment), len(body))
    await _durable(state, seq)
    context.count(events=len(events), bytes=len(body), overflow_events=len(events) if overflow else 0)
    request_id = "req_" + secrets.token_hex(8)
    return web.json_response(
        {"accepted": len(events), "status": "queued", "request_id": request_id, "overflow": overflow},
        status=202,
        headers={"X-Request-Id": request_id},
    )


def _body_format(request: web.Request) -> bool:
    """True for NDJSON, False for a JSON document; anything else is 415 before a byte of body is read."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or an uncompressed body",
        )
    content_type = request.content_type
    if content_type == JSON_TYPE:
        return False
    if content_type in NDJSON_TYPES:
        return True
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {content_type!r} is not accepted; send {JSON_TYPE} or application/x-ndjson",
    )


def _admit(request: web.Request, state: DaemonState, context: AuthContext) -> bool:
    """Refuse early when storage or the indexer cannot keep up; True when the batch goes to the overflow queue."""
    free = shutil.disk_usage(state.config.data_path).free
    if free < STORAGE_RESERVE_BYTES:
        request.app[WARNINGS].warn("ingest_storage_low", free_bytes=free, reserve_bytes=STORAGE_RESERVE_BYTES)
        raise _storage_unavailable(f"only {free} bytes are free in the data directory")
    principal = context.principal
    tier = state.config.auth.tiers.get(principal.tier)
    may_overflow = tier is not None and tier.overflow
    if state.pipeline.full and not may_overflow:
        raise ApiError(
            429,
            "ingest_backpressure",
            "the indexer is behind; nothing was stored, retry shortly",
            headers={"Retry-After": str(BACKPRESSURE_RETRY_SECONDS)},
        )
    over_budget = context.decision is not None and context.decision.overflow
    return state.pipeline.full or over_budget


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole (decoded) body, refused with 413 once it passes `limit` bytes: a gzip bomb stops there."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except web.RequestPayloadError as exc:  # aiohttp's wrapper, e.g. around a corrupt gzip stream
        raise ApiError(400, "malformed_body", f"the body could not be read: {' '.join(str(exc).split())}") from exc
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the request body (after decompression) exceeds {limit} bytes")


def decode_batch(body: bytes, *, ndjson: bool, max_events: int) -> list[Any]:
    """The records of a body, still undecided whether each is a valid event; sans-IO."""
    if ndjson:
        return _decode_lines(body, max_events)
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        if _TRAILING in str(exc):
            return _decode_stream(body, max_events)
        value = _decode(body, 0)  # raises the 400 that names the position
    if type(value) is dict:
        logs = value.get("logs")
        records = logs if type(logs) is list else [value]
    elif type(value) is list:
        records = value
    else:
        raise ApiError(400, "invalid_body", f"the body must be a JSON object or array, got {_json_type(value)}")
    if len(records) > max_events:
        raise _too_many(f"{len(records)} events", max_events)
    return records


def _decode_lines(body: bytes, max_events: int) -> list[Any]:
    """NDJSON: one value per non-blank line (LF or CRLF), refused as soon as there are too many."""
    records: list[Any] = []
    offset = 0
    for line in body.split(b"\n"):
        if line.strip():
            if len(records) == max_events:
                raise _too_many(f"more than {max_events} lines", max_events)
            records.append(_decode(line, offset))
        offset += len(line) + 1
    return records


def _decode_stream(body: bytes, max_events: int) -> list[Any]:
    """Objects back to back (`{..}{..}`, Fluent Bit's `json_stream`), split as the TCP port splits them."""
    framer = StreamFramer(len(body) + 1)
    records: list[Any] = []
    offset = 0
    for frame in [*framer.feed(body), *framer.close()]:
        if len(records) == max_events:
            raise _too_many(f"more than {max_events} objects", max_events)
        offset = body.find(frame.data, offset)
        records.append(_decode(frame.data, max(offset, 0)))
        offset += len(frame.data)
    return records


def _too_many(found: str, max_events: int) -> ApiError:
    return ApiError(400, "too_many_events", f"{found} in one request; the limit is {max_events} events")


def _decode(data: bytes, offset: int) -> Any:
    """One JSON value; malformed or truncated input is 400 `malformed_json` with the byte position in the body."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        text = str(exc)
        found = _BYTE_POSITION.search(text)
        position = offset + (int(found.group(1)) if found else len(data))
        reason = text.removeprefix("JSON is malformed: ")
        reason = _BYTE_POSITION.sub("", reason).strip()
    except UnicodeDecodeError as exc:
        position, reason = offset + exc.start, "invalid UTF-8"
    except RecursionError:
        position, reason = offset, "nested too deeply"
    raise ApiError(
        400,
        "malformed_json",
        f"the body is not valid JSON at byte {position}: {reason.lower()}",
        details={"position": position},
    )


def to_events(records: Sequence[Any], environment: str, received_ns: int) -> list[Event]:
    """Normalise every record, or refuse the whole batch: 403 for another environment, 400 for bad events.

    `records` are consumed (each dict becomes its event's attributes).
    """
    events: list[Event] = []
    problems: list[Problem] = []
    foreign: Problem | None = None
    for index, record in enumerate(records):
        problem = _record_problem(index, record)
        if problem is not None:
            problems.append(problem)
            continue
        event = normalise(record, received_ns)
        if not event.message:
            problems.append(Problem(index, "message", "missing or empty (also looked for msg, log, body)"))
            continue
        foreign = foreign or _environment_problem(index, event, environment)
        events.append(event)
    if foreign is not None:
        raise ApiError(
            403,
            "cross_environment",
            f"event {foreign.index} {foreign.problem}; nothing was stored",
            details=[msgspec.to_builtins(foreign)],
        )
    if problems:
        raise ApiError(
            400,
            "invalid_events",
            f"{len(problems)} of {len(records)} events are invalid; nothing was stored",
            details=msgspec.to_builtins(problems[:MAX_REPORTED_PROBLEMS]),
        )
    return events


def _record_problem(index: int, record: Any) -> Problem | None:
    """What is wrong with a record before normalisation: it must be an object whose `message`, if any, is a string."""
    if type(record) is not dict:
        return Problem(index, None, f"an event must be a JSON object, got {_json_type(record)}")
    message = record.get("message")
    if "message" in record and type(message) is not str:
        return Problem(index, "message", f"must be a string, got {_json_type(message)}")
    return None


def _environment_problem(index: int, event: Event, environment: str) -> Problem | None:
    """An event naming another environment (`env` or `environment`) than the key's, if it does."""
    for field in ("env", "environment"):
        named = event.attributes.get(field)
        if type(named) is str and named != environment:
            return Problem(index, field, f"names environment {named!r} but this key belongs to {environment!r}")
    return None


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _submit(request: web.Request, state: DaemonState, events: list[Event], tenant: Tenant, size: int) -> int:
    """Append to the WAL; a failing disk (ENOSPC, EIO, read-only) is 503 and the batch is not acknowledged."""
    try:
        return state.pipeline.submit(events, tenant, size)
    except (OSError, StorageError) as exc:
        request.app[WARNINGS].warn("ingest_storage_failed", error=str(exc))
        raise _storage_unavailable("the write-ahead log could not be written") from exc


async def _durable(state: DaemonState, seq: int) -> None:
    """Wait for the fsync; if it never comes (a failing disk), answer 503 instead of hanging the client."""
    try:
        await asyncio.wait_for(state.pipeline.durable(seq), DURABLE_TIMEOUT_SECONDS)
    except TimeoutError as exc:
        raise _storage_unavailable("the write-ahead log did not reach the disk in time") from exc


def _storage_unavailable(reason: str) -> ApiError:
    return ApiError(
        503,
        "storage_unavailable",
        f"{reason}; nothing new is accepted until storage recovers",
        headers={"Retry-After": str(STORAGE_RETRY_SECONDS)},
    )


def register(app: web.Application) -> None:
    app[WARNINGS] = WarningLimiter(get_logger("http_ingest"))
    app.router.add_post(ROUTE, ingest)
