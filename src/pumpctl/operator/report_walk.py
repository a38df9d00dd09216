"""Folding one run's journal events into the series and events a report draws."""

from __future__ import annotations

from pumpctl.infusion.events import (
    AlarmEvent,
    CheckpointEvent,
    ContainerChanged,
    ContainerChangeNeeded,
    SegmentEnd,
    SegmentStart,
    TitrationEvent,
    TransitionEvent,
    parse_event,
)
from pumpctl.infusion.journal import JournalEvent
from pumpctl.operator.report_data import Alarm, ContainerChange, Pause, Stop, Titration

__all__ = ["EventWalker"]

#: machine phases in which the pump is not delivering (rate 0 from the transition on)
_IDLE_PHASES = frozenset({"paused", "stopped", "alarm", "completed", "ready", "idle"})
#: machine phases that end the run (a segment still running ends with them)
_END_PHASES = frozenset({"stopped", "alarm", "completed"})


class EventWalker:
    """Folds the event stream into the series (one pass, in seq order)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.rate_steps: list[tuple[float, float]] = []
        self.delivered: list[tuple[float, float]] = []
        self.pauses: list[Pause] = []
        self.titrations: list[Titration] = []
        self.alarms: list[Alarm] = []
        self.first_segment_s: float | None = None
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.by_phase: dict[str, float] = {}
        self.segment_rate = 0.0
        self.stops: list[Stop] = []
        self.changes: list[ContainerChange] = []
        self._segment: str | None = None  # the segment running (started, not ended)
        self._paused: tuple[float, str, str] | None = None
        self._change: ContainerChange | None = None  # needed, not yet confirmed
        #: events that do not match their model, skipped (the report names them)
        self.unreadable: list[str] = []

    def _rate(self, t: float, rate: float) -> None:
        if self.rate_steps and self.rate_steps[-1][0] == t:
            self.rate_steps[-1] = (t, rate)
        else:
            self.rate_steps.append((t, rate))

    def _volume(self, t: float, phase: str, delivered_ml: float) -> None:
        self.by_phase[phase] = max(self.by_phase.get(phase, delivered_ml), delivered_ml)
        self._point(t)

    def _point(self, t: float) -> None:
        total = sum(self.by_phase.values())
        if self.delivered and self.delivered[-1][0] == t:
            self.delivered[-1] = (t, max(self.delivered[-1][1], total))
        else:
            self.delivered.append((t, total))

    def feed(self, e: JournalEvent) -> None:
        t = e.t_clock_s - self.t0
        if not self.delivered:
            self.delivered.append((t, 0.0))
            self._rate(t, 0.0)
        try:
            rec = parse_event(e)
        except ValueError as exc:
            # one bad event is not worth losing the report: it is skipped, and named
            self.unreadable.append(str(exc).splitlines()[0])
            return
        if isinstance(rec, SegmentStart):
            if self.first_segment_s is None:
                self.first_segment_s = t
            self.started.setdefault(rec.phase, t)
            self._segment = rec.phase
            self.segment_rate = rec.rate_ml_per_h
            self._rate(t, self.segment_rate)
            self._point(t)
        elif isinstance(rec, SegmentEnd):
            self.ended[rec.phase] = t
            self._segment = None
            self._volume(t, rec.phase, rec.delivered_ml)
            self._rate(t, 0.0)
        elif isinstance(rec, CheckpointEvent):
            self._volume(t, rec.phase, rec.delivered_ml)
        elif isinstance(rec, TitrationEvent):
            self._titration(t, rec)
        elif isinstance(rec, AlarmEvent):
            self.alarms.append(Alarm(t, rec.reason, rec.detail))
            self._rate(t, 0.0)
        elif isinstance(rec, TransitionEvent):
            self._transition(t, rec)
        elif isinstance(rec, ContainerChangeNeeded):
            # the pump stands at its target until the operator confirms a new container
            self._change = ContainerChange(t, None, rec.container, "")
        elif isinstance(rec, ContainerChanged) and self._change is not None:
            c = self._change
            self.changes.append(ContainerChange(c.needed_s, t, c.kind, rec.who))
            self._change = None

    def _titration(self, t: float, rec: TitrationEvent) -> None:
        self.titrations.append(
            Titration(
                t_s=t,
                old_ml_per_h=rec.old_ml_per_h,
                new_ml_per_h=rec.new_ml_per_h,
                accepted=rec.accepted,
                who=rec.who,
                reason=rec.reason or rec.error or "",
            )
        )
        if rec.accepted:
            self.segment_rate = rec.new_ml_per_h
            if self._paused is None:
                self._rate(t, self.segment_rate)

    def _transition(self, t: float, rec: TransitionEvent) -> None:
        dest, source = rec.dest, rec.source
        who, reason = rec.who, rec.reason
        if dest == "stopped" and rec.trigger == "stop":
            self.stops.append(Stop(t, who, reason))
        if dest == "paused" and self._change is not None:
            pass  # waiting for a new container: drawn as a change, not as the operator's pause
        elif dest == "paused":
            self._paused = (t, who, reason)
        elif source == "paused" and self._change is None and self._paused is None:
            if dest not in _IDLE_PHASES:
                self._rate(t, self.segment_rate)
        elif source == "paused" and self._paused is not None:
            self._close_pause(t)
            if dest not in _IDLE_PHASES:
                self._rate(t, self.segment_rate)
        if dest in _IDLE_PHASES:
            self._rate(t, 0.0)
        if dest in _END_PHASES and self._segment is not None:
            # stopped or alarmed mid-segment: no segment_end is journaled, the segment ends here
            self.ended.setdefault(self._segment, t)
            self._segment = None

    def _close_pause(self, t: float | None) -> None:
        if self._paused is not None:
            start, who, reason = self._paused
            self.pauses.append(Pause(start, t, who, reason))
            self._paused = None

    def finish(self, t_end: float) -> None:
        self._close_pause(None)
        if self._change is not None:
            self.changes.append(self._change)
        if not self.delivered:
            self.delivered.append((0.0, 0.0))
            self.rate_steps.append((0.0, 0.0))
        if self.delivered[-1][0] < t_end:
            self.delivered.append((t_end, self.delivered[-1][1]))
