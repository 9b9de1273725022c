"""Sans-IO Elasticsearch `_bulk` dialect: NDJSON action/source pairs in, events and the bulk response out.

Filebeat, Logstash's elasticsearch output, Fluent Bit's `es` output, Vector and the official
clients all speak `_bulk`, so answering it lets them ship here unchanged.  A route reads the
(size-bounded, already gunzipped) body, calls `decode_bulk`, submits the events of the items
that have one, and answers with `encode_bulk_response`, whose per-item statuses let a shipper
retry only what failed.  Choices, where Elasticsearch itself would behave otherwise:

* Logs are append-only: `index` and `create` store the source; `delete` and `update` are
  answered per item with 400 `illegal_argument_exception` and store nothing (an `update`'s
  source line is consumed so the items after it stay paired).
* A bad line fails alone: an unreadable action line, an unknown action, a source that is not
  a JSON object, an action with no source left.  Elasticsearch would refuse the whole request
  for some of these; failing only the item keeps one broken record from blocking a batch.
  A line that cannot be read as an action takes the next line with it as its source, unless
  that line is itself a well-formed action (then it starts the next item); its reply item is
  keyed `index`, since it named no action that could be read.
* Blank lines are skipped.
* The index name (`_index` of the action, else the URL's `{index}`) is returned per item as
  `BulkItem.index`, not written into the event: routing owns `Event.index`.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec

from logtraced.events import TAG_JSON_PARSE_FAILURE, TAG_NOT_OBJECT, events_from_frame
from logtraced.ingest.rejection import TOO_MANY_EVENTS, UNSUPPORTED_CONTENT_TYPE, BodyRejected, media_type
from logtraced.model import Event

STORED_ACTIONS: Final = frozenset({"index", "create"})
REFUSED_ACTIONS: Final = frozenset({"delete", "update"})
# Actions followed by a source line in the bulk format.
_WITH_SOURCE: Final = frozenset({"index", "create", "update"})
_KNOWN_ACTIONS: Final = "create, delete, index, update"

# Filebeat and Logstash send application/json, Fluent Bit application/x-ndjson, the official
# clients the vendor types with a `compatible-with` parameter (dropped by `media_type`).
CONTENT_TYPES: Final = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/json",
        "application/vnd.elasticsearch+x-ndjson",
        "application/vnd.elasticsearch+json",
    }
)

# What `GET /` reports: an 8.x cluster, the version line Filebeat and Logstash check.
VERSION_NUMBER: Final = "8.17.0"
LUCENE_VERSION: Final = "9.12.0"
MINIMUM_WIRE_VERSION: Final = "7.17.0"
MINIMUM_INDEX_VERSION: Final = "7.0.0"
CLUSTER_NAME: Final = "logtraced"

ILLEGAL_ARGUMENT: Final = "illegal_argument_exception"
DOCUMENT_PARSING: Final = "document_parsing_exception"
VALIDATION: Final = "action_request_validation_exception"
MEDIA_TYPE: Final = "media_type_header_exception"

_DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError)


class ItemError(msgspec.Struct, frozen=True):
    """Why one bulk item was refused, as Elasticsearch reports it (`status`, `error.type`, `error.reason`)."""

    status: int
    type: str
    reason: str


class BulkItem(msgspec.Struct):
    """One action of a bulk body, in request order; exactly one of `event` and `error` is set.

    `action` is the action's name as sent (the response keys the item by it); `index` the
    target index name ("" when neither the action nor the URL names one); `id` the action's
    `_id` if it gave one.
    """

    action: str
    index: str
    id: str | None
    event: Event | None = None
    error: ItemError | None = None


def accepts(content_type: str) -> bool:
    """Whether a Content-Type header value is one the bulk endpoint reads."""
    return media_type(content_type) in CONTENT_TYPES


def decode_bulk(
    body: bytes,
    content_type: str,
    received_ns: int,
    *,
    default_index: str = "",
    max_items: int,
) -> list[BulkItem]:
    """Every item of a bulk body, each with its event or its error; raises BodyRejected only for the whole body.

    `default_index` is the URL's `{index}` (`POST /{index}/_bulk`).  Whole-body causes:
    `unsupported_content_type` (406, as Elasticsearch answers) and `too_many_events`.
    """
    if not accepts(content_type):
        raise BodyRejected(
            UNSUPPORTED_CONTENT_TYPE,
            f"Content-Type header [{media_type(content_type)}] is not supported",
            status=406,
        )
    lines = [line for line in body.split(b"\n") if line.strip()]
    items: list[BulkItem] = []
    position = 0
    while position < len(lines):
        if len(items) == max_items:
            raise BodyRejected(TOO_MANY_EVENTS, f"more than {max_items} actions in one request; split the batch")
        item, position = _next_item(lines, position, default_index, received_ns)
        items.append(item)
    return items


def _next_item(lines: list[bytes], position: int, default_index: str, received_ns: int) -> tuple[BulkItem, int]:
    """The item starting at `lines[position]`, and where the next one starts."""
    line_number = position + 1
    action = _read_action(lines[position])
    if isinstance(action, ItemError):
        has_source = position + 1 < len(lines) and not isinstance(_read_action(lines[position + 1]), tuple)
        return BulkItem("index", default_index, None, error=action), position + (2 if has_source else 1)
    name, metadata = action
    index = metadata.get("_index", default_index)
    raw_id = metadata.get("_id")
    item = BulkItem(name, index if isinstance(index, str) else "", raw_id if isinstance(raw_id, str) else None)
    source_at = position + 1 if name in _WITH_SOURCE else None
    after = position + 1 if source_at is None else position + 2
    problem = _metadata_problem(name, metadata, default_index, line_number)
    if problem is None and source_at is not None and source_at >= len(lines):
        problem = ItemError(
            400, VALIDATION, f"Validation Failed: 1: the [{name}] action on line [{line_number}] has no source line;"
        )
    if problem is not None:
        item.error = problem
        return item, after
    if source_at is None or name not in STORED_ACTIONS:
        item.error = ItemError(
            400, ILLEGAL_ARGUMENT, f"[{name}] is not supported: logs are append-only, send index or create"
        )
        return item, after
    event_or_error = _read_source(lines[source_at], received_ns, source_at + 1)
    if isinstance(event_or_error, ItemError):
        item.error = event_or_error
    else:
        item.event = event_or_error
    return item, after


def _read_action(line: bytes) -> tuple[str, dict[str, Any]] | ItemError:
    """(action name, metadata object) of an action line, or why it is not one."""
    try:
        value = msgspec.json.decode(line)
    except _DECODE_ERRORS:
        return ItemError(400, ILLEGAL_ARGUMENT, "Malformed action/metadata line: not valid JSON")
    if type(value) is not dict or len(value) != 1:
        return ItemError(400, ILLEGAL_ARGUMENT, "Malformed action/metadata line: expected an object with one action")
    ((name, metadata),) = value.items()
    if name not in STORED_ACTIONS and name not in REFUSED_ACTIONS:
        return ItemError(
            400,
            ILLEGAL_ARGUMENT,
            f"Malformed action/metadata line: expected one of [{_KNOWN_ACTIONS}] but found [{name}]",
        )
    if type(metadata) is not dict:
        return ItemError(400, ILLEGAL_ARGUMENT, f"Malformed action/metadata line: [{name}] must hold an object")
    return name, metadata


def _metadata_problem(name: str, metadata: dict[str, Any], default_index: str, line_number: int) -> ItemError | None:
    """What is wrong with a well-formed action's metadata: the index must be named, names and ids be strings."""
    index = metadata.get("_index", default_index)
    if not isinstance(index, str):
        return ItemError(400, ILLEGAL_ARGUMENT, f"[_index] on line [{line_number}] must be a string")
    if not index:
        return ItemError(400, VALIDATION, "Validation Failed: 1: index is missing;")
    raw_id = metadata.get("_id")
    if raw_id is not None and not isinstance(raw_id, str):
        return ItemError(400, ILLEGAL_ARGUMENT, f"[_id] on line [{line_number}] must be a string")
    return None


