"""Documents for a real Tantivy partition: every event indexes and reads back as the same Event, with its id.

Partitions made before the stored event (`schema.EVENT`) stored each field on its own; they are
still read, so both layouts are tested.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
import tantivy

from logtraced.events import MAX_NESTING, events_from_frame
from logtraced.model import Event, EventColumns, event_id
from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.documents import encode_columns, encode_documents, projector
from tests.test_events import I64_MAX, RECEIVED, logstash_ecs, nested


@pytest.fixture
def index() -> tantivy.Index:
    built = tantivy.Index(schema.build_schema(stemming=False))
    schema.register_tokenizers(built)
    return built


def separate_fields_schema() -> tantivy.Schema:
    """The layout partitions had before the stored event: every field stored on its own."""
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field(schema.TIMESTAMP, stored=True, indexed=False, fast=True)
    builder.add_text_field(schema.MESSAGE, stored=True, tokenizer_name=schema.MESSAGE_TOKENIZER)
    for name in (*schema.RAW_FIELDS, schema.TAGS):
        builder.add_text_field(name, stored=True, fast=True, tokenizer_name=schema.RAW_TOKENIZER, index_option="basic")
    builder.add_json_field(schema.ATTRIBUTES, stored=True, fast=True, tokenizer_name=schema.MESSAGE_TOKENIZER)
    builder.add_integer_field(schema.ID, stored=False, indexed=False, fast=True)
    return builder.build()


@pytest.fixture
def separate_fields_index() -> tantivy.Index:
    built = tantivy.Index(separate_fields_schema())
    schema.register_tokenizers(built)
    return built


def stored(index: tantivy.Index, events: list[Event]) -> Iterator[Event]:
    """Index the events' documents and read every stored document back, in insertion order, as searches do."""
    writer = index.writer(15_000_000, 1)
    for document in encode_documents(with_ids(events), stemming=False):
        writer.add_json(document)
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    hits = searcher.search(tantivy.Query.all_query(), len(events) + 1).hits
    addresses = sorted((address for _, address in hits), key=lambda a: (a.segment_ord, a.doc))
    ids = searcher.fast_field_values(schema.ID, addresses)
    stamps = searcher.fast_field_values(schema.TIMESTAMP, addresses)
    read = projector(None, whole=schema.stores_events(index.schema))
    return (read(searcher.doc(a), int(t or 0), int(i or 0)) for a, t, i in zip(addresses, stamps, ids, strict=True))


def with_ids(events: list[Event]) -> list[Event]:
    """The events as stored from WAL record 7: each carries the id of its position."""
    return [msgspec.structs.replace(event, id=event_id(7, n)) for n, event in enumerate(events)]


ROUND_TRIPS = [
    pytest.param(logstash_ecs()[1], id="logstash"),
    pytest.param(Event(0, ""), id="empty"),
    pytest.param(
        Event(
            -1_500_000_000,
            "Ошибка подключения к базе данных: timeout\nsecond line \x00 nul",
            level="error",
            service="billing",
            host="db-1",
            env="production",
            org="acme",
            index="audit",
            tags=["_jsonparsefailure", "_truncated"],
        ),
        id="text-tenancy-tags",
    ),
    pytest.param(
        Event(
            I64_MAX,
            "m",
            attributes={
                "int": 200,
                "negative": -5,
                "i64_max": I64_MAX,
                "u64_max": 2**64 - 1,
                "float": 12.5,
                "integral_float": 2.0,
                "bool": True,
                "null": None,
                "text": "not a date",
                "list": [1, "two", 3.5, None, [4, {"five": 5}]],
                "object": {"a": {"b": {"c": [1, 2]}}},
                "empty_object": {},
                "empty_list": [],
                "dotted.key": "kept literally",
                "": "empty key",
                "@version": "1",
            },
        ),
        id="attributes",
    ),
    pytest.param(Event(1, "deep", attributes=nested(MAX_NESTING)), id="deepest-accepted"),
]


