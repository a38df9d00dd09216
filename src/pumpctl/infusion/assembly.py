"""How a supervisor's parts are built from the plan, the pump and the configuration.

Kept apart from `Supervisor.__init__` so the wiring reads as one line per part, and so each
part's starting state (what earlier runs carried over, what the pump can resolve) is written
once. The segment runner (with its request handlers) and the PK leg share most of the
supervisor's parts, so they are built from the supervisor's public parts; what is its own (the
request queue, the progress hook) it hands over itself.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from pumpctl.clock import Clock
from pumpctl.dosing.plan import Plan
from pumpctl.dosing.rolling import RollingTotals
from pumpctl.drivers.base import Capabilities
from pumpctl.infusion.config import SupervisorConfig
from pumpctl.infusion.handlers import RequestHandlers
from pumpctl.infusion.ledger import Tolerances
from pumpctl.infusion.outcome import PhaseResult
from pumpctl.infusion.requests import Queued
from pumpctl.infusion.resume import Carryover
from pumpctl.infusion.segment import PollSettings, RunBooks, SegmentRunner
from pumpctl.infusion.tci_leg import PkLeg

if TYPE_CHECKING:
    from pumpctl.infusion.supervisor import Supervisor

__all__ = ["books_for", "pk_leg_for", "poll_settings", "segment_runner_for", "tolerances_for"]


def tolerances_for(caps: Capabilities, config: SupervisorConfig, clock: Clock) -> Tolerances:
    """Resolution, accuracy and rate step the checks allow for, from the pump as configured.

    On a scaled real clock two processes' clocks drift by their wall jitter times the scale
    (SR22); a virtual or unscaled clock adds nothing."""
    scaled = math.isfinite(clock.time_scale) and clock.time_scale > 1
    return Tolerances(
        floor_ml=config.deviation_floor_ml,
        accuracy=caps.accuracy_percent / 100.0,
        resolution_ml=caps.volume_resolution_ml,
        rate_step_ml_per_h=caps.rate_resolution_ml_per_h,
        poll_interval_s=config.poll_interval_s,
        clock_jitter_s=config.wall_jitter_s * clock.time_scale if scaled else 0.0,
    )


def books_for(
    plan: Plan, tolerances: Tolerances, carryover: Carryover | None, now_s: float
) -> RunBooks:
    """Empty books for every segment of `plan`, seeded with what earlier runs delivered (SR08:
    the rolling windows count drug given before a crash or a stop)."""
    books = RunBooks(
        results={
            s.key: PhaseResult(
                phase=s.phase,
                planned_ml=s.volume_ml,
                delivered_ml=0.0,
                rate_ml_per_h=s.rate_ml_per_h,
                taper_step=s.taper_step,
            )
            for s in plan.segments
        },
        rolling=RollingTotals(
            plan.rolling_limits.by_window() if plan.rolling_limits else {},
            tolerance_ml=tolerances.resolution_ml,
        ),
        tolerances=tolerances,
    )
    if carryover is not None:
        books.prior_ml = carryover.prior_total_ml
        books.rolling.seed([(now_s - ago_s, total) for ago_s, total in carryover.prior_deliveries])
    return books


def poll_settings(config: SupervisorConfig) -> PollSettings:
    return PollSettings(
        interval_s=config.poll_interval_s,
        max_missed=config.max_missed_polls,
        max_silence_s=config.max_silence_s,
        max_pause_s=config.max_pause_s,
        checkpoint_interval_s=config.checkpoint_interval_s,
    )


def segment_runner_for(
    sup: Supervisor,
    *,
    requests: asyncio.Queue[Queued],
    emit_progress: Callable[..., None],
) -> SegmentRunner:
    """The segment loop and the operator-request handlers it serves between polls; it takes
    the supervisor's request queue and progress hook, which are the supervisor's own."""
    runner = SegmentRunner(
        driver=sup.driver,
        clock=sup.clock,
        cmds=sup.cmds,
        recorder=sup.recorder,
        machine=sup.machine,
        legs=sup.legs,
        books=sup.books,
        settings=poll_settings(sup.config),
        requests=requests,
        emit_progress=emit_progress,
        log=sup.log,
    )
    runner.handlers = RequestHandlers(
        plan=sup.plan,
        driver=sup.driver,
        clock=sup.clock,
        machine=sup.machine,
        cmds=sup.cmds,
        recorder=sup.recorder,
        legs=sup.legs,
        start_leg=runner.start_leg,
        done_ml=lambda: sup.books.done_ml,
    )
    return runner


def pk_leg_for(sup: Supervisor, runner: SegmentRunner) -> PkLeg:
    """Predictions from the volumes the pump reports, TCI, taper and boluses (issue #13); it
    starts its legs through the segment `runner`."""
    return PkLeg(
        plan=sup.plan,
        driver=sup.driver,
        clock=sup.clock,
        cmds=sup.cmds,
        recorder=sup.recorder,
        machine=sup.machine,
        books=sup.books,
        carryover=sup.carryover,
        start_leg=runner.start_leg,
        log=sup.log,
    )
