"""Replaying one run's journal into the facts a restart needs.

Resume must continue exactly where a run left off: not only what each phase delivered, but the
rate the operator last confirmed, whether the pump was paused or waiting for a new syringe, when
the last rate increase happened (the titration interval, SR09, must survive a crash) and what
went in over the last 24 h (rolling limits, SR08). All of it is read here, from typed events
(`pumpctl.infusion.events`), in one pass, so a renamed key fails loudly instead of resuming
from the wrong number.

Times: each event carries wall time and the run's clock time. Ages ("how long ago") are wall
time scaled by the run's clock-per-wall ratio (a rig may run its clock 60x faster), because the
new controller's clock has a different origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.infusion.events import (
    BolusGiven,
    CheckpointEvent,
    ContainerChanged,
    ContainerChangeNeeded,
    NewRunStarted,
    ResumedElsewhere,
    RunEnded,
    SegmentEnd,
    SegmentStart,
    TargetChanged,
    TitrationEvent,
    TransitionEvent,
    parse_event,
)
from pumpctl.infusion.journal import Journal, JournalEvent, RunRecord

__all__ = ["Checkpoint", "RunFacts", "clock_per_wall", "replay_run"]

Held = Literal["paused", "awaiting_change"]


@dataclass(frozen=True)
class Checkpoint:
    delivered_ml: float
    pump_counter_ml: float
    t_wall: float
    estimated_ml: float = 0.0
    lost_ml: float = 0.0


@dataclass
class RunFacts:
    run: RunRecord
    plan: Plan
    #: phase -> delivered, for segments that ended
    ended: dict[str, float] = field(default_factory=dict)
    #: phase -> the last checkpoint of that segment
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    #: the segment that was running when the run stopped (started, never ended)
    active: str | None = None
    #: phase -> highest rate journaled (commanded, even unconfirmed): the worst case
    max_rate_ml_per_h: dict[str, float] = field(default_factory=dict)
    #: phase -> the rate the pump last confirmed (segment start, then confirmed titrations)
    confirmed_rate_ml_per_h: dict[str, float] = field(default_factory=dict)
    last_increase_wall: float | None = None
    held: Held | None = None
    held_since_wall: float | None = None
    container_left_ml: float | None = None
    last_wall: float = 0.0
    #: the run's outcome as it recorded it (None: it never recorded an end: a crash)
    outcome: str | None = None
    #: a later run took this one over (resumed it, or started anew with a reason)
    superseded: bool = False
    #: (wall time, mL delivered by this run so far), for rolling-window limits
    deliveries: list[tuple[float, float]] = field(default_factory=list)
    #: the same samples without the prime (it fills the line, not the patient): the prediction
    doses: list[tuple[float, float]] = field(default_factory=list)
    scale: float = 1.0
    #: segment key -> when it started (a TCI phase ends at its planned time, crash or not)
    started_wall: dict[str, float] = field(default_factory=dict)
    #: the TCI target last accepted by `ctl target` (None: the plan's)
    tci_target_ug_per_ml: float | None = None
    #: accepted clinician boluses (wall time, event): the lockout survives a crash
    boluses: list[tuple[float, BolusGiven]] = field(default_factory=list)

    @property
    def primed_ml(self) -> float:
        """What this run's prime delivered so far (ended, or its last checkpoint)."""
        prime = SegmentPhase.PRIME.value
        if prime in self.ended:
            return self.ended[prime]
        ck = self.checkpoints.get(prime)
        return ck.delivered_ml if ck is not None else 0.0

    @property
    def interrupted(self) -> bool:
        """Ended short of completion (crash, stop, alarm) and not taken over since."""
        return not self.superseded and self.outcome != "completed"

    def age_s(self, wall_s: float, now_wall: float) -> float:
        """Clock seconds between `wall_s` and `now_wall` at this run's clock rate."""
        return max(0.0, now_wall - wall_s) * self.scale


def clock_per_wall(events: list[JournalEvent]) -> float:
    """Clock seconds per wall second during the run (rigs may run scaled), at least 1."""
    if len(events) < 2:
        return 1.0
    dw = events[-1].t_wall - events[0].t_wall
    dc = events[-1].t_clock_s - events[0].t_clock_s
    return max(1.0, dc / dw) if dw > 0 and dc > 0 else 1.0


