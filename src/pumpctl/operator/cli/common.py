"""Shared pieces of the `pumpctl` commands: the exit-code table, one-line errors, log set-up,
checked plans, overrides.

`EXIT_CODES` is the one table of how the CLI can end; the README and the operator guide carry
`exit_code_table()` verbatim (a test keeps them equal), and `pumpctl --help` lists it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from pumpctl.operator.cli.logs import LogOptions, configure_logs, log_options, with_log_options

__all__ = [
    "EXIT_CODES",
    "CliError",
    "Exit",
    "LogOptions",
    "OneLineError",
    "UsageError",
    "check_model",
    "checked_plan",
    "configure_logs",
    "echo",
    "exit_code",
    "exit_code_epilog",
    "exit_code_table",
    "log_options",
    "pair_overrides",
    "progress_sink",
    "with_log_options",
    "with_overrides",
]

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from pumpctl.dosing.plan import Plan
    from pumpctl.infusion.outcome import Progress
    from pumpctl.operator.display import PhaseTiming


class Exit(IntEnum):
    """Every exit code of `pumpctl`. A usage error never shares a code with a refusal or a
    soft limit: click's own usage errors are mapped from its 2 to 64 (sysexits EX_USAGE)."""

    OK = 0
    REFUSED = 1
    SOFT_LIMIT = 2
    ALARM = 3
    STOPPED = 4
    UNCONFIRMED = 5
    RESUME_REFUSED = 6
    INACCURATE = 7
    PORT_UNAVAILABLE = 10
    NO_REPLY = 11
    WRONG_PUMP = 12
    PUMP_SETUP = 13
    NO_RUN = 14
    JOURNAL_BUSY = 15
    USAGE = 64
    BAD_INPUT = 65
    INTERNAL = 70
    INTERRUPTED = 130
    TERMINATED = 143


#: code -> (short label, commands that end with it, what it means and what to do)
EXIT_CODES: dict[Exit, tuple[str, str, str]] = {
    Exit.OK: (
        "ok",
        "all",
        "the program completed (`run`, `demo`), is valid (`check`), the request was carried out (`ctl`)",
    ),
    Exit.REFUSED: (
        "refused",
        "check, run, demo, serve, ctl",
        "refused: the program is invalid or crosses a hard limit (nothing was sent to the pump), or `ctl` asked for what is not allowed now",
    ),
    Exit.SOFT_LIMIT: (
        "soft limit",
        "check, run",
        "a soft limit was crossed: re-run with `--override FIELD --reason TEXT`; nothing was sent to the pump",
    ),
    Exit.ALARM: (
        "alarm",
        "run, demo, serve",
        "the run ended in an alarm and the pump confirmed it stopped (also when Ctrl-C came while it was being stopped)",
    ),
    Exit.STOPPED: (
        "stopped",
        "run, demo, serve",
        "stopped before completion by the operator: `ctl stop`, or Ctrl-C / SIGTERM during the infusion",
    ),
    Exit.UNCONFIRMED: (
        "stop unconfirmed",
        "run, demo, serve",
        "the run ended in an alarm and the pump did **not** confirm the stop: go and look at the pump",
    ),
    Exit.RESUME_REFUSED: (
        "resume refused",
        "run",
        "the journal's last run was interrupted (stopped, alarm, or long ago) and needs a person's decision: `--resume`, `--new-run --reason TEXT` or `--resume-stale`; nothing was started",
    ),
    Exit.INACCURATE: (
        "inaccurate",
        "accuracy",
        "the measured rate error is outside the pump's stated accuracy",
    ),
    Exit.PORT_UNAVAILABLE: (
        "port unavailable",
        "run, simulate",
        "the port cannot be opened (no such device, busy, no permission); nothing was sent, no journal was created",
    ),
    Exit.NO_REPLY: (
        "no reply",
        "run",
        "the port opened but nothing answers: pump off, cable, address or baud rate",
    ),
    Exit.WRONG_PUMP: (
        "wrong pump",
        "run",
        "something answers, but not as `--model` at those line settings; the message names what answers when it can tell",
    ),
    Exit.PUMP_SETUP: (
        "pump setup failed",
        "run",
        "the pump answered but refused to be set up (rejected a command, reports an alarm); nothing was started",
    ),
    Exit.NO_RUN: (
        "no run",
        "ctl",
        "no run is listening on that journal, or it did not answer in time",
    ),
    Exit.JOURNAL_BUSY: (
        "journal busy",
        "run",
        "another `pumpctl run` is using this journal; nothing was started",
    ),
    Exit.USAGE: (
        "usage",
        "all",
        "usage error: unknown command, option or model, missing argument, bad value",
    ),
    Exit.BAD_INPUT: (
        "bad input",
        "report, journal, run",
        "an input file is not what the command reads: not a pumpctl journal, or no such run in it",
    ),
    Exit.INTERNAL: (
        "internal error",
        "all",
        "a bug in pumpctl: one line on stderr, the traceback in `--log-file`; please report it",
    ),
    Exit.INTERRUPTED: (
        "interrupted",
        "all",
        "Ctrl-C outside an infusion (while checking, connecting or reporting): no infusion was started",
    ),
    Exit.TERMINATED: (
        "terminated",
        "all but simulate",
        "SIGTERM outside an infusion (the signal's default action): no infusion was started",
    ),
}


