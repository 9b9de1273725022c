"""Elasticsearch `_bulk`: bodies from the official client and from Fluent Bit and Filebeat, per-item errors, replies."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from elasticsearch import Elasticsearch, helpers
from elasticsearch.serializer import NdjsonSerializer

from logtraced.ingest import es_bulk
from logtraced.ingest.es_bulk import BulkItem, decode_bulk, encode_bulk_response
from logtraced.ingest.rejection import BodyRejected
from tests.ingest.capture_server import Captured, CaptureServer, Reply, capture_server

NOW = 1_700_000_000_000_000_000
NDJSON = "application/x-ndjson"


def decode(body: bytes, **kwargs: Any) -> list[BulkItem]:
    return decode_bulk(body, kwargs.pop("content_type", NDJSON), NOW, max_items=kwargs.pop("max_items", 1000), **kwargs)


def ndjson(*values: object) -> bytes:
    return b"".join(msgspec.json.encode(value) + b"\n" for value in values)


def fixed_ids() -> Iterator[str]:
    return (f"auto{n}" for n in range(1000))


def respond_as_cluster(request: Captured) -> Reply:
    """What the lead's routes will do, minus auth and durability: decode, then answer from the items."""
    headers = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}
    if request.method == "GET":
        return Reply(200, es_bulk.banner("node-1", "uuid-1"), headers)
    index = request.path.split("/_bulk")[0].strip("/")
    items = decode_bulk(request.body, request.headers["content-type"], NOW, default_index=index, max_items=1000)
    return Reply(200, encode_bulk_response(items, 3), headers)


@pytest.fixture
def cluster() -> Iterator[CaptureServer]:
    with capture_server(respond_as_cluster) as server:
        yield server


class TestOfficialClient:
    """The `elasticsearch` client's own action expansion and NDJSON serializer, over a real socket."""

    def test_helpers_bulk_lands_every_document_and_accepts_the_reply(self, cluster: CaptureServer) -> None:
        client = Elasticsearch(cluster.url)
        actions: list[dict[str, Any]] = [
            {"_index": "app-logs", "@timestamp": "2024-05-01T10:00:00.123Z", "message": "one", "log.level": "WARN"},
            {"_op_type": "create", "_index": "app-logs", "_id": "x1", "message": "two", "host": {"name": "web-1"}},
        ]
        ok, errors = helpers.bulk(client, actions)
        assert (ok, errors) == (2, [])
        items = decode(cluster.requests[-1].body, content_type=cluster.requests[-1].headers["content-type"])
        assert [item.action for item in items] == ["index", "create"]
        assert [item.index for item in items] == ["app-logs", "app-logs"]
        first, second = (item.event for item in items)
        assert first is not None and second is not None
        assert (first.message, first.level, first.timestamp) == ("one", "warn", 1_714_557_600_123_000_000)
        assert (second.message, second.host, second.timestamp, items[1].id) == ("two", "web-1", NOW, "x1")

    def test_per_item_errors_reach_the_client(self, cluster: CaptureServer) -> None:
        client = Elasticsearch(cluster.url)
        actions: list[dict[str, Any]] = [
            {"_index": "logs", "message": "kept"},
            {"_op_type": "delete", "_index": "logs", "_id": "7"},
            {"_op_type": "update", "_index": "logs", "_id": "8", "doc": {"message": "changed"}},
            {"_index": "logs", "message": "also kept"},
        ]
        results = list(helpers.streaming_bulk(client, actions, raise_on_error=False))
        assert [ok for ok, _ in results] == [True, False, False, True]
        delete_info = results[1][1]["delete"]
        assert delete_info["status"] == 400
        assert delete_info["_id"] == "7"
        assert delete_info["error"]["type"] == "illegal_argument_exception"

    def test_url_index_is_the_default(self, cluster: CaptureServer) -> None:
        client = Elasticsearch(cluster.url)
        client.bulk(index="from-url", operations=[{"index": {}}, {"message": "m"}])
        (item,) = decode(cluster.requests[-1].body, default_index="from-url")
        assert item.index == "from-url" and item.event is not None

    def test_serializer_and_expand_action_bytes(self) -> None:
        lines: list[Any] = []
        for document in ({"_index": "a", "message": "x"}, {"_op_type": "create", "_index": "b", "message": "y"}):
            action, source = helpers.expand_action(document)
            lines += [action, source]
        body = NdjsonSerializer().dumps(lines)
        items = decode(body)
        assert [(i.action, i.index, i.event and i.event.message) for i in items] == [
            ("index", "a", "x"),
            ("create", "b", "y"),
        ]

    def test_client_reads_the_banner(self, cluster: CaptureServer) -> None:
        info = Elasticsearch(cluster.url).info()
        assert info["version"]["number"].startswith("8.")
        assert info["tagline"] == "You Know, for Search"


