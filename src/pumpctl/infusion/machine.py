"""The infusion phase state machine: phases, triggers and the transition table (SR12-SR16).

Pure by design: no I/O except logging, no clock, no timeouts. The supervisor talks to the pump
and fires triggers here; this module only says whether a trigger is allowed in the current phase
and which phase follows. `TRANSITIONS` below is the explicit table SR12 asks for: a trigger that
has no row for the current phase is refused with `InvalidTransition` and changes nothing.

Built on a plain `transitions.Machine` (enum states, `auto_transitions=False`, guards as
`conditions`) driving a private model, so the public surface is only `InfusionMachine`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

from transitions import Machine

from pumpctl.log import get_logger

if TYPE_CHECKING:
    from transitions.core import EventData, TransitionConfigDict

__all__ = [
    "PUMP_MAY_RUN",
    "TRANSITIONS",
    "InfusionMachine",
    "InvalidTransition",
    "Phase",
    "TransitionRecord",
    "Trigger",
    "pump_may_run",
]


class Phase(StrEnum):
    IDLE = "idle"
    PRIMING = "priming"
    READY = "ready"
    LOADING = "loading"
    MAINTENANCE = "maintenance"
    TCI = "tci"
    KVO = "kvo"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"
    ALARM = "alarm"


class Trigger(StrEnum):
    START_PRIMING = "start_priming"
    SKIP_PRIMING = "skip_priming"
    PRIMING_DONE = "priming_done"
    START_LOADING = "start_loading"
    START_MAINTENANCE = "start_maintenance"
    START_TCI = "start_tci"
    START_KVO = "start_kvo"
    COMPLETE = "complete"
    PAUSE = "pause"
    RESUME = "resume"
    TITRATE = "titrate"
    RETARGET = "retarget"
    BOLUS = "bolus"
    STOP = "stop"
    ALARM = "alarm"
    RESET = "reset"


#: Phases in which the pump motor may legitimately be running; everywhere else it must be stopped.
PUMP_MAY_RUN: frozenset[Phase] = frozenset(
    {Phase.PRIMING, Phase.LOADING, Phase.MAINTENANCE, Phase.TCI, Phase.KVO}
)

#: Phases that `pause` leaves and `resume` returns to.
_PAUSABLE: tuple[Phase, ...] = (
    Phase.PRIMING,
    Phase.LOADING,
    Phase.MAINTENANCE,
    Phase.TCI,
    Phase.KVO,
)


def pump_may_run(phase: Phase) -> bool:
    """True when the pump is allowed to be delivering in `phase`."""
    return phase in PUMP_MAY_RUN


# --- guards and effects; they only touch the private model -----------------------------------


def _info(event: EventData) -> Mapping[str, Any]:
    info: Mapping[str, Any] = event.kwargs.get("info", {})
    return info


def _has_reason(event: EventData) -> bool:
    """Guard: the trigger carries a non-blank `reason` string (skip_priming, alarm)."""
    reason = _info(event).get("reason")
    return isinstance(reason, str) and reason.strip() != ""


def _resumes_to(phase: Phase) -> Callable[[EventData], bool]:
    """Guard for one `resume` row: true only for the phase that was paused."""

    def guard(event: EventData) -> bool:
        model: _Model = event.model  # type: ignore[assignment]
        return model.resume_phase is phase

    guard.__name__ = f"resumes_to_{phase}"
    return guard


def _remember_resume_phase(event: EventData) -> None:
    model: _Model = event.model  # type: ignore[assignment]
    source = event.state.value
    assert isinstance(source, Phase)
    model.resume_phase = source


def _forget_resume_phase(event: EventData) -> None:
    model: _Model = event.model  # type: ignore[assignment]
    model.resume_phase = None


def _record_alarm(event: EventData) -> None:
    """Keep the first alarm's reason; later alarms are appended, never overwrite it."""
    model: _Model = event.model  # type: ignore[assignment]
    reason = str(_info(event)["reason"])
    if model.alarm_reason is None:
        model.alarm_reason = reason
    model.alarm_reasons.append(reason)


def _clear_alarm(event: EventData) -> None:
    model: _Model = event.model  # type: ignore[assignment]
    model.alarm_reason = None
    model.alarm_reasons.clear()


