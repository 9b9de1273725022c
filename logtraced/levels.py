"""Log levels: every spelling shippers and queries use, mapped onto the six canonical ones (a leaf module).

Ingest stores the canonical level and queries compare against it, so both go through
`canonical_level`: `level:WARNING` finds what arrived as `warn`, `Warning` or syslog severity 4.
"""

from __future__ import annotations

from typing import Final

_LEVEL_NAMES: Final = {
    "trace": "trace",
    "debug": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "alert": "fatal",
    "panic": "fatal",
}
# Syslog severities 0-7 and bunyan/pino levels 10-60.
_LEVEL_NUMBERS: Final = {
    0: "fatal",
    1: "fatal",
    2: "fatal",
    3: "error",
    4: "warn",
    5: "info",
    6: "info",
    7: "debug",
    10: "trace",
    20: "debug",
    30: "info",
    40: "warn",
    50: "error",
    60: "fatal",
}
# Shippers send levels as lower, UPPER or Title case: one dict lookup covers all three.
_LEVEL_SPELLINGS: Final = {
    spelling: level for name, level in _LEVEL_NAMES.items() for spelling in (name, name.upper(), name.title())
}


def canonical_level(value: object) -> str:
    """The canonical level for a shipper's level value, or "" when the value is not a level.

    Unknown spellings are kept (lowercased) rather than dropped: a custom level is still
    a useful filter, and an unknown word must not turn into a wrong known one.
    """
    if type(value) is str:
        known = _LEVEL_SPELLINGS.get(value)
        if known is not None:
            return known
        word = value.strip().lower()
        if word.isdecimal() and word.isascii():
            return _LEVEL_NUMBERS.get(int(word), word)
        return _LEVEL_NAMES.get(word, word)
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is int:
        return _LEVEL_NUMBERS.get(value, str(value))
    return ""
