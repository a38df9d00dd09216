"""What a run reports: its outcome, planned vs delivered per phase, and live progress.

Kept apart from the supervisor so displays, reports and the control socket depend on these
small models, not on the machinery that produces them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from pumpctl.dosing.plan import SegmentPhase

__all__ = ["Outcome", "PhaseResult", "Progress", "RunResult"]


class Outcome(StrEnum):
    COMPLETED = "completed"
    STOPPED = "stopped"
    ALARM = "alarm"
    #: alarm, and the pump never confirmed it stopped: someone must go and look
    UNCONFIRMED = "unconfirmed"


class PhaseResult(BaseModel):
    phase: SegmentPhase
    planned_ml: float | None
    delivered_ml: float
    rate_ml_per_h: float
    started_s: float | None = None
    ended_s: float | None = None
    #: the taper step this segment is (None: not a taper step)
    taper_step: int | None = None

    @property
    def key(self) -> str:
        """The segment's key, as in the plan and the journal."""
        if self.taper_step is None:
            return self.phase.value
        return f"{self.phase.value}:taper{self.taper_step}"


class RunResult(BaseModel):
    outcome: Outcome
    alarm: str | None = None
    phases: list[PhaseResult]
    started_s: float
    ended_s: float
    #: the pump's volume resolution the run was reconciled against (from its capabilities)
    volume_resolution_ml: float

    @property
    def delivered_ml(self) -> float:
        return sum(p.delivered_ml for p in self.phases)


class Progress(BaseModel):
    """Everything an operator needs at a glance (SR34)."""

    clock_s: float
    phase: str
    segment: SegmentPhase | None
    rate_ml_per_h: float
    dose_rate: float | None
    dose_rate_unit: str | None
    segment_delivered_ml: float
    segment_planned_ml: float | None
    total_delivered_ml: float
    total_planned_ml: float | None
    segment_remaining_s: float | None
    alarms: list[str]
    #: things the operator must know or do that are not alarms (syringe nearly empty, change it)
    notices: list[str] = Field(default_factory=list)
    #: predicted from the volume the pump reported delivered (population model, µg/mL)
    plasma_ug_per_ml: float | None = None
    effect_ug_per_ml: float | None = None
    #: the TCI target in force (None: not a TCI run)
    tci_target_ug_per_ml: float | None = None
    #: the running segment's key (its phase, or "maintenance:taper2")
    segment_key: str | None = None