def _read_source(line: bytes, received_ns: int, line_number: int) -> Event | ItemError:
    """The event of a source line, normalised as every JSON shipper's document is, or why it has none."""
    if line.lstrip()[:1] != b"{":
        return ItemError(
            400, DOCUMENT_PARSING, f"failed to parse the source on line [{line_number}]: not a JSON object"
        )
    events = events_from_frame(line, received_ns)
    if len(events) != 1 or TAG_JSON_PARSE_FAILURE in events[0].tags or TAG_NOT_OBJECT in events[0].tags:
        return ItemError(400, DOCUMENT_PARSING, f"failed to parse the source on line [{line_number}]: malformed JSON")
    return events[0]


def document_ids() -> Callable[[], str]:
    """Ids like Elasticsearch's automatic ones (20 URL-safe characters) for one response's items sent without `_id`.

    A random prefix per response and a counter: unique without a system call per item.
    """
    prefix = secrets.token_urlsafe(9)
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter):08x}"


# A created item, rendered by formatting: the bulk reply is on every shipper's hot path.
_CREATED: Final = (
    b'{"%s":{"_index":%s,"_id":%s,"_version":1,"result":"created",'
    b'"_shards":{"total":1,"successful":1,"failed":0},"_seq_no":%d,"_primary_term":1,"status":201}}'
)


