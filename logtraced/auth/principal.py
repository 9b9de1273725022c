"""The authenticated caller as the HTTP layer sees it, and the scope and environment checks on it."""

from __future__ import annotations

from typing import Literal

import msgspec

from logtraced.auth.keys import KeyRecord
from logtraced.errors import Forbidden
from logtraced.model import Tenant


class Principal(msgspec.Struct, frozen=True):
    """Who is calling, whether by API key or by access token; routes need nothing else."""

    key_id: str
    org: str
    environment: str
    scopes: frozenset[str]
    tier: str
    via: Literal["key", "token"]

    @property
    def tenant(self) -> Tenant:
        """Whose events this caller writes and reads: the key's organisation and environment, nothing else."""
        return Tenant(self.org, self.environment)

    @classmethod
    def from_key(cls, record: KeyRecord) -> Principal:
        """A caller that presented the API key itself."""
        return cls(record.id, record.org, record.environment, record.scopes, record.tier, "key")


def require_scope(principal: Principal, scope: str) -> None:
    """Refuse with 403 unless the caller holds `scope`; scopes are explicit, admin implies nothing."""
    if scope not in principal.scopes:
        raise Forbidden(f"this key lacks the scope {scope}", code="insufficient_scope")


def check_environment(principal: Principal, requested_env: str | None) -> None:
    """Refuse with 403 a request naming another environment than the key's; None means the key's own."""
    if requested_env is not None and requested_env != principal.environment:
        raise Forbidden(
            f"this key belongs to environment {principal.environment} and cannot reach {requested_env}",
            code="cross_environment",
        )
