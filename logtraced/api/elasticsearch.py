"""The Elasticsearch routes: `_bulk` into the ingest path, and the surrounding API shippers probe at start.

Filebeat, Logstash's elasticsearch output, Fluent Bit `es`, Vector and the official clients
ship here unchanged.  Before shipping they read the version banner (`GET /`), the licence,
the cluster health and `_xpack`, and install index templates, ILM policies and ingest
pipelines; logtraced has no use for those, so they are accepted and ignored: a PUT is
acknowledged and a GET or HEAD says the object exists, so no shipper retries or refuses to
start.  Every response carries `X-Elastic-Product: Elasticsearch`, without which the official
clients refuse a 2xx, and every error is Elasticsearch's error object.
"""

from __future__ import annotations

import base64
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgspec
from aiohttp import hdrs, web

from logtraced.api.authn import authenticate
from logtraced.api.context import get_state
from logtraced.api.errors import Failure, render_errors_under, render_errors_with
from logtraced.api.intake import decoding, receive, store
from logtraced.api.ui import PREFIX as CONSOLE_PREFIX
from logtraced.api.ui import wants_console
from logtraced.ingest.es_bulk import (
    ILLEGAL_ARGUMENT,
    MEDIA_TYPE,
    banner,
    cluster_health_body,
    decode_bulk,
    encode_bulk_response,
    error_body,
    license_body,
)
from logtraced.ingest.rejection import UNSUPPORTED_CONTENT_TYPE
from logtraced.model import Event

PROTOCOL: Final = "elasticsearch"
PRODUCT_HEADER: Final = "X-Elastic-Product"
PRODUCT: Final = "Elasticsearch"
BULK_ROUTES: Final = ("/_bulk", "/{index}/_bulk")
# Bulk items refused one by one are counted under this cause; the response names each one's reason.
ITEM_CAUSE: Final = "invalid_item"

# Elasticsearch's error type for each status logtraced answers with (the body's `type`).
_ERROR_TYPES: Final = {
    401: "security_exception",
    403: "security_exception",
    404: "resource_not_found_exception",
    406: MEDIA_TYPE,
    408: "timeout_exception",
    413: "content_too_long_exception",
    415: MEDIA_TYPE,
    429: "es_rejected_execution_exception",
    500: "exception",
    503: "unavailable_shards_exception",
}


def _ilm_policy(name: str) -> dict[str, Any]:
    return {name: {"version": 1, "policy": {"phases": {}}}}


def _index_template(name: str) -> dict[str, Any]:
    return {"index_templates": [{"name": name, "index_template": {"index_patterns": [f"{name}*"], "composed_of": []}}]}


def _component_template(name: str) -> dict[str, Any]:
    return {"component_templates": [{"name": name, "component_template": {"template": {}}}]}


def _legacy_template(name: str) -> dict[str, Any]:
    return {name: {"order": 0, "index_patterns": [f"{name}*"], "settings": {}, "mappings": {}, "aliases": {}}}


def _ingest_pipeline(name: str) -> dict[str, Any]:
    return {name: {"processors": []}}


# Set-up objects shippers install at start, each with what a GET of one that exists returns.
SETUP_OBJECTS: Final[dict[str, Callable[[str], dict[str, Any]]]] = {
    "/_index_template/{name}": _index_template,
    "/_component_template/{name}": _component_template,
    "/_template/{name}": _legacy_template,
    "/_ilm/policy/{name}": _ilm_policy,
    "/_ingest/pipeline/{name}": _ingest_pipeline,
}


def es_response(body: bytes, status: int = 200) -> web.Response:
    """A JSON response as Elasticsearch sends it, product header included."""
    return web.Response(status=status, body=body, content_type="application/json", headers={PRODUCT_HEADER: PRODUCT})


async def bulk(request: web.Request) -> web.Response:
    """`POST|PUT [/{index}]/_bulk`: store every item with a source, answer each item's status after the fsync."""
    started = time.monotonic()
    intake = await receive(request, PROTOCOL)
    config = get_state(request).config
    with decoding(request, intake):
        items = decode_bulk(
            intake.body,
            request.headers.get(hdrs.CONTENT_TYPE, ""),
            intake.received_ns,
            default_index=request.match_info.get("index", ""),
            max_items=config.http.max_batch_events,
        )
    events: list[Event] = []
    for item in items:
        if item.event is not None:
            # Routing rules and a document's own `index` field still win (pipeline._route).
            item.event.index = item.index
            events.append(item.event)
    await store(request, intake, events, refused=len(items) - len(events), cause=ITEM_CAUSE)
    return es_response(encode_bulk_response(items, int((time.monotonic() - started) * 1000)))


