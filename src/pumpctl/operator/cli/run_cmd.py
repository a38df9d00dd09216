"""`pumpctl demo` and `pumpctl run`: a program on a simulated or a real pump."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from pumpctl.operator.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
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


@click.command()
@click.option("--model", default="ne1000", show_default=True, help="pump model to simulate")
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


@click.command()
@click.argument("program", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="pump model (see `pumpctl models`)")
@click.option("--port", required=True, help="device path or pyserial URL (socket://host:port)")
@click.option(
    "--address", type=click.IntRange(0, 99), default=None, help="pump address (default: model's)"
)
@click.option("--baud", type=int, default=None, help="baud rate (default: the model's)")
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
    "--resume-stale",
    is_flag=True,
    help="resume an interrupted run even if it stopped longer ago than the limit",
)
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
    resume_stale: bool,
    override_fields: tuple[str, ...],
    override_reasons: tuple[str, ...],
) -> None:
    """Run PROGRAM on a real (or simulated) pump at PORT. Ctrl-C stops the pump safely.

    With --journal, an interrupted run of the same program in that journal is resumed: what the
    pump and the journal say was delivered is subtracted, so nothing is delivered twice.
    """
    import asyncio
    import signal

    from pumpctl.clock import Clock, run_with_clock
    from pumpctl.drivers.registry import default_address, driver_class, open_transport
    from pumpctl.infusion.journal import Journal
    from pumpctl.infusion.supervisor import Supervisor, SupervisorConfig
    from pumpctl.operator.display import summary_lines
    from pumpctl.runner import prepare_run

    overrides = pair_overrides(override_fields, override_reasons)
    configure_logs(log_options(), json_log=json_log)
    plan = checked_plan(program, overrides)  # SR01: nothing is opened before this passes
    cls = driver_class(model)
    if address is None:
        address = default_address(model)
    printer, live = progress_sink(
        plan, pump=f"{model}@{port}", time_scale=time_scale, json_log=json_log, every_s=60.0
    )
    # SR19: the pump's watchdog runs on pump time; on a scaled rig a wall-clock hiccup of half a
    # second is time_scale/2 pump seconds, so size it for that too (the NE maximum is 255 s)
    watchdog_s = min(255.0, max(10.0, 2 * poll_s, 0.5 * time_scale))
    config = SupervisorConfig(poll_interval_s=poll_s, watchdog_timeout_s=watchdog_s)
    jr = Journal(journal) if journal is not None else None

    async def main_(clock: Clock) -> Any:
        transport = open_transport(port, baudrate=baud, clock=clock, model=model)
        driver = cls(transport, address=address)
        async with driver:
            todo, resumed_from, notes, container_left = await prepare_run(
                plan, driver, jr, allow_stale=resume_stale
            )
            for note in notes:
                echo(note)
            if todo is None:
                echo("nothing remains to be delivered: the interrupted run had finished")
                return None
            sup = Supervisor(
                driver,
                todo,
                clock,
                config=config,
                journal=jr,
                on_progress=printer,
                resumed_from=resumed_from,
                container_contents_ml=container_left,
            )
            loop = asyncio.get_running_loop()
            pending: set[asyncio.Task[None]] = set()

            def on_signal() -> None:
                echo("stop requested: stopping the pump")
                task = asyncio.ensure_future(sup.stop(reason="signal", who="operator"))
                pending.add(task)
                task.add_done_callback(pending.discard)

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            if journal is None:
                return await sup.run()
            from pumpctl.dosing.titration import dose_rate_to_ml_per_h
            from pumpctl.operator.control import ControlServer, control_socket_path

            def rate_parser(text: str) -> float:
                return dose_rate_to_ml_per_h(text, plan)

            path = control_socket_path(journal)
            async with ControlServer(sup, path, rate_parser=rate_parser):
                if not (json_log or log_options().quiet):
                    echo(f"control: pumpctl ctl --journal {journal} status")
                return await sup.run()

    from pumpctl.infusion.resume import ResumeRefused
    from pumpctl.operator.control import ControlError

    try:
        with live:
            result = run_with_clock(main_, time_scale=time_scale)
    except (ControlError, ResumeRefused) as exc:  # socket owned elsewhere, or resume needs a human
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    finally:
        if jr is not None:
            jr.close()
    if result is None:
        sys.exit(EXIT_OK)
    if not json_log:
        lines = summary_lines(plan, result)
        for line in lines[:1] if log_options().quiet else lines:
            echo(line)
    sys.exit(exit_code(result.outcome.value))
