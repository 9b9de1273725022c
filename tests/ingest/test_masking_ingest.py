"""Masking at ingest end to end: TCP JSON lines, UDP and HTTP batches against a daemon with [masking] on.

Each test sends freshly generated numbers (so a byte found on disk can only come from it): checksum
-valid ones that must be masked and checksum-invalid ones that must survive, in Russian and English
messages and nested attributes.  Then it reads the store, the health counters, and greps the WAL
segments and the index directory for the raw bytes.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logtraced.ingest.masking import inn_valid, luhn_valid, snils_valid
from logtraced.model import Event, Tenant
from tests.api.conftest import Key, mint_key
from tests.conftest import DEFAULT_TENANT, Store
from tests.harness import DaemonProcess, wait_until

PLAIN_ORG = "plain-org"
CONFIG = f"""
[index]
commit_interval_ms = 200

[masking]
enabled = true

[masking.orgs.{PLAIN_ORG}]
enabled = false
"""


def _with_check_digit(body: str, valid: object) -> str:
    """`body` plus the one final digit that makes `valid` true."""
    for digit in "0123456789":
        if valid(body + digit):  # type: ignore[operator]
            return body + digit
    raise AssertionError(f"no check digit for {body}")


def _wrong_last_digit(number: str, valid: object) -> str:
    for digit in "0123456789":
        candidate = number[:-1] + digit
        if not valid(candidate):  # type: ignore[operator]
            return candidate
    raise AssertionError(f"every last digit passes for {number}")


@dataclass(frozen=True)
class Personal:
    """One sender's personal data, checksum-valid, and look-alike numbers that fail their checks."""

    card: str  # spelled in groups of four
    card_invalid: str
    inn: str
    inn_invalid: str
    snils: str  # 112-233-445 95
    snils_invalid: str
    phone: str
    email: str
    passport: str

    @classmethod
    def generate(cls, rng: random.Random) -> Personal:
        card = _with_check_digit("4" + "".join(rng.choice("0123456789") for _ in range(14)), luhn_valid)
        inn = _inn12(rng)
        snils = _snils(rng)
        return cls(
            card=_grouped(card),
            card_invalid=_grouped(_wrong_last_digit(card, luhn_valid)),
            inn=inn,
            inn_invalid=_wrong_last_digit(inn, inn_valid),
            snils=_snils_spelling(snils),
            snils_invalid=_snils_spelling(_wrong_last_digit(snils, snils_valid)),
            phone=_phone(rng),
            email=f"u{uuid.uuid4().hex[:10]}@example.ru",
            passport=f"{rng.randrange(10, 100)} {rng.randrange(10, 100)} {rng.randrange(100000, 1000000)}",
        )

    @property
    def secrets(self) -> list[str]:
        """Every spelling of a masked value that must not reach the disk."""
        spelled = [self.card, self.inn, self.snils, self.phone, self.email, self.passport]
        return spelled + [self.card.replace(" ", ""), self.snils.replace("-", "").replace(" ", "")]

    @property
    def survivors(self) -> list[str]:
        return [self.card_invalid, self.inn_invalid, self.snils_invalid]


def _phone(rng: random.Random) -> str:
    code, exchange = rng.randrange(900, 1000), rng.randrange(100, 1000)
    return f"+7 ({code}) {exchange}-{rng.randrange(10, 100)}-{rng.randrange(10, 100)}"


def _grouped(digits: str) -> str:
    return " ".join(digits[start : start + 4] for start in range(0, len(digits), 4))


def _inn12(rng: random.Random) -> str:
    body = "77" + "".join(rng.choice("0123456789") for _ in range(8))
    for eleventh in "0123456789":
        for twelfth in "0123456789":
            if inn_valid(body + eleventh + twelfth):
                return body + eleventh + twelfth
    raise AssertionError("no INN check digits")


def _snils(rng: random.Random) -> str:
    while True:
        body = "".join(rng.choice("0123456789") for _ in range(9))
        for check in range(100):
            if snils_valid(f"{body}{check:02d}"):
                return f"{body}{check:02d}"


def _snils_spelling(digits: str) -> str:
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:9]} {digits[9:]}"


def events_for(word: str, data: Personal) -> list[dict[str, Any]]:
    """A Russian and an English event, with the data in the message and in nested attributes."""
    return [
        {
            "message": f"{word} Оплата картой {data.card} клиентом ИНН {data.inn}, тел. {data.phone};"
            f" паспорт {data.passport}; заказ {data.card_invalid}",
            "level": "info",
            "customer": {
                "snils": f"СНИЛС {data.snils}",
                "contacts": [data.email, "нет"],
                "bad_snils": data.snils_invalid,
            },
        },
        {
            "message": f"{word} payment by {data.email} failed, SNILS {data.snils}, order {data.inn_invalid}",
            "level": "error",
            "payment": {"card": data.card, "attempt": {"note": f"call {data.phone}"}},
        },
    ]


@pytest.fixture(scope="module")
def masking_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, Path]]:
    root = tmp_path_factory.mktemp("masking")
    config = root / "logtraced.toml"
    config.write_text(CONFIG)
    daemon = DaemonProcess(root / "data", "--config", str(config)).start()
    yield daemon, config
    daemon.kill()


def _stored(daemon: DaemonProcess, tenant: Tenant, word: str) -> list[Event]:
    found = Store(daemon.data_dir).wait_for(2, tenant=tenant, field="message", term=word)
    return sorted(found, key=lambda event: event.level, reverse=True)  # info (Russian) first


