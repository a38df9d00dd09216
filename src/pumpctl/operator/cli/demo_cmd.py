"""`pumpctl demo`: a program on a simulated pump, on a virtual clock (days take seconds)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from pumpctl.operator.cli.common import (
    check_model,
    checked_plan,
    configure_logs,
    echo,
    exit_code,
    log_options,
    progress_sink,
    with_log_options,
)


@click.command()
@click.option(
    "--model",
    default="ne1000",
    show_default=True,
    callback=check_model,
    help="pump model to simulate (see `pumpctl models`)",
)
@click.option(
    "--program",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="program to run instead of the built-in acute-pain example",
)
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), help="SQLite journal")
@with_log_options
@click.option("--json-log", is_flag=True, help="print structlog JSON lines instead of progress")
@click.option("--no-pause", is_flag=True, help="skip the scripted pause/resume")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="inject a simulator fault, e.g. stall@2h or link-drop@30m (see pumpctl simulate)",
)
@click.option(
    "--every",
    "every_min",
    type=float,
    default=15.0,
    show_default=True,
    help="progress line every N simulated minutes",
)
def demo(
    model: str,
    program: Path | None,
    journal: Path | None,
    json_log: bool,
    no_pause: bool,
    faults: tuple[str, ...],
    every_min: float,
) -> None:
    """Run a built-in program on a simulated pump, on a virtual clock (days take seconds)."""
    from pumpctl.clock import Clock, run_with_clock, wall_monotonic
    from pumpctl.dosing.program import example_path
    from pumpctl.infusion.journal import Journal
    from pumpctl.operator.display import summary_lines
    from pumpctl.runner import DemoScenario, demo_program, run_on_simulator

    configure_logs(log_options(), json_log=json_log)
    path = program or example_path(demo_program(model))
    plan = checked_plan(path, [])
    printer, live = progress_sink(
        plan, pump=f"sim://{model}", time_scale=math.inf, json_log=json_log, every_s=every_min * 60
    )
    scenario = None if no_pause else DemoScenario()
    jr = Journal(journal) if journal is not None else None
    quiet = json_log or log_options().quiet
    if not quiet:
        echo(f"pumpctl demo: {plan.program} on a simulated {model}, virtual clock")
        for w in plan.warnings:
            echo(f"warning: {w}")

    from pumpctl.simulator.faults import FaultSchedule, FaultSpecError

    try:
        schedule = FaultSchedule.from_specs(faults, seed=0) if faults else None
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from exc

    async def main_(clock: Clock) -> Any:
        return await run_on_simulator(
            plan,
            clock,
            model=model,
            journal=jr,
            on_progress=printer,
            operator=scenario,
            faults=schedule,
            change_containers=True,
        )

    wall0 = wall_monotonic()
    try:
        with live:
            result, truth = run_with_clock(main_, virtual=True)
    finally:
        if jr is not None:
            jr.close()
    wall = wall_monotonic() - wall0
    if log_options().quiet and not json_log:
        echo(summary_lines(plan, result)[0])
    elif not json_log:
        echo("")
        for line in summary_lines(plan, result):
            echo(line)
        if scenario is not None and scenario.paused_at_s is not None:
            echo(f"paused once for {scenario.pause_for_s / 60:.0f} min during maintenance")
        echo(f"plunger ground truth (simulator): {truth.delivered_ml:.3f} mL")
        sim_s = result.ended_s - result.started_s
        echo(
            f"wall time {wall:.2f} s for {sim_s / 3600:.2f} h simulated "
            f"({sim_s / max(wall, 1e-9):,.0f}x real time)"
        )
    sys.exit(exit_code(result.outcome.value))
