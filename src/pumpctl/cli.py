"""`pumpctl` command line: demo, check, run, simulate, ports.

Heavy modules are imported inside each command so `pumpctl --help` stays instant and a command
only pays for what it uses.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pumpctl.plan import Plan

EXIT_OK = 0
EXIT_REFUSED = 1  # program invalid or hard limit crossed: nothing was sent to the pump
EXIT_SOFT_LIMIT = 2  # soft limit crossed and not overridden: nothing was sent to the pump
EXIT_ALARM = 3  # the run ended in an alarm; the pump was confirmed stopped
EXIT_STOPPED = 4  # the run was stopped by the operator before completion
EXIT_UNCONFIRMED = 5  # the run ended in an alarm and the stop could NOT be confirmed


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pumpctl")
def main() -> None:
    """Infusion-pump controller, simulator and safety supervisor (lab software, not a medical
    device)."""


def _configure_logs(audit: Path | None, json_log: bool, verbose: bool) -> None:
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


def _checked_plan(program: Path, overrides: list[tuple[str, str]]) -> Plan:
    """Validate completely before anything touches a pump (SR01); exits 1 or 2 on refusal."""
    from pumpctl.check import check_program

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


def _progress_sink(
    plan: Plan, *, pump: str, time_scale: float, json_log: bool, every_s: float
) -> tuple[Any, Any]:
    """(progress callback, context manager): a live panel on a terminal (SR34), plain progress
    lines when piped, nothing with --json-log (the structlog JSON lines are the output)."""
    from contextlib import nullcontext

    from pumpctl.display import LiveView, ProgressPrinter

    if json_log:
        return None, nullcontext()
    if sys.stdout.isatty():
        view = LiveView(plan, pump=pump, time_scale=time_scale)
        return view, view
    return ProgressPrinter(_echo, every_s=every_s), nullcontext()


def _pair_overrides(fields: tuple[str, ...], reasons: tuple[str, ...]) -> list[tuple[str, str]]:
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


def _with_overrides(f: Any) -> Any:
    for option in reversed(_override_options):
        f = option(f)
    return f


def _exit_code(outcome: str) -> int:
    return {
        "completed": EXIT_OK,
        "stopped": EXIT_STOPPED,
        "alarm": EXIT_ALARM,
        "unconfirmed": EXIT_UNCONFIRMED,
    }[outcome]


@main.command()
@click.argument("program", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the plan as one JSON object")
@_with_overrides
def check(
    program: Path,
    as_json: bool,
    override_fields: tuple[str, ...],
    override_reasons: tuple[str, ...],
) -> None:
    """Validate PROGRAM against its drug library and print the compiled plan."""
    import json
    import logging

    from pumpctl.check import check_program
    from pumpctl.log import configure_logging

    # stdout carries only the plan (a table, or one JSON object that scripts parse); the table
    # already names every violation, so console logs would only repeat it
    configure_logging(console=False, level=logging.WARNING)
    result = check_program(program, dict(_pair_overrides(override_fields, override_reasons)))
    if as_json:
        _echo(json.dumps(result.to_json(), indent=2))
    else:
        _echo(result.render_table())
    if result.exit_code == EXIT_SOFT_LIMIT:
        click.echo(
            "a soft limit was crossed: re-run with --override FIELD --reason TEXT to proceed",
            err=True,
        )
    sys.exit(result.exit_code)


@main.command()
@click.option("--model", default="ne1000", show_default=True, help="pump model to simulate")
@click.option(
    "--program",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="program to run instead of the built-in acute-pain example",
)
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), help="SQLite journal")
@click.option(
    "--audit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the structlog audit trail (JSON lines) here",
)
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
    audit: Path | None,
    json_log: bool,
    no_pause: bool,
    faults: tuple[str, ...],
    every_min: float,
) -> None:
    """Run a built-in program on a simulated pump, on a virtual clock (days take seconds)."""
    from pumpctl.clock import Clock, run_with_clock, wall_monotonic
    from pumpctl.display import summary_lines
    from pumpctl.journal import Journal
    from pumpctl.program import example_path
    from pumpctl.runner import DemoScenario, demo_program, run_on_simulator

    _configure_logs(audit, json_log, verbose=False)
    path = program or example_path(demo_program(model))
    plan = _checked_plan(path, [])
    printer, live = _progress_sink(
        plan, pump=f"sim://{model}", time_scale=math.inf, json_log=json_log, every_s=every_min * 60
    )
    scenario = None if no_pause else DemoScenario()
    jr = Journal(journal) if journal is not None else None
    if not json_log:
        _echo(f"pumpctl demo: {plan.program} on a simulated {model}, virtual clock")
        for w in plan.warnings:
            _echo(f"warning: {w}")

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
    if not json_log:
        _echo("")
        for line in summary_lines(plan, result):
            _echo(line)
        if scenario is not None and scenario.paused_at_s is not None:
            _echo(f"paused once for {scenario.pause_for_s / 60:.0f} min during maintenance")
        _echo(f"plunger ground truth (simulator): {truth.delivered_ml:.3f} mL")
        sim_s = result.ended_s - result.started_s
        _echo(
            f"wall time {wall:.2f} s for {sim_s / 3600:.2f} h simulated "
            f"({sim_s / max(wall, 1e-9):,.0f}x real time)"
        )
    sys.exit(_exit_code(result.outcome.value))


@main.command()
@click.argument("program", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="pump model (see `pumpctl models`)")
@click.option("--port", required=True, help="device path or pyserial URL (socket://host:port)")
@click.option(
    "--address", type=click.IntRange(0, 99), default=None, help="pump address (default: model's)"
)
@click.option("--baud", type=int, default=None, help="baud rate (default: the model's)")
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), help="SQLite journal")
@click.option(
    "--audit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the structlog audit trail (JSON lines) here",
)
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
@_with_overrides
def run(
    program: Path,
    model: str,
    port: str,
    address: int | None,
    baud: int | None,
    journal: Path | None,
    audit: Path | None,
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
    from pumpctl.display import summary_lines
    from pumpctl.drivers.registry import default_address, driver_class, open_transport
    from pumpctl.journal import Journal
    from pumpctl.runner import prepare_run
    from pumpctl.supervisor import Supervisor, SupervisorConfig

    overrides = _pair_overrides(override_fields, override_reasons)
    _configure_logs(audit, json_log, verbose=False)
    plan = _checked_plan(program, overrides)  # SR01: nothing is opened before this passes
    cls = driver_class(model)
    if address is None:
        address = default_address(model)
    printer, live = _progress_sink(
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
                _echo(note)
            if todo is None:
                _echo("nothing remains to be delivered: the interrupted run had finished")
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
                _echo("stop requested: stopping the pump")
                task = asyncio.ensure_future(sup.stop(reason="signal", who="operator"))
                pending.add(task)
                task.add_done_callback(pending.discard)

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            if journal is None:
                return await sup.run()
            from pumpctl.control import ControlServer, control_socket_path
            from pumpctl.titration import dose_rate_to_ml_per_h

            def rate_parser(text: str) -> float:
                return dose_rate_to_ml_per_h(text, plan)

            path = control_socket_path(journal)
            async with ControlServer(sup, path, rate_parser=rate_parser):
                if not json_log:
                    _echo(f"control: pumpctl ctl --journal {journal} status")
                return await sup.run()

    from pumpctl.control import ControlError
    from pumpctl.resume import ResumeRefused

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
        for line in summary_lines(plan, result):
            _echo(line)
    sys.exit(_exit_code(result.outcome.value))


@main.command()
@click.option(
    "--journal",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the --journal of the running `pumpctl run`",
)
@click.argument(
    "op",
    type=click.Choice(["status", "titrate", "pause", "resume", "stop", "syringe-changed"]),
)
@click.argument("rate", required=False)
@click.option("--reason", default="", help="why (required for titrate; journaled with who)")
@click.option("--who", default=None, help="who asks (default: your user name)")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="seconds to wait for the run's reply",
)
def ctl(
    journal: Path, op: str, rate: str | None, reason: str, who: str | None, timeout_s: float
) -> None:
    """Control a running `pumpctl run` from another terminal: status, titrate RATE (e.g.
    0.3mg/kg/h, with --reason), pause, resume, stop. Exit 1: refused; 3: no run listening."""
    from pumpctl.control import ctl as send_ctl

    if op == "titrate" and not rate:
        raise click.UsageError("titrate needs a RATE with units, e.g. 0.3mg/kg/h")
    if op != "titrate" and rate:
        raise click.UsageError(f"{op} takes no RATE")
    code, text = send_ctl(journal, op, rate=rate, reason=reason, who=who, timeout_s=timeout_s)
    click.echo(text, err=code != 0)
    sys.exit(code)


@main.command("journal")
@click.argument(
    "journal_path", metavar="JOURNAL", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--run", "run_id", help="run id or a unique prefix (default: the latest run)")
def journal_cmd(journal_path: Path, run_id: str | None) -> None:
    """Print the runs in JOURNAL and the history of one of them."""
    from pumpctl.history import render_history
    from pumpctl.journal import JournalError

    try:
        text = render_history(journal_path, run_id)
    except JournalError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo(text)


@main.command()
def ports() -> None:
    """List the serial ports on this machine."""
    from pumpctl.drivers.transport import list_ports

    found = list_ports()
    if not found:
        _echo("no serial ports found")
    for p in found:
        _echo(f"{p.device}\t{p.description}\t{p.hwid}")


def _register_subcommands() -> None:
    from pumpctl.report_cli import accuracy, report
    from pumpctl.simulator.cli import simulate

    main.add_command(simulate)
    main.add_command(report)
    main.add_command(accuracy)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()
