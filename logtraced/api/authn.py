"""The one request-authentication path: credentials, scope, environment, organisation, rate limit, usage.

Every authenticated route starts with `await authenticate(request, scope=..., kind=...)`.
The checks run in a fixed order, and a request refused by one of them never reaches the
next, so a refused request does not spend rate-limit budget:

1. credentials: `Authorization: Bearer <credential>` (the LogTrace routes) or, for the
   query_range routes, `X-LAST9-API-TOKEN: Bearer <credential>`, where the credential is an
   API key or an access token minted from one -> 401;
2. scope (`require_scope`) -> 403 `insufficient_scope`;
3. environment: an `X-LogTrace-Environment` header or `env` query parameter naming another
   environment than the key's -> 403 `cross_environment`;
4. organisation, for routes with `{org}` in their path -> 403 `forbidden_organization`;
5. the hourly rate limit of the key's tier for `kind` ("ingest" or "query") -> 429.

The outcome is stored on the request, so two hooks installed by `api/app.py` finish the
job without the handler's help: `add_rate_limit_headers` puts X-RateLimit-* on every
response of a rate-limited route (errors included), and `usage_middleware` records one
request per authenticated call in the usage table, with whatever events, bytes and
overflow the handler reported through `AuthContext.count`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

from aiohttp import web

from logtraced.api.context import get_state
from logtraced.api.errors import Handler
from logtraced.auth.principal import Principal, check_environment, require_scope
from logtraced.auth.ratelimit import Decision, Kind, headers, rate_limited
from logtraced.auth.tokens import TOKEN_PATTERN
from logtraced.errors import Forbidden, Unauthenticated

AUTHORIZATION: Final = "Authorization"
LAST9_TOKEN: Final = "X-LAST9-API-TOKEN"
ENVIRONMENT_HEADER: Final = "X-LogTrace-Environment"
ENVIRONMENT_PARAMETER: Final = "env"
# Reported for a request whose client went away before a response existed (nginx's convention).
CLIENT_CLOSED_STATUS: Final = 499


@dataclass(slots=True)
class AuthContext:
    """An authenticated request: who called, the rate-limit decision, and what the handler accepted."""

    principal: Principal
    decision: Decision | None = None
    kind: Kind | None = None  # the budget the decision was taken against (usage and metrics split by it)
    events: int = 0
    bytes: int = 0
    overflow_events: int = 0

    def count(self, *, events: int = 0, bytes: int = 0, overflow_events: int = 0) -> None:
        """Report what this request carried, for the usage table (recorded once the response exists)."""
        self.events += events
        self.bytes += bytes
        self.overflow_events += overflow_events

    def rate_limit_headers(self) -> dict[str, str]:
        """X-RateLimit-* (and Retry-After when refused) for this request; empty on routes without a limit."""
        return headers(self.decision) if self.decision is not None else {}


AUTH_CONTEXT: Final = web.RequestKey[AuthContext]("auth_context")


async def authenticate(
    request: web.Request,
    *,
    scope: str | None,
    kind: Kind | None,
    org: str | None = None,
    header: str = AUTHORIZATION,
) -> AuthContext:
    """Authenticate and authorise `request`, or raise the domain error to answer with.

    `scope=None` accepts any valid key (health).  `kind=None` skips the rate limit (keys,
    usage, health).  `org` is the `{org}` path segment of routes that have one.  `header`
    is `AUTHORIZATION` for the LogTrace routes and `LAST9_TOKEN` for the query_range routes.
    """
    principal = await _principal(request, header)
    context = request[AUTH_CONTEXT] = AuthContext(principal, kind=kind)
    if scope is not None:
        require_scope(principal, scope)
    check_environment(principal, requested_environment(request))
    if org is not None and org != principal.org:
        raise Forbidden(
            f"this key belongs to organisation {principal.org} and cannot reach {org}", code="forbidden_organization"
        )
    if kind is not None:
        context.decision = decision = get_state(request).auth.limiter.check(principal, kind)
        if not decision.allowed:
            raise rate_limited(decision, kind)
    return context


def requested_environment(request: web.Request) -> str | None:
    """The environment a request names explicitly, if any; the header wins over the query parameter."""
    return request.headers.get(ENVIRONMENT_HEADER) or request.query.get(ENVIRONMENT_PARAMETER) or None


async def _principal(request: web.Request, header: str) -> Principal:
    """The caller behind the bearer credential of `header`, which may be an API key or an access token.

    Keys come from the keyring's memory after a refresh on the state database's reader thread;
    when that thread cannot say whether an unknown key exists, this raises StorageError (503).
    """
    credential = _bearer(request, header)
    auth = get_state(request).auth
    if TOKEN_PATTERN.fullmatch(credential):
        principal = await auth.tokens.authenticate(credential)
    else:
        record = await auth.keys.authenticate(credential)
        principal = Principal.from_key(record) if record is not None else None
    if principal is None:
        raise Unauthenticated("the credential is not a valid, active API key or access token")
    return principal


def _bearer(request: web.Request, header: str) -> str:
    """The credential of `header`; a missing header or an unknown scheme is 401 `missing_credentials`.

    `Bearer <key>` is the API's own scheme.  Shippers that can only send other schemes are met
    where they are: `Basic base64(<any user>:<key>)` (Fluent Bit, Promtail, Beats, Grafana's
    "Basic auth" with the key as password) and Elasticsearch's `ApiKey <key>` or
    `ApiKey base64(<id>:<key>)`.  A scheme is read only for its credential; what the key may
    do is decided by the key, whatever scheme carried it.
    """
    value = request.headers.get(header, "")
    scheme, _, credential = value.strip().partition(" ")
    credential = _credential(scheme.lower(), credential.strip())
    if not credential:
        raise Unauthenticated(
            f"send the credential as '{header}: Bearer <key>'", code="missing_credentials", credential_sent=False
        )
    return credential


def _credential(scheme: str, text: str) -> str:
    """The key inside one scheme's credential text, or "" when the scheme is not one we read."""
    if scheme == "bearer" or not text:
        return text
    if scheme not in ("basic", "apikey"):
        return ""
    try:
        decoded = base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return text if scheme == "apikey" else ""  # an ApiKey may be the key itself
    user, colon, secret = decoded.partition(":")
    return (secret or user) if colon else (decoded if scheme == "apikey" else "")


async def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: X-RateLimit-* on every response of a rate-limited request, errors included."""
    context = request.get(AUTH_CONTEXT)
    if context is None:
        return
    for name, value in context.rate_limit_headers().items():
        response.headers.setdefault(name, value)


@web.middleware
async def usage_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record one request per authenticated call, whatever its outcome; outermost, so it sees the final status."""
    status = CLIENT_CLOSED_STATUS
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        context = request.get(AUTH_CONTEXT)
        if context is not None:
            principal = context.principal
            get_state(request).auth.usage.record(
                principal.key_id,
                principal.org,
                events=context.events,
                bytes=context.bytes,
                rejected=status >= 400,
                overflow_events=context.overflow_events,
                kind=context.kind,
                throttled=status == HTTPStatus.TOO_MANY_REQUESTS,
            )
