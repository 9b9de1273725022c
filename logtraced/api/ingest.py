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
from logtraced.api.intake import admit_and_read, check_encoding, store
from logtraced.config import FieldMap
from logtraced.errors import UnsupportedMedia
from logtraced.ingest.logtrace_http import JSON_TYPE, NDJSON_TYPES, decode_batch, to_events
from logtraced.model import Event, retention_start_ns

ROUTE: Final = "/v1/logs/ingest"
SCOPE: Final = "write:logs"
PROTOCOL: Final = "http"
FIELD_PARAMETERS: Final = {
    "message": "_msg_field",
    "timestamp": "_time_field",
    "level": "_level_field",
    "service": "_service_field",
    "host": "_host_field",
}


async def ingest(request: web.Request) -> web.Response:
    """Authenticate, admit, read, decode, validate, append to the WAL, wait for fsync, answer 202."""
    context = await authenticate(request, scope=SCOPE, kind="ingest")
    ndjson = _body_format(request)
    intake = await admit_and_read(request, context, PROTOCOL)
    config = get_state(request).config
    records = decode_batch(intake.body, ndjson=ndjson, max_events=config.http.max_batch_events)
    events = to_events(records, context.principal.environment, intake.received_ns, field_map(request))
    expired = _expired(events, config.index.retention_days)
    await store(request, intake, events, refused=0, cause="")
    overflow = intake.overflow
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


def field_map(request: web.Request) -> FieldMap:
    """Where this sender puts the canonical fields, from `_msg_field`, `_time_field`, `_level_field`,
    `_service_field`, `_host_field` (comma-separated dotted paths, tried in order), as VictoriaLogs names them."""
    paths = {
        name: [path.strip() for path in request.query.get(parameter, "").split(",") if path.strip()]
        for name, parameter in FIELD_PARAMETERS.items()
    }
    return FieldMap(**paths)


def _body_format(request: web.Request) -> bool:
    """True for NDJSON, False for a JSON document; anything else is 415 before a byte of body is read."""
    check_encoding(request)
    content_type = request.content_type
    if content_type == JSON_TYPE:
        return False
    if content_type in NDJSON_TYPES:
        return True
    raise UnsupportedMedia(f"Content-Type {content_type!r} is not accepted; send {JSON_TYPE} or application/x-ndjson")


def register(app: web.Application) -> None:
    app.router.add_post(ROUTE, ingest)
