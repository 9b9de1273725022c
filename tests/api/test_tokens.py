"""Access tokens: minted from a read:logs key, accepted as bearer credentials, refused once expired or revoked."""

from __future__ import annotations

import time
from typing import Any

from tests.api.conftest import Api, Key

ROUTE = "/api/v4/oauth/access_tokens"
TTL_SECONDS = 86_400


def mint(api: Api, refresh_token: str) -> tuple[int, Any]:
    status, _, body = api.request("POST", ROUTE, body={"refresh_token": refresh_token})
    return status, body


def with_token(token: str, header: str = "Authorization") -> dict[str, str]:
    return {header: f"Bearer {token}"}


class TestMinting:
    """POST /api/v4/oauth/access_tokens exchanges an API key for a token with a 24 h lifetime."""

    def test_mint_returns_a_bearer_token_and_its_expiry(self, api: Api, writer: Key) -> None:
        before = int(api.clock.now())
        status, body = mint(api, writer.secret)
        assert status == 200
        assert body["token_type"] == "Bearer"
        assert body["access_token"].startswith("lta_")
        assert before + TTL_SECONDS <= body["expires_at"] <= int(api.clock.now()) + TTL_SECONDS

    def test_key_without_read_scope_is_forbidden(self, api: Api) -> None:
        status, body = mint(api, api.create_key("write:logs").secret)
        assert (status, body["error"]["code"]) == (403, "insufficient_scope")

    def test_unknown_key_is_unauthorized(self, api: Api) -> None:
        status, body = mint(api, "lt_live_" + "1" * 32)
        assert (status, body["error"]["code"]) == (401, "invalid_token")

    def test_body_without_refresh_token(self, api: Api) -> None:
        status, _, body = api.request("POST", ROUTE, body={"token": "x"})
        assert (status, body["error"]["code"]) == (400, "invalid_request")
        status, _, body = api.request("POST", ROUTE, raw=b"{nope")
        assert (status, body["error"]["code"]) == (400, "malformed_json")


class TestUsingTokens:
    """A token stands in for its key until it expires or the key is revoked."""

    def test_token_authenticates_like_its_key(self, api: Api, writer: Key) -> None:
        token = mint(api, writer.secret)[1]["access_token"]
        assert api.request("GET", "/v1/health", headers=with_token(token))[0] == 200
        status, _, body = api.request("POST", "/v1/logs/ingest", body={"logs": []}, headers=with_token(token))
        assert (status, body["accepted"]) == (202, 0)

    def test_expired_token_is_refused_with_the_documented_message(self, api: Api, writer: Key) -> None:
        token = mint(api, writer.secret)[1]["access_token"]
        api.clock.set(TTL_SECONDS - 60)
        assert api.request("GET", "/v1/health", headers=with_token(token))[0] == 200
        api.clock.set(TTL_SECONDS + 1)
        status, headers, body = api.request("GET", "/v1/health", headers=with_token(token))
        assert status == 401
        assert body["error"] == {"code": "token_expired", "message": "Authorization token is expired"}
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert api.request("GET", "/v1/health", key=writer)[0] == 200, "the key itself does not expire"

    def test_revoking_the_key_revokes_its_tokens(self, api: Api) -> None:
        key = api.create_key("read:logs")
        token = mint(api, key.secret)[1]["access_token"]
        assert api.cli("keys", "revoke", key.id).returncode == 0
        status, _, body = api.request("GET", "/v1/health", headers=with_token(token))
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")


def labels(api: Api, org: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    """The query_range family's labels route, which reads X-LAST9-API-TOKEN."""
    now = time.time_ns()
    query = f"start={now - 3600 * 10**9}&end={now + 10**9}"
    return api.request("GET", f"/api/v4/organizations/{org}/logs/api/v1/labels?{query}", headers=headers)


class TestQueryRangeRoutes:
    """The query_range routes take the token in X-LAST9-API-TOKEN and confine it to its organisation."""

    def test_token_in_the_last9_header(self, api: Api, writer: Key) -> None:
        token = mint(api, writer.secret)[1]["access_token"]
        status, headers, body = labels(api, writer.org, with_token(token, "X-LAST9-API-TOKEN"))
        assert (status, body["status"]) == (200, "success")
        assert headers["X-RateLimit-Limit"] == "2000"

    def test_expired_token_message(self, api: Api, writer: Key) -> None:
        token = mint(api, writer.secret)[1]["access_token"]
        api.clock.set(TTL_SECONDS + 5)
        status, _, body = labels(api, writer.org, with_token(token, "X-LAST9-API-TOKEN"))
        assert (status, body["error"]["message"]) == (401, "Authorization token is expired")

    def test_another_organisation_is_forbidden(self, api: Api, writer: Key) -> None:
        token = mint(api, writer.secret)[1]["access_token"]
        status, _, body = labels(api, "someone-else", with_token(token, "X-LAST9-API-TOKEN"))
        assert (status, body["error"]["code"]) == (403, "forbidden_organization")

    def test_missing_token(self, api: Api, writer: Key) -> None:
        status, headers, body = labels(api, writer.org, {})
        assert (status, body["error"]["code"]) == (401, "missing_credentials")
        assert "X-LAST9-API-TOKEN" in body["error"]["message"]
        assert headers["WWW-Authenticate"].startswith("Bearer")
