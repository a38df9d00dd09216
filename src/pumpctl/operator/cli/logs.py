"""`--quiet`, `--log-level`, `--log-file` for the commands that log, and the console set-up.

The options store into the click context (`expose_value=False`), so a command's signature does
not grow with them; it reads them back with `log_options()` and calls `configure_logs`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

__all__ = ["LogOptions", "configure_logs", "log_options", "with_log_options"]


@dataclass(frozen=True)
class LogOptions:
    """`--quiet`, `--log-level`, `--log-file` of a command (see `with_log_options`)."""

    quiet: bool = False
    log_level: str | None = None
    log_file: Path | None = None


_LOG_KEY = "pumpctl.log_options"


def _store_log_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    ctx.meta[_LOG_KEY] = replace(ctx.meta.get(_LOG_KEY, LogOptions()), **{str(param.name): value})


_log_options = [
    click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_store_log_option,
        help="no progress, banner or summary table: the outcome line (warnings and alarms "
        "still go to stderr)",
    ),
    click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error", "critical"], case_sensitive=False),
        expose_value=False,
        callback=_store_log_option,
        help="show log events from this level on the console (default: warning)",
    ),
    click.option(
        "--log-file",
        "--audit",
        "log_file",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_store_log_option,
        help="append every event, wire exchanges included, here as JSON lines (audit trail)",
    ),
]


def with_log_options(f: Any) -> Any:
    """Add `--quiet`, `--log-level`, `--log-file`; read them back with `log_options()`."""
    for option in reversed(_log_options):
        f = option(f)
    return f


def log_options() -> LogOptions:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_LOG_KEY, LogOptions()) if ctx is not None else LogOptions()


def configure_logs(opts: LogOptions, *, json_log: bool = False) -> None:
    """People see warnings and alarms on stderr unless they lower `--log-level` (a syringe to
    change or a stop the pump never confirmed must not go unseen; `--quiet` only drops the
    progress output); `--json-log` puts events on stdout as JSON lines; the log file keeps
    everything at debug level."""
    from pumpctl.log import configure_logging, level_number

    console = level_number(opts.log_level or ("info" if json_log else "warning"))
    level = min(console, logging.DEBUG) if opts.log_file is not None else console
    configure_logging(
        audit_path=opts.log_file,
        console=True,
        json_console=json_log,
        level=level,
        console_level=console,
        stream=sys.stdout if json_log else None,
        console_filters=[_ConnectAttempts()],
    )


class _ConnectAttempts(logging.Filter):
    """Keeps the console to the lines that say it: the warnings of each connection attempt
    (unanswered probes of other models, retries; bound as `stage=connect`) are summed up by the
    one-line failure, and the program check's refusals are printed as `error:` lines. The log
    file keeps all of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pumpctl.log import event_of

        if record.levelno >= logging.ERROR:
            return True
        return record.name != "pumpctl.dosing.check" and event_of(record).get("stage") != "connect"
