"""Elasticsearch `_bulk` and its surrounding API end to end: the official client, Fluent Bit and Filebeat bodies."""

from __future__ import annotations

import gzip
import json
import urllib.request
from typing import Any

import pytest
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    NotFoundError,
    helpers,
)

from tests.api.conftest import MAX_BODY_BYTES, Api, Key, marker
from tests.api.shippers import basic, declared_too_large, search
from tests.harness import wait_until

NDJSON = "application/x-ndjson"


def client(api: Api, **auth: Any) -> Elasticsearch:
    return Elasticsearch(api.daemon.url(""), request_timeout=30, **auth)


def ndjson(*lines: dict[str, Any] | str) -> bytes:
    return b"".join((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines)


def bulk(
    api: Api, key: Key, body: bytes, content_type: str = NDJSON, **headers: str
) -> tuple[int, dict[str, str], Any]:
    return api.request("POST", "/_bulk", raw=body, headers={**basic(key), "Content-Type": content_type, **headers})


class TestOfficialClient:
    """The `elasticsearch` package talks to the daemon as to an 8.x cluster: banner, product header, bulk helpers."""

    def test_helpers_bulk_with_basic_auth(self, api: Api, writer: Key) -> None:
        word = marker()
        es = client(api, basic_auth=("elastic", writer.secret))
        actions = [
            {
                "_index": "orders",
                "@timestamp": "2024-05-01T12:00:00.250Z",
                "message": f"order {i} placed {word}",
                "log.level": "warning",
                "service": {"name": "checkout"},
                "host": {"name": "web-1"},
                "order_id": i,
            }
            for i in range(50)
        ]
        assert helpers.bulk(es, actions) == (50, [])
        events = api.store.wait_for(50, tenant=writer.tenant, field="message", term=word)
        event = next(e for e in events if e.attributes["order_id"] == 7)
        assert event.timestamp == 1714564800250000000
        assert (event.index, event.level, event.service, event.host) == ("orders", "warn", "checkout", "web-1")
        assert event.message == f"order 7 placed {word}"
        found = search(api, writer, f'service:checkout AND level:warn AND order_id:7 AND message:"{word}"', 1)
        assert [log["attributes"]["order_id"] for log in found] == [7]

    def test_streaming_bulk_with_api_key_reports_each_item(self, api: Api, writer: Key) -> None:
        word = marker()
        es = client(api, api_key=("key-id", writer.secret))
        actions: list[dict[str, Any]] = [
            {"_index": "app", "_id": "a1", "message": f"first {word}"},
            {"_op_type": "delete", "_index": "app", "_id": "a1"},
            {"_op_type": "create", "_index": "app", "message": f"second {word}"},
        ]
        results = list(helpers.streaming_bulk(es, actions, raise_on_error=False))
        assert [ok for ok, _ in results] == [True, False, True]
        assert results[0][1]["index"]["_id"] == "a1" and results[0][1]["index"]["status"] == 201
        assert results[1][1]["delete"]["status"] == 400
        assert results[1][1]["delete"]["error"]["type"] == "illegal_argument_exception"
        assert len(api.store.wait_for(2, tenant=writer.tenant, field="message", term=word)) == 2

    def test_plain_api_key_and_the_surrounding_api(self, api: Api, writer: Key) -> None:
        es = client(api, api_key=writer.secret)
        assert es.info()["version"]["number"].startswith("8.")
        assert es.cluster.health()["status"] == "green"
        assert es.license.get()["license"]["status"] == "active"
        assert es.indices.put_index_template(name="logs-x", index_patterns=["logs-x*"])["acknowledged"] is True
        assert es.indices.exists_index_template(name="logs-x").body is True
        assert es.ilm.put_lifecycle(name="logs-x", policy={"phases": {}})["acknowledged"] is True
        assert es.ilm.get_lifecycle(name="logs-x").meta.status == 200
        assert es.ingest.put_pipeline(id="p", processors=[])["acknowledged"] is True

    def test_head_and_probes_carry_the_product_header(self, api: Api, writer: Key) -> None:
        for method, path in (("HEAD", "/"), ("GET", "/_xpack"), ("HEAD", "/_template/filebeat")):
            status, headers, _ = api.request(method, path, headers=basic(writer))
            assert (status, headers["X-Elastic-Product"]) == (200, "Elasticsearch"), path

    def test_wrong_key_and_missing_scope_are_elasticsearch_errors(self, api: Api) -> None:
        with pytest.raises(AuthenticationException) as unauthenticated:
            helpers.bulk(client(api, basic_auth=("elastic", "lt_live_" + "0" * 32)), [{"_index": "x", "m": 1}])
        assert unauthenticated.value.status_code == 401
        assert unauthenticated.value.error == "security_exception"
        reader = api.create_key("read:logs")
        with pytest.raises(AuthorizationException) as forbidden:
            helpers.bulk(client(api, api_key=reader.secret), [{"_index": "x", "m": 1}])
        assert forbidden.value.status_code == 403
        assert "write:logs" in forbidden.value.info["error"]["reason"]


class TestShipperBodies:
    """Bodies as Fluent Bit's `es` output and Filebeat write them, byte for byte in shape."""

    def test_fluent_bit_gzip_ndjson(self, api: Api, writer: Key) -> None:
        word = marker()
        lines: list[dict[str, Any] | str] = []
        for i in range(3):
            lines.append({"create": {"_index": "fluent-bit", "_type": "_doc"}})
            lines.append(
                {
                    "@timestamp": "2024-05-01T12:00:01.000Z",
                    "log": f"GET /health {i} {word}",
                    "stream": "stdout",
                    "kubernetes": {"pod_name": "api-7", "namespace_name": "shop"},
                }
            )
        status, headers, body = bulk(api, writer, gzip.compress(ndjson(*lines)), **{"Content-Encoding": "gzip"})
        assert status == 200 and headers["X-Elastic-Product"] == "Elasticsearch"
        assert body["errors"] is False
        assert [item["create"]["status"] for item in body["items"]] == [201, 201, 201]
        events = api.store.wait_for(3, tenant=writer.tenant, field="message", term=word)
        assert {e.index for e in events} == {"fluent-bit"}
        assert events[0].attributes["kubernetes"] == {"pod_name": "api-7", "namespace_name": "shop"}
        search(api, writer, f'kubernetes.namespace_name:shop AND message:"{word}"', 3)

    def test_fluent_bit_reads_the_compact_success_text(self, api: Api, writer: Key) -> None:
        """Fluent Bit falls back to finding this exact text when it cannot parse the reply."""
        request = urllib.request.Request(
            api.daemon.url("/_bulk"),
            data=ndjson({"create": {"_index": "fb"}}, {"log": marker()}),
            headers={**basic(writer), "Content-Type": NDJSON},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert b'"errors":false,"items":[' in response.read()

    def test_filebeat_json_content_type_and_url_index(self, api: Api, writer: Key) -> None:
        word = marker()
        document = {
            "@timestamp": "2024-05-01T12:00:02.123Z",
            "message": f"payment declined {word}",
            "log": {"level": "error", "file": {"path": "/var/log/pay.log"}},
            "host": {"name": "pay-2", "os": {"family": "debian"}},
            "service": {"name": "payments"},
            "ecs": {"version": "8.0.0"},
            "agent": {"type": "filebeat", "version": "8.17.0"},
        }
        status, _, body = api.request(
            "POST",
            "/filebeat-8.17.0/_bulk",
            raw=ndjson({"create": {}}, document),
            headers={**basic(writer), "Content-Type": "application/json; charset=UTF-8"},
        )
        assert (status, body["errors"], body["items"][0]["create"]["_index"]) == (200, False, "filebeat-8.17.0")
        (event,) = api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
        assert (event.index, event.level, event.service, event.host) == (
            "filebeat-8.17.0",
            "error",
            "payments",
            "pay-2",
        )
        assert event.attributes["log"] == {"file": {"path": "/var/log/pay.log"}}
        found = search(api, writer, f'level:error AND host:pay-2 AND agent.type:filebeat AND message:"{word}"', 1)
        assert found[0]["service"] == "payments"


class TestBadInput:
    """A bad item fails alone; a bad body is Elasticsearch's error object; the daemon keeps serving."""

    def test_malformed_pairs_fail_alone(self, api: Api, writer: Key) -> None:
        word = marker()
        body = ndjson(
            {"index": {"_index": "a"}},
            {"message": f"good one {word}"},
            {"index": {"_index": "a"}},
            '{"message": "broken',
            "not an action",
            {"message": "orphan source"},
            {"explode": {"_index": "a"}},
            {"message": "unknown action's source"},
            {"create": {"_index": "a"}},
            '"a string, not an object"',
            {"create": {"_index": "a"}},
            {"message": f"good two {word}"},
        )
        status, _, answer = bulk(api, writer, body)
        assert status == 200 and answer["errors"] is True
        statuses = [next(iter(item.values()))["status"] for item in answer["items"]]
        assert statuses == [201, 400, 400, 400, 400, 201]
        assert answer["items"][1]["index"]["error"]["type"] == "document_parsing_exception"
        assert answer["items"][2]["index"]["error"]["type"] == "illegal_argument_exception"
        assert len(api.store.wait_for(2, tenant=writer.tenant, field="message", term=word)) == 2
        # Counted per cause and warned about (once a minute) in the daemon's own log, never with the payload.
        (warning, *_) = wait_until(lambda: api.daemon.events_named("elasticsearch_invalid_item"))
        assert warning["count"] >= 1 and "broken" not in json.dumps(warning)

    def test_wrong_content_type_is_406(self, api: Api, writer: Key) -> None:
        status, headers, body = bulk(api, writer, ndjson({"index": {"_index": "a"}}, {"m": 1}), "text/plain")
        assert (status, body["status"], body["error"]["type"]) == (406, 406, "media_type_header_exception")
        assert body["error"]["root_cause"][0]["type"] == "media_type_header_exception"
        assert headers["X-Elastic-Product"] == "Elasticsearch"

    def test_oversize_is_413_from_content_length_alone(self, api: Api, writer: Key) -> None:
        answer = declared_too_large(api, "POST", "/_bulk", writer, MAX_BODY_BYTES + 1, NDJSON)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413")
        assert json.loads(body)["error"]["type"] == "content_too_long_exception"

    def test_gzip_bomb_is_413(self, api: Api, writer: Key) -> None:
        bomb = gzip.compress(b"\n" * (MAX_BODY_BYTES + 1024))
        status, _, body = bulk(api, writer, bomb, **{"Content-Encoding": "gzip"})
        assert (status, body["status"]) == (413, 413)
        assert bulk(api, writer, ndjson({"index": {"_index": "a"}}, {"message": "after"}))[0] == 200

    def test_tenant_comes_from_the_key(self, api: Api, writer: Key) -> None:
        word = marker()
        other = api.create_key("write:logs", "read:logs")
        assert bulk(api, writer, ndjson({"index": {"_index": "a"}}, {"message": word}))[0] == 200
        api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
        assert api.store.events(other.tenant, field="message", term=word) == []
        status, _, body = api.request("POST", "/v1/logs/query", key=other, body={"filter": f'message:"{word}"'})
        assert (status, body["count"]) == (200, 0)

    def test_errors_are_elasticsearch_objects(self, api: Api, writer: Key) -> None:
        status, _, body = api.request("POST", "/_bulk", raw=b"{}\n", headers={"Content-Type": NDJSON})
        assert (status, body["error"]["type"]) == (401, "security_exception")
        answer = client(api, api_key=writer.secret).bulk(operations=[{"index": {}}, {"message": "no index"}])
        assert answer["errors"] is True
        assert answer["items"][0]["index"]["status"] == 400
        assert answer["items"][0]["index"]["error"]["type"] == "action_request_validation_exception"

    def test_unknown_apis_and_wrong_methods_are_elasticsearch_errors(self, api: Api, writer: Key) -> None:
        """404 and 405 on Elasticsearch's paths in its error shape, read by the client like a cluster's own."""
        es = client(api, basic_auth=("elastic", writer.secret))
        for path in ("/_cat/indices", "/orders/_doc/1", "/_nodes/stats"):
            with pytest.raises(NotFoundError) as missing:
                es.perform_request("GET", path)
            assert missing.value.message == "resource_not_found_exception", path
            assert missing.value.body["status"] == 404 and missing.value.body["error"]["root_cause"][0]["reason"]
        wrong = [("DELETE", "/_bulk"), ("GET", "/orders/_bulk"), ("POST", "/_license"), ("DELETE", "/")]
        wrong += [("POST", "/_cluster/health"), ("DELETE", "/_ilm/policy/logs")]
        for method, path in wrong:
            with pytest.raises(ApiError) as refused:
                es.perform_request(method, path)
            assert refused.value.meta.status == 405, (method, path)
            assert refused.value.message == "illegal_argument_exception"
            assert refused.value.meta.headers["X-Elastic-Product"] == "Elasticsearch"
            assert refused.value.body["error"]["type"] == "illegal_argument_exception"
        status, _, body = api.request("GET", "/v1/_nothing", key=writer)
        assert (status, body["error"]["code"]) == (404, "not_found")  # logtraced's own paths keep their envelope
