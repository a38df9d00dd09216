"""Continuing an interrupted run from the journal and the pump's own counters (SR16, SR28, SR30).

An interrupted run is one that ended short of completion and was not taken over since: a crash
(its status is still `running`), an operator stop, Ctrl-C, or an alarm. It is never restarted
from the top silently. A crashed run resumes by itself (that is what a restarted controller is
for); a stopped or alarmed run resumes only when asked (`resume=True`, SR16), and starting the
program anew instead needs a reason that is journaled on the run given up.

What was delivered, per phase of the interrupted run's *own* plan (a resumed run's plan is what
remained of the run before it, so chains of interruptions add up):
- finished segments: the volume journaled at their end;
- the segment that was running: the pump's own counter (cleared when the segment started; the
  pump stops itself at the segment's target), never less than the last journaled checkpoint;
- if the pump was reset (power loss: it reports the reset alarm, or its counter is below what we
  journaled), the counter is gone: assume it ran at the highest rate journaled for that segment
  from the last checkpoint until now, capped at the segment's plan. Over-estimating what was
  delivered can only under-dose, never double-dose.

What carries over besides the remaining plan (`Carryover`): the rate the operator last
confirmed, a pause or a pending container change, the time of the last rate increase (SR09's
interval), and the deliveries of the last 24 h (SR08's rolling windows count them).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from pumpctl.dosing.plan import Plan, Segment, SegmentPhase
from pumpctl.drivers.base import AlarmReason, PumpAlarm, PumpDriver, PumpError
from pumpctl.families import quantizer
from pumpctl.families.quantize import FixedStepQuantizer, NotRepresentable, Quantizer
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.replay import Held, RunFacts, replay_run

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "Carryover",
    "PumpReading",
    "ResumeDecision",
    "ResumeRefused",
    "latest_run",
    "plan_resume",
    "read_pump_after_restart",
    "rolling_history",
]

#: a run interrupted longer ago than this needs `--resume-stale` (the patient's state has moved on)
DEFAULT_MAX_AGE_S = 15 * 60.0
#: deliveries older than this no longer count towards any rolling window (the longest is 24 h)
_HISTORY_S = 24 * 3600.0


class ResumeRefused(Exception):
    """Resuming (or starting anew) would be unsafe without a person deciding."""


class PumpReading(BaseModel):
    """What the pump says right after reconnecting (and stopping it)."""

    model_config = ConfigDict(frozen=True)

    counter_ml: float
    reset: bool  # reported a power-loss/reset alarm, or otherwise lost its program


class Carryover(BaseModel):
    """What a run inherits from the runs before it, besides its plan."""

    model_config = ConfigDict(frozen=True)

    held: Held | None = None
    held_for_s: float = 0.0
    last_increase_ago_s: float | None = None
    #: (seconds ago, mL delivered by earlier runs up to then), oldest first
    prior_deliveries: tuple[tuple[float, float], ...] = ()
    prior_total_ml: float = 0.0
    #: the same without the primes (they fill the line, not the patient): for the prediction
    prior_doses: tuple[tuple[float, float], ...] = ()
    prior_dosed_ml: float = 0.0
    #: delivered to the patient after the interrupted run's last checkpoint (its pump's counter,
    #: or the worst case; nothing when it was priming): the prediction counts it, as given just
    #: before this run
    unjournaled_ml: float = 0.0
    #: the TCI target last set by `ctl target` (None: the plan's)
    tci_target_ug_per_ml: float | None = None
    #: accepted boluses: (seconds ago, mg, delivery s, who, why), for the lockout
    boluses: tuple[tuple[float, float, float, str, str], ...] = ()


class ResumeDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    previous_run_id: str
    delivered_ml: dict[str, float]  # per segment phase, including the worst-case assumption
    assumed_ml: float  # the part of delivered_ml that is an assumption, not a measurement
    interrupted_phase: str | None
    remaining: Plan | None  # None: nothing left to deliver
    #: what is left in the syringe/reservoir now, by the same accounting (None: unknown)
    container_left_ml: float | None = None
    age_s: float
    notes: tuple[str, ...]
    carryover: Carryover = Carryover()


def latest_run(journal: Journal) -> RunFacts | None:
    run = journal.latest_run()
    return None if run is None else replay_run(journal, run)


def rolling_history(journal: Journal, *, now_wall: float, scale: float = 1.0) -> Carryover:
    """Every run's deliveries of the last 24 h, as (age, cumulative mL): all of them for the
    rolling limits (SR08), and without the primes for the prediction."""
    runs = [replay_run(journal, run) for run in journal.runs()]
    deliveries, total = _history([f.deliveries for f in runs], now_wall, scale)
    doses, dosed = _history([f.doses for f in runs], now_wall, scale)
    return Carryover(
        prior_deliveries=deliveries, prior_total_ml=total, prior_doses=doses, prior_dosed_ml=dosed
    )


def _history(
    per_run: list[list[tuple[float, float]]], now_wall: float, scale: float
) -> tuple[tuple[tuple[float, float], ...], float]:
    """Runs' (wall time, mL so far) samples -> (age, mL of all runs so far) of the last 24 h,
    oldest first, and the runs' total."""
    samples: list[tuple[float, float]] = []
    before = 0.0
    for run in per_run:
        for t_wall, total in run:
            age = max(0.0, now_wall - t_wall) * scale
            if age <= _HISTORY_S:
                samples.append((age, before + total))
        before += run[-1][1] if run else 0.0
    samples.sort(key=lambda s: -s[0])
    return tuple(samples), before


