"""Typed journal events: one pydantic model per kind of thing the supervisor writes.

The journal stores `(kind, payload JSON)`; these models are the only way the supervisor writes a
payload and the only way resume, report, history and the totals read one (`parse_event`), so a
renamed key fails validation loudly instead of silently breaking resume. Every model accepts the
payloads of schema-1 journals (the same keys but two, read through aliases; newer fields have
defaults), so old journals stay readable. Notes (`kind = note`) are told apart by their `event`
field (schema 1 named the run's first note by `note`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from pumpctl.infusion.journal import EventKind, JournalEvent

__all__ = [
    "AlarmEvent",
    "BolusGiven",
    "CheckpointEvent",
    "CommandEvent",
    "ContainerChangeNeeded",
    "ContainerChanged",
    "ContainerNearEmpty",
    "DosingCompleteKvo",
    "InfusionComplete",
    "NewRunStarted",
    "NoteEvent",
    "OverrideEvent",
    "PlanAccepted",
    "PowerUpResetAcknowledged",
    "Record",
    "ReplyEvent",
    "ResumedElsewhere",
    "RunEnded",
    "RunStarted",
    "SegmentEnd",
    "SegmentStart",
    "StopConfirmed",
    "StopRequested",
    "SyringeRefilled",
    "TargetChanged",
    "TciRateUpdate",
    "TitrationEvent",
    "TransitionEvent",
    "delivered_by_phase",
    "parse_event",
    "parse_record",
]

Json = Any  # a JSON value (the journal refuses anything json.dumps would not write strictly)


class Record(BaseModel):
    """Frozen; unknown keys are kept (a newer writer may add fields an older reader ignores)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    kind: ClassVar[EventKind]

    def payload(self) -> dict[str, Json]:
        return self.model_dump(mode="json", exclude_none=False)


class CommandEvent(Record):
    """A command about to be sent (SR29: journaled before it goes out)."""

    kind: ClassVar[EventKind] = EventKind.COMMAND
    command: str

    @property
    def arguments(self) -> dict[str, Json]:
        """What the command carried besides its name (`rate_ml_per_h`, `volume_ml` (None: no
        target), `inner_diameter_mm`, `who`...): open by design, one key per argument."""
        return dict(self.model_extra or {})


class ReplyEvent(Record):
    kind: ClassVar[EventKind] = EventKind.REPLY
    command: str
    outcome: Literal["ok", "unknown", "alarm", "rejected", "error"]
    reason: str | None = None
    code: str | None = None
    error: str | None = None
    #: what the pump was actually sent, for commands that carry a quantity (mL, mL/h)
    sent: float | None = None


class TransitionEvent(Record):
    kind: ClassVar[EventKind] = EventKind.TRANSITION
    trigger: str
    source: str
    dest: str
    #: the trigger's arguments: open, as the machine's triggers are (`who` and `reason` for an
    #: operator's request, the rates of a titration)
    info: dict[str, Json] = Field(default_factory=dict)

    @property
    def who(self) -> str:
        return str(self.info.get("who") or "")

    @property
    def reason(self) -> str:
        return str(self.info.get("reason") or "")


class AlarmEvent(Record):
    kind: ClassVar[EventKind] = EventKind.ALARM
    reason: str
    detail: str = ""
    attempts: int | None = None


class CheckpointEvent(Record):
    """Cumulative delivered volume of one segment (the payload `phase` is the plan segment;
    the event's phase column is the machine phase when it was written)."""

    kind: ClassVar[EventKind] = EventKind.CHECKPOINT
    phase: str
    delivered_ml: float
    #: what the pump's counter said (delivered_ml minus earlier legs and estimates)
    pump_counter_ml: float
    container_left_ml: float | None = None
    expected_ml: float | None = None
    rate_ml_per_h: float | None = None
    #: part of delivered_ml that is a worst-case estimate, not a counter reading (SR21)
    estimated_ml: float = 0.0
    #: of which booked for a gap whose counter was lost (a reset): never measurable again
    lost_ml: float = 0.0
    #: predicted from the volumes the pump reported (population model), µg/mL
    plasma_ug_per_ml: float | None = None
    effect_ug_per_ml: float | None = None


class TitrationEvent(Record):
    kind: ClassVar[EventKind] = EventKind.TITRATION
    accepted: bool
    old_ml_per_h: float
    new_ml_per_h: float
    reason: str = ""
    who: str = ""
    error: str | None = None


