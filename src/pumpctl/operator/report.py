"""`pumpctl report`: what a run did, drawn from its journal alone (SR08, SR10, SR29, SR34).

`build_report` is pure: it reads one run's events and the plan JSON stored with the run, and
derives every series from them, so a report can be made long after the run, on another machine,
without the pump, the program file or the drug library.

Resolution of the curves: the supervisor journals a delivered-volume checkpoint every 60 clock
seconds (`SupervisorConfig.checkpoint_interval_s`), on every state change and at every segment
end, so the delivered curve is exact at those points and linear between them, which is plenty
for a curve over hours. The rate series is exact: it changes only at journaled events (segment
start and end, pause, resume, accepted titration, alarm, stop).

Times are the supervisor's clock (simulated time for a virtual-clock run), relative to the run's
first event. Dose rates are in the program's own unit as written for maintenance (mg/kg/h,
mcg/kg/min, mg/h), else mg/kg/h with a concentration and a weight, mg/h with a concentration
only, and absent otherwise: one unit for the whole run, so the loading and maintenance phases
share an axis (each segment's own unit is kept in the phase table). The data types are in
`report_data`, the tables as text in `report_tables`, the drawing in `report_draw`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pumpctl.infusion.journal import EventKind, JournalError, JournalEvent, RunRecord
from pumpctl.operator.journalfile import open_journal_for_reading
from pumpctl.operator.report_data import (
    ROLLING_WINDOWS_S,
    Alarm,
    ContainerChange,
    Pause,
    PhaseRow,
    ReportData,
    RollingTotal,
    Stop,
    Titration,
)
from pumpctl.operator.report_tables import PHASE_COLUMNS, ROLLING_COLUMNS, phase_rows, rolling_rows
from pumpctl.operator.report_walk import EventWalker

__all__ = [
    "PHASE_COLUMNS",
    "ROLLING_COLUMNS",
    "Alarm",
    "ContainerChange",
    "Pause",
    "PhaseRow",
    "ReportData",
    "RollingTotal",
    "Stop",
    "Titration",
    "build_report",
    "build_report_from_events",
    "phase_rows",
    "render_report",
    "report_figure",
    "rolling_max_ml",
    "rolling_rows",
]

# ----------------------------------------------------------------------------- building


def build_report(journal_path: Path, run_id: str | None = None) -> ReportData:
    """The report of `run_id` (any unique prefix; default: the latest run) in the journal.

    Raises `JournalError` when there is no journal, no run or no such run.
    """
    with open_journal_for_reading(Path(journal_path)) as journal:
        runs = journal.runs()
        if not runs:
            raise JournalError(f"no runs in {journal_path}")
        run = _select(runs, run_id)
        events = journal.events(run.run_id)
    return build_report_from_events(run, events)


def _select(runs: Sequence[RunRecord], run_id: str | None) -> RunRecord:
    if run_id is None:
        return runs[-1]
    matches = [r for r in runs if r.run_id.startswith(run_id.strip().lower())]
    if len(matches) != 1:
        what = "is ambiguous: give more characters" if matches else "is not in this journal"
        raise JournalError(f"run {run_id!r} {what}")
    return matches[0]


def build_report_from_events(run: RunRecord, events: Sequence[JournalEvent]) -> ReportData:
    """Pure core of `build_report`: one run record and its events, in seq order."""
    plan = _plan(run.plan_json)
    t0 = events[0].t_clock_s if events else 0.0
    t_end = (events[-1].t_clock_s if events else t0) - t0
    unit, dose_per_ml = _dose_scale(plan)
    walker = EventWalker(t0)
    for event in events:
        walker.feed(event)
    walker.finish(t_end)
    phases = _phase_rows(plan, walker)
    limits = plan.get("rolling_limits") or {}
    rolling = tuple(
        _rolling(label, window_s, walker.delivered, t_end, limits.get(f"max_{label}_ml"))
        for label, window_s in ROLLING_WINDOWS_S.items()
    )
    warnings = tuple(str(w) for w in plan.get("warnings") or ())
    return ReportData(
        run_id=run.run_id,
        program=run.program,
        pump_model=run.pump_model,
        port=run.port,
        status=run.status.value,
        started_wall=run.started_wall,
        duration_s=t_end,
        drug=plan.get("drug"),
        concentration_mg_per_ml=_float(plan.get("concentration_mg_per_ml")),
        weight_kg=_float(plan.get("weight_kg")),
        dose_rate_unit=unit,
        dose_per_ml=dose_per_ml,
        rate_steps=with_tci_rates(walker.rate_steps, events, t0),
        delivered=tuple(walker.delivered),
        planned=tuple(_planned_curve(plan, walker.first_segment_s, t_end)),
        phases=phases,
        pauses=tuple(walker.pauses),
        titrations=tuple(walker.titrations),
        alarms=tuple(walker.alarms),
        rolling=rolling,
        warnings=warnings,
        stops=tuple(walker.stops),
        container_changes=tuple(walker.changes),
        skipped_events=tuple(walker.unreadable),
        predicted=predicted_series(events, t0),
        pk_model=plan.get("pk_model"),
    )


def with_tci_rates(
    steps: Sequence[tuple[float, float]], events: Sequence[JournalEvent], t0: float
) -> tuple[tuple[float, float], ...]:
    """The rate steps with a TCI phase's own rates (its `tci_rate` notes) in place of the
    segment's ceiling, from its first note to the next step after the phase ended."""
    notes = [
        (e.t_clock_s - t0, float(e.payload["rate_ml_per_h"]))
        for e in events
        if e.kind is EventKind.NOTE and e.payload.get("event") == "tci_rate"
    ]
    if not notes:
        return tuple(steps)
    ends = [
        e.t_clock_s - t0
        for e in events
        if e.kind is EventKind.SEGMENT_END and e.payload.get("phase") == "tci"
    ]
    first, end = notes[0][0], (ends[-1] if ends else math.inf)
    before = [st for st in steps if st[0] < first]
    after = [st for st in steps if st[0] >= end]
    tail = [] if after or not math.isfinite(end) else [(end, 0.0)]
    return tuple(sorted([*before, *notes, *after, *tail]))


