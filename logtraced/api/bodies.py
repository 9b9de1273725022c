"""Request bodies decoded into their typed request structs, with the same refusals on every route."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from logtraced.errors import InvalidInput

T = TypeVar("T")


def decode_json(body: bytes, kind: type[T], *, hint: str = "bad request", empty: bytes | None = None) -> T:
    """The body as `kind`: 400 `invalid_request` naming what is wrong (after `hint`), 400 `malformed_json`
    for text that is not JSON or nests too deeply.  `empty` stands in for an empty body where one is allowed."""
    try:
        return msgspec.json.decode(body or empty or body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{hint}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", code="malformed_json") from exc
    except RecursionError:
        raise InvalidInput("the body nests JSON too deeply", code="malformed_json") from None
