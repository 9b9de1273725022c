"""Tests for PII masking: checksum-valid data is masked in every spelling, innocent numbers never are."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from logtraced.ingest.masking import DEFAULT_RULES, MaskCounts, Masker, Rule
from logtraced.model import Event

ALL_RULES = tuple(Rule)
CARD_VISA = "4111111111111111"
CARD_MC = "5555555555554444"
CARD_MIR = "2200240000000006"
CARD_AMEX = "378282246310005"  # 15 digits
CARD_VISA_13 = "4222222222222"
INN_10 = "7707083893"
INN_10_OTHER = "3664069397"
INN_12 = "500100732259"
SNILS = "11223344595"
SNILS_DASHED = "112-233-445 95"
SNILS_OTHER = "08765430300"  # checksum 00: the sum reduces to 100


def other_last_digits(number: str) -> list[str]:
    """The nine numbers differing from `number` only in its last digit: all fail a single check digit."""
    return [number[:-1] + digit for digit in "0123456789" if digit != number[-1]]


def luhn_complete(prefix: str) -> str:
    """`prefix` with the Luhn digit appended, computed the long way round (every candidate tried)."""
    for digit in "0123456789":
        candidate = prefix + digit
        doubled = [int(c) * (2 if i % 2 else 1) for i, c in enumerate(reversed(candidate))]
        if sum(d // 10 + d % 10 for d in doubled) % 10 == 0:
            return candidate
    raise AssertionError("no Luhn digit")


def mask(text: str, rules: tuple[Rule, ...] = ALL_RULES) -> tuple[str, dict[str, int]]:
    counts = MaskCounts()
    return Masker(rules).mask_text(text, counts), counts.counters()


# --- cards -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        CARD_VISA,
        CARD_MC,
        CARD_MIR,
        CARD_AMEX,
        CARD_VISA_13,
        luhn_complete("220220000000000000"),  # 19 digits
    ],
)
@pytest.mark.parametrize("template", ["Оплата картой {} прошла успешно", "payment with card {} declined: {}"])
def test_luhn_valid_cards_keep_only_their_last_four(spelling: str, template: str) -> None:
    last4 = spelling.replace(" ", "").replace("-", "")[-4:]
    masked, counts = mask(template.replace("{}", spelling, 1).replace("{}", "insufficient funds"))
    assert spelling not in masked
    assert f"**** **** **** {last4}" in masked
    assert counts == {"masked_card": 1}


@pytest.mark.parametrize("number", other_last_digits(CARD_VISA) + other_last_digits(CARD_MIR))
def test_luhn_invalid_cards_are_untouched(number: str) -> None:
    text = f"карта {number[:4]} {number[4:8]} {number[8:12]} {number[12:]} и card {number}"
    assert mask(text) == (text, {})


def test_a_card_followed_by_another_number_is_still_found() -> None:
    masked, counts = mask("списано по карте 4111 1111 1111 1111 10 руб.")
    assert masked == "списано по карте **** **** **** 1111 10 руб."
    assert counts == {"masked_card": 1}


# --- INN and SNILS -----------------------------------------------------------------------------


@pytest.mark.parametrize("number", [INN_10, INN_10_OTHER, INN_12])
@pytest.mark.parametrize("template", ["ИНН {} не найден в ЕГРЮЛ", "taxpayer inn={}, status=active", "ИНН:{}"])
def test_checksum_valid_inn_is_masked(number: str, template: str) -> None:
    masked, counts = mask(template.format(number))
    assert masked == template.format("[INN]")
    assert counts == {"masked_inn": 1}


@pytest.mark.parametrize("number", other_last_digits(INN_10) + other_last_digits(INN_12))
def test_checksum_invalid_inn_is_untouched(number: str) -> None:
    text = f"ИНН {number} не прошёл проверку; inn {number}"
    assert mask(text) == (text, {})


def test_inn_12_needs_both_check_digits() -> None:
    broken_first = INN_12[:10] + str((int(INN_12[10]) + 1) % 10) + INN_12[11]
    text = f"ИНН {broken_first}"
    assert mask(text) == (text, {})


@pytest.mark.parametrize("spelling", [SNILS_DASHED, SNILS, "112-233-445-95", SNILS_OTHER])
@pytest.mark.parametrize("template", ["СНИЛС {} клиента", "snils: {}"])
def test_checksum_valid_snils_is_masked(spelling: str, template: str) -> None:
    masked, counts = mask(template.format(spelling))
    assert masked == template.format("[SNILS]")
    assert counts == {"masked_snils": 1}


@pytest.mark.parametrize("number", other_last_digits(SNILS))
def test_checksum_invalid_snils_is_untouched(number: str) -> None:
    text = f"СНИЛС {number[:3]}-{number[3:6]}-{number[6:9]} {number[9:]}, snils {number}"
    assert mask(text) == (text, {})


# --- passport ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "паспорт 45 06 123456 выдан ОВД",
        "Паспорт: серия 4506 номер 123456",
        "данные паспорта 4506123456",
        "passport 4506 123456 expired",
        "series 45 06 123456",
        "серия 4506 № 123456",
    ],
)
def test_passport_numbers_next_to_a_keyword_are_masked(text: str) -> None:
    masked, counts = mask(text)
    assert "[PASSPORT]" in masked
    assert "123456" not in masked
    assert counts == {"masked_passport": 1}


@pytest.mark.parametrize("text", ["order 45 06 123456 shipped", "заказ 4506 123456 отгружен"])
def test_passport_shapes_without_a_keyword_are_untouched(text: str) -> None:
    assert mask(text) == (text, {})


def test_passport_keyword_far_away_does_not_count() -> None:
    text = "паспорт проверен, далее обработка заказа номер 45 06 123456"
    assert mask(text) == (text, {})


# --- phones, e-mail, ip --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling", ["+7 (912) 345-67-89", "8 912 345 67 89", "+79123456789", "8-912-345-67-89", "8(912)345-67-89"]
)
def test_russian_phone_spellings_keep_their_last_two_digits(spelling: str) -> None:
    masked, counts = mask(f"Перезвонить клиенту по номеру {spelling} завтра")
    assert masked == "Перезвонить клиенту по номеру +7 *** ***-**-89 завтра"
    assert counts == {"masked_phone": 1}


@pytest.mark.parametrize(
    "text", ["call +7 912 345 67 8 now", "call +7 912 345 67 899", "tel 8 912 345 678", "code 8-912-34-67-89"]
)
def test_phone_like_numbers_of_the_wrong_length_are_untouched(text: str) -> None:
    assert mask(text) == (text, {})


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("ivan.petrov@example.ru", "i***@example.ru"),
        ("support+tag@mail.yandex.ru", "s***@mail.yandex.ru"),
        ("Мария@почта.рф", "М***@почта.рф"),
    ],
)
def test_email_keeps_first_character_and_domain(address: str, shown: str) -> None:
    masked, counts = mask(f"письмо отправлено на {address}.")
    assert masked == f"письмо отправлено на {shown}."
    assert counts == {"masked_email": 1}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("connect from 192.168.1.10:5432 failed", "connect from [IP]:5432 failed"),
        ("client 2001:db8::ff00:42:8329 joined", "client [IP] joined"),
        ("bind fe80::1: address in use", "bind [IP]: address in use"),
        ("peer ::ffff:192.0.2.1 reset", "peer [IP] reset"),
    ],
)
def test_ip_addresses_are_masked_when_enabled(text: str, masked: str) -> None:
    assert mask(text) == (masked, {"masked_ip": 1})
    assert mask(text, DEFAULT_RULES) == (text, {})


@pytest.mark.parametrize(
    "text",
    ["at 12:30:45.123 mac 00:1a:2b:3c:4d:5e", "version 1.2.3.4.5 of 999.1.1.1", "Foo::bar::baz resolved"],
)
def test_ip_lookalikes_are_untouched(text: str) -> None:
    assert mask(text) == (text, {})


# --- innocent numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567891 shipped in 15ms",
        "заказ №100200300 на сумму 1 234 567,89 руб",
        "ts=1718000000123 ns=1718000000123456789",
        "2024-06-10T06:13:20.123456Z request_id=17180000001234567 took 1500 мс",
        "price 7707083893.50 RUB",
        "uuid 550e8400-e29b-41d4-a716-446655440000 hash a3f5004111111111111111",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "id7707083893 user_500100732259",
        "телефон не указан, 8 800 звонок, 2024 год, 15 шт",
    ],
)
def test_innocent_numbers_are_untouched(text: str) -> None:
    assert mask(text) == (text, {})


# --- rules on and off --------------------------------------------------------------------------

SAMPLES = {
    Rule.EMAIL: "anna@example.com",
    Rule.PHONE: "+7 (912) 345-67-89",
    Rule.CARD: "4111 1111 1111 1111",
    Rule.INN: INN_12,
    Rule.SNILS: SNILS_DASHED,
    Rule.PASSPORT: "паспорт 45 06 123456",
    Rule.IP: "10.20.30.40",
}
TEXT_WITH_EVERYTHING = " ; ".join(SAMPLES.values())


@pytest.mark.parametrize("rule", ALL_RULES)
def test_a_rule_switched_off_leaves_its_data_and_masks_the_rest(rule: Rule) -> None:
    masked, counts = mask(TEXT_WITH_EVERYTHING, tuple(r for r in ALL_RULES if r is not rule))
    for other, sample in SAMPLES.items():
        assert (sample in masked) == (other is rule), other
    assert counts == {f"masked_{other}": 1 for other in ALL_RULES if other is not rule}


@pytest.mark.parametrize("rule", ALL_RULES)
def test_a_rule_alone_masks_only_its_data(rule: Rule) -> None:
    masked, counts = mask(TEXT_WITH_EVERYTHING, (rule,))
    for other, sample in SAMPLES.items():
        assert (sample in masked) == (other is not rule), other
    assert counts == {f"masked_{rule}": 1}


def test_rules_may_be_given_by_name_and_unknown_names_are_refused() -> None:
    assert Masker(["card", "inn"]).rules == {Rule.CARD, Rule.INN}
    with pytest.raises(ValueError):
        Masker(["cards"])


def test_no_rules_masks_nothing() -> None:
    assert mask(TEXT_WITH_EVERYTHING, ()) == (TEXT_WITH_EVERYTHING, {})


# --- events ------------------------------------------------------------------------------------


def event(message: str, attributes: dict[str, Any]) -> Event:
    return Event(timestamp=1_718_000_000_000_000_000, message=message, level="info", attributes=attributes)


def nested_attributes() -> dict[str, Any]:
    return {
        "user": {"email": "ivan@example.ru", "contacts": [{"phone": "8 912 345 67 89"}, "ИНН " + INN_10]},
        "order_id": 1234567890123,
        "amount": 1500.5,
        "payment.card": CARD_MC,
        "http": {"status": 200, "path": "/api/v1/orders/77070838"},
        "note": "клиент оплатил",
    }


def test_default_selection_masks_message_and_every_nested_string() -> None:
    item = event(f"оплата по карте {CARD_VISA}, СНИЛС {SNILS_DASHED}", nested_attributes())
    counts = Masker().mask_events([item])
    assert item.message == "оплата по карте **** **** **** 1111, СНИЛС [SNILS]"
    assert item.attributes == {
        "user": {"email": "i***@example.ru", "contacts": [{"phone": "+7 *** ***-**-89"}, "ИНН [INN]"]},
        "order_id": 1234567890123,
        "amount": 1500.5,
        "payment.card": "**** **** **** 4444",
        "http": {"status": 200, "path": "/api/v1/orders/77070838"},
        "note": "клиент оплатил",
    }
    assert counts.counters() == {
        "masked_email": 1,
        "masked_phone": 1,
        "masked_card": 2,
        "masked_inn": 1,
        "masked_snils": 1,
    }


def test_field_paths_mask_only_the_named_fields() -> None:
    message = f"карта {CARD_VISA}"
    item = event(message, nested_attributes())
    counts = MaskCounts()
    Masker(fields=["user.contacts", "payment.card", "missing.path", "note.deeper"]).mask_event(item, counts)
    assert item.message == message
    assert item.attributes["user"]["email"] == "ivan@example.ru"
    assert item.attributes["user"]["contacts"] == [{"phone": "+7 *** ***-**-89"}, "ИНН [INN]"]
    assert item.attributes["payment.card"] == "**** **** **** 4444"
    assert counts.counters() == {"masked_phone": 1, "masked_inn": 1, "masked_card": 1}


def test_field_paths_include_the_message_by_name() -> None:
    item = event(f"карта {CARD_VISA}", nested_attributes())
    Masker(fields=["message", "user.email"]).mask_event(item, MaskCounts())
    assert item.message == "карта **** **** **** 1111"
    assert item.attributes["user"]["email"] == "i***@example.ru"
    assert item.attributes["user"]["contacts"][0]["phone"] == "8 912 345 67 89"


def test_events_without_pii_come_out_equal() -> None:
    item = event("GET /api/v1/orders/123456 200 15ms", {"http": {"status": 200}, "tags": ["a", "b1234567890"]})
    before = copy.deepcopy(item)
    assert Masker(ALL_RULES).mask_events([item]).total() == 0
    assert item == before


def test_counts_add_up_over_a_batch() -> None:
    events = [event(f"card {CARD_VISA} inn {INN_10}", {}) for _ in range(3)] + [event("nothing here", {})]
    counts = Masker().mask_events(events)
    assert counts.counters() == {"masked_card": 3, "masked_inn": 3}
    assert counts.total() == 6