class TestShippers:
    """Raw NDJSON exactly as Fluent Bit's `es` output and Filebeat write it."""

    def test_fluent_bit_create_with_type(self) -> None:
        body = (
            b'{"create":{"_index":"fluent-bit","_type":"_doc"}}\n'
            b'{"@timestamp":"2024-05-01T10:00:00.123Z","log":"GET /health 200","stream":"stdout"}\n'
            b'{"create":{"_index":"fluent-bit","_type":"_doc"}}\n'
            b'{"@timestamp":"2024-05-01T10:00:01.000Z","log":"second","stream":"stderr"}\n'
        )
        items = decode(body)
        events = [item.event for item in items]
        assert all(item.error is None for item in items)
        assert [e.message for e in events if e] == ["GET /health 200", "second"]
        assert [e.attributes for e in events if e] == [{"stream": "stdout"}, {"stream": "stderr"}]

    def test_filebeat_ecs_document(self) -> None:
        source = {
            "@timestamp": "2024-05-01T10:00:00.000Z",
            "message": "disk full",
            "log": {"level": "error", "file": {"path": "/var/log/app.log"}},
            "host": {"name": "db-2"},
            "agent": {"type": "filebeat", "version": "8.17.0"},
            "ecs": {"version": "8.0.0"},
            "tags": ["prod"],
        }
        (item,) = decode(ndjson({"create": {"_index": "filebeat-8.17.0"}}, source), content_type="application/json")
        event = item.event
        assert event is not None
        assert (event.message, event.level, event.host, event.tags) == ("disk full", "error", "db-2", ["prod"])
        assert event.attributes["log"] == {"file": {"path": "/var/log/app.log"}}
        assert item.index == "filebeat-8.17.0"

    def test_crlf_and_blank_lines(self) -> None:
        items = decode(b'\r\n{"index":{"_index":"a"}}\r\n\r\n{"message":"m"}\r\n')
        assert [item.event and item.event.message for item in items] == ["m"]


