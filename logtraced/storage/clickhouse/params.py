"""The values a ClickHouse statement binds to its placeholders: user text never enters the SQL itself."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Params:
    """The values bound to a statement's placeholders, named p0, p1, ... in order of appearance."""

    values: dict[str, str | int | float] = field(default_factory=dict)

    def add(self, value: str | int | float, kind: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{kind}}}"

    def text(self, value: str) -> str:
        return self.add(value, "String")

    def int64(self, value: int) -> str:
        return self.add(value, "Int64")
