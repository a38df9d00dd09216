"""Typed journal events: one pydantic model per kind of thing the supervisor writes.

The journal stores `(kind, payload JSON)`; these models are the only way the supervisor writes a
payload and the only way resume, report, history and the totals read one (`parse_event`), so a
renamed key fails validation loudly instead of silently breaking resume. Every model accepts the
payloads of schema-1 journals (the same keys but two, read through aliases; newer fields have
defaults), so old journals stay readable. Notes (`kind = note`) are told apart by their `event`
field (schema 1 named the run's first note by `note`).

The notes' models are in `note_events` and the base every model derives from (`Record`) is in
`event_base`; this module exports them all as before, with the other kinds and the parsing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

from pydantic import Field, ValidationError

from pumpctl.infusion.event_base import Json, Record
from pumpctl.infusion.journal import EventKind, JournalEvent
from pumpctl.infusion.note_events import (
    NOTES,
    BolusGiven,
    ContainerChanged,
    ContainerChangeNeeded,
    ContainerNearEmpty,
    DosingCompleteKvo,
    InfusionComplete,
    NewRunStarted,
    NoteEvent,
    PlanAccepted,
    PowerUpResetAcknowledged,
    ResumedElsewhere,
    RunEnded,
    RunStarted,
    StopConfirmed,
    StopRequested,
    SyringeRefilled,
    TargetChanged,
    TciRateUpdate,
)

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


_NOTE_BY_NAME: dict[str, type[NoteEvent]] = {n.model_fields["event"].default: n for n in NOTES}
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
