"""Canonical events to the JSON documents `IndexWriter.add_json` takes, and stored documents back to events.

The writer process calls `encode_columns` once per WAL record and day.  Its only Python per
event is `capitalised_chunks` (one `lower()` for most messages): `map` builds the stored event
and one document struct per event from the columns, in C, and one `encode_lines` call encodes
them all; splitting that text is one more C call.

A document carries the event twice: its fields for the index (not stored), and the event's
msgpack in `schema.EVENT`, the one stored field (base64 in the JSON, as `add_json` takes bytes).
Partitions made before `schema.EVENT` stored the fields themselves; `projector` reads either.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from itertools import repeat
from typing import Any, Final

import msgspec
import tantivy

from logtraced.model import Event, EventColumns
from logtraced.storage.tantivy import schema

# In `Event`'s field order: documents are built positionally from `EventColumns`.
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
_CAPITALS: Final = (schema.MESSAGE_CAPITALS, str)
_STEMMED: Final = (schema.MESSAGE_STEMMED, str)
_EVENT: Final = (schema.EVENT, bytes)
# With index.capitals the message's capitalised chunks go too (partitions made before ignore them, as they
# ignore the stored event); with index.stemming the message again for its stems.  Keyed by (stemming, capitals).
_DOCUMENTS: Final = {
    (False, False): msgspec.defstruct("_Document", [*_FIELDS, _EVENT], gc=False),
    (False, True): msgspec.defstruct("_CapitalsDocument", [*_FIELDS, _EVENT, _CAPITALS], gc=False),
    (True, False): msgspec.defstruct("_StemmedDocument", [*_FIELDS, _EVENT, _STEMMED], gc=False),
    (True, True): msgspec.defstruct("_StemmedCapitalsDocument", [*_FIELDS, _EVENT, _STEMMED, _CAPITALS], gc=False),
}
_encode_lines: Final = msgspec.json.Encoder().encode_lines
_encode_event: Final = msgspec.msgpack.Encoder().encode
_decode_event: Final = msgspec.msgpack.Decoder(Event).decode


def encode_documents(events: Sequence[Event], *, stemming: bool, capitals: bool = True) -> list[str]:
    """The documents of a batch of events; each carries the event's id (given by the writer, `model.event_id`)."""
    return encode_columns(EventColumns.of_events(events), stemming=stemming, capitals=capitals)


def encode_columns(events: EventColumns, *, stemming: bool, capitals: bool = True) -> list[str]:
    """`encode_documents` for events as columns: what the writer process feeds to `add_json`.

    `add_json` takes text: the batch is encoded as JSON lines, decoded once and split on the
    newlines JSON never leaves unescaped inside a document.
    """
    columns = msgspec.structs.astuple(events)
    # Timestamp and id zeroed (one byte each): reads take both from the fast fields with the hit.
    stored = map(_encode_event, map(Event, repeat(0), *columns[1:-1]))
    copies = [events.message] * int(stemming) + [list(map(capitalised_chunks, events.message))] * int(capitals)
    documents = map(_DOCUMENTS[stemming, capitals], *columns, stored, *copies)
    lines = _encode_lines(documents).decode().split("\n")
    lines.pop()  # after the newline that ends the last document
    return lines


def capitalised_chunks(message: str) -> str:
    """The message's whitespace-separated chunks that lowercasing changes: what `schema.MESSAGE_CAPITALS` gets.

    Every word with capitals lies in one such chunk (no word spans whitespace), so the field's
    words hold them all, and some lowercase words beside them (`OrderService.retry` gives
    `retry` too), which only makes `compile.uncapitalised` say no more often.  Finding exactly
    the capitalised words took a regex tokenizer in the index, which cost ~4-8 µs an event (a
    third of indexing).  A message without capitals, the common case, costs one `lower()` here;
    tests/storage/tantivy/test_capitals.py checks every code point.
    """
    if not message.isascii():
        newer = _capitals_unknown_to_python()
        if newer is not None and newer.search(message):
            return message  # a capital `str.lower` leaves alone: every word goes in
    if message.lower() == message:
        return ""
    return " ".join([chunk for chunk in message.split() if chunk.lower() != chunk])


