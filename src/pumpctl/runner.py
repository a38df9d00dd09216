"""Wiring for `pumpctl demo` and `pumpctl run`: plan + driver + supervisor + progress output.

Kept out of cli.py so the same wiring is tested directly and used from Python scripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

from pumpctl.clock import Clock, wall_time
from pumpctl.dosing.plan import Plan
from pumpctl.drivers.base import PumpDriver
from pumpctl.drivers.registry import default_address, driver_class, open_transport
from pumpctl.drivers.transport import Transport
from pumpctl.infusion.events import NewRunStarted, ResumedElsewhere
from pumpctl.infusion.journal import EventKind, Journal, RunStatus
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.replay import RunFacts
from pumpctl.infusion.resume import (
    Carryover,
    ResumeRefused,
    latest_run,
    plan_resume,
    read_pump_after_restart,
    rolling_history,
)
from pumpctl.infusion.supervisor import Progress, RunResult, Supervisor, SupervisorConfig
from pumpctl.simulator.devices.base import Emulation, PumpSnapshot
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.faults import FaultSchedule
from pumpctl.simulator.server import build_emulation
from pumpctl.simulator.url import is_sim_url, open_sim_transport, parse_sim_url

Operator = Callable[[Supervisor, Clock], Coroutine[Any, Any, None]]
"""A scripted operator acting on a running supervisor (demo scenario, tests, rigs)."""

__all__ = [
    "DemoScenario",
    "Operator",
    "PreparedRun",
    "SimulatedNurse",
    "open_pump",
    "prepare_run",
    "run_on_simulator",
    "run_plan",
    "supervisor_for",
]


class DemoScenario:
    """The operator of the demo: pauses maintenance once, then resumes it."""

    def __init__(self, pause_after_s: float = 30 * 60.0, pause_for_s: float = 5 * 60.0) -> None:
        self.pause_after_s = pause_after_s
        self.pause_for_s = pause_for_s
        self.paused_at_s: float | None = None

    async def __call__(self, sup: Supervisor, clock: Clock) -> None:
        while sup.phase is not Phase.MAINTENANCE:
            if sup.phase in (Phase.COMPLETED, Phase.STOPPED, Phase.ALARM):
                return
            await clock.sleep(5.0)
        await clock.sleep(self.pause_after_s)
        if sup.phase is not Phase.MAINTENANCE:
            return
        await sup.pause(reason="demo: patient repositioned", who="demo")
        self.paused_at_s = clock.now()
        await clock.sleep(self.pause_for_s)
        await sup.resume(who="demo")


class SimulatedNurse:
    """Changes the syringe (or reservoir) when the supervisor asks, on the emulated pump too:
    what a person at the bedside does, so a multi-day demo with container changes runs alone."""

    def __init__(self, refill: Callable[[], None], *, takes_s: float = 5 * 60.0) -> None:
        self.refill = refill
        self.takes_s = takes_s
        self.changes = 0

    async def __call__(self, sup: Supervisor, clock: Clock) -> None:
        while sup.phase not in (Phase.COMPLETED, Phase.STOPPED, Phase.ALARM):
            if sup.awaiting_container_change:
                await clock.sleep(self.takes_s)
                self.refill()
                await sup.container_changed(who="demo nurse")
                self.changes += 1
            await clock.sleep(60.0)


def _refill(emulation: Emulation, address: int, plan: Plan) -> Callable[[], None]:
    """A full new container of the plan's kind on the emulated pump."""
    c = plan.container

    def refill() -> None:
        if c.capacity_ml is None:
            return
        if c.inner_diameter_mm is not None:
            emulation.load_syringe(address, c.inner_diameter_mm, c.capacity_ml, c.capacity_ml)
        else:
            emulation.set_reservoir_ml(address, c.capacity_ml)

    return refill