def exit_code_table() -> str:
    """The exit codes as a Markdown table (README, operator guide)."""
    rows = [f"| {int(c)} | {cmds} | {meaning} |" for c, (_, cmds, meaning) in EXIT_CODES.items()]
    return "\n".join(["| exit | commands | meaning |", "|---|---|---|", *rows])


def exit_code_epilog() -> str:
    """The exit codes in one paragraph for `pumpctl --help`."""
    return "Exit codes: " + ", ".join(
        f"{int(c)} {label}" for c, (label, _, _) in EXIT_CODES.items()
    )


class CliError(Exception):
    """How every expected failure ends: one line on stderr (`error: ...`) and its documented
    exit code. `PumpctlGroup` prints it; a command only raises it."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code


class UsageError(click.UsageError):
    """click's usage error, shown as click shows it, with the table's usage code (64) instead
    of click's 2 (which is the soft-limit code here)."""

    exit_code = int(Exit.USAGE)

    def __init__(self, original: click.UsageError) -> None:
        super().__init__(original.message, original.ctx)
        self.original = original

    @classmethod
    def of(cls, exc: click.UsageError) -> UsageError:
        return exc if isinstance(exc, cls) else cls(exc)

    def show(self, file: IO[Any] | None = None) -> None:
        self.original.show(file)


EXIT_OK = Exit.OK
EXIT_REFUSED = Exit.REFUSED
EXIT_SOFT_LIMIT = Exit.SOFT_LIMIT
EXIT_ALARM = Exit.ALARM
EXIT_STOPPED = Exit.STOPPED
EXIT_UNCONFIRMED = Exit.UNCONFIRMED
EXIT_USAGE = Exit.USAGE


class OneLineError(click.ClickException):
    """A usage mistake (unknown --model, a bad address for the model, ...) reported as one
    line, without click's usage dump; exit 64 like every usage error."""

    exit_code = int(Exit.USAGE)

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def check_model(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: an unknown pump model is one line naming the valid ones (exit 64)."""
    if value is None:
        return None
    from pumpctl.drivers.registry import family_spec

    try:
        family_spec(value)
    except ValueError as exc:
        raise OneLineError(str(exc)) from None
    return value


def echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


def checked_plan(
    program: Path,
    overrides: list[tuple[str, str]],
    *,
    model: str | None = None,
    no_library: bool = False,
) -> Plan:
    """Validate completely before anything touches a pump (SR01), with `model`'s own rounding
    and ranges; exits 1 or 2 on refusal."""
    from pumpctl.dosing.check import check_program
    from pumpctl.families import UnknownModel

    try:
        result = check_program(program, dict(overrides), model=model, no_library=no_library)
    except UnknownModel:  # a driver registered without a family spec (pumpctl.drivers only)
        click.echo(f"warning: {model} has no family spec: not checked against its ranges", err=True)
        result = check_program(program, dict(overrides), no_library=no_library)
    if result.exit_code != EXIT_OK or result.plan is None:
        for v in result.violations:
            click.echo(f"error: {v.message}", err=True)
        if result.exit_code == EXIT_SOFT_LIMIT:
            click.echo(
                "a soft limit was crossed: re-run with --override FIELD --reason TEXT to proceed",
                err=True,
            )
        sys.exit(result.exit_code or EXIT_REFUSED)
    import structlog

    # SR33: from here on every line of this command knows the program and the library, the
    # connection attempts and the resume included (the supervisor adds pump and phase)
    structlog.contextvars.bind_contextvars(
        program_id=result.plan.program, library_version=result.plan.library_version
    )
    return result.plan


@dataclass(frozen=True)
class ProgressSink:
    """Where a run's progress goes: `on_progress` for the supervisor (None: nobody watches,
    and the supervisor builds no progress at all), `live` to enter around the run, and
    `timing` for the notes of the summary table."""

    on_progress: Callable[[Progress], None] | None
    live: AbstractContextManager[Any]
    timing: PhaseTiming


def progress_sink(
    plan: Plan, *, pump: str, time_scale: float, json_log: bool, every_s: float
) -> ProgressSink:
    """A live panel on a terminal (SR34), plain progress lines when piped, nothing with
    --json-log (the structlog JSON lines are the output) or --quiet, which print no summary
    table either, so they keep no timing (a progress per poll costs a 5-day run seconds)."""
    from contextlib import nullcontext

    from pumpctl.operator.display import LiveView, PhaseTiming, ProgressPrinter

    timing = PhaseTiming()
    shown: Callable[[Progress], None] | None = None
    live: AbstractContextManager[Any] = nullcontext()
    if json_log or log_options().quiet:
        shown = None
    elif sys.stdout.isatty():
        view = LiveView(plan, pump=pump, time_scale=time_scale)
        shown, live = view, view
    else:
        shown = ProgressPrinter(echo, every_s=every_s)

    if shown is None:
        return ProgressSink(None, live, timing)
    display = shown

    def on_progress(p: Progress) -> None:
        timing(p)
        display(p)

    return ProgressSink(on_progress, live, timing)


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
    """The exit code of a run's outcome (`pumpctl.infusion.outcome.Outcome` values)."""
    return int(
        {
            "completed": Exit.OK,
            "stopped": Exit.STOPPED,
            "alarm": Exit.ALARM,
            "unconfirmed": Exit.UNCONFIRMED,
        }[outcome]
    )
