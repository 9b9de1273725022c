"""The web console: static ES modules and CSS from the package, served with a strict security policy.

The console is plain files (no build step, no network at run time), read once when the app is
built and kept in memory with their gzip forms, so serving one is a dictionary lookup.  Every
answer carries a Content-Security-Policy that allows only this origin's scripts and styles and
no inline code, so even a log line that slipped past the console's text-only rendering could
not run; `frame-ancestors 'none'` stops click-jacking, `nosniff` stops a JSON answer being read
as script.  The console holds its key in session storage and sends it as a Bearer header, so
nothing here reads credentials.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from logtraced.errors import NotFound

ROOT: Final = Path(__file__).resolve().parent.parent / "ui"
PREFIX: Final = "/ui/"
INDEX: Final = "index.html"
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Vendored files carry their version in their name, so a browser may keep them; ours revalidate by ETag.
VENDOR_CACHE: Final = "public, max-age=31536000, immutable"
OWN_CACHE: Final = "no-cache"
_TYPES: Final = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
# Below this size gzip costs more than it saves.
GZIP_MIN_BYTES: Final = 512


@dataclass(frozen=True)
class Asset:
    """One file of the console, ready to send: body, its gzip form when smaller, type, ETag, cache policy."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str
    cache_control: str

    @classmethod
    def load(cls, path: Path, name: str) -> Asset:
        body = path.read_bytes()
        packed = gzip.compress(body, compresslevel=9, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
        content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("+xml"):
            content_type += "; charset=utf-8"
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        cache = VENDOR_CACHE if name.startswith("vendor/") else OWN_CACHE
        return cls(body, packed if packed is not None and len(packed) < len(body) else None, content_type, etag, cache)


ASSETS: Final = web.AppKey("ui_assets", dict[str, Asset])


def load_assets(root: Path = ROOT) -> dict[str, Asset]:
    """Every file under `root` by its path relative to it ("search.js", "vendor/uPlot-1.6.32.esm.js")."""
    return {
        path.relative_to(root).as_posix(): Asset.load(path, path.relative_to(root).as_posix())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


async def to_console(request: web.Request) -> web.Response:
    raise web.HTTPFound(PREFIX)


def wants_console(request: web.Request) -> bool:
    """A browser opening the daemon's root (HTML accepted, no credential): the console, not an API answer.

    `/` is also Elasticsearch's banner, which shippers ask for with a credential and JSON; the
    two never overlap, so `GET /` serves both (see api/elasticsearch.py `info`).
    """
    return "Authorization" not in request.headers and "text/html" in request.headers.get("Accept", "")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"] or INDEX
    found = request.app[ASSETS].get(name)
    if found is None:
        raise NotFound(f"the console has no file {name}")
    headers = {**SECURITY_HEADERS, "Cache-Control": found.cache_control, "ETag": found.etag, "Vary": "Accept-Encoding"}
    if found.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = found.body
    if found.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = found.content_type
    return web.Response(body=body, headers=headers)


def register(app: web.Application) -> None:
    app[ASSETS] = load_assets()
    app.router.add_get("/ui", to_console)
    app.router.add_get(PREFIX + "{name:.*}", asset)
