"""Crash and resume without double dosing (SR28, SR30).

A crash abandons the controller's event loop mid-run: no cleanup, no stop, exactly what a killed
process leaves behind. The pump carries on alone (until its target or its link watchdog stops
it), may lose power, and a new controller resumes from the journal and the pump's counters.
The journal's wall clock is the virtual clock, so elapsed-time reasoning is exact.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpctl.clock import Clock, VirtualClock, VirtualTimeEventLoop, run_with_clock
from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.drivers.newera import NE1000Driver
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.resume import ResumeRefused
from pumpctl.infusion.supervisor import Outcome, RunResult, Supervisor
from pumpctl.runner import supervisor_for
from pumpctl.simulator.devices.base import Emulation
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.server import build_emulation

from .conftest import make_plan, segment

RES = 0.001
SHORT_PLAN = make_plan(
    segment(SegmentPhase.PRIME, 120.0, 0.5),
    segment(SegmentPhase.LOADING, 60.0, 5.0),
    segment(SegmentPhase.MAINTENANCE, 6.0, 3.0),
)
PLAN_TOTAL = 8.5
PLAN_DURATION_S = 15 + 300 + 1800


def crash(emu: Emulation, plan: Plan, journal_path: Path, crash_at_s: float) -> None:
    """Run a supervisor until `crash_at_s`, then abandon its loop without any cleanup."""
    loop = VirtualTimeEventLoop()
    clock = VirtualClock(loop)
    journal = Journal(journal_path, wall_clock=clock.now)

    async def controller() -> None:
        driver = NE1000Driver(InMemoryTransport(emu, clock))
        await driver.open()
        task = asyncio.create_task(Supervisor(driver, plan, clock, journal=journal).run())
        await clock.sleep(crash_at_s)
        assert not task.done(), "crash point after the run ended"
        loop.stop()  # the process dies here
        await asyncio.Event().wait()

    with pytest.raises(RuntimeError, match="Event loop stopped"):
        loop.run_until_complete(controller())
    journal.close()
    # Forget the dead controller: close its frozen coroutines while the loop still exists (only
    # their `finally` blocks run, as at a process exit; no error handling, no pump commands).
    loop.set_exception_handler(lambda _loop, _context: None)
    for task in asyncio.all_tasks(loop):
        task.get_coro().close()  # type: ignore[union-attr]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop.close()


def restart(
    emu: Emulation, plan: Plan, journal_path: Path, now_s: float, *, allow_stale: bool = True
) -> tuple[RunResult | None, list[str]]:
    async def controller(clock: Clock) -> tuple[RunResult | None, list[str]]:
        journal = Journal(journal_path, wall_clock=lambda: now_s + clock.now())
        try:
            async with NE1000Driver(InMemoryTransport(emu, clock)) as driver:
                sup, notes = await supervisor_for(
                    plan, driver, clock, journal, now_wall=now_s, allow_stale=allow_stale
                )
                if sup is None:
                    return None, notes
                return await sup.run(), notes
        finally:
            journal.close()

    return run_with_clock(controller, virtual=True)


def trial(
    tmp_path: Path, crash_at_s: float, downtime_s: float, power_loss: bool
) -> tuple[float, RunResult | None, list[str]]:
    emu = build_emulation("ne1000", [0])
    journal_path = tmp_path / "run.sqlite"
    journal_path.unlink(missing_ok=True)
    crash(emu, SHORT_PLAN, journal_path, crash_at_s)
    emu.advance(downtime_s)  # the pump on its own: target or watchdog stops it
    if power_loss:
        emu.power_cycle(0)
    result, notes = restart(emu, SHORT_PLAN, journal_path, crash_at_s + downtime_s)
    emu.advance(0.0)
    return emu.snapshot()[0].delivered_ml, result, notes


CRASH_POINTS = {
    "crash_at_s": st.floats(min_value=1.0, max_value=PLAN_DURATION_S - 5.0),
    "downtime_s": st.floats(min_value=0.0, max_value=3600.0),
    "power_loss": st.booleans(),
}


def check_crash_then_resume(
    tmp_path: Path, crash_at_s: float, downtime_s: float, power_loss: bool
) -> None:
    delivered, result, notes = trial(tmp_path, crash_at_s, downtime_s, power_loss)
    assert delivered <= PLAN_TOTAL + 3 * RES, notes
    if not power_loss:
        # the pump's counter survived: the resumed run delivers exactly what remained
        assert delivered == pytest.approx(PLAN_TOTAL, abs=3 * RES), notes
    if result is not None:
        assert result.outcome is Outcome.COMPLETED


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**CRASH_POINTS)
def test_SR30_crash_at_random_point_then_resume_never_exceeds_plan(
    tmp_path: Path, crash_at_s: float, downtime_s: float, power_loss: bool
) -> None:
    check_crash_then_resume(tmp_path, crash_at_s, downtime_s, power_loss)


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**CRASH_POINTS)
def test_SR30_crash_at_random_point_then_resume_never_exceeds_plan_larger_sample(
    tmp_path: Path, crash_at_s: float, downtime_s: float, power_loss: bool
) -> None:
    check_crash_then_resume(tmp_path, crash_at_s, downtime_s, power_loss)


def test_SR28_power_loss_assumes_worst_case_and_says_so(tmp_path: Path) -> None:
    # crash 10 min into maintenance (after 0.5 + 5 mL), pump reset 2 s later
    crash_at = 15 + 300 + 600
    delivered, result, notes = trial(tmp_path, crash_at, 2.0, power_loss=True)
    assert any("lost its counter" in n for n in notes)
    assert result is not None and result.outcome is Outcome.COMPLETED
    # at most the plan; short of it by at most what the worst case assumed (< 2 polls + 2 s)
    assert PLAN_TOTAL - 0.1 < delivered <= PLAN_TOTAL + 3 * RES


def test_resume_of_a_finished_run_delivers_nothing_more(tmp_path: Path) -> None:
    emu = build_emulation("ne1000", [0])
    journal_path = tmp_path / "run.sqlite"
    # crash right at the end: the pump already reached its last target
    crash(emu, SHORT_PLAN, journal_path, PLAN_DURATION_S - 1.0)
    emu.advance(600.0)
    before = (emu.advance(0.0), emu.snapshot()[0].delivered_ml)[1]
    result, _ = restart(emu, SHORT_PLAN, journal_path, PLAN_DURATION_S + 600.0)
    emu.advance(0.0)
    assert emu.snapshot()[0].delivered_ml == pytest.approx(before, abs=RES)
    assert emu.snapshot()[0].delivered_ml <= PLAN_TOTAL + 3 * RES
    if result is not None:
        assert result.delivered_ml <= 3 * RES


def test_stale_interrupted_run_needs_explicit_confirmation(tmp_path: Path) -> None:
    emu = build_emulation("ne1000", [0])
    journal_path = tmp_path / "run.sqlite"
    crash(emu, SHORT_PLAN, journal_path, 400.0)
    with pytest.raises(ResumeRefused, match="--resume-stale"):
        restart(emu, SHORT_PLAN, journal_path, 400.0 + 3 * 3600, allow_stale=False)


def test_interrupted_run_of_another_program_is_refused(tmp_path: Path) -> None:
    emu = build_emulation("ne1000", [0])
    journal_path = tmp_path / "run.sqlite"
    crash(emu, SHORT_PLAN, journal_path, 400.0)
    other = SHORT_PLAN.model_copy(update={"program_hash": "f" * 64})
    with pytest.raises(ResumeRefused, match="another program"):
        restart(emu, other, journal_path, 410.0)
