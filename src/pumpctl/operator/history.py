"""`pumpctl journal J`: a journal's runs and one run's timeline, for people (SR10, SR29).

The journal holds every command, reply, transition, titration, alarm and checkpoint. A readable
history keeps what an operator or auditor asks about (who changed what, when, why; what was
planned and what went in) and collapses the rest: a burst of commands and their replies becomes
one line, consecutive delivered-volume checkpoints become one line.

Times are the supervisor's clock (simulated time on a virtual clock) relative to the run's start;
the run list shows the wall time the run started, in UTC.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pumpctl.infusion.events import (
    AlarmEvent,
    CheckpointEvent,
    CommandEvent,
    InfusionComplete,
    NoteEvent,
    OverrideEvent,
    PlanAccepted,
    PowerUpResetAcknowledged,
    Record,
    ReplyEvent,
    RunEnded,
    RunStarted,
    SegmentEnd,
    SegmentStart,
    StopConfirmed,
    StopRequested,
    SyringeRefilled,
    TciRateUpdate,
    TitrationEvent,
    TransitionEvent,
    delivered_by_phase,
    parse_event,
)
from pumpctl.infusion.journal import EventKind, JournalError, JournalEvent, RunRecord
from pumpctl.operator.journalfile import open_journal_for_reading
from pumpctl.operator.report_tables import duration

__all__ = ["render_history", "render_run", "render_run_list"]

_ID_LEN = 12  # shown run-id prefix; any unique prefix selects a run


def render_history(journal_path: Path, run_id: str | None = None) -> str:
    """The run list and the timeline of `run_id` (any unique prefix), else of the latest run.

    Raises `JournalError` when there is no journal or no such run.
    """
    with open_journal_for_reading(Path(journal_path)) as journal:
        runs = journal.runs()
        if not runs:
            return f"no runs in {journal_path}"
        chosen = _select(runs, run_id)
        events = journal.events(chosen.run_id)
    return render_run_list(runs, selected=chosen.run_id) + "\n\n" + render_run(chosen, events)


def _select(runs: Sequence[RunRecord], run_id: str | None) -> RunRecord:
    if run_id is None:
        return runs[-1]
    matches = [r for r in runs if r.run_id.startswith(run_id.strip().lower())]
    if not matches:
        raise JournalError(f"no run {run_id!r} in this journal")
    if len(matches) > 1:
        raise JournalError(f"run id {run_id!r} is ambiguous: give more characters")
    return matches[0]


def render_run_list(runs: Sequence[RunRecord], *, selected: str | None = None) -> str:
    lines = [f"  {'run':<{_ID_LEN}}  {'program':<24} {'started (UTC)':<19}  status"]
    for r in runs:
        mark = "*" if r.run_id == selected else " "
        lines.append(
            f"{mark} {r.run_id[:_ID_LEN]:<{_ID_LEN}}  {r.program:<24} "
            f"{_utc(r.started_wall):<19}  {r.status.value}"
        )
    return "\n".join(lines)


def render_run(run: RunRecord, events: Sequence[JournalEvent]) -> str:
    """Header, collapsed timeline and per-phase totals of one run."""
    plan = _plan(run.plan_json)
    header = [
        f"run {run.run_id} — {run.program} — {run.status.value}",
        f"started {_utc(run.started_wall)} UTC on {run.pump_model} at {run.port}"
        f" address {run.address}; program sha256 {run.program_hash[:12]}",
    ]
    t0 = events[0].t_clock_s if events else 0.0
    timeline = [f"{'clock':>10}  {'phase':<11}  event"]
    for t_clock_s, phase, text in _timeline(events, _DoseUnits(plan)):
        timeline.append(f"{duration(t_clock_s - t0):>10}  {phase or '':<11}  {text}")
    if not any(isinstance(_parsed(e), RunEnded) for e in events if e.kind is EventKind.NOTE):
        timeline.append(
            "  (no end recorded: the run is still going, or its controller died; "
            "the pump may need checking)"
        )
    return "\n".join([*header, "", *timeline, "", *_totals(plan, events)])


# ------------------------------------------------------------------------------------ timeline

Line = tuple[float, str | None, str]


def _timeline(events: Sequence[JournalEvent], units: _DoseUnits) -> Iterator[Line]:
    i = 0
    while i < len(events):
        event = events[i]
        if event.kind in (EventKind.COMMAND, EventKind.REPLY):
            j = _run_end(events, i, {EventKind.COMMAND, EventKind.REPLY}, gap_s=_BURST_GAP_S)
            yield event.t_clock_s, event.phase, "pump: " + _commands(events[i:j])
            i = j
            continue
        if event.kind is EventKind.CHECKPOINT:
            j = _run_end(events, i, {EventKind.CHECKPOINT})
            yield _checkpoints(events[i:j])
            i = j
            continue
        text = _describe(event, units)
        if text is not None:
            yield event.t_clock_s, event.phase, text
        i += 1


#: commands further apart than this (clock seconds) are separate bursts, on separate lines
_BURST_GAP_S = 5.0


def _run_end(
    events: Sequence[JournalEvent], start: int, kinds: set[EventKind], *, gap_s: float = math.inf
) -> int:
    end = start + 1
    while (
        end < len(events)
        and events[end].kind in kinds
        and events[end].t_clock_s - events[end - 1].t_clock_s <= gap_s
    ):
        end += 1
    return end


_ARG_UNITS = (
    ("rate_ml_per_h", "mL/h"),
    ("volume_ml", "mL"),
    ("inner_diameter_mm", "mm"),
    ("ml_per_rev", "mL/rev"),
    ("timeout_s", "s"),
)


def _commands(events: Iterable[JournalEvent]) -> str:
    """`clear_counters, set_rate 147 mL/h, start: ok`; a failed reply is named where it occurred."""
    parts: list[str] = []
    failed = False
    for e in events:
        rec = _parsed(e)
        if isinstance(rec, CommandEvent):
            parts.append(rec.command + _arguments(rec.arguments))
        elif isinstance(rec, ReplyEvent) and rec.outcome != "ok":
            failed = True
            detail = {
                "unknown": "NO REPLY",
                "alarm": f"ALARM {rec.reason or ''}".strip(),
                "rejected": f"REJECTED code {rec.code}",
            }.get(rec.outcome, f"ERROR {rec.error or rec.outcome}")
            if parts:
                parts[-1] += f" ({detail})"
            else:
                parts.append(f"{rec.command} ({detail})")
        elif isinstance(rec, str):
            failed = True
            parts.append(f"UNREADABLE ({rec})")
    return ", ".join(parts) + ("" if failed else ": ok")


def _arguments(args: dict[str, Any]) -> str:
    text = ""
    for key, unit in _ARG_UNITS:
        if key in args:
            value = args[key]
            text += " no target" if value is None else f" {_num(value)} {unit}"
    return text


def _checkpoints(events: Sequence[JournalEvent]) -> Line:
    last = events[-1]
    per_phase: dict[str, float] = {}
    for e in events:
        rec = _parsed(e)
        if isinstance(rec, CheckpointEvent):
            per_phase[rec.phase] = rec.delivered_ml
    volumes = ", ".join(f"{ph} {ml:.3f} mL" for ph, ml in per_phase.items())
    count = f" ({len(events)} checkpoints)" if len(events) > 1 else ""
    return last.t_clock_s, last.phase, f"delivered so far: {volumes}{count}"


def _parsed(event: JournalEvent) -> Record | str:
    """The typed event, or why it could not be read (shown in its place, never dropped)."""
    try:
        return parse_event(event)
    except ValueError as exc:
        return str(exc).splitlines()[0]


def _describe(e: JournalEvent, units: _DoseUnits) -> str | None:
    rec = _parsed(e)
    if isinstance(rec, str):
        return f"UNREADABLE {e.kind.value} event: {rec}"
    if isinstance(rec, TransitionEvent):
        if rec.trigger == "titrate":
            return None  # the titration event says it all
        return f"{rec.source} -> {rec.dest} ({rec.trigger})" + _by(rec.who, rec.reason)
    if isinstance(rec, TitrationEvent):
        old, new = rec.old_ml_per_h, rec.new_ml_per_h
        change = f"{_num(old)} -> {_num(new)} mL/h{units.pair(old, new)}"
        if rec.accepted:
            return f"TITRATION {change}{_by(rec.who, rec.reason)}"
        return f"titration REFUSED {change}{_by(rec.who, rec.reason)}: {rec.error or ''}"
    if isinstance(rec, AlarmEvent):
        rest = {k: v for k, v in rec.payload().items() if k != "reason" and v is not None}
        detail = rec.detail or _fields({k: v for k, v in rest.items() if k != "detail"})
        return f"ALARM {rec.reason}" + (f": {detail}" if detail else "")
    if isinstance(rec, SegmentStart):
        return _segment_start(rec)
    if isinstance(rec, SegmentEnd):
        of = "" if rec.planned_ml is None else f" of {_ml(rec.planned_ml)} planned"
        return f"segment {rec.phase} ends: {_ml(rec.delivered_ml)} delivered{of}"
    if isinstance(rec, OverrideEvent):
        return "OVERRIDE " + _fields(rec.payload())
    if isinstance(rec, NoteEvent):
        return _describe_note(rec)
    return f"{e.kind.value}: {_fields(rec.payload())}"


def _segment_start(rec: SegmentStart) -> str:
    dose = (
        f" ({_num(rec.dose_rate)} {rec.dose_rate_unit})"
        if rec.dose_rate is not None and rec.dose_rate_unit
        else ""
    )
    planned = "until stopped" if rec.volume_ml is None else f"{_ml(rec.volume_ml)} planned"
    return f"segment {rec.phase} starts: {_num(rec.rate_ml_per_h)} mL/h{dose}, {planned}"


def _describe_note(rec: NoteEvent) -> str:
    if isinstance(rec, RunStarted):
        return "run started"
    if isinstance(rec, PlanAccepted):
        return "plan accepted" + "".join(f"; warning: {w}" for w in rec.warnings)
    if isinstance(rec, StopRequested):
        return "STOP requested" + _by(rec.who, rec.reason)
    if isinstance(rec, StopConfirmed):
        return f"pump stop confirmed ({rec.why}, {rec.attempts} attempt(s))"
    if isinstance(rec, RunEnded):
        alarm = rec.result.get("alarm")
        return f"run ended: {rec.result.get('outcome', '?')}" + (f" ({alarm})" if alarm else "")
    if isinstance(rec, InfusionComplete):
        return "infusion complete"
    if isinstance(rec, PowerUpResetAcknowledged):
        return "pump power-up reset acknowledged"
    if isinstance(rec, TciRateUpdate):  # issue #13: one TCI interval (population prediction)
        limit = f", limited by {rec.limited_by}" if rec.limited_by else ""
        return (
            f"TCI {_num(rec.rate_ml_per_h)} mL/h ({_num(rec.rate_mg_per_h)} mg/h): "
            f"predicted Cp {_num(rec.plasma_ug_per_ml)} Ce {_num(rec.effect_ug_per_ml)}"
            f" ug/mL, target {_num(rec.target_ug_per_ml)}{limit}"
        )
    if isinstance(rec, SyringeRefilled):  # issue #16: a Cavro dispense-and-refill cycle
        total = "" if rec.delivered_ml is None else f", {_ml(rec.delivered_ml)} delivered so far"
        return (
            f"syringe refilled from the reservoir (#{rec.count}, {_num(rec.duration_s)} s{total})"
        )
    rest = {k: v for k, v in rec.payload().items() if k != "event"}
    return rec.event + (f": {_fields(rest)}" if rest else "")


def _by(who: str, reason: str) -> str:
    return (f" by {who}" if who else "") + (f": {reason}" if reason else "")


def _fields(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items())


# ------------------------------------------------------------------------------------ totals


def _plan(plan_json: str) -> dict[str, Any]:
    """The journaled plan as plain data (tolerant: an older plan schema must still print)."""
    try:
        data = json.loads(plan_json)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _totals(plan: dict[str, Any], events: Iterable[JournalEvent]) -> list[str]:
    delivered = delivered_by_phase(events)
    planned: dict[str, float | None] = {}
    for seg in plan.get("segments") or []:
        if isinstance(seg, dict) and "phase" in seg:
            planned[str(seg["phase"])] = seg.get("volume_ml")
    phases = list(planned) + [ph for ph in delivered if ph not in planned]
    lines = [f"{'phase':<12}{'planned mL':>12}{'delivered mL':>14}"]
    for ph in phases:
        plan_ml = planned.get(ph)
        lines.append(
            f"{ph:<12}{'-' if plan_ml is None else f'{plan_ml:.3f}':>12}"
            f"{delivered.get(ph, 0.0):>14.3f}"
        )
    finite = [v for v in planned.values() if v is not None]
    total_planned = f"{sum(finite):.3f}" if planned and len(finite) == len(planned) else "-"
    lines.append(f"{'total':<12}{total_planned:>12}{sum(delivered.values()):>14.3f}")
    return lines


class _DoseUnits:
    """mL/h -> the maintenance dose unit (e.g. mg/kg/h), for titration lines."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.factor: float | None = None
        self.unit: str | None = None
        limits = plan.get("titration") or {}
        maint = next(
            (
                s
                for s in plan.get("segments") or []
                if isinstance(s, dict) and s.get("phase") == "maintenance"
            ),
            None,
        )
        if not isinstance(limits, dict) or maint is None:
            return
        unit = limits.get("dose_rate_unit") or maint.get("dose_rate_unit")
        factor = limits.get("ml_per_h_per_dose_unit")
        if factor is None and maint.get("dose_rate"):
            factor = float(maint["rate_ml_per_h"]) / float(maint["dose_rate"])
        if unit and factor:
            self.factor, self.unit = float(factor), str(unit)

    def pair(self, old_ml_per_h: float, new_ml_per_h: float) -> str:
        if self.factor is None:
            return ""
        old, new = old_ml_per_h / self.factor, new_ml_per_h / self.factor
        return f" ({_num(old)} -> {_num(new)} {self.unit})"


# ------------------------------------------------------------------------------------ formats


def _num(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.4g}"
    return str(value)


def _ml(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.3f} mL"
    return str(value)


def _utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
