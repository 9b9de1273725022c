"""The route glue every foreign shipper dialect shares: authenticate, admit, read the bounded body, store, count.

The Elasticsearch `_bulk`, Loki push and OTLP/HTTP routes differ only in how they decode a
body and word their answer; everything else must behave exactly as `POST /v1/logs/ingest`
does (same scope, rate limits, overflow, usage accounting and fsync before the answer), so
it lives here once.  Each route calls `receive`, decodes `Intake.body` inside `decoding`
(which counts a body refused whole under its cause), then `store`s its events.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from logtraced.api.authn import AuthContext, authenticate
from logtraced.api.context import get_state
from logtraced.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia
from logtraced.ingest.rejection import BodyRejected
from logtraced.model import Event

SCOPE: Final = "write:logs"
# aiohttp decodes gzip and deflate bodies as they stream in (bounded chunks, never the whole body at once).
ENCODINGS: Final = frozenset({"", "identity", "gzip", "deflate"})


@dataclass(slots=True)
class Intake:
    """An admitted request and its whole (decoded) body, ready to decode."""

    context: AuthContext
    body: bytes
    overflow: bool
    protocol: str
    received_ns: int


async def receive(request: web.Request, protocol: str, *, org: str | None = None) -> Intake:
    """Authenticate and admit `request`, then read its body; 401/403/429/503/413/415 as `/v1/logs/ingest`.

    `org` is an organisation the request names (Loki's `X-Scope-OrgID`): another than the
    key's is 403 `forbidden_organization`.  The body is read only once the caller is known and
    the pipeline has room, and a declared Content-Length over `http.max_body_bytes` is refused
    before a byte of it is read.
    """
    context = await authenticate(request, scope=SCOPE, kind="ingest", org=org)
    check_encoding(request)
    return await admit_and_read(request, context, protocol)


async def admit_and_read(request: web.Request, context: AuthContext, protocol: str) -> Intake:
    """Admit an authenticated request (429/503 when the pipeline cannot take it), then read its bounded body."""
    state = get_state(request)
    tier = state.config.auth.tiers.get(context.principal.tier)
    full = state.pipeline.admit(may_overflow=tier is not None and tier.overflow)
    overflow = full or (context.decision is not None and context.decision.overflow)
    body = await read_body(request, state.config.http.max_body_bytes)
    return Intake(context, body, overflow, protocol, time.time_ns())


@contextmanager
def decoding(request: web.Request, intake: Intake) -> Iterator[None]:
    """Count a body its decoder refuses whole under the decoder's cause, and let the refusal through."""
    try:
        yield
    except BodyRejected as rejected:
        get_state(request).pipeline.count_rejected(intake.protocol, rejected.cause)
        raise


async def store(request: web.Request, intake: Intake, events: list[Event], *, refused: int, cause: str) -> None:
    """Append the events to the WAL and wait for the fsync; then account for them (and `refused` items).

    Returns only once the events are durable, so the caller may acknowledge them.
    """
    pipeline = get_state(request).pipeline
    principal = intake.context.principal
    await pipeline.store(events, principal.tenant, len(intake.body), intake.protocol)
    if refused:
        pipeline.count_rejected(intake.protocol, cause, refused)
    overflow_events = len(events) if intake.overflow else 0
    intake.context.count(events=len(events), bytes=len(intake.body), overflow_events=overflow_events)


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
