"""Canonical events to the JSON documents `IndexWriter.add_json` takes, and stored documents back to events.

The writer process calls `encode_documents` once per WAL record, so the per-call overhead is
paid once per batch and each event costs one struct and one C-level JSON encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from logtraced.model import Event
from logtraced.storage.tantivy import schema

_FIELDS: Final = [
    (schema.TIMESTAMP, int),
    (schema.MESSAGE, str),
    (schema.LEVEL, str),
    (schema.SERVICE, str),
    (schema.HOST, str),
    (schema.ENV, str),
    (schema.ORG, str),
    (schema.INDEX, str),
    (schema.TAGS, list[str]),
    (schema.ATTRIBUTES, dict[str, Any]),
    (schema.ID, int),
]
_Document: Final = msgspec.defstruct("_Document", _FIELDS, gc=False)
# Partitions made with index.stemming also analyse a second, stemmed copy of the message.
_StemmedDocument: Final = msgspec.defstruct("_StemmedDocument", [*_FIELDS, (schema.MESSAGE_STEMMED, str)], gc=False)
_encode: Final = msgspec.json.Encoder().encode


def encode_documents(events: Sequence[Event], *, stemming: bool) -> list[str]:
    """The documents of a batch of events; each carries the event's id (given by the writer, `model.event_id`).

    `add_json` takes text: the batch is decoded once and split on the newlines JSON never
    leaves unescaped inside a document.
    """
    return b"\n".join(_encoded(events, stemming)).decode().split("\n")


def _encoded(events: Sequence[Event], stemming: bool) -> list[bytes]:
    if stemming:
        stemmed = _StemmedDocument
        return [
            _encode(
                stemmed(
                    e.timestamp, e.message, e.level, e.service, e.host, e.env, e.org, e.index, e.tags,
                    e.attributes, e.id, e.message,
                )
            )
            for e in events
        ]  # fmt: skip
    document = _Document
    return [
        _encode(
            document(
                e.timestamp, e.message, e.level, e.service, e.host, e.env, e.org, e.index, e.tags,
                e.attributes, e.id,
            )
        )
        for e in events
    ]  # fmt: skip


def event_from_document(doc: dict[str, list[Any]], identifier: int) -> Event:
    """The Event a stored document came from (`Document.to_dict()`: every value is a list).

    The id is a fast field, not stored, so the caller reads it with the hit.  tantivy leaves out
    empty multi-valued fields and turns any attribute string that reads as an RFC 3339 date into
    a datetime; such values come back as UTC strings ending in Z.
    """

    def first(name: str, default: Any) -> Any:
        values = doc.get(name)
        return values[0] if values else default

    return Event(
        timestamp=first(schema.TIMESTAMP, 0),
        message=first(schema.MESSAGE, ""),
        level=first(schema.LEVEL, ""),
        service=first(schema.SERVICE, ""),
        host=first(schema.HOST, ""),
        env=first(schema.ENV, ""),
        org=first(schema.ORG, ""),
        index=first(schema.INDEX, ""),
        tags=list(doc.get(schema.TAGS, ())),
        attributes=_restore_dates(first(schema.ATTRIBUTES, {})),
        id=identifier,
    )


def _restore_dates(value: Any) -> Any:
    """Undo tantivy's date detection inside a stored JSON value (depth is bounded by the index)."""
    if type(value) is dict:
        return {key: _restore_dates(item) for key, item in value.items()}
    if type(value) is list:
        return [_restore_dates(item) for item in value]
    if isinstance(value, datetime):
        return _rfc3339(value)
    return value


def _rfc3339(moment: datetime) -> str:
    """UTC, with the shortest of 0, 3 or 6 fraction digits that is exact."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    micros = moment.microsecond
    if micros == 0:
        fraction = ""
    elif micros % 1000 == 0:
        fraction = f".{micros // 1000:03d}"
    else:
        fraction = f".{micros:06d}"
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}Z"