async def run_plan(
    plan: Plan,
    driver: PumpDriver,
    clock: Clock,
    *,
    config: SupervisorConfig | None = None,
    journal: Journal | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    operator: Operator | None = None,
    helpers: tuple[Operator, ...] = (),
) -> RunResult:
    """Run `plan` on an open `driver`; scripted operators (and helpers) act alongside."""
    sup = Supervisor(driver, plan, clock, config=config, journal=journal, on_progress=on_progress)
    actors = ((operator,) if operator is not None else ()) + helpers
    if not actors:
        return await sup.run()
    run_task = asyncio.create_task(sup.run())
    tasks = [asyncio.create_task(actor(sup, clock)) for actor in actors]
    try:
        return await run_task
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class PreparedRun(NamedTuple):
    """What to run now: the plan (None: nothing remains), the run it continues, notes for the
    operator, the container level carried over from that run (None: assume full), and what the
    run inherits from earlier runs (pause, titration clock, rolling-window deliveries)."""

    plan: Plan | None
    resumed_from: str | None
    notes: list[str]
    container_left_ml: float | None = None
    carryover: Carryover | None = None


async def prepare_run(
    plan: Plan,
    driver: PumpDriver,
    journal: Journal | None,
    *,
    allow_stale: bool = False,
    resume: bool = False,
    new_run_reason: str | None = None,
    who: str = "operator",
    now_wall: float | None = None,
) -> PreparedRun:
    """The plan to run now: the whole plan, or what remains of an interrupted run (SR30).

    A crashed run resumes by itself; a run that was stopped or ended in an alarm resumes only
    with `resume=True` (SR16); `new_run_reason` starts the program anew instead and journals why
    on the run given up. Anything else raises `ResumeRefused` naming both ways forward.
    """
    if journal is None:
        return PreparedRun(plan, None, [])
    now = wall_time() if now_wall is None else now_wall
    previous = latest_run(journal)
    history = rolling_history(journal, now_wall=now, scale=previous.scale if previous else 1.0)
    if previous is None or not previous.interrupted:
        return PreparedRun(plan, None, [], carryover=history)
    if new_run_reason is not None:
        return _start_anew(plan, journal, previous, new_run_reason, who, history)
    if previous.outcome is not None and not resume:
        raise ResumeRefused(_interrupted_message(previous, plan))
    reading = await read_pump_after_restart(driver)
    decision = plan_resume(previous, plan, reading, now_wall=now, allow_stale=allow_stale)
    journal.append(
        previous.run.run_id,
        EventKind.NOTE.value,
        ResumedElsewhere(
            **decision.model_dump(mode="json", exclude={"remaining", "carryover"})
        ).payload(),
        t_clock_s=0.0,
    )
    if previous.run.status is RunStatus.RUNNING:
        journal.set_run_status(previous.run.run_id, RunStatus.STOPPED.value)
    how = "crashed" if previous.outcome is None else f"ended {previous.outcome}"
    notes = [
        f"resuming run {previous.run.run_id[:8]} ({how}) in {decision.interrupted_phase or '-'}"
        f" {decision.age_s:.0f} s ago",
        *decision.notes,
    ]
    carry = decision.carryover.model_copy(
        update={
            "prior_deliveries": history.prior_deliveries,
            "prior_total_ml": history.prior_total_ml,
            "prior_doses": history.prior_doses,
            "prior_dosed_ml": history.prior_dosed_ml,
        }
    )
    return PreparedRun(
        decision.remaining, previous.run.run_id, notes, decision.container_left_ml, carry
    )


def _start_anew(
    plan: Plan,
    journal: Journal,
    previous: RunFacts,
    reason: str,
    who: str,
    history: Carryover,
) -> PreparedRun:
    if not reason.strip():
        raise ResumeRefused("--new-run needs a --reason (it is journaled on the run given up)")
    journal.append(
        previous.run.run_id,
        EventKind.NOTE.value,
        NewRunStarted(reason=reason, who=who).payload(),
        t_clock_s=0.0,
    )
    if previous.run.status is RunStatus.RUNNING:
        journal.set_run_status(previous.run.run_id, RunStatus.STOPPED.value)
    delivered = history.prior_total_ml
    notes = [
        f"starting anew: run {previous.run.run_id[:8]} ({previous.run.program}) is given up"
        f" ({reason}); {delivered:.3f} mL delivered by earlier runs still count towards the"
        " rolling limits"
    ]
    return PreparedRun(plan, None, notes, carryover=history)


