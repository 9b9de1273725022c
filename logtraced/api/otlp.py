"""`POST /v1/logs`: OTLP/HTTP log exports (every OpenTelemetry SDK, the Collector's `otlphttp`) into the ingest path.

Answers as the OTLP specification requires: 200 with an `ExportLogsServiceResponse` in the
request's encoding once the records are durable (with `partial_success` counting refused
records, which clients must not retry), and every failure as a `google.rpc.Status` in that
encoding with its HTTP status (and `Retry-After` on 429 and 503, which exporters honour).
gRPC is not served: every SDK and the Collector can export over HTTP.
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from logtraced.api.context import get_state
from logtraced.api.errors import Failure, render_errors_with
from logtraced.api.intake import decoding, receive, store
from logtraced.ingest.otlp import decode_logs, encode_response, encode_status, response_type

ROUTE: Final = "/v1/logs"
PROTOCOL: Final = "otlp"
# Records refused one by one are counted under this cause; partial_success names the first.
RECORD_CAUSE: Final = "invalid_record"


async def export(request: web.Request) -> web.Response:
    """Authenticate, decode, store, answer the ExportLogsServiceResponse after the fsync."""
    intake = await receive(request, PROTOCOL)
    content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
    with decoding(request, intake):
        logs = decode_logs(
            intake.body, content_type, intake.received_ns, max_events=get_state(request).config.http.max_batch_events
        )
    await store(request, intake, logs.events, refused=len(logs.refused), cause=RECORD_CAUSE)
    return web.Response(body=encode_response(logs, content_type), content_type=response_type(content_type))


def render_error(request: web.Request, failure: Failure) -> web.Response:
    """A google.rpc.Status, protobuf for a protobuf request and JSON otherwise."""
    content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
    body = encode_status(failure.status, failure.message, content_type)
    return web.Response(status=failure.status, body=body, content_type=response_type(content_type))


def register(app: web.Application) -> None:
    resource = app.router.add_resource(ROUTE)
    resource.add_route(hdrs.METH_POST, export)
    render_errors_with(app, resource, render_error)
