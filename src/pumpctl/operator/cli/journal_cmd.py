"""`pumpctl report` and `pumpctl accuracy`: click commands registered by pumpctl.operator.cli.

Kept apart so cli.py stays small and matplotlib is imported only when one of these runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click

from pumpctl.operator.cli.common import (
    CliError,
    Exit,
    check_model,
    configure_logs,
    log_options,
    with_log_options,
)

__all__ = ["accuracy", "journal_cmd", "report"]


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


_REPORT_FORMATS = (".png", ".svg", ".html")


def _suffix_in(formats: tuple[str, ...]) -> Callable[[click.Context, click.Parameter, Path], Path]:
    """Click callback: a `-o` path whose suffix is one of `formats`, else a usage error before
    any work is done."""

    def check(ctx: click.Context, param: click.Parameter, path: Path) -> Path:
        if path.suffix.lower() not in formats:
            raise click.BadParameter(f"{path.name}: use {', '.join(formats)}", ctx, param)
        return path

    return check


@click.command()
@click.argument("journal", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_suffix_in(_REPORT_FORMATS),
    default=Path("report.png"),
    show_default=True,
    help="output file: .png, .svg or .html (tables and the image in one file)",
)
@click.option("--run", "run_id", metavar="RUN_ID", help="run id or unique prefix (default: latest)")
def report(journal: Path, output: Path, run_id: str | None) -> None:
    """Draw a run from JOURNAL alone: rate and dose rate with phases, pauses, titrations and
    alarms; delivered vs planned volume; per-phase and rolling 1 h/4 h/24 h totals."""
    from pumpctl.infusion.journal import JournalError
    from pumpctl.operator.report import build_report, render_report

    try:
        data = build_report(journal, run_id)
    except JournalError as exc:
        raise CliError(str(exc), Exit.BAD_INPUT) from None
    render_report(data, output)
    for skipped in data.skipped_events:
        click.echo(f"warning: left out of the report: {skipped}", err=True)
    planned = "" if data.planned_ml is None else f" of {data.planned_ml:.3f} mL planned"
    _echo(
        f"run {data.run_id[:12]} ({data.program}, {data.status}): "
        f"{data.delivered_ml:.3f} mL delivered{planned}"
    )
    _echo(f"wrote {output}")


@click.command()
@click.argument("model", callback=check_model)
@click.option(
    "--rate",
    "rate_ml_per_h",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="test rate, mL/h (default: IEC 60601-2-24 intermediate rate, 5 mL/h for a syringe pump)",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_suffix_in((".png", ".svg")),
    default=Path("accuracy.png"),
    show_default=True,
    help="trumpet and flow-rate curves: .png or .svg",
)
@with_log_options
def accuracy(model: str, rate_ml_per_h: float | None, output: Path) -> None:
    """Run the SR32 accuracy protocol for MODEL on the simulator (2 h at a constant rate on a
    virtual clock, sampled every 30 s) and draw the trumpet and flow-rate curves. Exits 1 when
    the 2nd-hour rate error is outside the pump's stated accuracy (exit 7)."""
    from pumpctl.drivers.base import PumpError
    from pumpctl.operator.accuracy import measure_accuracy, render_accuracy

    # errors only unless asked: the simulated pump's power-up reset alarm (expected and
    # acknowledged by the driver) is not news
    opts = log_options()
    configure_logs(opts if opts.log_level else replace(opts, log_level="error"))
    try:
        result = measure_accuracy(model, rate_ml_per_h)
    except (ValueError, PumpError) as exc:  # a rate the pump cannot run: a bad --rate
        raise click.BadParameter(f"{model}: {exc}", param_hint="--rate") from None
    render_accuracy(result, output)
    for line in result.summary_lines():
        _echo(line)
    _echo(f"wrote {output}")
    sys.exit(Exit.OK if result.passed else Exit.INACCURATE)


@click.command("journal")
@click.argument(
    "journal_path", metavar="JOURNAL", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--run", "run_id", help="run id or a unique prefix (default: the latest run)")
def journal_cmd(journal_path: Path, run_id: str | None) -> None:
    """Print the runs in JOURNAL and the history of one of them."""
    from pumpctl.infusion.journal import JournalError
    from pumpctl.operator.history import render_history

    try:
        text = render_history(journal_path, run_id)
    except JournalError as exc:
        raise CliError(str(exc), Exit.BAD_INPUT) from None
    _echo(text)
