"""`pumpctl demo`: a program on a simulated pump, on a virtual clock (days take seconds)."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    progress_sink,
    with_log_options,
)
from pumpctl.operator.cli.run_cmd import NO_LIBRARY

if TYPE_CHECKING:
    from pumpctl.clock import Clock
    from pumpctl.dosing.plan import Plan
    from pumpctl.infusion.supervisor import Supervisor
    from pumpctl.runner import DemoScenario


class DemoWatch:
    """The demo's operator: its scripted pause (unless --no-pause), and a count of the
    container changes the simulated nurse makes, so the summary says what happened."""

    def __init__(self, scenario: DemoScenario | None, *, every_s: float = 30.0) -> None:
        self.scenario = scenario
        self.every_s = every_s  # a nurse's change takes minutes: a 30 s look never misses one
        self.changes = 0

    async def __call__(self, sup: Supervisor, clock: Clock) -> None:
        actors = [self._count(sup, clock)]
        if self.scenario is not None:
            actors.append(self.scenario(sup, clock))
        await asyncio.gather(*actors)

    async def _count(self, sup: Supervisor, clock: Clock) -> None:
        from pumpctl.infusion.machine import Phase

        waiting = False
        while sup.phase not in (Phase.COMPLETED, Phase.STOPPED, Phase.ALARM):
            now = sup.awaiting_container_change
            self.changes += now and not waiting
            waiting = now
            await clock.sleep(self.every_s)

    def lines(self, plan: Plan) -> list[str]:
        """What the operator did: N container changes, the one scripted pause."""
        said = []
        if self.changes:
            kind = "syringe" if plan.container.inner_diameter_mm is not None else "reservoir"
            plural = "s" if self.changes != 1 else ""
            said.append(
                f"{self.changes} {kind} change{plural}, each confirmed by the simulated nurse"
            )
        s = self.scenario
        if s is not None and s.paused_at_s is not None:
            said.append(f"one scripted pause of {s.pause_for_s / 60:.0f} min during maintenance")
        return said


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
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="progress line every N simulated minutes",
)
@NO_LIBRARY
def demo(
    model: str,
    program: Path | None,
    journal: Path | None,
    json_log: bool,
    no_pause: bool,
    faults: tuple[str, ...],
    every_min: float,
    no_library: bool,
) -> None:
    """Run a built-in program on a simulated pump, on a virtual clock (days take seconds)."""
    from pumpctl.dosing.program import example_path
    from pumpctl.families import family
    from pumpctl.runner import DemoScenario
    from pumpctl.simulator.faults import FaultSchedule, FaultSpecError

    configure_logs(log_options(), json_log=json_log)
    path = program or example_path(family(model).demo_program)
    plan = checked_plan(path, [], model=model, no_library=no_library)
    try:
        schedule = FaultSchedule.from_specs(faults, seed=0) if faults else None
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from exc
    quiet = json_log or log_options().quiet
    if not quiet:
        echo(f"pumpctl demo: {plan.program} on a simulated {model}, virtual clock")
        for w in plan.warnings:
            echo(f"warning: {w}")
    watch = DemoWatch(None if no_pause else DemoScenario())
    lines, code = _run_demo(plan, model, journal, schedule, watch, json_log, every_min * 60)
    if not json_log:
        for line in lines[:1] if quiet else ["", *lines]:
            echo(line)
    sys.exit(code)


def _run_demo(
    plan: Plan,
    model: str,
    journal: Path | None,
    schedule: Any,
    watch: DemoWatch,
    json_log: bool,
    every_s: float,
) -> tuple[list[str], int]:
    """Run on the virtual clock; the summary lines (outcome first) and the exit code."""
    from pumpctl.clock import run_with_clock, wall_monotonic
    from pumpctl.infusion.config import SupervisorConfig
    from pumpctl.infusion.journal import Journal, JournalError
    from pumpctl.operator.display import summary_lines
    from pumpctl.operator.journalfile import check_journal_file
    from pumpctl.runner import run_on_simulator

    try:
        if journal is not None:
            check_journal_file(journal)
        jr = Journal(journal) if journal is not None else None
    except JournalError as exc:
        raise CliError(str(exc), Exit.BAD_INPUT) from None
    sink = progress_sink(
        plan, pump=f"sim://{model}", time_scale=math.inf, json_log=json_log, every_s=every_s
    )

    async def main_(clock: Clock) -> Any:
        return await run_on_simulator(
            plan,
            clock,
            model=model,
            journal=jr,
            # a days-long run on the virtual clock: a progress a simulated minute (and at
            # every change) is plenty for a panel refreshed in wall time
            config=SupervisorConfig(progress_interval_s=60.0),
            on_progress=sink.on_progress,
            operator=watch,
            faults=schedule,
            change_containers=True,
        )

    wall0 = wall_monotonic()
    try:
        with sink.live:
            result, truth = run_with_clock(main_, virtual=True)
    finally:
        if jr is not None:
            jr.close()
    wall = wall_monotonic() - wall0
    sim_s = result.ended_s - result.started_s
    lines = summary_lines(plan, result, sink.timing) + watch.lines(plan)
    lines.append(f"plunger ground truth (simulator): {truth.delivered_ml:.3f} mL")
    lines.append(
        f"wall time {wall:.2f} s for {sim_s / 3600:.2f} h simulated "
        f"({sim_s / max(wall, 1e-9):,.0f}x real time)"
    )
    return lines, exit_code(result.outcome.value)
