"""`POST /loki/api/v1/push`: Promtail, Grafana Alloy, Vector and Fluent Bit `loki` pushes into the ingest path.

Answers as Loki does, so its clients behave as they would against Loki: 204 once the entries
are durable; 400 with a plain-text body naming the refused entries when some were refused
(the others are stored, and clients do not retry a 400, so nothing is stored twice); every
error a plain-text body with its status.  Loki's tenant header `X-Scope-OrgID`, when sent,
must name the key's organisation: the key decides where events go, the header may only agree.
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from logtraced.api.context import get_state
from logtraced.api.errors import Failure, render_errors_with
from logtraced.api.intake import decoding, receive, store
from logtraced.ingest.loki_push import decode_push, error_text

ROUTE: Final = "/loki/api/v1/push"
PROTOCOL: Final = "loki"
TENANT_HEADER: Final = "X-Scope-OrgID"
# Entries refused one by one are counted under this cause; the 400's text names the first.
ENTRY_CAUSE: Final = "invalid_entry"


async def push(request: web.Request) -> web.Response:
    """Authenticate (and match `X-Scope-OrgID`), decode, store, answer 204 after the fsync."""
    intake = await receive(request, PROTOCOL, org=request.headers.get(TENANT_HEADER) or None)
    config = get_state(request).config
    with decoding(request, intake):
        pushed = decode_push(
            intake.body,
            request.headers.get(hdrs.CONTENT_TYPE, ""),
            intake.received_ns,
            max_decompressed_bytes=config.http.max_body_bytes,
            max_events=config.http.max_batch_events,
        )
    await store(request, intake, pushed.events, refused=len(pushed.refused), cause=ENTRY_CAUSE)
    refused = error_text(pushed)
    if refused is None:
        return web.Response(status=204)
    return web.Response(status=400, text=refused, content_type="text/plain")


def render_error(request: web.Request, failure: Failure) -> web.Response:
    """Loki's errors are plain text: the message and a newline."""
    return web.Response(status=failure.status, text=failure.message + "\n", content_type="text/plain")


def register(app: web.Application) -> None:
    resource = app.router.add_resource(ROUTE)
    resource.add_route(hdrs.METH_POST, push)
    render_errors_with(app, resource, render_error)
