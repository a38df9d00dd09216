"""Shared pieces of the `pumpctl` commands: exit codes, log set-up, checked plans, overrides."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pumpctl.dosing.plan import Plan

EXIT_OK = 0
EXIT_REFUSED = 1  # program invalid or hard limit crossed: nothing was sent to the pump
EXIT_SOFT_LIMIT = 2  # soft limit crossed and not overridden: nothing was sent to the pump
EXIT_ALARM = 3  # the run ended in an alarm; the pump was confirmed stopped
EXIT_STOPPED = 4  # the run was stopped by the operator before completion
EXIT_UNCONFIRMED = 5  # the run ended in an alarm and the stop could NOT be confirmed


def echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


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
    import logging

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
    )


def checked_plan(program: Path, overrides: list[tuple[str, str]]) -> Plan:
    """Validate completely before anything touches a pump (SR01); exits 1 or 2 on refusal."""
    from pumpctl.dosing.check import check_program

    result = check_program(program, dict(overrides))
    if result.exit_code != EXIT_OK or result.plan is None:
        for v in result.violations:
            click.echo(f"error: {v.message}", err=True)
        if result.exit_code == EXIT_SOFT_LIMIT:
            click.echo(
                "a soft limit was crossed: re-run with --override FIELD --reason TEXT to proceed",
                err=True,
            )
        sys.exit(result.exit_code or EXIT_REFUSED)
    return result.plan


def progress_sink(
    plan: Plan, *, pump: str, time_scale: float, json_log: bool, every_s: float
) -> tuple[Any, Any]:
    """(progress callback, context manager): a live panel on a terminal (SR34), plain progress
    lines when piped, nothing with --json-log (the structlog JSON lines are the output) or
    --quiet."""
    from contextlib import nullcontext

    from pumpctl.operator.display import LiveView, ProgressPrinter

    if json_log or log_options().quiet:
        return None, nullcontext()
    if sys.stdout.isatty():
        view = LiveView(plan, pump=pump, time_scale=time_scale)
        return view, view
    return ProgressPrinter(echo, every_s=every_s), nullcontext()


def pair_overrides(fields: tuple[str, ...], reasons: tuple[str, ...]) -> list[tuple[str, str]]:
    if len(fields) != len(reasons):
        raise click.UsageError("each --override FIELD needs its own --reason TEXT")
    for f, r in zip(fields, reasons, strict=True):
        if not r.strip():
            raise click.UsageError(f"--override {f}: the reason must not be empty (SR03)")
    return list(zip(fields, reasons, strict=True))


_override_options = [
    click.option(
        "--override",
        "override_fields",
        multiple=True,
        metavar="FIELD",
        help="accept a crossed soft limit on FIELD (needs --reason)",
    ),
    click.option(
        "--reason",
        "override_reasons",
        multiple=True,
        metavar="TEXT",
        help="why the override is safe (logged and journaled)",
    ),
]


def with_overrides(f: Any) -> Any:
    for option in reversed(_override_options):
        f = option(f)
    return f


def exit_code(outcome: str) -> int:
    return {
        "completed": EXIT_OK,
        "stopped": EXIT_STOPPED,
        "alarm": EXIT_ALARM,
        "unconfirmed": EXIT_UNCONFIRMED,
    }[outcome]