@cache
def _capitals_unknown_to_python() -> re.Pattern[str] | None:
    """Letters the index lowercases that this Python's Unicode tables do not know.

    The index's Unicode tables may be newer than Python's (tantivy's know capitals added since
    Unicode 14, such as U+1C89; Python 3.11's `str.lower` leaves them alone).  Asked of the index's analyzer
    itself, among the code points Python leaves unassigned in planes 0-1, where every script
    with capitals is; built once, on first use (~40 ms), in the writer process.
    """
    lowercased = schema.text_analyzer()
    as_written = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).build()

    def lowercases(text: str) -> bool:
        return lowercased.analyze(text) != as_written.analyze(text)

    unassigned = [chr(point) for point in range(0x20000) if unicodedata.category(chr(point)) == "Cn"]
    blocks = [unassigned[start : start + 512] for start in range(0, len(unassigned), 512)]
    found = [ord(letter) for block in blocks if lowercases(" ".join(block)) for letter in block if lowercases(letter)]
    if not found:
        return None
    runs = [[found[0], found[0]]]  # as ranges: `re` tests a few ranges much faster than many single letters
    for point in found[1:]:
        if point == runs[-1][1] + 1:
            runs[-1][1] = point
        else:
            runs.append([point, point])
    return re.compile("[" + "".join(f"{chr(first)}-{chr(last)}" for first, last in runs) + "]")


def event_from_document(doc: dict[str, list[Any]], identifier: int) -> Event:
    """The Event a stored document of separate fields came from (`Document.to_dict()`: every value is a list).

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


# A stored document, the event's timestamp and id (fast fields, read with the hit) -> the event.
Projector = Callable[[tantivy.Document, int, int], Event]


def projector(fields: frozenset[str] | None, *, whole: bool) -> Projector:
    """How to read the `fields` of a stored document into an Event (None: every field), decided once per read.

    Fields not asked for keep `Event`'s defaults.  A partition that stores events `whole`
    (`schema.stores_events`) decodes the whole event, which costs less than picking fields, and
    `trimmer` then lets go of the rest (analysis holds up to 100 000 rows).  Otherwise, as a search
    decodes up to 100 000 documents and working out per document which fields to read cost more than
    reading them, the field names are settled here, so reading a document is a few `get_first` calls.
    """
    if whole:
        if fields is None:
            return _stored_event
        trim = trimmer(fields)
        return lambda document, timestamp, identifier: trim(_stored_event(document, timestamp, identifier))
    if fields is None or schema.ATTRIBUTES in fields:
        return _whole if fields is None else _selected(fields)
    message = schema.MESSAGE in fields
    tags = schema.TAGS in fields
    labels = tuple(sorted(fields - {schema.TIMESTAMP, schema.MESSAGE, schema.TAGS}))

    def project(document: tantivy.Document, timestamp: int, identifier: int) -> Event:
        event = Event(timestamp, (document.get_first(schema.MESSAGE) or "") if message else "", id=identifier)
        for name in labels:
            value = document.get_first(name)
            if value is not None:
                setattr(event, name, value)
        if tags:
            event.tags = document.get_all(schema.TAGS)
        return event

    return project


def trimmer(fields: frozenset[str] | None) -> Callable[[Event], Event]:
    """What a row keeps of a whole event: the `fields` asked for, the others back to `Event`'s defaults."""
    dropped = [] if fields is None else [name for name in _TRIMMABLE if name not in fields]
    if not dropped:
        return _unchanged

    def trim(event: Event) -> Event:
        for name in dropped:
            setattr(event, name, [] if name == schema.TAGS else {} if name == schema.ATTRIBUTES else "")
        return event

    return trim


# Every Event field a projection may leave out: all but the timestamp and id, read with the hit.
_TRIMMABLE: Final = tuple(name for name in Event.__struct_fields__ if name not in (schema.TIMESTAMP, schema.ID))


def _unchanged(event: Event) -> Event:
    return event


def _stored_event(document: tantivy.Document, timestamp: int, identifier: int) -> Event:
    event = _decode_event(document.get_first(schema.EVENT) or b"")
    event.timestamp = timestamp
    event.id = identifier
    return event


def _whole(document: tantivy.Document, timestamp: int, identifier: int) -> Event:
    event = event_from_document(document.to_dict(), identifier)
    event.timestamp = timestamp
    return event


def _selected(fields: frozenset[str]) -> Projector:
    """Fields including the attributes: their JSON needs `event_from_document`'s date restoring."""
    names = tuple(fields)

    def project(document: tantivy.Document, timestamp: int, identifier: int) -> Event:
        event = event_from_document({name: document.get_all(name) for name in names}, identifier)
        event.timestamp = timestamp
        return event

    return project


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