def predicted_series(
    events: Sequence[JournalEvent], t0: float
) -> tuple[tuple[float, float, float], ...]:
    """(t, Cp, Ce) journaled with checkpoints and TCI intervals, in time order."""
    out: list[tuple[float, float, float]] = []
    for e in events:
        p = e.payload
        if e.kind not in (EventKind.CHECKPOINT, EventKind.NOTE):
            continue
        cp, ce = p.get("plasma_ug_per_ml"), p.get("effect_ug_per_ml")
        if isinstance(cp, int | float) and isinstance(ce, int | float):
            out.append((e.t_clock_s - t0, float(cp), float(ce)))
    return tuple(out)


def _phase_rows(plan: dict[str, Any], w: EventWalker) -> tuple[PhaseRow, ...]:
    rows: list[PhaseRow] = []
    seen: set[str] = set()
    for seg in plan.get("segments") or []:
        if not isinstance(seg, dict) or "phase" not in seg:
            continue
        phase = str(seg["phase"])
        seen.add(phase)
        rows.append(
            PhaseRow(
                phase=phase,
                planned_ml=_float(seg.get("volume_ml")),
                delivered_ml=w.by_phase.get(phase, 0.0),
                planned_rate_ml_per_h=float(seg.get("rate_ml_per_h") or 0.0),
                dose_rate=_float(seg.get("dose_rate")),
                dose_rate_unit=seg.get("dose_rate_unit"),
                started_s=w.started.get(phase),
                ended_s=w.ended.get(phase),
            )
        )
    for phase, ml in w.by_phase.items():  # journaled but not in the stored plan (should not be)
        if phase not in seen:
            rows.append(PhaseRow(phase, None, ml, 0.0, None, None, w.started.get(phase), None))
    return tuple(rows)


