"""Resuming an interrupted run from the journal and the pump's own counters (SR28, SR30).

A controller that died mid-infusion leaves a run whose journal status is still `running`. To carry
on without ever delivering more than the plan, we rebuild what each phase has delivered:

- finished segments: the volume journaled at their end;
- the segment that was running: the pump's own counter (it was cleared when the segment started
  and the pump stops itself at the segment's target), never less than the last journaled
  checkpoint;
- if the pump was reset (power loss: it reports the reset alarm, or its counter is below what we
  journaled), the counter is gone. We then assume the worst: the pump ran at the highest rate
  journaled for that segment from the last checkpoint until now, capped at the segment's planned
  volume. Over-estimating what was delivered can only under-dose, never double-dose.

What remains becomes a new plan: the running segment shortened by what it delivered, the later
segments unchanged. A run interrupted longer ago than a limit needs explicit confirmation.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.drivers.base import AlarmReason, PumpAlarm, PumpDriver, PumpError
from pumpctl.infusion.journal import EventKind, Journal, JournalEvent, RunRecord, RunStatus

__all__ = [
    "PumpReading",
    "ResumeDecision",
    "ResumeRefused",
    "clock_per_wall",
    "find_interrupted_run",
    "plan_resume",
    "read_pump_after_restart",
]

#: a run interrupted longer ago than this needs `--resume-stale` (the patient's state has moved on)
DEFAULT_MAX_AGE_S = 15 * 60.0


class ResumeRefused(Exception):
    """Resuming would be unsafe without a person deciding (too old, plan changed...)."""


class PumpReading(BaseModel):
    """What the pump says right after reconnecting (and stopping it)."""

    model_config = ConfigDict(frozen=True)

    counter_ml: float
    reset: bool  # reported a power-loss/reset alarm, or otherwise lost its program


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


def find_interrupted_run(journal: Journal, plan: Plan) -> RunRecord | None:
    """The latest run of this same program that never recorded an end, if any."""
    run = journal.latest_run()
    if run is None or run.status is not RunStatus.RUNNING:
        return None
    if run.program_hash != plan.program_hash:
        raise ResumeRefused(
            f"the journal's unfinished run {run.run_id[:8]} is of another program "
            f"({run.program}, hash {run.program_hash[:12]}); use a new journal"
        )
    return run


def clock_per_wall(events: list[JournalEvent]) -> float:
    """Clock seconds per wall second during the run (rigs may run scaled), at least 1."""
    if len(events) < 2:
        return 1.0
    dw = events[-1].t_wall - events[0].t_wall
    dc = events[-1].t_clock_s - events[0].t_clock_s
    return max(1.0, dc / dw) if dw > 0 and dc > 0 else 1.0


def plan_resume(
    journal: Journal,
    run: RunRecord,
    plan: Plan,
    reading: PumpReading,
    *,
    now_wall: float,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    allow_stale: bool = False,
) -> ResumeDecision:
    """Work out what was delivered and what remains; never more than the plan (SR30)."""
    events = journal.events(run.run_id)
    last_wall = events[-1].t_wall if events else run.started_wall
    age_s = now_wall - last_wall
    if age_s > max_age_s and not allow_stale:
        raise ResumeRefused(
            f"run {run.run_id[:8]} was interrupted {age_s / 60:.0f} min ago (limit "
            f"{max_age_s / 60:.0f} min): confirm with --resume-stale to resume it"
        )
    notes: list[str] = []
    delivered: dict[str, float] = {}
    ended: set[str] = set()
    active: str | None = None
    # phase -> (delivered in the segment, of which counted since the pump's last clear, t_wall)
    checkpoint: dict[str, tuple[float, float, float]] = {}
    container_left: float | None = None
    max_rate: dict[str, float] = {}
    for e in events:
        p = e.payload
        if e.kind is EventKind.SEGMENT_START:
            active = str(p["phase"])
            max_rate[active] = float(p["rate_ml_per_h"])
        elif e.kind is EventKind.SEGMENT_END:
            phase = str(p["phase"])
            delivered[phase] = float(p["delivered_ml"])
            ended.add(phase)
            active = None if active == phase else active
        elif e.kind is EventKind.CHECKPOINT:
            delivered_ml = float(p["delivered_ml"])
            counter_ml = float(p.get("pump_counter_ml", delivered_ml))
            checkpoint[str(p["phase"])] = (delivered_ml, counter_ml, e.t_wall)
            left = p.get("container_left_ml")
            container_left = float(left) if left is not None else None
        elif e.kind is EventKind.TITRATION and p.get("accepted") and active is not None:
            max_rate[active] = max(max_rate.get(active, 0.0), float(p["new_ml_per_h"]))
    assumed = 0.0
    if active is not None:
        seg = plan.segment(SegmentPhase(active))
        planned = seg.volume_ml if seg is not None else None
        journaled, counted, t_ck = checkpoint.get(active, (0.0, 0.0, last_wall))
        # earlier legs of the segment (before a container change cleared the pump's counter)
        carry = journaled - counted
        lost_counter = reading.reset or reading.counter_ml + 1e-9 < counted
        if not lost_counter:
            measured = max(carry + reading.counter_ml, journaled)
            delivered[active] = measured
            if container_left is not None:
                container_left -= measured - journaled
            notes.append(
                f"{active}: pump counter {reading.counter_ml:.3f} mL"
                f" (+{carry:.3f} before a container change; journal {journaled:.3f})"
            )
        else:
            elapsed_clock_s = max(0.0, now_wall - t_ck) * clock_per_wall(events)
            worst = journaled + max_rate.get(active, 0.0) * elapsed_clock_s / 3600.0
            if planned is not None:
                worst = min(worst, planned)
            delivered[active] = worst
            assumed = worst - journaled
            if container_left is not None:
                container_left -= assumed
            notes.append(
                f"{active}: the pump was reset and lost its counter; assuming the worst case "
                f"{worst:.3f} mL ({journaled:.3f} journaled + {assumed:.3f} assumed)"
            )
    remaining_segments = []
    for seg in plan.segments:
        phase = seg.phase.value
        if phase in ended:
            continue
        done = delivered.get(phase, 0.0)
        if seg.volume_ml is None:
            remaining_segments.append(seg)
            continue
        left = seg.volume_ml - done
        resolution = plan.volume_resolution_ml or 0.001
        if left <= resolution:
            notes.append(f"{phase}: complete ({done:.3f} of {seg.volume_ml:.3f} mL)")
            continue
        # round the remainder down to the resolution: a resumed segment never adds volume
        left = int(left / resolution + 1e-9) * resolution
        remaining_segments.append(
            seg.model_copy(
                update={"volume_ml": round(left, 6), "duration_s": left / seg.rate_ml_per_h * 3600}
            )
        )
    remaining = (
        plan.model_copy(update={"segments": tuple(remaining_segments)})
        if remaining_segments
        else None
    )
    return ResumeDecision(
        previous_run_id=run.run_id,
        delivered_ml=delivered,
        assumed_ml=assumed,
        interrupted_phase=active,
        remaining=remaining,
        container_left_ml=container_left,
        age_s=age_s,
        notes=tuple(notes),
    )


async def read_pump_after_restart(driver: PumpDriver, *, attempts: int = 5) -> PumpReading:
    """Stop the pump first (a pump left running keeps counting), then read its counter.

    Any alarm the pump reports on the way is acknowledged by that very reply; a reset alarm (or
    one reported when the link was opened) means its counters and program are gone (SR28).
    """
    reset = getattr(driver, "alarm_on_open", None) is AlarmReason.RESET
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
