"""structlog configuration: JSON-lines audit file plus readable console output.

Library modules only call `get_logger(...)` and bind context (pump_id, program_id, phase); the
application (CLI, tests) decides where events go by calling `configure_logging` once.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import IO, Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["AuditFile", "configure_logging", "get_logger"]


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger with `logger=name` and the given context bound."""
    return structlog.get_logger(name).bind(logger=name, **context)


class AuditFile:
    """Processor that appends every event as one JSON line, flushed, before console rendering."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8", buffering=1)

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        self._fh.write(json.dumps(event_dict, default=str, separators=(",", ":")) + "\n")
        return event_dict

    def close(self) -> None:
        self._fh.close()


def _drop(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    raise structlog.DropEvent


def _numeric(level: int | str) -> int:
    return int(logging.getLevelName(level.upper())) if isinstance(level, str) else level


class _AtLeast:
    """Drops events below a level from what follows (the console), after the audit file."""

    def __init__(self, level: int) -> None:
        self.level = level

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        name = str(event_dict.get("level", method)).upper()
        if _numeric("WARNING" if name == "WARN" else name) < self.level:
            raise structlog.DropEvent
        return event_dict


def configure_logging(
    *,
    audit_path: Path | None = None,
    console: bool = True,
    json_console: bool = False,
    level: int | str = logging.INFO,
    console_level: int | str | None = None,
    stream: TextIO | None = None,
) -> AuditFile | None:
    """Configure structlog for the whole process; returns the audit file sink if any.

    The audit file receives events at `level` and above (use DEBUG to keep every wire exchange);
    the console shows the same events for people (only those at `console_level` and above, when
    given), or JSON lines with `json_console`.
    """
    numeric = _numeric(level)
    audit = AuditFile(audit_path) if audit_path is not None else None
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if audit is not None:
        processors.append(audit)
    if console and console_level is not None and _numeric(console_level) > numeric:
        processors.append(_AtLeast(_numeric(console_level)))
    if not console:
        processors.append(_drop)
    elif json_console:
        processors.append(structlog.processors.JSONRenderer(default=str))
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    return audit
