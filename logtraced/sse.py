"""A sans-IO reader of Server-Sent Events (the `logtraced tail` client's side of /v1/logs/tail).

Lines in, (event name, data) pairs out, as the WHATWG rules read them: `data:` lines of one event
are joined by newlines, a blank line ends the event, `:` lines are comments (keepalives).
"""

from __future__ import annotations

from collections.abc import Iterator


class SseReader:
    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> Iterator[tuple[str, str]]:
        """One line without its newline; yields an event when the line completes one."""
        if not line:
            if self._data:
                yield self._name, "\n".join(self._data)
            self._name, self._data = "message", []
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value or "message"
