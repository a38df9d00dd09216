"""The 5-day continuous-infusion program shared by the time-acceleration and dose benchmarks.

Prime, a loading dose, then maintenance titrated every 12 h (up, down, up...) with a 10-minute
pause once a day, all in pump units so the benchmark needs no drug library. Sized to fit one
60 mL syringe (26.7 mm bore): 0.5 + 2.0 + 50.5 = 53.0 mL.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from bench import cpu_s
from pumpctl.clock import Clock, run_with_clock, wall_monotonic
from pumpctl.dosing.plan import ContainerSpec, Plan, Segment, SegmentPhase, TitrationLimits
from pumpctl.drivers.base import PumpDriver
from pumpctl.drivers.registry import driver_class
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.supervisor import RunResult, Supervisor, SupervisorConfig
from pumpctl.log import configure_logging
from pumpctl.runner import run_plan
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.server import build_emulation

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
BASE_RATE_ML_PER_H = 0.40
HIGH_RATE_ML_PER_H = 0.45
TITRATE_EVERY_S = 12 * HOUR_S
PAUSE_AT_S = 6 * HOUR_S  # into each maintenance day
PAUSE_FOR_S = 10 * 60.0


def _segment(phase: SegmentPhase, rate_ml_per_h: float, volume_ml: float) -> Segment:
    return Segment(
        phase=phase,
        rate_ml_per_h=rate_ml_per_h,
        volume_ml=volume_ml,
        duration_s=volume_ml / rate_ml_per_h * HOUR_S,
    )


def five_day_plan(maintenance_ml: float = 50.5) -> Plan:
    """Prime 0.5 mL, loading 2 mL over 10 min, maintenance `maintenance_ml` (about 5 days)."""
    return Plan(
        program="bench-5-day-cri",
        program_hash="0" * 64,
        container=ContainerSpec(inner_diameter_mm=26.7, capacity_ml=60.0),
        segments=(
            _segment(SegmentPhase.PRIME, 60.0, 0.5),
            _segment(SegmentPhase.LOADING, 12.0, 2.0),
            _segment(SegmentPhase.MAINTENANCE, BASE_RATE_ML_PER_H, maintenance_ml),
        ),
        titration=TitrationLimits(
            max_step_ml_per_h=0.05, min_interval_s=6 * HOUR_S, max_rate_ml_per_h=0.5
        ),
    )


@dataclass
class Operator:
    """Titrates every 12 h of maintenance and pauses 10 min a day; records what it did."""

    titrations: int = 0
    pauses: int = 0
    refused: list[str] = field(default_factory=list)

    async def __call__(self, sup: Supervisor, clock: Clock) -> None:
        while sup.phase is not Phase.MAINTENANCE:
            if sup.phase in (Phase.COMPLETED, Phase.STOPPED, Phase.ALARM):
                return
            await clock.sleep(1.0)
        t0 = clock.now()
        events: list[tuple[float, str]] = []
        for day in range(10):
            events.append((day * DAY_S + PAUSE_AT_S, "pause"))
            events.append((day * DAY_S + TITRATE_EVERY_S, "up"))
            events.append((day * DAY_S + 2 * TITRATE_EVERY_S, "down"))
        for at_s, what in sorted(events):
            await clock.sleep(t0 + at_s - clock.now())
            if sup.phase is not Phase.MAINTENANCE:
                return
            if what == "pause":
                await sup.pause(reason="bench: daily line check", who="bench")
                await clock.sleep(PAUSE_FOR_S)
                await sup.resume(who="bench")
                self.pauses += 1
            else:
                rate = HIGH_RATE_ML_PER_H if what == "up" else BASE_RATE_ML_PER_H
                await sup.titrate(rate, reason=f"bench: titrate {what}", who="bench")
                self.titrations += 1


@dataclass
class FiveDayRun:
    result: RunResult
    wall_s: float
    simulated_s: float
    truth_ml: float
    operator: Operator
    truth_by_phase_ml: dict[str, float]
    polls: int
    cpu_used_s: float
    #: wall seconds taken by each whole simulated day (from the run's start)
    wall_s_per_day: list[float]


def run_five_day(plan: Plan | None = None) -> FiveDayRun:
    """One run on the virtual clock through the real supervisor, driver and emulation.

    The emulation's ground truth is read at every segment boundary (each segment begins by
    clearing the pump's counters), by wrapping the driver's `clear_counters` from outside.
    """
    plan = plan or five_day_plan()
    configure_logging(console=False, level=logging.INFO)
    emulation = build_emulation("ne1000", [0])
    marks: list[float] = []
    polls = [0]
    day_walls: list[float] = []
    operator = Operator()
    clock_box: list[Clock] = []

    def truth() -> float:
        return emulation.snapshot()[0].delivered_ml

    def instrument(driver: PumpDriver) -> None:
        clear = driver.clear_counters
        read_poll = driver.read_poll

        async def clear_counters() -> None:
            marks.append(truth())
            await clear()

        async def counted_poll() -> Any:
            polls[0] += 1
            if clock_box[0].now() >= (len(day_walls) + 1) * DAY_S:
                day_walls.append(wall_monotonic())
            return await read_poll()

        driver.clear_counters = clear_counters  # type: ignore[method-assign]
        driver.read_poll = counted_poll  # type: ignore[method-assign]

    async def main(clock: Clock) -> RunResult:
        clock_box.append(clock)
        transport = InMemoryTransport(emulation, clock, name="sim://ne1000")
        driver = driver_class("ne1000")(transport, address=0)
        instrument(driver)
        async with driver:
            return await run_plan(plan, driver, clock, config=SupervisorConfig(), operator=operator)

    wall0, cpu0 = wall_monotonic(), cpu_s()
    result = run_with_clock(main, virtual=True)
    wall, cpu = wall_monotonic() - wall0, cpu_s() - cpu0
    ends = [wall0, *day_walls]
    marks.append(truth())
    by_phase = {seg.phase.value: marks[i + 1] - marks[i] for i, seg in enumerate(plan.segments)}
    return FiveDayRun(
        result=result,
        wall_s=wall,
        simulated_s=result.ended_s - result.started_s,
        truth_ml=truth(),
        operator=operator,
        truth_by_phase_ml=by_phase,
        polls=polls[0],
        cpu_used_s=cpu,
        wall_s_per_day=[b - a for a, b in itertools.pairwise(ends)],
    )
