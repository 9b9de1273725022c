"""PII masking at ingest (152-FZ): finds personal data in an event's strings and masks it before the WAL write.

Detection is deliberately conservative: a number is masked only when its shape and its check digits
say it is a card (Luhn), an INN (FNS weights) or a SNILS (its checksum), a passport only next to a
passport keyword, a phone only in the spellings Russian numbers are written in.  Order ids, prices
and timestamps therefore survive; the price of checksum-only detection is that a random 10-digit id
passes the INN-10 check about one time in ten, a random 12-digit id passes INN-12 one time in a
hundred.  A log line that happens to carry such an id loses it; a line that carries real personal
data does not leak it.

Speed: the masker runs before every WAL write, so each string gets at most two scans, each one a
single compiled alternation: the e-mail pass only when the string holds an `@`, the numeric pass
only when it is long enough to hold the shortest candidate.  The regular expressions only find
candidate shapes; boundaries, check digits and passport keywords are decided in Python for the few
candidates found.  The stdlib `re` is used, not `re2`: led by one character class (see `Shape`),
the numeric pattern lets `re` skip in C to the next digit, and on ~300-byte log lines that beat
`re2` on the plain alternation (re2 has no lookbehind), whose per-call overhead dominates short
strings; `re2`'s `\\w` is also ASCII-only, which would cut Cyrillic e-mail addresses short.
`bench/masking.py` repeats the comparison.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, Final, NamedTuple

import msgspec

from logtraced.model import Event


class Rule(StrEnum):
    """One kind of personal data; its value names the counter `masked_<rule>`."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    INN = "inn"
    SNILS = "snils"
    PASSPORT = "passport"
    IP = "ip"


# IP addresses are operational data more often than personal data, so masking them is opt-in.
DEFAULT_RULES: Final = (Rule.EMAIL, Rule.PHONE, Rule.CARD, Rule.INN, Rule.SNILS, Rule.PASSPORT)
MESSAGE_FIELD: Final = "message"

INN10_WEIGHTS: Final = (2, 4, 10, 3, 5, 9, 4, 6, 8)
INN12_WEIGHTS_11: Final = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
INN12_WEIGHTS_12: Final = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
# Issuer identifiers 2-6 are the banking ones (ISO/IEC 7812); requiring them keeps 13-digit
# millisecond and 19-digit nanosecond timestamps (which start with 1) out of the card rule.
CARD_FIRST_DIGITS: Final = frozenset("23456")
PASSPORT_KEYWORDS: Final = ("паспорт", "passport", "сери", "series")
PASSPORT_WINDOW: Final = 32  # characters before the number searched for a keyword
SHORTEST_NUMERIC: Final = 10  # INN-10 and passport; phones, SNILS and cards are longer
SHORTEST_IP: Final = 3  # "::1"

MASKED_INN: Final = "[INN]"
MASKED_SNILS: Final = "[SNILS]"
MASKED_PASSPORT: Final = "[PASSPORT]"
MASKED_IP: Final = "[IP]"

EMAIL_PATTERN: Final = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"


class Shape(NamedTuple):
    """A candidate's spelling split into its first character (a class body) and the rest.

    The numeric pattern starts with the union of the first characters, so the stdlib engine can
    skip in C to the next digit (or `+`) instead of trying every alternative at every position; a
    lookbehind then picks the alternatives whose first character that was.
    """

    group: str  # named group: its prefix before "_" is the kind of candidate (ip, phone, number)
    first: str
    rest: str


# Order matters: the first alternative that matches at a position wins.
IP_SHAPES: Final = (
    Shape("ip_v4", "0-9", r"[0-9]{0,2}(?:\.[0-9]{1,3}){3}"),
    Shape("ip_v6", "0-9A-Fa-f", r"[0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}"),
    Shape("ip_v6c", ":", r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,7}(?:\.[0-9]{1,3}){0,3}"),
)
PHONE_SHAPES: Final = (
    Shape("phone_plus", r"\+", r"7[ -]?\(?[0-9]{3}\)?[ -]?[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{2}"),
    Shape("phone_8", "8", r"(?:[ -]\(?[0-9]{3}\)?| ?\([0-9]{3}\))[ -]?[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{2}"),
)
CARD_SHAPE: Final = Shape("number_card", "2-6", r"[0-9]{3}(?:[ -]?[0-9]){9,15}")
SNILS_SHAPE: Final = Shape("number_snils", "0-9", r"[0-9]{2}-[0-9]{3}-[0-9]{3}[ -][0-9]{2}")
PASSPORT_SHAPE: Final = Shape("number_passport", "0-9", r"[0-9] [0-9]{2} ?[0-9]{6}|[0-9]{3} (?:№ ?|номер )?[0-9]{6}")
PLAIN_SHAPE: Final = Shape("number_plain", "0-9", r"[0-9]{9,11}")  # 10 to 12 digits

_SEPARATORS: Final = frozenset(" -")
_WORD_ASCII: Final = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_DIGITS: Final = frozenset("0123456789")


