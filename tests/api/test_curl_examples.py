"""The LogTrace document's three curl examples, run with the real curl against the daemon."""

from __future__ import annotations

import json
import shlex
import subprocess
from typing import Any

from tests.api.conftest import Api, Key, marker

# Copied from the document; only the host and the key are replaced before running them.
DOC_HOST = "https://api.logtrace.io"
DOC_KEY = "lt_live_8f3a9c2d1e4b5f6a7c8d9e0f1a2b3c4d"
INGEST = (
    "curl -X POST https://api.logtrace.io/v1/logs/ingest"
    ' -H "Authorization: Bearer lt_live_8f3a9c2d1e4b5f6a7c8d9e0f1a2b3c4d"'
    ' -H "Content-Type: application/json"'
    """ -d '{"logs":[{"timestamp":"2024-03-15T10:22:01Z","level":"ERROR","""
    """"message":"Connection timeout on db-primary-03","service":"payment-gateway"}]}'"""
)
QUERY = (
    "curl -X POST https://api.logtrace.io/v1/logs/query"
    ' -H "Authorization: Bearer lt_live_8f3a9c2d1e4b5f6a7c8d9e0f1a2b3c4d"'
    ' -H "Content-Type: application/json"'
    """ -d '{"filter":"service:payment-gateway AND level:ERROR","from":"-24h","limit":50}'"""
)
HEALTH = (
    'curl -X GET https://api.logtrace.io/v1/health -H "Authorization: Bearer lt_live_8f3a9c2d1e4b5f6a7c8d9e0f1a2b3c4d"'
)


def run_curl(api: Api, example: str, key: Key) -> tuple[int, Any]:
    """Run a documented example against our daemon; returns the status and the decoded body."""
    adapted = example.replace(DOC_HOST, f"http://127.0.0.1:{api.daemon.http_port}").replace(DOC_KEY, key.secret)
    command = shlex.split(adapted) + ["--silent", "--show-error", "--write-out", "\n%{http_code}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


class TestDocumentedExamples:
    """Each example works as written, with our host and a real key."""

    def test_ingest_example_is_accepted_and_stored(self, api: Api, writer: Key) -> None:
        status, body = run_curl(api, INGEST, writer)
        assert status == 202
        assert body["accepted"] == 1 and body["status"] == "queued" and body["overflow"] is False
        (event,) = api.store.wait_for(1, tenant=writer.tenant, field="message", term="db")
        assert event.timestamp == 1710498121 * 10**9
        assert (event.level, event.service, event.message) == (
            "error",
            "payment-gateway",
            "Connection timeout on db-primary-03",
        )
        assert (event.org, event.env) == (writer.org, "production")

    def test_query_example_finds_a_recent_matching_event(self, api: Api, writer: Key) -> None:
        """The example asks for the last 24 h, so the matching event is sent without the 2024 timestamp."""
        word = marker()
        event = {
            "level": "ERROR",
            "message": f"Connection timeout on db-primary-03 {word}",
            "service": "payment-gateway",
        }
        assert api.ingest(writer, {"logs": [event]})[0] == 202
        api.store.wait_for(1, tenant=writer.tenant, field="message", term=word)
        status, body = run_curl(api, QUERY, writer)
        assert status == 200
        assert word in json.dumps(body)

    def test_health_example(self, api: Api, writer: Key) -> None:
        status, body = run_curl(api, HEALTH, writer)
        assert status == 200
        assert body["status"] == "healthy"
        assert isinstance(body["workers"], int) and body["workers"] >= 1
        assert isinstance(body["ingestion_rps"], int | float)

    def test_the_example_key_itself_is_refused(self, api: Api) -> None:
        """The document's key is only an example: our daemon does not know it."""
        fake = Key(DOC_KEY, "key_none", "none", "production")
        status, body = run_curl(api, HEALTH, fake)
        assert status == 401
        assert body["error"]["code"] == "invalid_api_key"
