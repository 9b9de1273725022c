"""API keys through the `logtraced keys` CLI and the admin routes /v1/keys."""

from __future__ import annotations

import json
from typing import Any

from tests.api.conftest import Api, Key


def create(api: Api, admin: Key, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    return api.request("POST", "/v1/keys", key=admin, body=body)


class TestCli:
    """The operator's commands print what scripts need and refuse what the daemon would."""

    def test_create_prints_the_secret_then_the_id(self, api: Api) -> None:
        done = api.cli("keys", "create", "--org", "acme-cli", "--environment", "staging", "--scope", "write:logs")
        assert done.returncode == 0, done.stderr
        secret, key_id = done.stdout.split()
        assert secret.startswith("lt_test_") and key_id.startswith("key_")
        assert "cannot be shown again" in done.stderr
        assert api.request("GET", "/v1/health", headers={"Authorization": f"Bearer {secret}"})[0] == 200

    def test_list_shows_keys_without_secrets(self, api: Api) -> None:
        key = api.create_key("write:logs", "read:logs", name="shipper one", tier="enterprise")
        done = api.cli("keys", "list", "--org", key.org, "--json")
        assert done.returncode == 0, done.stderr
        (listed,) = json.loads(done.stdout)
        assert listed["id"] == key.id and listed["name"] == "shipper one" and listed["tier"] == "enterprise"
        assert listed["scopes"] == ["read:logs", "write:logs"] and listed["active"] is True
        assert key.secret not in done.stdout
        table = api.cli("keys", "list", "--org", key.org)
        assert table.returncode == 0 and key.id in table.stdout and key.secret not in table.stdout

    def test_revoke_twice(self, api: Api) -> None:
        key = api.create_key("write:logs")
        assert api.cli("keys", "revoke", key.id).stdout.strip() == f"revoked {key.id}"
        again = api.cli("keys", "revoke", key.id)
        assert again.returncode == 1 and "no active key" in again.stderr

    def test_bad_requests_exit_1_with_a_message(self, api: Api) -> None:
        for args in (
            ("--org", "Bad Org", "--environment", "production", "--scope", "write:logs"),
            ("--org", "acme", "--environment", "prod", "--scope", "write:logs"),
            ("--org", "acme", "--environment", "production", "--scope", "delete:logs"),
            ("--org", "acme", "--environment", "production", "--scope", "write:logs", "--tier", "gold"),
        ):
            done = api.cli("keys", "create", *args)
            assert done.returncode == 1 and done.stderr.startswith("logtraced: "), args


class TestAdminRoutes:
    """An admin key manages the keys of its own organisation and environment."""

    def test_create_use_list_revoke(self, api: Api) -> None:
        admin = api.create_key("admin")
        status, headers, created = create(api, admin, {"scopes": ["write:logs"], "name": "fluent-bit"})
        assert status == 201
        assert headers["Location"] == f"/v1/keys/{created['id']}"
        assert headers["Cache-Control"] == "no-store"
        assert (created["org"], created["environment"], created["tier"]) == (admin.org, "production", "standard")
        new = Key(created["secret"], created["id"], admin.org, "production")
        assert api.ingest(new, {"logs": [{"message": "x"}]})[0] == 202
        listed = api.request("GET", "/v1/keys", key=admin)[2]["keys"]
        assert {key["id"] for key in listed} == {admin.id, new.id}
        assert all("secret" not in key for key in listed)
        assert api.request("DELETE", f"/v1/keys/{new.id}", key=admin)[0] == 204
        assert api.request("GET", "/v1/health", key=new)[0] == 401
        status, _, body = api.request("DELETE", f"/v1/keys/{new.id}", key=admin)
        assert (status, body["error"]["code"]) == (404, "not_found")

    def test_other_organisation_is_forbidden(self, api: Api) -> None:
        admin = api.create_key("admin")
        status, _, body = create(api, admin, {"scopes": ["write:logs"], "org": "someone-else"})
        assert (status, body["error"]["code"]) == (403, "forbidden_organization")
        stranger = api.create_key("write:logs")
        assert api.request("DELETE", f"/v1/keys/{stranger.id}", key=admin)[0] == 404
        assert api.request("GET", "/v1/health", key=stranger)[0] == 200

    def test_other_environment_is_forbidden(self, api: Api) -> None:
        admin = api.create_key("admin", environment="staging")
        status, _, body = create(api, admin, {"scopes": ["write:logs"], "environment": "production"})
        assert (status, body["error"]["code"]) == (403, "cross_environment")
        production = api.create_key("write:logs", org=admin.org)
        assert api.request("DELETE", f"/v1/keys/{production.id}", key=admin)[0] == 404
        listed = api.request("GET", "/v1/keys", key=admin)[2]["keys"]
        assert [key["id"] for key in listed] == [admin.id]

    def test_invalid_bodies(self, api: Api) -> None:
        admin = api.create_key("admin")
        for body, code in (
            ({"scopes": ["write:logs"], "tier": "gold"}, "invalid_request"),
            ({"scopes": []}, "invalid_request"),
            ({"scopes": ["write:logs"], "colour": "red"}, "invalid_request"),
            ({}, "invalid_request"),
        ):
            status, _, answer = create(api, admin, body)
            assert (status, answer["error"]["code"]) == (400, code), body
        status, _, answer = api.request("POST", "/v1/keys", key=admin, raw=b"{")
        assert (status, answer["error"]["code"]) == (400, "malformed_json")