class MaskCounts(msgspec.Struct):
    """Hits per rule; a batch adds one of these to the counters `masked_<rule>`."""

    email: int = 0
    phone: int = 0
    card: int = 0
    inn: int = 0
    snils: int = 0
    passport: int = 0
    ip: int = 0

    def hit(self, rule: Rule) -> None:
        setattr(self, rule.value, getattr(self, rule.value) + 1)

    def counters(self) -> dict[str, int]:
        """The non-zero counts keyed by counter name, ready to add to the metrics."""
        return {f"masked_{rule.value}": getattr(self, rule.value) for rule in Rule if getattr(self, rule.value)}

    def total(self) -> int:
        return sum(getattr(self, rule.value) for rule in Rule)


def luhn_valid(digits: str) -> bool:
    """The Luhn check every payment card number carries in its last digit."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _inn_digit(digits: str, weights: Sequence[int]) -> int:
    return sum(int(char) * weight for char, weight in zip(digits, weights, strict=False)) % 11 % 10


def inn_valid(digits: str) -> bool:
    """The FNS check digits: one for an organisation's 10-digit INN, two for a person's 12-digit one."""
    if len(digits) == 10:
        return _inn_digit(digits, INN10_WEIGHTS) == int(digits[9])
    if len(digits) == 12:
        return _inn_digit(digits, INN12_WEIGHTS_11) == int(digits[10]) and _inn_digit(digits, INN12_WEIGHTS_12) == int(
            digits[11]
        )
    return False


def snils_valid(digits: str) -> bool:
    """The SNILS checksum: digits weighted 9..1, reduced modulo 101, 100 written as 00."""
    if len(digits) != 11:
        return False
    total = sum(int(char) * weight for char, weight in zip(digits[:9], range(9, 0, -1), strict=True))
    return total % 101 % 100 == int(digits[9:])


def mask_email(address: str) -> str:
    """First character of the local part and the whole domain: enough to tell customers apart."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_card(digits: str) -> str:
    return f"**** **** **** {digits[-4:]}"


def mask_phone(digits: str) -> str:
    return f"+7 *** ***-**-{digits[-2:]}"


def _near_passport_keyword(text: str, start: int) -> bool:
    before = text[max(0, start - PASSPORT_WINDOW) : start].lower()
    return any(keyword in before for keyword in PASSPORT_KEYWORDS)


