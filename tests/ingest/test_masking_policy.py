"""The [masking] section: validated at start, and resolved per organisation into the masker ingest applies."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from logtraced.config import MaskingRule, load_config
from logtraced.errors import ConfigError
from logtraced.ingest.masking import Rule
from logtraced.ingest.masking_policy import MaskingPolicy


def _policy(tmp_path: Path, toml: str) -> MaskingPolicy:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return MaskingPolicy(load_config(path, environ={}).masking)


def test_the_config_offers_exactly_the_masker_rules() -> None:
    assert set(typing.get_args(MaskingRule)) == {rule.value for rule in Rule}


def test_off_by_default(tmp_path: Path) -> None:
    assert _policy(tmp_path, "").masker_for("default") is None


def test_enabled_applies_the_rules_and_fields(tmp_path: Path) -> None:
    masker = _policy(tmp_path, '[masking]\nenabled = true\nrules = ["card", "ip"]\nfields = ["message"]').masker_for(
        "any"
    )
    assert masker is not None
    assert masker.rules == {Rule.CARD, Rule.IP} and masker.fields == ("message",)


def test_empty_fields_mean_the_message_and_every_string(tmp_path: Path) -> None:
    masker = _policy(tmp_path, "[masking]\nenabled = true").masker_for("any")
    assert masker is not None and masker.fields is None


def test_organisation_overrides_keep_what_they_leave_out(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        '[masking]\nenabled = true\nrules = ["email"]\nfields = ["message"]\n'
        "[masking.orgs.quiet]\nenabled = false\n"
        '[masking.orgs.cards]\nrules = ["card"]\n',
    )
    assert policy.masker_for("quiet") is None
    cards = policy.masker_for("cards")
    assert cards is not None and cards.rules == {Rule.CARD} and cards.fields == ("message",)
    other = policy.masker_for("other")
    assert other is not None and other.rules == {Rule.EMAIL}


def test_an_organisation_may_turn_masking_on_alone(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "[masking.orgs.bank]\nenabled = true\n")
    assert policy.masker_for("default") is None
    bank = policy.masker_for("bank")
    assert bank is not None and Rule.CARD in bank.rules and Rule.IP not in bank.rules


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[masking]\nrules = ["card", "iban"]', "masking.rules"),
        ("[masking.orgs.Bad_Org]\nenabled = true", "masking.orgs.Bad_Org"),
        ('[masking]\nfields = ["user..email"]', "masking.fields"),
        ('[masking.orgs.acme]\nfields = [""]', "masking.orgs.acme.fields"),
        ("[masking]\nenable = true", "enable"),
        ("[patterns]\nmax_events = 0", "patterns.max_events"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(path, environ={})
