"""structlog set-up, done once at start: JSON lines under systemd, readable lines in a terminal."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

from logtraced.config import LogConfig


def configure_logging(config: LogConfig) -> None:
    """Route the daemon's own logs to stderr; journald stores them, `format=auto` picks by tty."""
    use_console = config.format == "console" or (config.format == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer(colors=False) if use_console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(config.level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """A bound logger carrying the component name, so every line says where it came from."""
    return structlog.get_logger(component=name)


class WarningLimiter:
    """One warning per cause per interval, with the count of what was suppressed in between.

    Bad input arrives per event; the operator needs one line per cause, not one per event.
    """

    def __init__(self, log: Any, interval_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._interval = interval_seconds
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, cause: str, **context: Any) -> None:
        now = self._clock()
        last = self._last.get(cause)
        if last is not None and now - last < self._interval:
            self._suppressed[cause] = self._suppressed.get(cause, 0) + 1
            return
        self._last[cause] = now
        suppressed = self._suppressed.pop(cause, 0)
        self._log.warning(cause, suppressed_since_last=suppressed, **context)