def _interrupted_message(previous: RunFacts, plan: Plan) -> str:
    run = previous.run
    total = previous.deliveries[-1][1] if previous.deliveries else 0.0
    where = f" in {previous.active}" if previous.active else ""
    same = run.program_hash == plan.program_hash
    return (
        f"the journal's last run {run.run_id[:8]} ({run.program}) ended {previous.outcome}{where}"
        f" after {total:.3f} mL; it is not restarted from the top. "
        + ("Continue what remains with --resume, or " if same else "")
        + "start the program anew with --new-run --reason TEXT (journaled)"
    )


def open_pump(
    model: str,
    port: str,
    *,
    clock: Clock,
    address: int | None = None,
    baudrate: int | None = None,
) -> PumpDriver:
    """A driver for `model` on `port`, not yet opened (`async with` it): a device path, any
    pyserial URL (`socket://host:port`), or `sim://MODEL[?address=N&faults=...]` for the
    built-in emulation on `clock` (the virtual clock runs days in seconds)."""
    cls = driver_class(model)
    if is_sim_url(port):
        sim = parse_sim_url(port)
        if sim.model != model:
            raise ValueError(f"{port} emulates {sim.model}, not {model}")
        transport: Transport = open_sim_transport(port, clock=clock)
        return cls(transport, address=sim.address if address is None else address)
    transport = open_transport(port, baudrate=baudrate, clock=clock, model=model)
    return cls(transport, address=default_address(model) if address is None else address)


async def supervisor_for(
    plan: Plan,
    driver: PumpDriver,
    clock: Clock,
    journal: Journal | None,
    *,
    config: SupervisorConfig | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    allow_stale: bool = False,
    resume: bool = False,
    new_run_reason: str | None = None,
    who: str = "operator",
    now_wall: float | None = None,
) -> tuple[Supervisor | None, list[str]]:
    """The supervisor for what is to run now on an open `driver` (`prepare_run`), and the notes
    for the operator; None when nothing remains. Raises `ResumeRefused`."""
    prepared = await prepare_run(
        plan,
        driver,
        journal,
        allow_stale=allow_stale,
        resume=resume,
        new_run_reason=new_run_reason,
        who=who,
        now_wall=now_wall,
    )
    if prepared.plan is None:
        return None, prepared.notes
    sup = Supervisor(
        driver,
        prepared.plan,
        clock,
        config=config,
        journal=journal,
        on_progress=on_progress,
        resumed_from=prepared.resumed_from,
        container_contents_ml=prepared.container_left_ml,
        carryover=prepared.carryover,
    )
    return sup, prepared.notes


async def run_on_simulator(
    plan: Plan,
    clock: Clock,
    *,
    model: str = "ne1000",
    address: int | None = None,
    config: SupervisorConfig | None = None,
    journal: Journal | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    operator: Operator | None = None,
    emulation: Emulation | None = None,
    faults: FaultSchedule | None = None,
    change_containers: bool = False,
) -> tuple[RunResult, PumpSnapshot]:
    """Run `plan` against an in-process emulation of `model`; returns the result and the
    emulated pump's ground truth (what the plunger really pushed)."""
    if address is None:
        address = default_address(model)
    emu = emulation or build_emulation(model, [address])
    tubing = plan.container.ml_per_rev
    if emulation is None and tubing is not None:
        # the simulated tubing is the calibrated tubing the program names (a real line that
        # differs from its calibration delivers the difference, and no pump counter can tell)
        emu.set_ml_per_rev(address, tubing)
    transport = InMemoryTransport(emu, clock, name=f"sim://{model}", faults=faults)
    driver = driver_class(model)(transport, address=address)
    async with driver:
        result = await run_plan(
            plan,
            driver,
            clock,
            config=config,
            journal=journal,
            on_progress=on_progress,
            operator=operator,
            helpers=(SimulatedNurse(_refill(emu, address, plan)),) if change_containers else (),
        )
    transport.sync()  # bring the pump's physics (and faults) up to the end of the run
    return result, emu.snapshot()[address]
