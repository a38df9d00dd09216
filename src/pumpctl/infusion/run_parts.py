"""Parts of the supervisor's run kept apart from its main loop: progress, alarm, safe stop.

They read and write the supervisor's own parts (its books, ledger, recorder and machine) and
are called only from its task.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from pumpctl.dosing.plan import SegmentPhase
from pumpctl.drivers.base import PumpError
from pumpctl.infusion.events import AlarmEvent
from pumpctl.infusion.ledger import Alarm
from pumpctl.infusion.machine import Trigger
from pumpctl.infusion.outcome import Progress
from pumpctl.infusion.safe_stop import confirm_stop

if TYPE_CHECKING:
    from pumpctl.infusion.supervisor import Supervisor

__all__ = ["ProgressGate", "raise_alarm", "run_progress", "safe_stop"]


class ProgressGate:
    """Hands the watcher a progress when something it shows changed (phase, segment, pump
    running, rate, alarms, notices, target) and otherwise at most every `every_s` clock
    seconds: on a virtual clock a progress per poll was a fifth of a 5-day run's time.

    A change is seen at the poll that reports it, as before, so a watcher that sums time per
    state (`PhaseTiming`) sums the same as with a progress every poll."""

    def __init__(self, sup: Supervisor, on_progress: Callable[[Progress], None], every_s: float):
        self.sup = sup
        self.on_progress = on_progress
        self.every_s = every_s
        self._shown: tuple[object, ...] | None = None
        self._shown_s = -math.inf

    def __call__(self, *, force: bool = False) -> None:
        sup = self.sup
        ledger = sup.books.ledger
        now = sup.clock.now()
        shown = (
            sup.machine.phase,
            ledger,
            ledger is not None and ledger.pump_running,
            ledger.rate_ml_per_h if ledger is not None else 0.0,
            len(sup.books.alarms),
            len(sup.legs.notices),
            sup.pk.target,
        )
        if not force and shown == self._shown and now - self._shown_s < self.every_s:
            return
        self._shown, self._shown_s = shown, now
        self.on_progress(run_progress(sup))


def run_progress(sup: Supervisor) -> Progress:
    """What `Supervisor.progress` returns: built on every poll, without re-validation."""
    ledger = sup.books.ledger
    delivered = sup.books.delivered_ml
    remaining_s: float | None = None
    dose_rate: float | None = None
    running = sup.started and ledger is not None and ledger.pump_running
    dose_unit = ledger.segment.dose_rate_unit if ledger else None
    if ledger is not None and ledger.segment.phase is SegmentPhase.TCI:
        # the controller sets the rate; the phase ends at its time, not at its volume ceiling
        seg, conc = ledger.segment, sup.plan.concentration_mg_per_ml
        if seg.duration_s is not None:
            remaining_s = max(0.0, ledger.started_s + seg.duration_s - sup.clock.now())
        dose_rate = ledger.rate_ml_per_h * conc if conc is not None else None
        dose_unit = "mg/h" if conc is not None else None
    elif ledger is not None:
        seg = ledger.segment
        if seg.volume_ml is not None and ledger.rate_ml_per_h > 0:
            left = max(0.0, seg.volume_ml - ledger.delivered_ml)
            remaining_s = left / ledger.rate_ml_per_h * 3600.0
        if seg.dose_rate is not None:
            dose_rate = seg.dose_rate * ledger.rate_ml_per_h / seg.rate_ml_per_h
    plasma, effect = sup.pk.concentrations()
    # built on every poll; plain validated construction measured cheaper than model_construct
    return Progress(
        clock_s=sup.clock.now(),
        phase=sup.machine.phase.value,
        segment=ledger.segment.phase if ledger else None,
        rate_ml_per_h=ledger.rate_ml_per_h if running and ledger is not None else 0.0,
        dose_rate=dose_rate,
        dose_rate_unit=dose_unit,
        segment_delivered_ml=ledger.delivered_ml if ledger else 0.0,
        segment_planned_ml=ledger.planned_ml if ledger else None,
        total_delivered_ml=delivered,
        total_planned_ml=sup.plan.total_volume_ml,
        segment_remaining_s=remaining_s,
        alarms=list(sup.books.alarms),
        notices=list(sup.legs.notices),
        plasma_ug_per_ml=plasma,
        effect_ug_per_ml=effect,
        tci_target_ug_per_ml=sup.pk.target if sup.plan.tci is not None else None,
        segment_key=ledger.segment.key if ledger else None,
    )


def raise_alarm(sup: Supervisor, exc: Alarm) -> None:
    sup.books.alarms.append(exc.reason)
    sup.log.error("alarm", reason=exc.reason, detail=exc.detail, phase=sup.machine.phase.value)
    ledger = sup.books.ledger
    if ledger is not None:
        # the pump may have run since its last reading: book the worst case (marked as an
        # estimate) and journal it before anything else can fail (SR21, SR29)
        ledger.book_worst_case(sup.clock.now(), for_s=0.0)
        sup.books.booked(ledger)
        sup.segments.checkpoint(ledger, force=True)
    sup.recorder.write(AlarmEvent(reason=exc.reason, detail=exc.detail))
    if sup.machine.may(Trigger.ALARM):
        sup.machine.fire(Trigger.ALARM, reason=exc.reason, detail=exc.detail)


async def safe_stop(sup: Supervisor, why: str) -> bool:
    """Stop the pump and confirm it (SR18), then take a last counter reading."""
    confirmed = await confirm_stop(
        sup.driver,
        sup.clock,
        sup.recorder,
        why=why,
        deadline_s=sup.config.stop_confirm_deadline_s,
        retry_interval_s=sup.config.stop_retry_interval_s,
    )
    if confirmed:
        await _final_reading(sup)
    elif (ledger := sup.books.ledger) is not None:
        # unreachable and maybe still running: until its own target stops it, or its link
        # watchdog (SR19) a watchdog period after the last packet it heard
        ledger.book_worst_case(sup.clock.now(), for_s=sup.link_watchdog_s)
        sup.books.booked(ledger)
        sup.segments.checkpoint(ledger, force=True)
    return confirmed


async def _final_reading(sup: Supervisor) -> None:
    ledger = sup.books.ledger
    if ledger is None:
        return
    try:
        delivered = await sup.driver.read_delivered()
    except PumpError as exc:
        sup.log.warning("pump.final_reading_failed", error=str(exc))
        return
    # readable again: the counter replaces any estimate, unless it went backwards (lost)
    ledger.counter_reading(delivered.net_ml, sup.clock.now(), sup.books.tolerances.resolution_ml)
    sup.books.booked(ledger)
    sup.books.results[ledger.segment.key].ended_s = sup.clock.now()
    sup.segments.checkpoint(ledger, force=True)