async def info(request: web.Request) -> web.Response:
    """`GET /` and `HEAD /`: the version banner of an 8.x node, which Filebeat and Logstash check first.

    A browser opening `/` is sent to the console instead (`ui.wants_console`).
    """
    if wants_console(request):
        raise web.HTTPFound(CONSOLE_PREFIX)
    await authenticate(request, scope=None, kind=None)
    return es_response(banner(socket.gethostname(), _cluster_uuid(request)))


async def license_info(request: web.Request) -> web.Response:
    await authenticate(request, scope=None, kind=None)
    return es_response(license_body(_cluster_uuid(request)))


async def cluster_health(request: web.Request) -> web.Response:
    await authenticate(request, scope=None, kind=None)
    return es_response(cluster_health_body())


async def xpack(request: web.Request) -> web.Response:
    """`GET /_xpack`: ILM available and enabled, which Beats and fluent-plugin-elasticsearch check before using it."""
    await authenticate(request, scope=None, kind=None)
    features = {name: {"available": True, "enabled": True} for name in ("ilm", "security", "monitoring")}
    body = {
        "build": {"hash": "logtraced", "date": "2024-12-11T12:08:05.663969764Z"},
        "license": {"uid": _cluster_uuid(request), "type": "basic", "mode": "basic", "status": "active"},
        "features": features,
        "tagline": "You know, for X",
    }
    return es_response(msgspec.json.encode(body))


def setup_object(describe: Callable[[str], dict[str, Any]]) -> Callable[[web.Request], Any]:
    """A handler for one kind of set-up object: PUT and POST acknowledged, GET and HEAD found; nothing is kept."""

    async def handle(request: web.Request) -> web.Response:
        await authenticate(request, scope=None, kind=None)
        if request.method in (hdrs.METH_PUT, hdrs.METH_POST):
            await request.read()  # bounded by client_max_size; read so the connection stays usable
            return es_response(b'{"acknowledged":true}')
        return es_response(msgspec.json.encode(describe(request.match_info["name"])))

    return handle


def _cluster_uuid(request: web.Request) -> str:
    """A cluster id stable for one data directory, in Elasticsearch's 22-character URL-safe form."""
    seed = uuid.uuid5(uuid.NAMESPACE_URL, f"logtraced:{get_state(request).config.data_path}")
    return base64.urlsafe_b64encode(seed.bytes).rstrip(b"=").decode()


def render_error(request: web.Request, failure: Failure) -> web.Response:
    """Elasticsearch's error object, typed as Elasticsearch types the failure."""
    error_type = _ERROR_TYPES.get(failure.status, ILLEGAL_ARGUMENT)
    if failure.code == UNSUPPORTED_CONTENT_TYPE:
        error_type = MEDIA_TYPE
    return es_response(error_body(failure.status, error_type, failure.message), failure.status)


def elasticsearch_api(request: web.Request) -> bool:
    """Whether a path no route has is Elasticsearch's: `/_<api>...`, or `/<index>/_<api>...` where the first
    segment is none of logtraced's own (`v1`, `api`, `loki`, ...); index names cannot begin with `_`."""
    segments = request.path.split("/")
    if segments[1].startswith("_"):
        return True
    if len(segments) < 3 or not segments[2].startswith("_"):
        return False
    own = {resource.canonical.split("/")[1] for resource in request.app.router.resources()}
    return segments[1] not in own


def register(app: web.Application) -> None:
    def add(path: str, handler: Callable[[web.Request], Any], *methods: str) -> None:
        resource = app.router.add_resource(path)
        for method in methods:
            resource.add_route(method, handler)
        render_errors_with(app, resource, render_error)

    for path in BULK_ROUTES:
        add(path, bulk, hdrs.METH_POST, hdrs.METH_PUT)
    add("/", info, hdrs.METH_GET, hdrs.METH_HEAD)
    add("/_license", license_info, hdrs.METH_GET)
    add("/_cluster/health", cluster_health, hdrs.METH_GET)
    add("/_xpack", xpack, hdrs.METH_GET)
    for path, describe in SETUP_OBJECTS.items():
        add(path, setup_object(describe), hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_PUT, hdrs.METH_POST)
    render_errors_under(app, elasticsearch_api, render_error)
