"""Authentication and authorisation of every route: credentials, scopes, environments, keys coming and going."""

from __future__ import annotations

import base64

from tests.api.conftest import Api, Key
from tests.harness import wait_until

UNKNOWN = "lt_live_" + "0" * 32


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class TestCredentials:
    """No key, a wrong key or a revoked key is 401 with a Bearer challenge."""

    def test_missing_header(self, api: Api) -> None:
        status, headers, body = api.request("POST", "/v1/logs/ingest", body={"logs": []})
        assert (status, body["error"]["code"]) == (401, "missing_credentials")
        assert headers["WWW-Authenticate"].startswith("Bearer")

    def test_other_scheme(self, api: Api, writer: Key) -> None:
        status, _, body = api.request("GET", "/v1/health", headers={"Authorization": f"Basic {writer.secret}"})
        assert (status, body["error"]["code"]) == (401, "missing_credentials")

    def test_shippers_schemes_carry_the_key(self, api: Api, writer: Key) -> None:
        """Basic with the key as password (or as user), and Elasticsearch's ApiKey, plain or base64(id:key)."""
        for value in (
            "Basic " + b64(f"fluent-bit:{writer.secret}"),
            "Basic " + b64(f"{writer.secret}:"),
            f"ApiKey {writer.secret}",
            "ApiKey " + b64(f"key-id:{writer.secret}"),
        ):
            assert api.request("GET", "/v1/health", headers={"Authorization": value})[0] == 200, value

    def test_a_wrong_key_in_another_scheme_is_still_refused(self, api: Api) -> None:
        status, _, body = api.request("GET", "/v1/health", headers={"Authorization": "Basic " + b64(f"u:{UNKNOWN}")})
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")

    def test_unknown_and_malformed_keys(self, api: Api) -> None:
        for secret in (UNKNOWN, "not-a-key", "lta_" + "0" * 40):
            status, headers, body = api.request("GET", "/v1/health", headers={"Authorization": f"Bearer {secret}"})
            assert (status, body["error"]["code"]) == (401, "invalid_api_key"), secret
            assert headers["WWW-Authenticate"] == 'Bearer realm="logtraced", error="invalid_token"'

    def test_scheme_is_case_insensitive(self, api: Api, writer: Key) -> None:
        assert api.request("GET", "/v1/health", headers={"Authorization": f"bearer {writer.secret}"})[0] == 200


class TestScopes:
    """Each route asks for its scope; a key holds only the scopes it was given."""

    def test_read_only_key_cannot_ingest(self, api: Api) -> None:
        reader = api.create_key("read:logs")
        status, _, body = api.ingest(reader, {"logs": [{"message": "x"}]})
        assert (status, body["error"]["code"]) == (403, "insufficient_scope")
        assert "write:logs" in body["error"]["message"]

    def test_health_takes_any_valid_key(self, api: Api) -> None:
        for scope in ("write:logs", "read:logs", "admin"):
            assert api.request("GET", "/v1/health", key=api.create_key(scope))[0] == 200

    def test_admin_does_not_imply_write(self, api: Api) -> None:
        admin = api.create_key("admin")
        assert api.ingest(admin, {"logs": []})[0] == 403

    def test_key_routes_need_admin(self, api: Api, writer: Key) -> None:
        status, _, body = api.request("GET", "/v1/keys", key=writer)
        assert (status, body["error"]["code"]) == (403, "insufficient_scope")


class TestKeysComingAndGoing:
    """The CLI changes keys in the database the running daemon reads."""

    def test_new_key_works_within_a_second_and_revoked_one_stops_within_a_second(self, api: Api) -> None:
        key = api.create_key("write:logs")
        wait_until(lambda: api.request("GET", "/v1/health", key=key)[0] == 200, timeout=1.0)
        done = api.cli("keys", "revoke", key.id)
        assert done.returncode == 0, done.stderr
        wait_until(lambda: api.request("GET", "/v1/health", key=key)[0] == 401, timeout=1.0)
        status, _, body = api.ingest(key, {"logs": [{"message": "x"}]})
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