class TestBadLines:
    """A bad line fails alone; the items around it land."""

    def test_each_failure_is_its_own_item(self) -> None:
        body = b"\n".join(
            [
                b'{"index":{"_index":"a"}}',
                b'{"message":"ok 1"}',
                b'{"index":{"_index":"a"}}',
                b'{"message": broken',
                b'{"index":{"_index":"a"}}',
                b'["not", "an object"]',
                b"this is not an action",
                b'{"message":"source of the broken action"}',
                b'{"frobnicate":{"_index":"a"}}',
                b'{"message":"source of the unknown action"}',
                b'{"delete":{"_index":"a","_id":"1"}}',
                b'{"update":{"_index":"a","_id":"2"}}',
                b'{"doc":{"message":"x"}}',
                b'{"index":{}}',
                b'{"message":"no index anywhere"}',
                b'{"index":{"_index":5}}',
                b'{"message":"numeric index"}',
                b'{"index":{"_index":"a","_id":9}}',
                b'{"message":"numeric id"}',
                b'{"create":{"_index":"a"}}',
                b'{"message":"ok 2"}',
                b'{"index":{"_index":"a"}}',
            ]
        )
        items = decode(body)
        outcome = [
            (item.action, item.error.type if item.error else item.event and item.event.message) for item in items
        ]
        assert outcome == [
            ("index", "ok 1"),
            ("index", "document_parsing_exception"),
            ("index", "document_parsing_exception"),
            ("index", "illegal_argument_exception"),
            ("index", "illegal_argument_exception"),
            ("delete", "illegal_argument_exception"),
            ("update", "illegal_argument_exception"),
            ("index", "action_request_validation_exception"),
            ("index", "illegal_argument_exception"),
            ("index", "illegal_argument_exception"),
            ("create", "ok 2"),
            ("index", "action_request_validation_exception"),
        ]

    def test_broken_action_does_not_swallow_a_following_action(self) -> None:
        items = decode(b'{"index":\n{"index":{"_index":"a"}}\n{"message":"m"}\n')
        assert [item.error is None for item in items] == [False, True]

    def test_too_deep_source_is_an_item_error(self) -> None:
        deep = b'{"a":' * 150 + b"1" + b"}" * 150
        (item,) = decode(b'{"index":{"_index":"a"}}\n' + deep)
        assert item.error is not None and item.error.type == "document_parsing_exception"

    def test_wrong_content_type_is_406(self) -> None:
        with pytest.raises(BodyRejected) as caught:
            decode(b"", content_type="text/plain")
        assert (caught.value.cause, caught.value.http_status) == ("unsupported_content_type", 406)

    def test_vendor_content_type_with_compatibility_parameter(self) -> None:
        items = decode(
            ndjson({"index": {"_index": "a"}}, {"message": "m"}),
            content_type=("application/vnd.elasticsearch+x-ndjson; compatible-with=8"),
        )
        assert len(items) == 1 and items[0].event is not None

    def test_too_many_actions(self) -> None:
        body = ndjson(*[{"delete": {"_index": "a", "_id": str(n)}} for n in range(4)])
        assert len(decode(body, max_items=4)) == 4
        with pytest.raises(BodyRejected) as caught:
            decode(body, max_items=3)
        assert caught.value.cause == "too_many_events"

    def test_fuzz_never_raises(self) -> None:
        rng = random.Random(20240501)
        valid = ndjson({"index": {"_index": "a"}}, {"message": "m", "n": [1, 2]}, {"create": {}}, {"log": "x"})
        for _ in range(3000):
            if rng.random() < 0.5:
                body = rng.randbytes(rng.randrange(200))
            else:
                data = bytearray(valid)
                for _ in range(rng.randrange(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                body = bytes(data)
            items = decode(body)
            assert all((item.event is None) != (item.error is None) for item in items)
            encode_bulk_response(items, 1)


class TestResponse:
    """The reply has Elasticsearch's shape, one item per action in request order."""

    def test_success_shape(self) -> None:
        items = decode(
            ndjson({"create": {"_index": "fluent-bit"}}, {"log": "a"}, {"index": {"_index": "x", "_id": "i"}}, {"m": 1})
        )
        ids = fixed_ids()
        body = encode_bulk_response(items, 7, new_id=lambda: next(ids))
        assert body.startswith(b'{"took":7,"errors":false,"items":[')  # Fluent Bit's fallback text check
        assert msgspec.json.decode(body)["items"] == [
            {
                "create": {
                    "_index": "fluent-bit",
                    "_id": "auto0",
                    "_version": 1,
                    "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": 0,
                    "_primary_term": 1,
                    "status": 201,
                }
            },
            {
                "index": {
                    "_index": "x",
                    "_id": "i",
                    "_version": 1,
                    "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": 1,
                    "_primary_term": 1,
                    "status": 201,
                }
            },
        ]

    def test_error_shape(self) -> None:
        items = decode(ndjson({"index": {"_index": "a"}}, {"m": 1}, {"delete": {"_index": "a", "_id": "d"}}))
        response = msgspec.json.decode(encode_bulk_response(items, 1))
        assert response["errors"] is True
        failed = response["items"][1]["delete"]
        assert failed["_id"] == "d" and failed["status"] == 400
        assert failed["error"]["type"] == "illegal_argument_exception"
        assert "append-only" in failed["error"]["reason"]

    def test_automatic_ids_look_like_elasticsearch_ids(self) -> None:
        first, second = es_bulk.document_ids(), es_bulk.document_ids()
        ids = {first() for _ in range(100)} | {second() for _ in range(100)}
        assert len(ids) == 200 and all(len(i) == 20 for i in ids)

    def test_error_body(self) -> None:
        assert msgspec.json.decode(es_bulk.error_body(400, "parse_exception", "bad")) == {
            "error": {
                "root_cause": [{"type": "parse_exception", "reason": "bad"}],
                "type": "parse_exception",
                "reason": "bad",
            },
            "status": 400,
        }
        rejected = msgspec.json.decode(
            es_bulk.rejection_body(BodyRejected("unsupported_content_type", "no", status=406))
        )
        assert rejected["status"] == 406 and rejected["error"]["type"] == "media_type_header_exception"

    def test_banner_license_and_health(self) -> None:
        banner = msgspec.json.decode(es_bulk.banner("n", "u"))
        assert banner["cluster_uuid"] == "u" and banner["name"] == "n"
        version = banner["version"]
        assert version["number"].split(".")[0] == "8" and version["build_flavor"] == "default"
        assert {"lucene_version", "minimum_wire_compatibility_version", "minimum_index_compatibility_version"} <= set(
            version
        )
        licence = msgspec.json.decode(es_bulk.license_body("u"))["license"]
        assert (licence["type"], licence["status"]) == ("basic", "active")
        assert msgspec.json.decode(es_bulk.cluster_health_body())["status"] == "green"
