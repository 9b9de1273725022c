"""How the console is served: redirect, security headers, caching, compression; /v1/whoami; size budget."""

from __future__ import annotations

import gzip
import json
import urllib.request

from tests.api.conftest import Api

ASSET_BUDGET_BYTES = 300 * 1024


def get(api: Api, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(api.daemon.url(path), headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_root_redirects_a_browser_to_the_console(api: Api) -> None:
    status, headers, _ = get(api, "/", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert (status, headers["Location"]) == (302, "/ui/")


def test_root_with_a_credential_is_the_elasticsearch_banner(api: Api) -> None:
    """Shippers ask `GET /` with their key, expecting an Elasticsearch node's banner: they get it, not the console."""
    shipper = api.create_key("write:logs")
    status, headers, body = get(api, "/", {**shipper.bearer, "Accept": "application/json"})
    assert (status, headers["X-Elastic-Product"]) == (200, "Elasticsearch")
    assert json.loads(body)["version"]["number"].startswith("8.")


def test_every_console_file_carries_the_security_headers(api: Api) -> None:
    for path in ("/ui/", "/ui/app.js", "/ui/style.css", "/ui/vendor/uPlot-1.6.32.esm.js"):
        status, headers, _ = get(api, path)
        assert status == 200, path
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
    _, headers, body = get(api, "/ui/")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="/ui/app.js"></script>' in body and b"style=" not in body


def test_console_files_are_compressed_and_revalidated(api: Api) -> None:
    status, headers, body = get(api, "/ui/search.js", {"Accept-Encoding": "gzip"})
    assert (
        status == 200 and headers["Content-Encoding"] == "gzip" and b"export class SearchPage" in gzip.decompress(body)
    )
    assert headers["Cache-Control"] == "no-cache"
    assert get(api, "/ui/search.js", {"If-None-Match": headers["ETag"]})[0] == 304
    assert get(api, "/ui/vendor/uPlot-1.6.32.esm.js")[1]["Cache-Control"].endswith("immutable")
    status, _, body = get(api, "/ui/nothing-here.js")
    assert status == 404 and b"not_found" in body


def test_shipped_javascript_and_css_fit_the_budget_compressed(api: Api) -> None:
    from logtraced.api.ui import load_assets

    shipped = {name: asset for name, asset in load_assets().items() if name.endswith((".js", ".css"))}
    total = sum(len(asset.gzipped or asset.body) for asset in shipped.values())
    assert 40_000 < total < ASSET_BUDGET_BYTES


def test_whoami_names_the_keys_tenant_scopes_and_prefix(api: Api) -> None:
    key = api.create_key("read:logs", environment="staging", tier="enterprise")
    status, headers, body = api.request("GET", "/v1/whoami", key=key)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert body["org"] == key.org and body["environment"] == "staging" and body["scopes"] == ["read:logs"]
    assert body["tier"] == "enterprise" and body["key_id"] == key.id and body["via"] == "key"
    assert body["key_prefix"].startswith("lt_test_") and body["key_prefix"] != key.secret
    assert body["tiers"]["enterprise"] == {"ingest_per_hour": 50000, "query_per_hour": 10000, "overflow": True}
    assert api.request("GET", "/v1/whoami")[0] == 401