def plan_resume(
    facts: RunFacts,
    plan: Plan,
    reading: PumpReading,
    *,
    now_wall: float,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    allow_stale: bool = False,
) -> ResumeDecision:
    """Work out what was delivered and what remains; never more than the plan (SR30)."""
    run = facts.run
    age_s = _resumable_age_s(facts, plan, now_wall, max_age_s, allow_stale)
    notes: list[str] = []
    delivered = dict(facts.ended)
    assumed = 0.0
    container_left = facts.container_left_ml
    unjournaled = 0.0
    if facts.active is not None:
        measured, assumed, note = _active_delivered(facts, reading, now_wall)
        delivered[facts.active] = measured
        ck_now = facts.checkpoints.get(facts.active)
        unjournaled = max(0.0, measured - (ck_now.delivered_ml if ck_now else 0.0))
        if container_left is not None:
            ck = facts.checkpoints.get(facts.active)
            container_left -= measured - (ck.delivered_ml if ck else 0.0)
        notes.append(note)
    remaining = _remaining(facts, delivered, notes, now_wall)
    if facts.active == SegmentPhase.PRIME.value:
        unjournaled = 0.0  # the line filled further: nothing more reached the patient
    carry = _carryover(facts, unjournaled, now_wall)
    return ResumeDecision(
        previous_run_id=run.run_id,
        delivered_ml=delivered,
        assumed_ml=assumed,
        interrupted_phase=facts.active,
        remaining=remaining,
        container_left_ml=container_left,
        age_s=age_s,
        notes=tuple(notes),
        carryover=carry,
    )


def _resumable_age_s(
    facts: RunFacts, plan: Plan, now_wall: float, max_age_s: float, allow_stale: bool
) -> float:
    """How long ago the run was interrupted; refused if it is another program or too old."""
    run = facts.run
    if run.program_hash != plan.program_hash:
        raise ResumeRefused(
            f"the journal's interrupted run {run.run_id[:8]} is of another program "
            f"({run.program}, hash {run.program_hash[:12]}): resume it with that program, or "
            "start this one with --new-run --reason TEXT"
        )
    age_s = now_wall - facts.last_wall
    if age_s > max_age_s and not allow_stale:
        raise ResumeRefused(
            f"run {run.run_id[:8]} was interrupted {age_s / 60:.0f} min ago (limit "
            f"{max_age_s / 60:.0f} min): confirm with --resume-stale to resume it"
        )
    return age_s


def _carryover(facts: RunFacts, unjournaled_ml: float, now_wall: float) -> Carryover:
    """What the resumed run inherits: limits' clocks, TCI target, boluses, a hold (#17)."""
    held_for = (
        0.0 if facts.held_since_wall is None else facts.age_s(facts.held_since_wall, now_wall)
    )
    return Carryover(
        unjournaled_ml=unjournaled_ml,
        tci_target_ug_per_ml=facts.tci_target_ug_per_ml,
        boluses=tuple(
            (facts.age_s(t_wall, now_wall), b.dose_mg, b.duration_s, b.who, b.reason)
            for t_wall, b in facts.boluses
        ),
        held=facts.held if facts.outcome is None else None,
        held_for_s=held_for,
        last_increase_ago_s=(
            None
            if facts.last_increase_wall is None
            else facts.age_s(facts.last_increase_wall, now_wall)
        ),
    )


