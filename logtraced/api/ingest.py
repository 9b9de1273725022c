"""POST /v1/logs/ingest: authenticated JSON batches (LogTrace, Logstash and Fluent Bit http outputs) into the pipeline.

The body's shapes are decoded by `ingest.logtrace_http`; this module is the route's glue:
authenticate, admit, read the bounded body, hand the events to the one ingest path, answer.
A 202 means the batch is fsynced in the write-ahead log, which is also why enterprise keys are
still accepted when the writer is behind: the WAL on disk is the overflow queue.
"""

from __future__ import annotations

import secrets
import time
from typing import Final

from aiohttp import web

from logtraced.api.authn import authenticate
from logtraced.api.context import get_state
from logtraced.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia
from logtraced.ingest.logtrace_http import JSON_TYPE, NDJSON_TYPES, decode_batch, to_events
from logtraced.model import Event, Tenant, retention_start_ns

ROUTE: Final = "/v1/logs/ingest"
SCOPE: Final = "write:logs"
PROTOCOL: Final = "http"
# aiohttp decodes gzip and deflate bodies as they stream in (bounded chunks, never the whole body at once).
ENCODINGS: Final = frozenset({"", "identity", "gzip", "deflate"})


async def ingest(request: web.Request) -> web.Response:
    """Authenticate, admit, read, decode, validate, append to the WAL, wait for fsync, answer 202."""
    context = await authenticate(request, scope=SCOPE, kind="ingest")
    ndjson = _body_format(request)
    state = get_state(request)
    principal = context.principal
    tier = state.config.auth.tiers.get(principal.tier)
    full = state.pipeline.admit(may_overflow=tier is not None and tier.overflow)
    overflow = full or (context.decision is not None and context.decision.overflow)
    body = await read_body(request, state.config.http.max_body_bytes)
    records = decode_batch(body, ndjson=ndjson, max_events=state.config.http.max_batch_events)
    events = to_events(records, principal.environment, time.time_ns())
    expired = _expired(events, state.config.index.retention_days)
    await state.pipeline.store(events, Tenant(principal.org, principal.environment), len(body), PROTOCOL)
    context.count(events=len(events), bytes=len(body), overflow_events=len(events) if overflow else 0)
    request_id = "req_" + secrets.token_hex(8)
    return web.json_response(
        {
            "accepted": len(events),
            "expired": expired,
            "status": "queued",
            "request_id": request_id,
            "overflow": overflow,
        },
        status=202,
        headers={"X-Request-Id": request_id},
    )


def _expired(events: list[Event], retention_days: int) -> int:
    """How many events are older than the retention period: durable, acknowledged, but never searchable."""
    oldest_ns = retention_start_ns(time.time_ns(), retention_days)
    return sum(1 for event in events if event.timestamp < oldest_ns)


def _body_format(request: web.Request) -> bool:
    """True for NDJSON, False for a JSON document; anything else is 415 before a byte of body is read."""
    check_encoding(request)
    content_type = request.content_type
    if content_type == JSON_TYPE:
        return False
    if content_type in NDJSON_TYPES:
        return True
    raise UnsupportedMedia(f"Content-Type {content_type!r} is not accepted; send {JSON_TYPE} or application/x-ndjson")


def check_encoding(request: web.Request) -> None:
    """415 for a Content-Encoding aiohttp does not decode, before a byte of body is read."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        raise UnsupportedMedia(
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or an uncompressed body"
        )


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
        raise InvalidInput(f"the body could not be read: {' '.join(str(exc).split())}", code="malformed_body") from exc
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body (after decompression) exceeds {limit} bytes")


def register(app: web.Application) -> None:
    app.router.add_post(ROUTE, ingest)
