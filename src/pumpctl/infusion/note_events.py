"""Typed journal notes: the models of the `kind = note` events, one per `event` name.

A note tells what happened to the run rather than what was sent or read (plan accepted, container
near empty or changed, stop requested and confirmed, run ended, a TCI rate or target, a bolus, a
refill...). They are told apart by their `event` field (schema 1 named the run's first note by
`note`, a container-change note's container by `kind`: read through aliases). Kept apart from
`events`, which reads them (`parse_record`, by `NOTES`) and exports them as before, because they
are most of the models and share nothing with the other kinds but their base (`event_base`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field

from pumpctl.infusion.event_base import Json, Record
from pumpctl.infusion.journal import EventKind

__all__ = [
    "NOTES",
    "BolusGiven",
    "ContainerChangeNeeded",
    "ContainerChanged",
    "ContainerNearEmpty",
    "DosingCompleteKvo",
    "InfusionComplete",
    "NewRunStarted",
    "NoteEvent",
    "PlanAccepted",
    "PowerUpResetAcknowledged",
    "ResumedElsewhere",
    "RunEnded",
    "RunStarted",
    "StopConfirmed",
    "StopRequested",
    "SyringeRefilled",
    "TargetChanged",
    "TciRateUpdate",
]


class NoteEvent(Record):
    kind: ClassVar[EventKind] = EventKind.NOTE
    event: str


class RunStarted(NoteEvent):
    """Written by the journal itself when a run is recorded (schema 1 named it by the key
    `note`, not `event`)."""

    event: Literal["run_started"] = "run_started"
    program_hash: str = ""


class PlanAccepted(NoteEvent):
    event: Literal["plan_accepted"] = "plan_accepted"
    warnings: list[str] = Field(default_factory=list)
    resumed_from: str | None = None


class PowerUpResetAcknowledged(NoteEvent):
    event: Literal["power_up_reset_acknowledged"] = "power_up_reset_acknowledged"


class DosingCompleteKvo(NoteEvent):
    event: Literal["dosing_complete_kvo"] = "dosing_complete_kvo"
    delivered_ml: float


class InfusionComplete(NoteEvent):
    event: Literal["infusion_complete"] = "infusion_complete"


class ContainerNearEmpty(NoteEvent):
    event: Literal["container_near_empty"] = "container_near_empty"
    left_ml: float


class ContainerChangeNeeded(NoteEvent):
    event: Literal["container_change_needed"] = "container_change_needed"
    #: "syringe" or "reservoir" (schema 1 wrote it as `kind`)
    container: str = Field(default="syringe", validation_alias=AliasChoices("container", "kind"))


class ContainerChanged(NoteEvent):
    event: Literal["container_changed"] = "container_changed"
    fill_ml: float
    delivered_before_ml: float
    volume_ml: float | None = None
    who: str = ""


class StopRequested(NoteEvent):
    event: Literal["stop_requested"] = "stop_requested"
    reason: str = ""
    who: str = ""


class StopConfirmed(NoteEvent):
    event: Literal["stop_confirmed"] = "stop_confirmed"
    why: str
    attempts: int


class RunEnded(NoteEvent):
    event: Literal["run_ended"] = "run_ended"
    result: dict[str, Json]


class ResumedElsewhere(NoteEvent):
    """The interrupted run was taken over by a new run (in `resumed_by`, when known)."""

    event: Literal["resumed_elsewhere"] = "resumed_elsewhere"
    previous_run_id: str
    delivered_ml: dict[str, float] = Field(default_factory=dict)
    assumed_ml: float = 0.0
    interrupted_phase: str | None = None
    age_s: float = 0.0
    notes: list[str] = Field(default_factory=list)


class NewRunStarted(NoteEvent):
    """An operator chose to start the program anew instead of resuming this run (journaled on
    the run given up, with who and why)."""

    event: Literal["new_run_started"] = "new_run_started"
    reason: str
    who: str = ""


class TciRateUpdate(NoteEvent):
    """A TCI interval: the rate sent (mL/h, mg/h), why, and the prediction it came from."""

    event: Literal["tci_rate"] = "tci_rate"
    rate_ml_per_h: float
    rate_mg_per_h: float
    wanted_mg_per_h: float
    limited_by: str | None = None
    mode: str
    target_ug_per_ml: float
    plasma_ug_per_ml: float
    effect_ug_per_ml: float
    #: volume the prediction was fed (the pump's reported total, all runs)
    delivered_ml: float


class TargetChanged(NoteEvent):
    """`ctl target`: accepted or refused, with who and why (journaled before it applies)."""

    event: Literal["tci_target"] = "tci_target"
    accepted: bool
    old_ug_per_ml: float
    new_ug_per_ml: float
    reason: str = ""
    who: str = ""
    error: str | None = None


class BolusGiven(NoteEvent):
    """`ctl bolus`: the lockout's decision (`BolusDecision.journal()`), who and why."""

    event: Literal["bolus"] = "bolus"
    accepted: bool
    t_s: float
    dose_mg: float
    duration_s: float = 0.0
    who: str = ""
    reason: str = ""
    limit: str | None = None
    message: str = ""
    next_allowed_s: float | None = None
    four_hour_limit_reached: bool = False


class SyringeRefilled(NoteEvent):
    """A syringe pump with a valve drew from its reservoir port (the driver's status said
    `refilling` from `started_s` for `duration_s`, clock seconds, each known to a poll).
    Nothing was delivered meanwhile, and the delivered total never counts a refill:
    `delivered_ml` is the run's total as the refill ended, `count` the refills so far in this
    run. `volume_ml` and `port` are None where the driver does not report them."""

    event: Literal["syringe_refilled"] = "syringe_refilled"
    started_s: float
    duration_s: float
    delivered_ml: float | None = None
    count: int = 1
    volume_ml: float | None = None
    port: str | None = None


NOTES: tuple[type[NoteEvent], ...] = (
    RunStarted,
    PlanAccepted,
    PowerUpResetAcknowledged,
    DosingCompleteKvo,
    InfusionComplete,
    ContainerNearEmpty,
    ContainerChangeNeeded,
    ContainerChanged,
    StopRequested,
    StopConfirmed,
    RunEnded,
    ResumedElsewhere,
    NewRunStarted,
    TciRateUpdate,
    TargetChanged,
    BolusGiven,
    SyringeRefilled,
)