def _active_delivered(
    facts: RunFacts, reading: PumpReading, now_wall: float
) -> tuple[float, float, str]:
    """(delivered, of which assumed, note) for the segment that was running."""
    active = facts.active
    assert active is not None
    seg = facts.plan.segment_by_key(active)
    planned = seg.volume_ml if seg is not None else None
    ck = facts.checkpoints.get(active)
    journaled = ck.delivered_ml if ck else 0.0
    counted = ck.pump_counter_ml if ck else 0.0
    lost = ck.lost_ml if ck else 0.0
    pending = (ck.estimated_ml - lost) if ck else 0.0
    # measured before the pump's last clear (earlier legs of the segment, a reset's gap)
    carry = journaled - pending - lost - counted
    if not (reading.reset or reading.counter_ml + 1e-9 < counted):
        # the counter survived: it replaces a pending estimate (SR22), never lowers a measure
        measured = max(carry + lost + reading.counter_ml, journaled - pending)
        note = (
            f"{active}: pump counter {reading.counter_ml:.3f} mL"
            f" (+{carry + lost:.3f} before the last clear; journal {journaled:.3f})"
        )
        return measured, lost, note
    since = ck.t_wall if ck else facts.last_wall
    elapsed_s = facts.age_s(since, now_wall)
    worst = journaled + facts.max_rate_ml_per_h.get(active, 0.0) * elapsed_s / 3600.0
    if planned is not None:
        worst = min(worst, planned)
    note = (
        f"{active}: the pump was reset and lost its counter; assuming the worst case "
        f"{worst:.3f} mL ({journaled:.3f} journaled + {worst - journaled:.3f} assumed)"
    )
    return worst, worst - journaled, note


def _remaining(
    facts: RunFacts, delivered: dict[str, float], notes: list[str], now_wall: float
) -> Plan | None:
    """The interrupted run's own plan less what it delivered: finished segments dropped, the
    running one shortened (at the rate last confirmed), later ones unchanged. A TCI phase
    keeps its planned end (the time it was down counts) and its ceiling less what went in."""
    plan = facts.plan
    resolution = plan.volume_resolution_ml or 0.001
    quantizer = _quantizer(plan)
    segments: list[Segment] = []
    for seg in plan.segments:
        phase = seg.key
        if phase in facts.ended:
            continue
        rate = facts.confirmed_rate_ml_per_h.get(phase, seg.rate_ml_per_h)
        updates: dict[str, object] = {}
        if rate != seg.rate_ml_per_h:
            updates["rate_ml_per_h"] = rate
            if seg.dose_rate is not None:
                updates["dose_rate"] = seg.dose_rate * rate / seg.rate_ml_per_h
        done = delivered.get(phase, 0.0)
        if seg.volume_ml is not None:
            left = seg.volume_ml - done
            if left <= resolution:
                notes.append(f"{phase}: complete ({done:.3f} of {seg.volume_ml:.3f} mL)")
                continue
            # the remainder as the pump will be sent it, rounded down: never adds volume
            try:
                left = quantizer.floor_volume_ml(left)
            except NotRepresentable:
                notes.append(f"{phase}: {left:.4f} mL left, below what the pump can be sent")
                continue
            updates["volume_ml"] = left
            updates["duration_s"] = left / rate * 3600.0
        if seg.phase is SegmentPhase.TCI and seg.duration_s is not None:
            began = facts.started_wall.get(phase)
            ran = 0.0 if began is None else facts.age_s(began, now_wall)
            if seg.duration_s - ran <= 1.0:
                notes.append(f"{phase}: its {seg.duration_s:g} s are over")
                continue
            updates["duration_s"] = seg.duration_s - ran
            updates["rate_ml_per_h"] = seg.rate_ml_per_h  # the ceiling, not the last TCI rate
        segments.append(seg.model_copy(update=updates) if updates else seg)
    return plan.model_copy(update={"segments": tuple(segments)}) if segments else None


def _quantizer(plan: Plan) -> Quantizer:
    """The rules of the pump the plan was compiled for (fixed steps when none was named)."""
    if plan.pump_model is None:
        return FixedStepQuantizer(plan.volume_resolution_ml, plan.rate_resolution_ml_per_h)
    c = plan.container
    return quantizer(
        plan.pump_model, inner_diameter_mm=c.inner_diameter_mm, ml_per_rev=c.ml_per_rev
    )


async def read_pump_after_restart(driver: PumpDriver, *, attempts: int = 5) -> PumpReading:
    """Stop the pump first (a pump left running keeps counting), then read its counter.

    Any alarm the pump reports on the way is acknowledged by that very reply; a reset alarm (or
    one reported when the link was opened) means its counters and program are gone (SR28).
    """
    reset = driver.alarm_on_open is AlarmReason.RESET
    last: PumpError | None = None
    for _ in range(attempts):
        try:
            await driver.stop()
            status = await driver.read_status()
            if status.alarm is AlarmReason.RESET:
                reset = True
                continue
            counter = (await driver.read_delivered()).net_ml
            return PumpReading(counter_ml=counter, reset=reset)
        except PumpAlarm as exc:
            reset = reset or exc.reason is AlarmReason.RESET
            last = exc
    raise ResumeRefused(f"could not get a stable reading from the pump: {last}")