def _planned_curve(
    plan: dict[str, Any], start_s: float | None, t_end: float
) -> list[tuple[float, float]]:
    """The plan back to back at planned rates from the first segment start (pauses not planned:
    a pause shows as the delivered curve falling behind). An open-ended segment runs to t_end."""
    t = 0.0 if start_s is None else start_s
    points = [(t, 0.0)]
    total = 0.0
    for seg in plan.get("segments") or []:
        if not isinstance(seg, dict):
            continue
        rate = float(seg.get("rate_ml_per_h") or 0.0)
        volume = _float(seg.get("volume_ml"))
        conc = _float(plan.get("concentration_mg_per_ml"))
        drug, duration = _float(seg.get("drug_mg")), _float(seg.get("duration_s"))
        if seg.get("phase") == "tci" and drug is not None and conc and duration:
            # its volume is a ceiling: draw what the controller was expected to give
            t += duration
            total += drug / conc
            points.append((t, total))
            continue
        if volume is None:
            if rate > 0 and t_end > t:
                total += rate * (t_end - t) / 3600.0
                t = t_end
                points.append((t, total))
            break
        if rate <= 0:
            continue
        t += volume / rate * 3600.0
        total += volume
        points.append((t, total))
    return points


def _interp(points: Sequence[tuple[float, float]], t: float) -> float:
    """Piecewise-linear value at t (flat outside the points)."""
    if not points or t <= points[0][0]:
        return points[0][1] if points else 0.0
    if t >= points[-1][0]:
        return points[-1][1]
    lo, hi = 0, len(points) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if points[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (t0, v0), (t1, v1) = points[lo], points[hi]
    if t1 == t0:
        return v1
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def rolling_max_ml(points: Sequence[tuple[float, float]], window_s: float) -> tuple[float, float]:
    """Largest rise of a piecewise-linear cumulative curve over any window of `window_s`, and the
    window's end time. Exact: the difference of two piecewise-linear functions peaks at a
    breakpoint of one of them, so only ends at a point or a point + window are candidates (a
    window reaching before the first point counts from the first value: the run's start)."""
    if not points:
        return 0.0, 0.0
    start, end = points[0][0], points[-1][0]
    candidates = {t for t, _ in points} | {min(t + window_s, end) for t, _ in points}
    best, best_t = -math.inf, start
    for t in sorted(candidates):
        rise = _interp(points, t) - _interp(points, max(start, t - window_s))
        if rise > best + 1e-12:
            best, best_t = rise, t
    return max(best, 0.0), best_t


def _rolling(
    label: str,
    window_s: float,
    points: Sequence[tuple[float, float]],
    t_end: float,
    limit: Any,
) -> RollingTotal:
    max_ml, at = rolling_max_ml(points, window_s)
    start = points[0][0] if points else 0.0
    last = _interp(points, t_end) - _interp(points, max(start, t_end - window_s))
    return RollingTotal(label, window_s, max_ml, at, last, _float(limit))


def _dose_scale(plan: dict[str, Any]) -> tuple[str | None, float | None]:
    """(unit, dose per mL) of the dose-rate axis: the program's own maintenance unit as
    written (`mcg/kg/min` stays `mcg/kg/min`), else mg/kg/h or mg/h from the drug data."""
    titration = plan.get("titration") or {}
    factor = _float(titration.get("ml_per_h_per_dose_unit"))
    if titration.get("dose_rate_unit") and factor:
        return str(titration["dose_rate_unit"]), 1.0 / factor
    for seg in plan.get("segments") or ():
        rate, dose = _float(seg.get("rate_ml_per_h")), _float(seg.get("dose_rate"))
        if seg.get("phase") == "maintenance" and seg.get("dose_rate_unit") and rate and dose:
            return str(seg["dose_rate_unit"]), dose / rate
    concentration = _float(plan.get("concentration_mg_per_ml"))
    if concentration is None or concentration <= 0:
        return None, None
    weight = _float(plan.get("weight_kg"))
    if weight is not None and weight > 0:
        return "mg/kg/h", concentration / weight
    return "mg/h", concentration


def _plan(plan_json: str) -> dict[str, Any]:
    """The stored plan as plain data; tolerant, so a report of an older run still renders."""
    try:
        data = json.loads(plan_json)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# ----------------------------------------------------------------------------- rendering


def render_report(data: ReportData, out: Path) -> Path:
    """Write the report to `out` (.png, .svg or .html); see `report_draw.render_report`."""
    from pumpctl.operator.report_draw import render_report as render

    return render(data, out)


def report_figure(data: ReportData, *, tables: bool = True) -> Any:
    """The matplotlib figure; see `report_draw.report_figure`."""
    from pumpctl.operator.report_draw import report_figure as figure

    return figure(data, tables=tables)