def _resume_row(phase: Phase) -> TransitionConfigDict:
    """`resume` goes back to the paused phase and nowhere else."""
    return {
        "trigger": Trigger.RESUME,
        "source": Phase.PAUSED,
        "dest": phase,
        "conditions": _resumes_to(phase),
    }


# --- the table (SR12) -------------------------------------------------------------------------


def _every_phase_but(excluded: Phase) -> list[Phase]:
    return [p for p in Phase if p is not excluded]


#: Explicit transition table. `dest: None` is an internal transition (phase unchanged, no
#: exit/enter). Anything not listed here is refused.
TRANSITIONS: tuple[TransitionConfigDict, ...] = (
    {"trigger": Trigger.START_PRIMING, "source": Phase.IDLE, "dest": Phase.PRIMING},
    # SR14: loading needs ready, and ready needs priming done or skipped with a reason.
    {
        "trigger": Trigger.SKIP_PRIMING,
        "source": Phase.IDLE,
        "dest": Phase.READY,
        "conditions": _has_reason,
    },
    {"trigger": Trigger.PRIMING_DONE, "source": Phase.PRIMING, "dest": Phase.READY},
    {"trigger": Trigger.START_LOADING, "source": Phase.READY, "dest": Phase.LOADING},
    {
        "trigger": Trigger.START_MAINTENANCE,
        "source": [Phase.READY, Phase.LOADING],
        "dest": Phase.MAINTENANCE,
    },
    {"trigger": Trigger.START_TCI, "source": Phase.READY, "dest": Phase.TCI},
    {"trigger": Trigger.START_KVO, "source": [Phase.MAINTENANCE, Phase.TCI], "dest": Phase.KVO},
    {
        "trigger": Trigger.COMPLETE,
        "source": [Phase.LOADING, Phase.MAINTENANCE, Phase.TCI, Phase.KVO],
        "dest": Phase.COMPLETED,
    },
    {
        "trigger": Trigger.PAUSE,
        "source": list(_PAUSABLE),
        "dest": Phase.PAUSED,
        "before": _remember_resume_phase,
    },
    *(_resume_row(phase) for phase in _PAUSABLE),
    # SR09: titration is a maintenance-only internal transition.
    {"trigger": Trigger.TITRATE, "source": Phase.MAINTENANCE, "dest": None},
    # issue #13: a TCI target change; a clinician bolus on top of the basal (in TCI the target
    # is raised instead: a bolus could cross the plasma ceiling the controller keeps)
    {"trigger": Trigger.RETARGET, "source": Phase.TCI, "dest": None},
    {"trigger": Trigger.BOLUS, "source": Phase.MAINTENANCE, "dest": None},
    # SR13: stop from every phase; from stopped it is accepted and changes nothing.
    {"trigger": Trigger.STOP, "source": _every_phase_but(Phase.STOPPED), "dest": Phase.STOPPED},
    {"trigger": Trigger.STOP, "source": Phase.STOPPED, "dest": None},
    {
        "trigger": Trigger.ALARM,
        "source": _every_phase_but(Phase.ALARM),
        "dest": Phase.ALARM,
        "conditions": _has_reason,
        "after": _record_alarm,
    },
    {
        "trigger": Trigger.ALARM,
        "source": Phase.ALARM,
        "dest": None,
        "conditions": _has_reason,
        "after": _record_alarm,
    },
    # SR16: nothing leaves stopped/alarm/completed on its own; only an explicit reset.
    {
        "trigger": Trigger.RESET,
        "source": [Phase.STOPPED, Phase.ALARM, Phase.COMPLETED],
        "dest": Phase.IDLE,
        "after": _clear_alarm,
    },
)

#: Triggers whose rows are guarded by a non-blank `reason` in the trigger info.
_NEEDS_REASON: frozenset[Trigger] = frozenset({Trigger.SKIP_PRIMING, Trigger.ALARM})

_STATES: list[dict[str, Any]] = [
    {"name": phase, "on_exit": _forget_resume_phase} if phase is Phase.PAUSED else {"name": phase}
    for phase in Phase
]


