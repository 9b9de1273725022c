"""The one place where index field names, their types and tokenizers are defined.

Everything that writes or reads a Tantivy partition takes field names from here, so the
document layout can change in one module.  A document is the JSON object produced by
`documents.encode_documents` and fed verbatim to `IndexWriter.add_json`.
"""

from __future__ import annotations

from typing import Any, Final

import tantivy

# Field names of an indexed document.
TIMESTAMP = "timestamp"  # i64 fast+stored: nanoseconds since the Unix epoch, UTC
MESSAGE = "message"  # full text, Unicode word tokens, lowercased
MESSAGE_STEMMED = "message_stemmed"  # same text, Russian+English stems; only when configured
# The words of the message's chunks (between whitespace) that have capitals, lowercased, not stored: every
# word that has capitals and some beside it (`documents.capitalised_chunks`).  Where none contains a
# lowercase word piece, the lowercased index answers a case-sensitive `$contains` of it exactly (compile.py).
MESSAGE_CAPITALS = "message_capitals"
LEVEL = "level"  # raw, canonical lowercase: trace/debug/info/warn/error/fatal (or as sent)
SERVICE = "service"
HOST = "host"
ENV = "env"
ORG = "org"
INDEX = "index"  # named index the event was routed to ("" = the default index)
TAGS = "tags"  # raw, multi-valued: _jsonparsefailure, _truncated, shipper tags
ATTRIBUTES = "attributes"  # JSON: every other field, nested as sent, numbers stay numbers
ID = "id"  # i64 fast: the event's unique id (model.event_id: WAL sequence and position), the tie-breaker
# bytes stored: the whole event as the WAL holds it (msgpack), timestamp and id zeroed (both are fast fields).
# Partitions made before it stored each field on its own; `has_field(schema, EVENT, b"")` tells them apart.
EVENT = "event"
RAW_FIELDS = (LEVEL, SERVICE, HOST, ENV, ORG, INDEX)
# Fields offered as stream labels (the labels API and query_range's `stream`), in this order.
LABEL_FIELDS = (SERVICE, LEVEL, ENV, HOST, INDEX)

MESSAGE_TOKENIZER = "lt_text"
STEMMED_TOKENIZER = "lt_text_stem"
# The capitals field's words: `text_analyzer` since 2026-12 (partitions made before found the capitalised
# words with a regex tokenizer, which cost a third of indexing, and are read the same way).
CAPITALS_TOKENIZER = "lt_capitals"
RAW_TOKENIZER = "raw"
TEXT_MAX_TOKEN_CHARS = 100
# Stored documents are lz4-compressed in blocks (the only codec this tantivy build has); 64 KiB blocks
# cut the store by 11% against the default 16 KiB (256 KiB: 15%) while a fetch still decompresses
# little.  Measured on 100k bench/query.py events.
DOCSTORE_BLOCK_BYTES: Final = 65_536


def text_analyzer() -> tantivy.TextAnalyzer:
    """Words split on non-alphanumerics (Unicode-aware, so Cyrillic works), lowercased."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(TEXT_MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .build()
    )


def stemmed_analyzer() -> tantivy.TextAnalyzer:
    """Russian then English stems: each stemmer leaves the other alphabet's words untouched."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(TEXT_MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stemmer("russian"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def build_schema(*, stemming: bool, capitals: bool = True) -> tantivy.Schema:
    """The schema of one day-partition; `stemming` adds the message's stems, `capitals` its capitalised words.

    Only what a query reads is kept.  Timestamp and id are compared by range only, which tantivy
    answers from the fast field, so they have no inverted index (each was ~8 bytes per event of
    unique terms).  Keyword fields hold one raw token per value and are never phrase-matched, so
    they record document ids only, no positions.

    The stored document is one field, the event's msgpack (`EVENT`): reading a row back is then one
    value out of tantivy and one msgpack decode (~3.5 µs), where a document of separate stored fields
    cost ~22 µs (`Searcher.doc`, `Document.to_dict` and rebuilding the Event from its lists), and the
    attributes come back exactly as sent (tantivy's JSON field turns RFC 3339 strings into dates).
    """
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field(TIMESTAMP, stored=False, indexed=False, fast=True)
    builder.add_text_field(MESSAGE, stored=False, tokenizer_name=MESSAGE_TOKENIZER)
    if stemming:
        builder.add_text_field(MESSAGE_STEMMED, stored=False, tokenizer_name=STEMMED_TOKENIZER)
    if capitals:
        builder.add_text_field(MESSAGE_CAPITALS, stored=False, tokenizer_name=CAPITALS_TOKENIZER, index_option="basic")
    for name in RAW_FIELDS:
        builder.add_text_field(name, stored=False, fast=True, tokenizer_name=RAW_TOKENIZER, index_option="basic")
    builder.add_text_field(TAGS, stored=False, fast=True, tokenizer_name=RAW_TOKENIZER, index_option="basic")
    builder.add_json_field(
        ATTRIBUTES, stored=False, fast=True, tokenizer_name=MESSAGE_TOKENIZER, expand_dots_enabled=True
    )
    builder.add_integer_field(ID, stored=False, indexed=False, fast=True)
    builder.add_bytes_field(EVENT, stored=True, indexed=False, fast=False)
    return builder.build()


def tune_meta(meta: dict[str, Any]) -> None:
    """Settings tantivy keeps in meta.json that its Python binding cannot set: applied before the first write.

    Field norms serve BM25 scoring, and every read here orders by timestamp: one byte per event per
    text field saved.  The docstore block size trades store bytes against bytes decompressed per fetch.
    """
    meta["index_settings"]["docstore_blocksize"] = DOCSTORE_BLOCK_BYTES
    for field in meta["schema"]:
        options = field["options"]
        if isinstance(options.get("indexing"), dict):
            options["indexing"]["fieldnorms"] = False
        if "fieldnorms" in options:
            options["fieldnorms"] = False


def has_field(index_schema: tantivy.Schema, name: str, probe: str | bytes = "") -> bool:
    """tantivy-py offers no schema introspection; building a term query on an absent field raises.

    `probe` is a value of the field's type (a bytes field refuses a string as it would a missing field).
    """
    try:
        tantivy.Query.term_query(index_schema, name, probe)
    except ValueError:
        return False
    return True


def stores_events(index_schema: tantivy.Schema) -> bool:
    """Whether the partition stores each event whole in `EVENT` (those made before stored field by field)."""
    return has_field(index_schema, EVENT, b"")


def fast_value_analyzer() -> tantivy.TextAnalyzer:
    """Attribute strings in the columnar store: the whole value as sent (label values keep their case).

    tantivy looks the fast-field normaliser up under the field's tokenizer name, so it has to be
    registered under MESSAGE_TOKENIZER too.
    """
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw()).build()


def register_tokenizers(index: tantivy.Index) -> None:
    """Every opened index needs our analyzers registered before it is written or searched."""
    index.register_tokenizer(MESSAGE_TOKENIZER, text_analyzer())
    index.register_tokenizer(STEMMED_TOKENIZER, stemmed_analyzer())
    index.register_tokenizer(CAPITALS_TOKENIZER, text_analyzer())
    index.register_fast_field_tokenizer(MESSAGE_TOKENIZER, fast_value_analyzer())
