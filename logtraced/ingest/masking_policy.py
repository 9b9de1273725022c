"""Which masker, if any, applies to an organisation's events: [masking] and its per-organisation overrides.

Built once at start from the validated config, so the ingest path only looks an organisation up in
a dict; the maskers compile their regular expressions here, not per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from logtraced.config import MaskingConfig, MaskingOrgConfig
from logtraced.ingest.masking import Masker


class MaskingPolicy:
    """The masker of each organisation named in `masking.orgs`, and the one for every other organisation."""

    def __init__(self, config: MaskingConfig) -> None:
        self._default = _masker(config.enabled, config.rules, config.fields)
        self._orgs = {org: _override(config, override) for org, override in config.orgs.items()}

    def masker_for(self, org: str) -> Masker | None:
        """None when the organisation's events are stored as sent."""
        return self._orgs.get(org, self._default)


def _override(config: MaskingConfig, override: MaskingOrgConfig) -> Masker | None:
    return _masker(
        config.enabled if override.enabled is None else override.enabled,
        config.rules if override.rules is None else override.rules,
        config.fields if override.fields is None else override.fields,
    )


def _masker(enabled: bool, rules: Sequence[str], fields: Sequence[str]) -> Masker | None:
    """An empty field list means the message and every string attribute (the masker's `None`)."""
    if not enabled or not rules:
        return None
    return Masker(rules, list(fields) or None)