def replay_run(journal: Journal, run: RunRecord) -> RunFacts:
    events = journal.events(run.run_id)
    facts = RunFacts(
        run=run,
        plan=Plan.model_validate_json(run.plan_json),
        last_wall=events[-1].t_wall if events else run.started_wall,
        scale=clock_per_wall(events),
    )
    for event in events:
        _apply(facts, event)
    return facts


def _apply(facts: RunFacts, event: JournalEvent) -> None:
    rec = parse_event(event)
    if isinstance(rec, SegmentStart):
        facts.active = rec.key
        facts.started_wall[rec.key] = event.t_wall
        facts.max_rate_ml_per_h[rec.key] = rec.rate_ml_per_h
        facts.confirmed_rate_ml_per_h[rec.key] = rec.rate_ml_per_h
    elif isinstance(rec, SegmentEnd):
        facts.ended[rec.phase] = rec.delivered_ml
        if facts.active == rec.phase:
            facts.active = None
        _delivered(facts, event.t_wall)
    elif isinstance(rec, CheckpointEvent):
        facts.checkpoints[rec.phase] = Checkpoint(
            rec.delivered_ml, rec.pump_counter_ml, event.t_wall, rec.estimated_ml, rec.lost_ml
        )
        if rec.container_left_ml is not None or facts.container_left_ml is not None:
            facts.container_left_ml = rec.container_left_ml
        _delivered(facts, event.t_wall)
    elif isinstance(rec, TitrationEvent) and rec.accepted and facts.active is not None:
        phase = facts.active
        facts.max_rate_ml_per_h[phase] = max(
            facts.max_rate_ml_per_h.get(phase, 0.0), rec.new_ml_per_h
        )
    elif isinstance(rec, TransitionEvent):
        _transition(facts, rec, event.t_wall)
    elif isinstance(rec, ContainerChangeNeeded):
        facts.held, facts.held_since_wall = "awaiting_change", event.t_wall
    elif isinstance(rec, ContainerChanged):
        facts.held = facts.held_since_wall = None
    elif isinstance(rec, RunEnded):
        outcome = rec.result.get("outcome")
        facts.outcome = str(outcome) if outcome is not None else None
    elif isinstance(rec, ResumedElsewhere | NewRunStarted):
        facts.superseded = True
    elif isinstance(rec, TargetChanged) and rec.accepted:
        facts.tci_target_ug_per_ml = rec.new_ug_per_ml
        if rec.new_ug_per_ml > rec.old_ug_per_ml:
            facts.last_increase_wall = event.t_wall
    elif isinstance(rec, BolusGiven) and rec.accepted:
        facts.boluses.append((event.t_wall, rec))


def _transition(facts: RunFacts, rec: TransitionEvent, t_wall: float) -> None:
    """A titration the pump confirmed (the machine only fires it after the rate was set), and
    the pause state (a container change pauses too, but is tracked by its own notes)."""
    if rec.trigger == "titrate" and facts.active is not None:
        new = rec.info.get("new_ml_per_h")
        old = rec.info.get("old_ml_per_h")
        if isinstance(new, int | float):
            facts.confirmed_rate_ml_per_h[facts.active] = float(new)
            if isinstance(old, int | float) and new > old:
                facts.last_increase_wall = t_wall
    elif rec.trigger == "pause" and facts.held is None:
        facts.held, facts.held_since_wall = "paused", t_wall
    elif (rec.trigger == "resume" and facts.held == "paused") or rec.dest in (
        "stopped",
        "alarm",
        "completed",
    ):
        facts.held = facts.held_since_wall = None


def _delivered(facts: RunFacts, t_wall: float) -> None:
    total = sum(facts.ended.values()) + sum(
        c.delivered_ml for phase, c in facts.checkpoints.items() if phase not in facts.ended
    )
    facts.deliveries.append((t_wall, total))
    facts.doses.append((t_wall, total - facts.primed_ml))
