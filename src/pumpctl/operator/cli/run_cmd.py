"""`pumpctl run`: a program on a real (or separately simulated) pump at a port."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pumpctl.operator.cli.common import (
    CliError,
    Exit,
    check_model,
    checked_plan,
    configure_logs,
    echo,
    exit_code,
    log_options,
    pair_overrides,
    progress_sink,
    with_log_options,
    with_overrides,
)

NO_LIBRARY = click.option(
    "--no-library",
    is_flag=True,
    help="run a drug the library does not list, with no dose limits (shown and journaled)",
)

if TYPE_CHECKING:
    from pumpctl.dosing.plan import Plan
    from pumpctl.infusion.supervisor import RunResult
    from pumpctl.operator.display import PhaseTiming
    from pumpctl.operator.session import RunSettings


@click.command()
@click.argument("program", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, callback=check_model, help="pump model (`pumpctl models`)")
@click.option("--port", required=True, help="device path or pyserial URL (socket://host:port)")
@click.option(
    "--address", type=click.IntRange(0, 99), default=None, help="pump address (default: model's)"
)
@click.option(
    "--baud", type=click.IntRange(min=50), default=None, help="baud rate (default: the model's)"
)
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), help="SQLite journal")
@with_log_options
@click.option("--json-log", is_flag=True, help="print structlog JSON lines instead of progress")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="match a simulator running X times faster than real time",
)
@click.option(
    "--poll",
    "poll_s",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="poll interval, clock seconds",
)
@click.option(
    "--resume",
    is_flag=True,
    help="continue what remains of the journal's stopped or alarmed run of this program",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="start the program anew although the last run was interrupted (needs a last --reason)",
)
@click.option(
    "--resume-stale",
    is_flag=True,
    help="resume an interrupted run even if it stopped longer ago than the limit",
)
@click.option("--who", default=None, help="who decides --resume or --new-run (default: your user)")
@NO_LIBRARY
@with_overrides
def run(
    program: Path,
    model: str,
    port: str,
    address: int | None,
    baud: int | None,
    journal: Path | None,
    json_log: bool,
    time_scale: float,
    poll_s: float,
    resume: bool,
    new_run: bool,
    resume_stale: bool,
    who: str | None,
    no_library: bool,
    override_fields: tuple[str, ...],
    override_reasons: tuple[str, ...],
) -> None:
    """Run PROGRAM on a real (or simulated) pump at PORT. Ctrl-C stops the pump safely.

    With --journal, an interrupted run is never started again from the top: a crashed run is
    resumed (what the pump and the journal say was delivered is subtracted, so nothing is
    delivered twice); a run that was stopped (Ctrl-C) or ended in an alarm is resumed with
    --resume, or given up with --new-run --reason TEXT (journaled).
    """
    from pumpctl.operator.session import RunSettings

    new_run_reason, override_reasons = _new_run_reason(new_run, override_fields, override_reasons)
    _check_resume_options(resume, new_run, journal)
    overrides = pair_overrides(override_fields, override_reasons)
    configure_logs(log_options(), json_log=json_log)
    # SR01: nothing is opened before this passes; checked with the pump's own rounding and ranges
    plan = checked_plan(program, overrides, model=model, no_library=no_library)
    if journal is not None:
        _check_journal(journal)  # before the port: a wrong file must not cost a connection
    quiet = json_log or log_options().quiet
    settings = RunSettings(
        model=model,
        port=port,
        address=address,
        baudrate=baud,
        journal=journal,
        poll_s=poll_s,
        time_scale=time_scale,
        resume_stale=resume_stale,
        resume=resume,
        new_run_reason=new_run_reason,
        who=who or _user(),
        announce_control=not quiet,
    )
    result, timing = _run(plan, settings, json_log=json_log)
    with _no_interrupts():  # the outcome is known: a late Ctrl-C must not turn it into 130
        if result is None:
            sys.exit(Exit.OK)
        if not json_log:
            from pumpctl.operator.display import summary_lines

            lines = summary_lines(plan, result, timing)
            for line in lines[:1] if quiet else lines:
                echo(line)
        sys.exit(exit_code(result.outcome.value))


def _check_resume_options(resume: bool, new_run: bool, journal: Path | None) -> None:
    if resume and new_run:
        raise click.UsageError("--resume and --new-run exclude each other")
    if (resume or new_run) and journal is None:
        raise click.UsageError("--resume and --new-run need the --journal of the earlier run")


def _new_run_reason(
    new_run: bool, fields: tuple[str, ...], reasons: tuple[str, ...]
) -> tuple[str | None, tuple[str, ...]]:
    """--new-run takes the --reason left after each --override took its own (the last one)."""
    if not new_run:
        return None, reasons
    if len(reasons) != len(fields) + 1:
        raise click.UsageError(
            "--new-run needs a --reason TEXT of its own (after any --override FIELD --reason "
            "TEXT pairs): it is journaled on the run given up"
        )
    if not reasons[-1].strip():
        raise click.UsageError("--new-run: the reason must not be empty")
    return reasons[-1], reasons[:-1]


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "operator"


def _check_journal(path: Path) -> None:
    from pumpctl.operator.journalfile import NotAJournal, check_journal_file

    try:
        check_journal_file(path)
    except NotAJournal as exc:
        raise CliError(str(exc), Exit.BAD_INPUT) from None


def _run(
    plan: Plan, settings: RunSettings, *, json_log: bool
) -> tuple[RunResult | None, PhaseTiming]:
    """The session on the real clock, every expected failure mapped to its exit code."""
    from pumpctl.clock import Clock, run_with_clock
    from pumpctl.drivers.base import PumpError
    from pumpctl.infusion.journal import JournalError
    from pumpctl.infusion.resume import ResumeRefused
    from pumpctl.operator.connect import (
        NoReply,
        PortUnavailable,
        PumpSetupFailed,
        WrongPump,
    )
    from pumpctl.operator.control import ControlError
    from pumpctl.operator.session import run_session

    sink = progress_sink(
        plan,
        pump=f"{settings.model}@{settings.port}",
        time_scale=settings.time_scale,
        json_log=json_log,
        every_s=60.0,
    )

    async def main_(clock: Clock) -> RunResult | None:
        return await run_session(plan, settings, clock, echo=echo, on_progress=sink.on_progress)

    codes: list[tuple[type[Exception], Exit]] = [
        (PortUnavailable, Exit.PORT_UNAVAILABLE),
        (NoReply, Exit.NO_REPLY),
        (WrongPump, Exit.WRONG_PUMP),
        (PumpSetupFailed, Exit.PUMP_SETUP),
        (ResumeRefused, Exit.RESUME_REFUSED),
        (ControlError, Exit.JOURNAL_BUSY),
        (JournalError, Exit.BAD_INPUT),
    ]
    try:
        with sink.live:
            return run_with_clock(main_, time_scale=settings.time_scale), sink.timing
    except tuple(cls for cls, _ in codes) as exc:
        code = next(c for cls, c in codes if isinstance(exc, cls))
        raise CliError(str(exc), code) from None
    except PumpError as exc:  # reading the pump to resume, before the supervisor took it
        raise CliError(f"the pump on {settings.port}: {exc}", Exit.PUMP_SETUP) from None


@contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C while the last lines are printed (main thread only; elsewhere, no-op)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