# --- public API -------------------------------------------------------------------------------


class InvalidTransition(Exception):
    """A trigger refused in the current phase (SR12); the machine is unchanged."""

    def __init__(
        self,
        phase: Phase,
        trigger: Trigger,
        allowed: list[Trigger],
        detail: str | None = None,
    ) -> None:
        self.phase = phase
        self.trigger = trigger
        self.allowed = allowed
        names = ", ".join(t.value for t in allowed) or "none"
        why = f": {detail}" if detail else ""
        super().__init__(
            f"trigger {trigger.value!r} refused in phase {phase.value!r}{why} (allowed: {names})"
        )


@dataclass(frozen=True)
class TransitionRecord:
    """One accepted trigger: where it came from, where it went and the info it carried."""

    trigger: Trigger
    source: Phase
    dest: Phase
    info: dict[str, Any] = field(default_factory=dict)


class _Model:
    """What `transitions` drives; `state` is set by the Machine."""

    state: Phase

    def __init__(self) -> None:
        self.resume_phase: Phase | None = None
        self.alarm_reason: str | None = None
        self.alarm_reasons: list[str] = []


class InfusionMachine:
    """Phase bookkeeping for one infusion run.

    `fire` applies a trigger or raises `InvalidTransition` without changing anything. Each
    accepted trigger is appended to `history`, logged with the bound `log_context` (pump_id,
    program_id) and passed to `on_transition` (the supervisor journals it there). Exceptions from
    `on_transition` propagate; the phase has already changed by then.
    """

    def __init__(
        self,
        *,
        on_transition: Callable[[TransitionRecord], None] | None = None,
        log_context: Mapping[str, Any] | None = None,
    ) -> None:
        self._model = _Model()
        self._machine = Machine(
            model=self._model,
            states=_STATES,
            transitions=TRANSITIONS,
            initial=Phase.IDLE,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )
        self._on_transition = on_transition
        self._log = get_logger("pumpctl.infusion.machine", **dict(log_context or {}))
        self.history: list[TransitionRecord] = []

    @property
    def phase(self) -> Phase:
        return self._model.state

    @property
    def resume_phase(self) -> Phase | None:
        """The phase `resume` returns to; set only while paused."""
        return self._model.resume_phase

    @property
    def alarm_reason(self) -> str | None:
        """The first alarm's reason, kept until `reset`."""
        return self._model.alarm_reason

    @property
    def alarm_reasons(self) -> tuple[str, ...]:
        """Every alarm reason since the last `reset`, first one first."""
        return tuple(self._model.alarm_reasons)

    def may(self, trigger: Trigger) -> bool:
        """Whether the current phase has a row for `trigger`.

        Argument guards (the `reason` that skip_priming and alarm require) are checked by `fire`.
        """
        return bool(self._machine.get_transitions(trigger=Trigger(trigger), source=self.phase))

    def allowed_triggers(self) -> list[Trigger]:
        """Triggers with a row for the current phase, in `Trigger` order."""
        return [t for t in Trigger if self.may(t)]

    def fire(self, trigger: Trigger, **info: Any) -> Phase:
        """Apply `trigger` and return the new phase; refused triggers change nothing (SR12)."""
        trigger = Trigger(trigger)
        source = self.phase
        if not self.may(trigger):
            self._refuse(source, trigger, None)
        accepted = self._machine.events[trigger].trigger(self._model, info=info)
        if not accepted:
            detail = "requires a non-empty reason" if trigger in _NEEDS_REASON else "guard refused"
            self._refuse(source, trigger, detail)
        record = TransitionRecord(trigger=trigger, source=source, dest=self.phase, info=dict(info))
        self.history.append(record)
        self._log.info(
            "transition",
            trigger=trigger.value,
            source=source.value,
            dest=record.dest.value,
            info=record.info,
        )
        if self._on_transition is not None:
            self._on_transition(record)
        return record.dest

    def _refuse(self, source: Phase, trigger: Trigger, detail: str | None) -> NoReturn:
        error = InvalidTransition(source, trigger, self.allowed_triggers(), detail)
        self._log.warning(
            "transition_refused", trigger=trigger.value, phase=source.value, detail=str(error)
        )
        raise error