def encode_bulk_response(items: Sequence[BulkItem], took_ms: int, *, new_id: Callable[[], str] | None = None) -> bytes:
    """The `_bulk` response body: one item per action, in request order, keyed by the action's name.

    Call it only once the accepted events are durable: every item with an event is reported
    `created` (201).  Compact JSON, because Fluent Bit falls back to searching the text for
    `"errors":false,"items":[` when it cannot parse the body.
    """
    next_id = new_id or document_ids()
    encode = msgspec.json.encode
    indexes: dict[str, bytes] = {}
    rendered: list[bytes] = []
    seq_no = 0
    for item in items:
        if item.error is None:
            index = indexes.get(item.index) or indexes.setdefault(item.index, encode(item.index))
            # Action names are one of the fixed STORED_ACTIONS, safe to format unquoted-escaped.
            rendered.append(_CREATED % (item.action.encode(), index, encode(item.id or next_id()), seq_no))
            seq_no += 1
        else:
            rendered.append(encode({item.action: _failed(item, item.error)}))
    errors = b"true" if any(item.error is not None for item in items) else b"false"
    return b'{"took":%d,"errors":%s,"items":[%s]}' % (took_ms, errors, b",".join(rendered))


def _failed(item: BulkItem, error: ItemError) -> dict[str, Any]:
    return {
        "_index": item.index,
        "_id": item.id,
        "status": error.status,
        "error": {"type": error.type, "reason": error.reason, "index": item.index},
    }


def error_body(status: int, error_type: str, reason: str) -> bytes:
    """An Elasticsearch error response: `{"error":{"root_cause":[..],"type":..,"reason":..},"status":N}`."""
    cause = {"type": error_type, "reason": reason}
    return msgspec.json.encode({"error": {"root_cause": [cause], **cause}, "status": status})


def rejection_body(rejected: BodyRejected) -> bytes:
    """The Elasticsearch error for a whole refused body, typed as Elasticsearch types that failure."""
    error_type = MEDIA_TYPE if rejected.cause == UNSUPPORTED_CONTENT_TYPE else ILLEGAL_ARGUMENT
    return error_body(rejected.http_status, error_type, rejected.message)


def banner(node_name: str, cluster_uuid: str) -> bytes:
    """`GET /`: what an 8.x node answers, so Filebeat, Logstash and the clients accept this server."""
    return msgspec.json.encode(
        {
            "name": node_name,
            "cluster_name": CLUSTER_NAME,
            "cluster_uuid": cluster_uuid,
            "version": {
                "number": VERSION_NUMBER,
                "build_flavor": "default",
                "build_type": "tar",
                "build_hash": "logtraced",
                "build_date": "2024-12-11T12:08:05.663969764Z",
                "build_snapshot": False,
                "lucene_version": LUCENE_VERSION,
                "minimum_wire_compatibility_version": MINIMUM_WIRE_VERSION,
                "minimum_index_compatibility_version": MINIMUM_INDEX_VERSION,
            },
            "tagline": "You Know, for Search",
        }
    )


def license_body(cluster_uuid: str) -> bytes:
    """`GET /_license`: an active basic licence, which Logstash's output checks before it ships."""
    return msgspec.json.encode(
        {
            "license": {
                "status": "active",
                "uid": cluster_uuid,
                "type": "basic",
                "issue_date": "2024-01-01T00:00:00.000Z",
                "issue_date_in_millis": 1704067200000,
                "max_nodes": 1000,
                "max_resource_units": None,
                "issued_to": CLUSTER_NAME,
                "issuer": "elasticsearch",
                "start_date_in_millis": -1,
            }
        }
    )


def cluster_health_body() -> bytes:
    """`GET /_cluster/health`: one green node, so health-gated shippers start sending."""
    return msgspec.json.encode(
        {
            "cluster_name": CLUSTER_NAME,
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": 0,
            "active_shards": 0,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        }
    )
