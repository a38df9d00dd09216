"""Logging: structlog events carried by the standard library's `logging`, silent by default.

Library modules only call `get_logger(...)` and bind context (pump_id, program_id, phase,
library_version). Their events go to stdlib loggers under `pumpctl`, which has a `NullHandler`:
an application that configures no logging sees nothing (not even the "handler of last resort"
for warnings), and one that does (`logging.basicConfig`, `dictConfig`, structlog's
`ProcessorFormatter`) decides what is shown and where. A foreign formatter prints an event as
`event key=value ...`; `ProcessorFormatter` gets the event dict itself.

pumpctl wires structlog this way only if the application has not configured structlog itself
(then pumpctl's events follow the application's structlog configuration). The CLI calls
`configure_logging` once: a console handler and, optionally, a JSON-lines audit file.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "LOGGER_NAME",
    "LogSinks",
    "configure_logging",
    "debug_enabled",
    "event_of",
    "get_logger",
    "level_number",
]

LOGGER_NAME = "pumpctl"
"""Every pumpctl logger is `pumpctl` or below it (`pumpctl.driver`, `pumpctl.infusion...`)."""


class _Event(dict[str, Any]):
    """The event dict as it travels in `LogRecord.msg`; readable under a foreign formatter."""

    def __str__(self) -> str:
        rest = " ".join(f"{k}={v!r}" for k, v in self.items() if k not in ("event", "level"))
        return f"{self.get('event', '')} {rest}".rstrip()


def _as_event(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    return _Event(event_dict)


def _drop(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    raise structlog.DropEvent


def _processors(*, discard: bool = False) -> list[Processor]:
    """The library's chain: drop below the stdlib level first (cheap), add the bound context
    (SR33), hand the event dict to stdlib logging. `discard`: process everything, emit nothing
    (tests: a malformed log call still fails, without the cost of records and handlers)."""
    chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
    ]
    if discard:
        return [*chain, _drop]
    return [
        structlog.stdlib.filter_by_level,
        *chain,
        _as_event,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]


def _wire_structlog(*, discard: bool = False) -> None:
    structlog.configure(
        processors=_processors(discard=discard),
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())
if not structlog.is_configured():
    _wire_structlog()


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger for stdlib logger `name` (under `pumpctl`), with context bound."""
    return structlog.get_logger(name).bind(logger=name, **context)


def debug_enabled(bound: Any) -> bool:
    """Whether `bound` (a logger from `get_logger`) would emit a debug event: a check cheap
    enough for a path taken on every poll, so that a caller skips building an event nobody
    sees (the hex dumps of each wire exchange). Asked at each call, not once: levels change,
    and `structlog.testing.capture_logs` swaps the chain in place.

    Exact for pumpctl's own wiring: its chain drops below the stdlib level first (the stdlib
    logger answers, from its own cache) or discards everything. Under any other structlog
    configuration the answer is True and structlog decides, as it would without the check.
    """
    chain = getattr(bound, "_processors", None)
    if not chain:
        return True
    if chain[0] is _FILTER_BY_LEVEL:
        logger = getattr(bound, "_logger", None)
        return not isinstance(logger, _StdlibLogger) or logger.isEnabledFor(_DEBUG)
    return chain[-1] is not _drop


# what `debug_enabled` compares with, looked up once (it runs on every poll)
_FILTER_BY_LEVEL = structlog.stdlib.filter_by_level
_StdlibLogger = logging.Logger
_DEBUG = logging.DEBUG


def level_number(level: int | str) -> int:
    """`"warning"`, `"WARNING"` or `logging.WARNING` as the number; ValueError if unknown."""
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning, error")
    return number


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `stream`, or to whatever `sys.stderr` is at the moment of writing: while a
    rich live panel runs it has replaced `sys.stderr` with a proxy that prints above the
    panel, so a warning never tears the display."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._fixed or sys.stderr
        super().emit(record)


def event_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structlog event dict a record carries (empty for a foreign record): for filters."""
    return record.msg if isinstance(record.msg, dict) else {}


def _formatter(renderer: Processor) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        foreign_pre_chain=[structlog.stdlib.add_log_level],
    )


def _json() -> Processor:
    return structlog.processors.JSONRenderer(default=str, separators=(",", ":"))


@dataclass
class LogSinks:
    """The handlers `configure_logging` installed; `close()` removes and closes them."""

    handlers: list[logging.Handler] = field(default_factory=list)
    audit_path: Path | None = None

    def close(self) -> None:
        logger = logging.getLogger(LOGGER_NAME)
        for h in self.handlers:
            logger.removeHandler(h)
            h.close()
        self.handlers.clear()


_installed: LogSinks | None = None


def configure_logging(
    *,
    audit_path: Path | None = None,
    console: bool = True,
    json_console: bool = False,
    level: int | str = logging.INFO,
    console_level: int | str | None = None,
    stream: TextIO | None = None,
    console_filters: Sequence[logging.Filter] = (),
) -> LogSinks:
    """Configure pumpctl's logging for an application (the CLI, tests, benchmarks).

    The audit file gets every event at `level` and above as JSON lines (DEBUG keeps every wire
    exchange); the console gets those at `console_level` (default: `level`) and above, readable
    or as JSON lines with `json_console`, on `stream` (default: the current `sys.stderr`),
    through `console_filters`.
    With neither console nor file, events are processed and discarded. A second call replaces
    what the first installed.
    """
    global _installed
    if _installed is not None:
        _installed.close()
    numeric = level_number(level)
    logger = logging.getLogger(LOGGER_NAME)
    sinks = LogSinks(audit_path=audit_path)
    if audit_path is not None:
        audit_path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(audit_path, mode="a", encoding="utf-8")
        file_handler.setFormatter(_formatter(_json()))
        file_handler.setLevel(numeric)
        sinks.handlers.append(file_handler)
    if console:
        handler = _ConsoleHandler(stream)
        renderer = _json() if json_console else structlog.dev.ConsoleRenderer(colors=False)
        handler.setFormatter(_formatter(renderer))
        handler.setLevel(level_number(console_level) if console_level is not None else numeric)
        for f in console_filters:
            handler.addFilter(f)
        sinks.handlers.append(handler)
    for h in sinks.handlers:
        logger.addHandler(h)
    logger.setLevel(min([h.level for h in sinks.handlers], default=numeric))
    logger.propagate = not sinks.handlers  # the application's root handlers would repeat them
    _wire_structlog(discard=not sinks.handlers)
    _installed = sinks
    return sinks
