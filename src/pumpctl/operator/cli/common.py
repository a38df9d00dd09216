"""Shared pieces of the `pumpctl` commands: exit codes, log set-up, checked plans, overrides."""

from __future__ import annotations

import sys
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
EXIT_USAGE = 64  # a wrong option value said in one line (sysexits EX_USAGE); nothing was sent


class OneLineError(click.ClickException):
    """A usage mistake (unknown --model, ...) reported as one line, without the usage dump."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def check_model(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: an unknown pump model is one line naming the valid ones."""
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


def configure_logs(audit: Path | None, json_log: bool, verbose: bool) -> None:
    import logging

    from pumpctl.log import configure_logging

    # people always see warnings and alarms on stderr (a stop the pump never confirmed must not
    # go unseen); --json-log puts every event on stdout as JSON lines instead of the progress view
    configure_logging(
        audit_path=audit,
        console=True,
        json_console=json_log,
        level=logging.DEBUG if (audit is not None or verbose) else logging.INFO,
        console_level=None if (json_log or verbose) else logging.WARNING,
        stream=sys.stdout if json_log else sys.stderr,
    )


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
    return result.plan


def progress_sink(
    plan: Plan, *, pump: str, time_scale: float, json_log: bool, every_s: float
) -> tuple[Any, Any]:
    """(progress callback, context manager): a live panel on a terminal (SR34), plain progress
    lines when piped, nothing with --json-log (the structlog JSON lines are the output)."""
    from contextlib import nullcontext

    from pumpctl.operator.display import LiveView, ProgressPrinter

    if json_log:
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