class OverrideEvent(Record):
    """A soft limit crossed with an operator's reason (SR03), journaled at the run's start."""

    kind: ClassVar[EventKind] = EventKind.OVERRIDE
    field: str
    value: Json = None
    limit: Json = None
    unit: str | None = None
    library_version: str | None = None
    rule: str | None = None
    reason: str


class SegmentStart(Record):
    """The plan segment (as in `pumpctl.dosing.plan.Segment`) that starts now."""

    kind: ClassVar[EventKind] = EventKind.SEGMENT_START
    phase: str
    rate_ml_per_h: float
    volume_ml: float | None = None
    duration_s: float | None = None
    #: the dose rate the segment delivers, in the program's own unit (`mg/kg/h`...)
    dose_rate: float | None = None
    dose_rate_unit: str | None = None
    #: a taper step (the segment's key is then `maintenance:taper<n>`)
    taper_step: int | None = None

    @property
    def key(self) -> str:
        return self.phase if self.taper_step is None else f"{self.phase}:taper{self.taper_step}"


class SegmentEnd(Record):
    kind: ClassVar[EventKind] = EventKind.SEGMENT_END
    phase: str
    planned_ml: float | None
    delivered_ml: float


# --------------------------------------------------------------------------- notes


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


_NOTES: tuple[type[NoteEvent], ...] = (
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
_NOTE_BY_NAME: dict[str, type[NoteEvent]] = {n.model_fields["event"].default: n for n in _NOTES}
_BY_KIND: dict[EventKind, type[Record]] = {
    m.kind: m
    for m in (
        CommandEvent,
        ReplyEvent,
        TransitionEvent,
        AlarmEvent,
        CheckpointEvent,
        TitrationEvent,
        OverrideEvent,
        SegmentStart,
        SegmentEnd,
    )
}


def parse_record(kind: EventKind | str, payload: dict[str, Json]) -> Record:
    """The typed event for a stored `(kind, payload)`; `ValueError` naming what is wrong.

    A note with an `event` this version does not know is returned as a plain `NoteEvent`
    (notes are informational); any other kind must validate against its model.
    """
    kind = EventKind(kind)
    if kind is EventKind.NOTE:
        name = payload.get("event", payload.get("note"))
        model: type[Record] = _NOTE_BY_NAME.get(str(name), NoteEvent)
        if "event" not in payload and name is not None:
            payload = {**payload, "event": name}
        return _validate(model, payload, kind)
    known = _BY_KIND.get(kind)
    if known is None:
        raise ValueError(f"journal {kind.value} events have no model in this version")
    return _validate(known, payload, kind)


def _validate(model: type[Record], payload: dict[str, Json], kind: EventKind) -> Record:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ValueError(
            f"journal {kind.value} event does not match {model.__name__}: {exc}"
        ) from exc


def parse_event(event: JournalEvent) -> Record:
    """The typed record of one stored journal event, of any schema this version reads: the one
    way report, history, accuracy and resume read a payload. `ValueError` naming the event when
    it does not match its model."""
    try:
        return parse_record(event.kind, event.payload)
    except ValueError as exc:
        raise ValueError(f"event {event.seq} of run {event.run_id}: {exc}") from exc


def delivered_by_phase(events: Iterable[JournalEvent]) -> dict[str, float]:
    """Per phase, what the checkpoints say was delivered (they are cumulative per phase).

    The latest checkpoint, but never less than any earlier *measured* volume (delivered minus
    its `estimated_ml`): a worst-case estimate booked while the pump was unreadable gives way to
    the counter once it can be read again (SR22), while a later, lower reading never lowers what
    a counter already confirmed. Phases appear in the order of their first checkpoint.
    """
    latest: dict[str, float] = {}
    measured: dict[str, float] = {}
    for event in events:
        if event.kind is not EventKind.CHECKPOINT:
            continue
        rec = parse_event(event)
        assert isinstance(rec, CheckpointEvent)
        sure_ml = rec.delivered_ml - rec.estimated_ml
        latest[rec.phase] = rec.delivered_ml
        measured[rec.phase] = max(measured.get(rec.phase, sure_ml), sure_ml)
    return {phase: max(v, measured[phase]) for phase, v in latest.items()}