class TestIndexDocument:
    """The document indexes into a real partition and reads back as the same Event."""

    def test_fields_are_the_schema_fields(self) -> None:
        [text] = encode_documents([Event(1, "m", id=event_id(9, 0))], stemming=False)
        document = msgspec.json.decode(text)
        assert set(document) == {
            schema.TIMESTAMP,
            schema.MESSAGE,
            schema.LEVEL,
            schema.SERVICE,
            schema.HOST,
            schema.ENV,
            schema.ORG,
            schema.INDEX,
            schema.TAGS,
            schema.ATTRIBUTES,
            schema.ID,
            schema.MESSAGE_CAPITALS,
            schema.EVENT,
        }
        assert document[schema.ID] == event_id(9, 0)

    def test_the_stored_event_is_the_events_msgpack_without_timestamp_and_id(self) -> None:
        event = Event(5, "m", "error", "api", "web-1", "production", "acme", "audit", ["t"], {"k": [1.5]}, 9)
        [text] = encode_documents([event], stemming=False)
        stored_event = msgspec.json.decode(msgspec.json.encode(msgspec.json.decode(text)[schema.EVENT]), type=bytes)
        decoded = msgspec.msgpack.decode(stored_event, type=Event)
        assert decoded == msgspec.structs.replace(event, timestamp=0, id=0)

    def test_stemmed_copy_of_the_message(self) -> None:
        [text] = encode_documents([Event(1, "ошибки")], stemming=True)
        assert msgspec.json.decode(text)[schema.MESSAGE_STEMMED] == "ошибки"

    @pytest.mark.parametrize("capitals", [False, True])
    @pytest.mark.parametrize("stemming", [False, True])
    def test_every_value_lands_in_its_field(self, stemming: bool, capitals: bool) -> None:
        """Documents are built positionally from columns: each schema field gets the Event field of its name."""
        message = "Disk sdb full"
        event = Event(
            1, message, "error", "api", "web-1", "production", "acme", "audit", ["t"], {"k": "v"}, event_id(2, 3)
        )
        [text] = encode_columns(EventColumns.of_events([event]), stemming=stemming, capitals=capitals)
        expected = msgspec.structs.asdict(event) | ({schema.MESSAGE_CAPITALS: "Disk"} if capitals else {})
        expected |= {schema.MESSAGE_STEMMED: message} if stemming else {}
        document = msgspec.json.decode(text)
        del document[schema.EVENT]
        assert document == expected

    def test_columns_and_events_give_the_same_documents(self) -> None:
        events = with_ids([logstash_ecs()[1], Event(0, 'line\nbreak \u2028 "quoted"', tags=["a"]), Event(2, "")])
        documents = encode_documents(events, stemming=False)
        assert encode_columns(EventColumns.of_events(events), stemming=False) == documents
        assert [msgspec.json.decode(text)[schema.MESSAGE] for text in documents] == [event.message for event in events]

    def test_no_events_no_documents(self) -> None:
        assert encode_documents([], stemming=True) == []

    def test_documents_carry_the_event_ids(self) -> None:
        events = [Event(2, "x", tags=["t"], attributes={"n": 1}, id=event_id(3, 1)), Event(1, "y", id=event_id(4, 0))]
        documents = [msgspec.json.decode(text) for text in encode_documents(events, stemming=False)]
        assert [document[schema.ID] for document in documents] == [event_id(3, 1), event_id(4, 0)]

    @pytest.mark.parametrize("event", ROUND_TRIPS)
    def test_round_trip(self, index: tantivy.Index, event: Event) -> None:
        assert list(stored(index, [event])) == with_ids([event])

    @pytest.mark.parametrize("event", ROUND_TRIPS)
    def test_round_trip_through_separate_fields(self, separate_fields_index: tantivy.Index, event: Event) -> None:
        """A partition made before the stored event takes today's documents and reads them back the same."""
        assert list(stored(separate_fields_index, [event])) == with_ids([event])

    def test_frame_round_trip(self, index: tantivy.Index) -> None:
        frame = b'{"@timestamp":"2024-06-10T06:13:20.123456789Z","message":"m","n":[1,{"x":2.5}]}'
        events = events_from_frame(frame, RECEIVED)
        assert list(stored(index, events)) == with_ids(events)

    @pytest.mark.parametrize(
        "sent",
        [
            "2024-06-10T06:13:20Z",
            "2024-06-10T08:13:20.5+02:00",
            "2024-06-10T06:13:20.123456789Z",
            "2024-06-10 06:13:20",
        ],
    )
    def test_date_like_attribute_reads_back_as_sent(self, index: tantivy.Index, sent: str) -> None:
        [read] = stored(index, [Event(1, "m", attributes={"when": [sent]})])
        assert read.attributes == {"when": [sent]}

    @pytest.mark.parametrize(
        ("sent", "read_back"),
        [
            ("2024-06-10T06:13:20Z", "2024-06-10T06:13:20Z"),
            ("2024-06-10T06:13:20.123Z", "2024-06-10T06:13:20.123Z"),
            ("2024-06-10T06:13:20.123456Z", "2024-06-10T06:13:20.123456Z"),
            ("2024-06-10T08:13:20.5+02:00", "2024-06-10T06:13:20.500Z"),
            ("2024-06-10T06:13:20.123456789Z", "2024-06-10T06:13:20.123456Z"),
            ("2024-06-10 06:13:20", "2024-06-10 06:13:20"),
        ],
    )
    def test_date_like_attribute_in_separate_fields_reads_back_as_utc_text(
        self, separate_fields_index: tantivy.Index, sent: str, read_back: str
    ) -> None:
        """tantivy's JSON field turns RFC 3339 strings into dates; the reader gives them back as UTC text."""
        [read] = stored(separate_fields_index, [Event(1, "m", attributes={"when": [sent]})])
        assert read.attributes == {"when": [read_back]}


class TestProjection:
    """What a read of some fields gives, in either layout."""

    EVENT = Event(5, "m", "error", "api", "web-1", "production", "acme", "", ["t"], {"k": "v"})

    def _read(self, index: tantivy.Index, fields: frozenset[str] | None) -> Event:
        writer = index.writer(15_000_000, 1)
        [document] = encode_documents([self.EVENT], stemming=False)
        writer.add_json(document)
        writer.commit()
        index.reload()
        searcher = index.searcher()
        [(_, address)] = searcher.search(tantivy.Query.all_query(), 1).hits
        return projector(fields, whole=schema.stores_events(index.schema))(searcher.doc(address), 5, 7)

    def test_separate_fields_read_only_the_fields_asked_for(self, separate_fields_index: tantivy.Index) -> None:
        read = self._read(separate_fields_index, frozenset({"timestamp", "message", "level", "tags"}))
        assert read == Event(5, "m", "error", tags=["t"], id=7)

    def test_a_stored_event_keeps_only_the_fields_asked_for(self, index: tantivy.Index) -> None:
        read = self._read(index, frozenset({"timestamp", "message", "level", "tags"}))
        assert read == Event(5, "m", "error", tags=["t"], id=7)

    def test_a_stored_event_is_read_whole_when_every_field_is_asked_for(self, index: tantivy.Index) -> None:
        assert self._read(index, None) == msgspec.structs.replace(self.EVENT, id=7)