def _bounded(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] stands alone, not a piece of a longer number, id, hash or decimal."""
    if start > 0:
        before = text[start - 1]
        if before in _WORD_ASCII or (before in ".-" and start > 1 and text[start - 2] in _WORD_ASCII):
            return False
    if end < len(text):
        after = text[end]
        if after in _WORD_ASCII or (after in ".-" and end + 1 < len(text) and text[end + 1] in _DIGITS):
            return False
    return True


def _prefix_ends(candidate: str) -> list[int]:
    """Where a numeric candidate may end, longest first: its end, then before each separator run.

    The card shape is greedy and joins a following number ("4111 1111 1111 1111 10 руб"), so a
    candidate that fails as a whole is retried without its trailing groups.
    """
    ends = [len(candidate)]
    for index in range(len(candidate) - 1, 0, -1):
        if candidate[index] in _SEPARATORS and candidate[index - 1] not in _SEPARATORS:
            ends.append(index)
    return ends


class Masker:
    """Masks the chosen fields of events in place with the chosen rules; built once from config."""

    def __init__(self, rules: Iterable[Rule | str] = DEFAULT_RULES, fields: Sequence[str] | None = None) -> None:
        self.rules: Final = frozenset(Rule(rule) for rule in rules)
        # None means the message and every string attribute at any depth.
        self.fields: Final = tuple(fields) if fields is not None else None
        self._email = re.compile(EMAIL_PATTERN) if Rule.EMAIL in self.rules else None
        numeric = numeric_pattern(self.rules)
        self._numeric = re.compile(numeric) if numeric else None
        self._shortest = SHORTEST_IP if Rule.IP in self.rules else SHORTEST_NUMERIC

    def mask_events(self, events: Iterable[Event]) -> MaskCounts:
        """Masks a batch in place and returns its hits per rule."""
        counts = MaskCounts()
        for event in events:
            self.mask_event(event, counts)
        return counts

    def mask_event(self, event: Event, counts: MaskCounts) -> None:
        """Masks one event in place, adding its hits to `counts`."""
        if self.fields is None:
            event.message = self.mask_text(event.message, counts)
            self._mask_dict(event.attributes, counts)
            return
        for path in self.fields:
            if path == MESSAGE_FIELD:
                event.message = self.mask_text(event.message, counts)
            else:
                self._mask_path(event.attributes, path, counts)

    def mask_text(self, text: str, counts: MaskCounts) -> str:
        """`text` with every detected item masked; the same object when there was no candidate.

        A search comes before the substitution because nearly every string has no candidate and
        a bare search costs less than a substitution with its callback.
        """
        email = self._email
        if email is not None and "@" in text and email.search(text) is not None:
            text = email.sub(lambda match: _email_hit(match, counts), text)
        numeric = self._numeric
        if numeric is not None and len(text) >= self._shortest and numeric.search(text) is not None:
            text = numeric.sub(lambda match: self._numeric_hit(match, counts), text)
        return text

    def _mask_dict(self, node: dict[str, Any], counts: MaskCounts) -> None:
        """Masks every string under a dict, at any depth, in place (the walk inlines the cheap pre-checks)."""
        shortest = self._shortest
        for key, item in node.items():
            if isinstance(item, str):
                if len(item) >= shortest or "@" in item:
                    node[key] = self.mask_text(item, counts)
            elif isinstance(item, dict):
                self._mask_dict(item, counts)
            elif isinstance(item, list):
                self._mask_list(item, counts)

    def _mask_list(self, node: list[Any], counts: MaskCounts) -> None:
        for index in range(len(node)):
            self._mask_value(node, index, counts)

    def _mask_value(self, container: Any, key: Any, counts: MaskCounts) -> None:
        """Masks container[key]: a string, or every string under a dict or list."""
        item = container[key]
        if isinstance(item, str):
            container[key] = self.mask_text(item, counts)
        elif isinstance(item, dict):
            self._mask_dict(item, counts)
        elif isinstance(item, list):
            self._mask_list(item, counts)

    def _mask_path(self, attributes: dict[str, Any], path: str, counts: MaskCounts) -> None:
        """Masks the attribute at a dotted path and everything under it; a flattened key "a.b" matches too."""
        node: Any = attributes
        rest = path
        while isinstance(node, dict):
            key, _, after = (rest, "", "") if rest in node else rest.partition(".")
            if key not in node:
                return
            if not after:
                self._mask_value(node, key, counts)
                return
            node, rest = node[key], after

    def _numeric_hit(self, match: re.Match[str], counts: MaskCounts) -> str:
        text, start, found = match.string, match.start(), match.group()
        kind = (match.lastgroup or "").partition("_")[0]
        if kind == "ip":
            return _ip_hit(found, text, start, counts)
        if kind == "phone":
            if not _bounded(text, start, match.end()):
                return found
            counts.hit(Rule.PHONE)
            return mask_phone(found)
        for end in _prefix_ends(found):
            if _bounded(text, start, start + end):
                masked = self._classify(found[:end], text, start, counts)
                if masked is not None:
                    return masked + found[end:]
        return found

    def _classify(self, candidate: str, text: str, start: int, counts: MaskCounts) -> str | None:
        """The masked form of a bounded numeric candidate, or None when it is nobody's data."""
        digits = "".join(char for char in candidate if char in _DIGITS)
        plain = len(digits) == len(candidate)
        rules = self.rules
        if Rule.PASSPORT in rules and len(digits) == 10 and _near_passport_keyword(text, start):
            counts.hit(Rule.PASSPORT)
            return MASKED_PASSPORT
        if Rule.SNILS in rules and len(digits) == 11 and (plain or "-" in candidate) and snils_valid(digits):
            counts.hit(Rule.SNILS)
            return MASKED_SNILS
        if Rule.INN in rules and plain and inn_valid(digits):
            counts.hit(Rule.INN)
            return MASKED_INN
        if Rule.CARD in rules and 13 <= len(digits) <= 19 and digits[0] in CARD_FIRST_DIGITS and luhn_valid(digits):
            counts.hit(Rule.CARD)
            return mask_card(digits)
        return None


def numeric_shapes(rules: frozenset[Rule]) -> list[Shape]:
    """The candidate spellings the enabled numeric rules need, in the order they are tried."""
    shapes: list[Shape] = []
    if Rule.IP in rules:
        shapes += IP_SHAPES
    if Rule.PHONE in rules:
        shapes += PHONE_SHAPES
    if Rule.CARD in rules:
        shapes.append(CARD_SHAPE)
    if Rule.SNILS in rules:
        shapes.append(SNILS_SHAPE)
    if Rule.PASSPORT in rules:
        shapes.append(PASSPORT_SHAPE)
    if rules & {Rule.INN, Rule.SNILS, Rule.PASSPORT}:
        shapes.append(PLAIN_SHAPE)
    return shapes


def numeric_pattern(rules: frozenset[Rule]) -> str:
    """One pattern for every enabled numeric rule, led by the class of all their first characters."""
    shapes = numeric_shapes(rules)
    if not shapes:
        return ""
    branches = "|".join(f"(?<=[{shape.first}])(?P<{shape.group}>{shape.rest})" for shape in shapes)
    return f"[{''.join(shape.first for shape in shapes)}](?<![0-9A-Za-z_].)(?:{branches})"


def _email_hit(match: re.Match[str], counts: MaskCounts) -> str:
    counts.hit(Rule.EMAIL)
    return mask_email(match.group())


def _ip_hit(found: str, text: str, start: int, counts: MaskCounts) -> str:
    """Masks a valid address; a trailing colon ("fe80::1: refused") may belong to the sentence."""
    for address in (found, found[:-1]) if found.endswith(":") else (found,):
        if _bounded(text, start, start + len(address)) and _is_ip(address):
            counts.hit(Rule.IP)
            return MASKED_IP + found[len(address) :]
    return found


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True