def _disk_bytes(daemon: DaemonProcess, folder: str) -> list[bytes]:
    return [path.read_bytes() for path in (daemon.data_dir / folder).rglob("*") if path.is_file()]


def _on_disk(daemon: DaemonProcess, folder: str, text: str) -> bool:
    needle = text.encode()
    return any(needle in blob for blob in _disk_bytes(daemon, folder))


def _assert_masked(daemon: DaemonProcess, events: list[Event], data: Personal) -> None:
    russian, english = events
    last4 = data.card.replace(" ", "")[-4:]
    assert f"Оплата картой **** **** **** {last4} клиентом ИНН [INN]" in russian.message
    assert f"тел. +7 *** ***-**-{data.phone[-2:]};" in russian.message
    assert "паспорт [PASSPORT];" in russian.message
    assert russian.message.endswith(f"заказ {data.card_invalid}")  # fails Luhn: an order number, kept
    assert russian.attributes["customer"] == {
        "snils": "СНИЛС [SNILS]",
        "contacts": [f"{data.email[0]}***@example.ru", "нет"],
        "bad_snils": data.snils_invalid,
    }
    assert f"payment by {data.email[0]}***@example.ru failed, SNILS [SNILS], order {data.inn_invalid}" in (
        english.message
    )
    assert english.attributes["payment"] == {
        "card": f"**** **** **** {last4}",
        "attempt": {"note": f"call +7 *** ***-**-{data.phone[-2:]}"},
    }
    for secret in data.secrets:
        assert not _on_disk(daemon, "wal", secret), f"{secret!r} reached the WAL"
        assert not _on_disk(daemon, "index", secret), f"{secret!r} reached the index"
    for survivor in data.survivors:
        assert _on_disk(daemon, "wal", survivor), f"{survivor!r} should be in the WAL as sent"


def _health_counters(daemon: DaemonProcess, key: Key) -> dict[str, int]:
    status, _, body = daemon.request("GET", "/v1/health", headers=key.bearer)
    assert status in (200, 503), body
    counters: dict[str, int] = body["counters"]
    return counters


def _masked(counters: dict[str, int]) -> dict[str, int]:
    return {name: value for name, value in counters.items() if name.startswith("masked_")}


class TestEveryIngestPath:
    """The same events over each receiver are stored masked, with nothing raw on disk."""

    def test_tcp_json_lines(self, masking_daemon: tuple[DaemonProcess, Path]) -> None:
        daemon, _ = masking_daemon
        word, data = "w" + uuid.uuid4().hex[:12], Personal.generate(random.Random(1))
        daemon.send_tcp(b"".join(json.dumps(event).encode() + b"\n" for event in events_for(word, data)))
        _assert_masked(daemon, _stored(daemon, DEFAULT_TENANT, word), data)

    def test_udp_datagrams(self, masking_daemon: tuple[DaemonProcess, Path]) -> None:
        daemon, _ = masking_daemon
        word, data = "w" + uuid.uuid4().hex[:12], Personal.generate(random.Random(2))
        for event in events_for(word, data):
            daemon.send_udp(json.dumps(event).encode())
        _assert_masked(daemon, _stored(daemon, DEFAULT_TENANT, word), data)

    def test_http_ingest_and_health_counters(self, masking_daemon: tuple[DaemonProcess, Path]) -> None:
        daemon, config = masking_daemon
        key = _key(daemon, config, "masked-org")
        before = _masked(_health_counters(daemon, key))
        assert set(before) == {
            f"masked_{rule}" for rule in ("email", "phone", "card", "inn", "snils", "passport", "ip")
        }
        word, data = "w" + uuid.uuid4().hex[:12], Personal.generate(random.Random(3))
        status, _, body = daemon.request(
            "POST", "/v1/logs/ingest", body={"logs": events_for(word, data)}, headers=key.bearer
        )
        assert status == 202, body
        _assert_masked(daemon, _stored(daemon, key.tenant, word), data)
        after = _masked(_health_counters(daemon, key))
        hits = {name: after[name] - before[name] for name in after}
        # Two cards, two phones, one INN, two SNILS, two e-mails, one passport; no IP rule.
        assert hits == {
            "masked_card": 2,
            "masked_phone": 2,
            "masked_inn": 1,
            "masked_snils": 2,
            "masked_email": 2,
            "masked_passport": 1,
            "masked_ip": 0,
        }


class TestOrganisationOverride:
    def test_an_organisation_with_masking_off_is_stored_as_sent(
        self, masking_daemon: tuple[DaemonProcess, Path]
    ) -> None:
        daemon, config = masking_daemon
        key = _key(daemon, config, PLAIN_ORG)
        word, data = "w" + uuid.uuid4().hex[:12], Personal.generate(random.Random(4))
        status, _, _ = daemon.request(
            "POST", "/v1/logs/ingest", body={"logs": events_for(word, data)}, headers=key.bearer
        )
        assert status == 202
        russian, english = _stored(daemon, key.tenant, word)
        assert data.card in russian.message and english.attributes["payment"]["card"] == data.card
        wait_until(lambda: _on_disk(daemon, "wal", data.email))


def _key(daemon: DaemonProcess, config: Path, org: str) -> Key:
    return mint_key(daemon.data_dir, "write:logs", "read:logs", org=org, config_path=config)
