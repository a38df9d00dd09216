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
first event. Dose rates are in mg/kg/h when the plan has a concentration and a weight, in mg/h
with a concentration only, and absent otherwise: one unit for the whole run, so the loading and
maintenance phases share an axis (each segment's own unit is kept in the phase table).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pumpctl.infusion.journal import EventKind, JournalError, JournalEvent, RunRecord
from pumpctl.operator.journalfile import open_journal_for_reading

__all__ = [
    "Alarm",
    "Pause",
    "PhaseRow",
    "ReportData",
    "RollingTotal",
    "Titration",
    "build_report",
    "build_report_from_events",
    "render_report",
    "report_figure",
    "rolling_max_ml",
]

#: rolling windows of SR08: label -> seconds
ROLLING_WINDOWS_S: dict[str, float] = {"1h": 3600.0, "4h": 4 * 3600.0, "24h": 24 * 3600.0}

#: machine phases in which the pump is not delivering (rate 0 from the transition on)
_IDLE_PHASES = frozenset({"paused", "stopped", "alarm", "completed", "ready", "idle"})
#: machine phases that end the run (a segment still running ends with them)
_END_PHASES = frozenset({"stopped", "alarm", "completed"})


@dataclass(frozen=True)
class PhaseRow:
    """One plan segment as planned and as run. `started_s` None: it never ran; `ended_s` None:
    still running when the journal ends (a stop or an alarm ends the segment)."""

    phase: str
    planned_ml: float | None
    delivered_ml: float
    planned_rate_ml_per_h: float
    dose_rate: float | None
    dose_rate_unit: str | None
    started_s: float | None
    ended_s: float | None

    @property
    def difference_ml(self) -> float | None:
        return None if self.planned_ml is None else self.delivered_ml - self.planned_ml


@dataclass(frozen=True)
class Titration:
    t_s: float
    old_ml_per_h: float
    new_ml_per_h: float
    accepted: bool
    who: str
    reason: str


@dataclass(frozen=True)
class Pause:
    started_s: float
    ended_s: float | None  # None: never resumed (stopped, alarm or the run died paused)
    who: str
    reason: str


@dataclass(frozen=True)
class Alarm:
    t_s: float
    reason: str
    detail: str


@dataclass(frozen=True)
class RollingTotal:
    """Largest volume delivered in any window of this length, and in the last one (SR08)."""

    window: str
    window_s: float
    max_ml: float
    max_window_end_s: float
    last_ml: float
    limit_ml: float | None

    @property
    def within_limit(self) -> bool | None:
        return None if self.limit_ml is None else self.max_ml <= self.limit_ml + 1e-9


@dataclass(frozen=True)
class ReportData:
    """Everything drawn and tabulated; times in clock seconds since the run's first event."""

    run_id: str
    program: str
    pump_model: str
    port: str
    status: str
    started_wall: float
    duration_s: float
    drug: str | None
    concentration_mg_per_ml: float | None
    weight_kg: float | None
    #: unit of `dose_per_ml` x mL/h (e.g. "mg/kg/h"); None when the plan has no concentration
    dose_rate_unit: str | None
    #: mL/h -> dose rate factor (dose_rate = rate_ml_per_h x dose_per_ml)
    dose_per_ml: float | None
    #: step function: rate from each point on, until the next (last point: end of the run)
    rate_steps: tuple[tuple[float, float], ...]
    #: cumulative delivered volume (pump counters, summed over phases), piecewise linear
    delivered: tuple[tuple[float, float], ...]
    #: cumulative volume of the plan run back to back at planned rates from the first segment
    planned: tuple[tuple[float, float], ...]
    phases: tuple[PhaseRow, ...]
    pauses: tuple[Pause, ...]
    titrations: tuple[Titration, ...]
    alarms: tuple[Alarm, ...]
    rolling: tuple[RollingTotal, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def delivered_ml(self) -> float:
        return self.delivered[-1][1] if self.delivered else 0.0

    @property
    def planned_ml(self) -> float | None:
        vols = [p.planned_ml for p in self.phases]
        return None if any(v is None for v in vols) else sum(v for v in vols if v is not None)

    def dose_rate(self, rate_ml_per_h: float) -> float | None:
        return None if self.dose_per_ml is None else rate_ml_per_h * self.dose_per_ml


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
    walker = _Walker(t0)
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
        rate_steps=tuple(walker.rate_steps),
        delivered=tuple(walker.delivered),
        planned=tuple(_planned_curve(plan, walker.first_segment_s, t_end)),
        phases=phases,
        pauses=tuple(walker.pauses),
        titrations=tuple(walker.titrations),
        alarms=tuple(walker.alarms),
        rolling=rolling,
        warnings=warnings,
    )


class _Walker:
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
        self._segment: str | None = None  # the segment running (started, not ended)
        self._paused: tuple[float, str, str] | None = None

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
        t, p = e.t_clock_s - self.t0, e.payload
        if not self.delivered:
            self.delivered.append((t, 0.0))
            self._rate(t, 0.0)
        if e.kind is EventKind.SEGMENT_START:
            phase = str(p.get("phase"))
            if self.first_segment_s is None:
                self.first_segment_s = t
            self.started.setdefault(phase, t)
            self._segment = phase
            self.segment_rate = float(p.get("rate_ml_per_h") or 0.0)
            self._rate(t, self.segment_rate)
            self._point(t)
        elif e.kind is EventKind.SEGMENT_END:
            phase = str(p.get("phase"))
            self.ended[phase] = t
            self._segment = None
            self._volume(t, phase, float(p.get("delivered_ml") or 0.0))
            self._rate(t, 0.0)
        elif e.kind is EventKind.CHECKPOINT:
            self._volume(t, str(p["phase"]), float(p["delivered_ml"]))
        elif e.kind is EventKind.TITRATION:
            self._titration(t, p)
        elif e.kind is EventKind.ALARM:
            self.alarms.append(Alarm(t, str(p.get("reason", "")), str(p.get("detail", ""))))
            self._rate(t, 0.0)
        elif e.kind is EventKind.TRANSITION:
            self._transition(t, p)

    def _titration(self, t: float, p: dict[str, Any]) -> None:
        accepted = bool(p.get("accepted"))
        self.titrations.append(
            Titration(
                t_s=t,
                old_ml_per_h=float(p.get("old_ml_per_h") or 0.0),
                new_ml_per_h=float(p.get("new_ml_per_h") or 0.0),
                accepted=accepted,
                who=str(p.get("who") or ""),
                reason=str(p.get("reason") or p.get("error") or ""),
            )
        )
        if accepted:
            self.segment_rate = float(p["new_ml_per_h"])
            if self._paused is None:
                self._rate(t, self.segment_rate)

    def _transition(self, t: float, p: dict[str, Any]) -> None:
        dest, source = str(p.get("dest")), str(p.get("source"))
        info = p.get("info") or {}
        if dest == "paused":
            self._paused = (t, str(info.get("who") or ""), str(info.get("reason") or ""))
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
        if not self.delivered:
            self.delivered.append((0.0, 0.0))
            self.rate_steps.append((0.0, 0.0))
        if self.delivered[-1][0] < t_end:
            self.delivered.append((t_end, self.delivered[-1][1]))


def _phase_rows(plan: dict[str, Any], w: _Walker) -> tuple[PhaseRow, ...]:
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

_PHASE_COLOURS = {
    "prime": "#d9d9d9",
    "loading": "#fdd0a2",
    "maintenance": "#c6dbef",
    "kvo": "#c7e9c0",
}


def render_report(data: ReportData, out: Path) -> Path:
    """Write the report to `out`: `.png` or `.svg` (figure with tables), `.html` (tables as HTML
    and the PNG embedded as base64, one self-contained file). Returns `out`."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".svg", ".html", ".htm"):
        raise ValueError(f"report format {out.suffix!r} not supported: use .png, .svg or .html")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".png", ".svg"):
        fig = report_figure(data, tables=True)
        _save(fig, out, suffix[1:])
        return out
    buf = io.BytesIO()
    _save(report_figure(data, tables=False), buf, "png")
    out.write_text(_html(data, base64.b64encode(buf.getvalue()).decode("ascii")), encoding="utf-8")
    return out


def _save(fig: Any, target: Path | io.BytesIO, fmt: str) -> None:
    import matplotlib.pyplot as plt

    # no creation date in the metadata: the same journal gives the same bytes
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": "pumpctl"}
    try:
        fig.savefig(target, format=fmt, dpi=110, metadata=metadata)
    finally:
        plt.close(fig)


def _hours(t_s: float) -> float:
    return t_s / 3600.0


def report_figure(data: ReportData, *, tables: bool = True) -> Any:
    """The matplotlib figure (Agg): rate axes, volume axes and, with `tables`, the tables.
    The caller closes it (`matplotlib.pyplot.close`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "pumpctl"
    heights = [3.0, 2.6] + ([2.4] if tables else [])
    fig = plt.figure(figsize=(11, sum(heights) + 0.8))
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.35)
    ax_rate = fig.add_subplot(grid[0])
    ax_vol = fig.add_subplot(grid[1], sharex=ax_rate)
    fig.suptitle(_title(data), fontsize=11)
    for ax in (ax_rate, ax_vol):
        _shade(ax, data)
    _draw_rate(ax_rate, data)
    _draw_volume(ax_vol, data)
    if tables:
        _draw_tables(fig.add_subplot(grid[2]), data)
    fig.subplots_adjust(left=0.07, right=0.92, top=0.92, bottom=0.05)
    return fig


def _title(data: ReportData) -> str:
    drug = f" — {data.drug} {data.concentration_mg_per_ml:g} mg/mL" if data.drug else ""
    return (
        f"{data.program}{drug} — {data.pump_model} — {data.status} — run {data.run_id[:12]}\n"
        f"delivered {data.delivered_ml:.3f} mL"
        + ("" if data.planned_ml is None else f" of {data.planned_ml:.3f} mL planned")
        + f" in {_duration(data.duration_s)} (clock time)"
    )


def _shade(ax: Any, data: ReportData) -> None:
    for row in data.phases:
        if row.started_s is None:
            continue
        end = row.ended_s if row.ended_s is not None else data.duration_s
        ax.axvspan(
            _hours(row.started_s),
            _hours(end),
            color=_PHASE_COLOURS.get(row.phase, "#eeeeee"),
            alpha=0.6,
            lw=0,
            label=row.phase,
        )
    for pause in data.pauses:
        end = pause.ended_s if pause.ended_s is not None else data.duration_s
        ax.axvspan(
            _hours(pause.started_s),
            _hours(end),
            facecolor="none",
            edgecolor="#555555",
            hatch="///",
            lw=0,
            label="paused",
        )
    for alarm in data.alarms:
        ax.axvline(_hours(alarm.t_s), color="#d62728", lw=1.5, label="alarm")


def _draw_rate(ax: Any, data: ReportData) -> None:
    xs = [_hours(t) for t, _ in data.rate_steps] + [_hours(data.duration_s)]
    ys = [r for _, r in data.rate_steps]
    ys.append(ys[-1] if ys else 0.0)
    ax.step(xs, ys, where="post", color="#08519c", lw=1.8, label="rate")
    for tit in data.titrations:
        ax.plot(
            _hours(tit.t_s),
            tit.new_ml_per_h,
            marker="^" if tit.new_ml_per_h >= tit.old_ml_per_h else "v",
            color="#31a354" if tit.accepted else "#d62728",
            ms=8,
            ls="none",
            label="titration" if tit.accepted else "titration refused",
        )
    for alarm in data.alarms:
        ax.annotate(
            alarm.reason,
            (_hours(alarm.t_s), 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color="#d62728",
        )
    ax.set_ylabel("rate (mL/h)")
    ax.set_ylim(bottom=0, top=max([1.0, *ys]) * 1.5)  # room for the legend
    ax.grid(alpha=0.3)
    factor = data.dose_per_ml
    if factor is not None and data.dose_rate_unit:
        dose_axis = ax.secondary_yaxis(
            "right", functions=(lambda v: v * factor, lambda v: v / factor)
        )
        dose_axis.set_ylabel(f"dose rate ({data.dose_rate_unit})")
    _legend(ax)


def _draw_volume(ax: Any, data: ReportData) -> None:
    ax.plot(
        [_hours(t) for t, _ in data.planned],
        [v for _, v in data.planned],
        color="#636363",
        ls="--",
        lw=1.2,
        label="planned",
    )
    ax.plot(
        [_hours(t) for t, _ in data.delivered],
        [v for _, v in data.delivered],
        color="#08519c",
        lw=1.8,
        label="delivered (pump counter)",
    )
    ax.set_xlabel("clock time since start (h)")
    ax.set_ylabel("cumulative volume (mL)")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0, right=max(_hours(data.duration_s), 1e-3))
    ax.grid(alpha=0.3)
    _legend(ax)


def _legend(ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    unique: dict[str, Any] = {}
    for handle, label in zip(handles, labels, strict=True):
        unique.setdefault(label, handle)
    ax.legend(unique.values(), unique.keys(), loc="upper left", fontsize=8, ncol=4)


def _draw_tables(ax: Any, data: ReportData) -> None:
    ax.axis("off")
    layout = (
        (PHASE_COLUMNS, phase_rows(data), (0.0, 0.0, 0.64, 1.0)),
        (ROLLING_COLUMNS, rolling_rows(data), (0.68, 0.0, 0.32, 0.8)),
    )
    for columns, rows, bbox in layout:
        table = ax.table(cellText=rows, colLabels=columns, bbox=bbox, cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.auto_set_column_width(list(range(len(columns))))


PHASE_COLUMNS = ("phase", "planned mL", "delivered mL", "diff mL", "rate mL/h", "dose", "ran")
ROLLING_COLUMNS = ("window", "max mL", "at", "last mL", "limit mL")


def phase_rows(data: ReportData) -> list[tuple[str, ...]]:
    """The per-phase table as text (the same cells in the figure and in HTML), plus a total."""
    rows: list[tuple[str, ...]] = []
    for r in data.phases:
        dose = "-" if r.dose_rate is None else f"{r.dose_rate:.4g} {r.dose_rate_unit or ''}".strip()
        ran = (
            "-"
            if r.started_s is None
            else f"{_duration(r.started_s)}–" + ("…" if r.ended_s is None else _duration(r.ended_s))
        )
        rows.append(
            (
                r.phase,
                _ml(r.planned_ml),
                f"{r.delivered_ml:.3f}",
                "-" if r.difference_ml is None else f"{r.difference_ml:+.3f}",
                f"{r.planned_rate_ml_per_h:.4g}",
                dose,
                ran,
            )
        )
    planned = data.planned_ml
    diff = "-" if planned is None else f"{data.delivered_ml - planned:+.3f}"
    rows.append(("total", _ml(planned), f"{data.delivered_ml:.3f}", diff, "", "", ""))
    return rows


def rolling_rows(data: ReportData) -> list[tuple[str, ...]]:
    """Rolling totals (SR08): largest in any window (and its end), last window, library limit."""
    rows: list[tuple[str, ...]] = []
    for r in data.rolling:
        limit = "-" if r.limit_ml is None else f"{r.limit_ml:.3f}"
        if r.within_limit is False:
            limit += " EXCEEDED"
        rows.append(
            (r.window, f"{r.max_ml:.3f}", _duration(r.max_window_end_s), f"{r.last_ml:.3f}", limit)
        )
    return rows


def _ml(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _duration(seconds: float) -> str:
    total = max(0, round(seconds))
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    text = f"{hours:d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}" if days else text


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _in_dose_units(data: ReportData, old_ml_per_h: float, new_ml_per_h: float) -> str:
    old, new = data.dose_rate(old_ml_per_h), data.dose_rate(new_ml_per_h)
    if old is None or new is None:
        return ""
    return f" ({old:.4g} → {new:.4g} {data.dose_rate_unit})"


def _html(data: ReportData, png_b64: str) -> str:
    esc = html.escape
    events = [
        (
            t.t_s,
            f"titration {t.old_ml_per_h:g} → {t.new_ml_per_h:g} mL/h"
            + _in_dose_units(data, t.old_ml_per_h, t.new_ml_per_h)
            + ("" if t.accepted else " (refused)"),
            t.who,
            t.reason,
        )
        for t in data.titrations
    ]
    events += [
        (
            p.started_s,
            "pause" + ("" if p.ended_s is not None else " (never resumed)"),
            p.who,
            p.reason if p.ended_s is None else f"{p.reason} (ended at {_duration(p.ended_s)})",
        )
        for p in data.pauses
    ]
    events += [(a.t_s, f"ALARM {a.reason}", "", a.detail) for a in data.alarms]
    event_rows = [(_duration(t), what, who, why) for t, what, who, why in sorted(events)]
    title = _title(data).replace("\n", " — ")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>pumpctl report — {esc(data.program)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
        "padding:3px 8px;text-align:right}th{background:#eee}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>{esc(data.program)}</h1>",
        f"<p>{esc(title)}</p>",
        f"<p>run <code>{esc(data.run_id)}</code> on {esc(data.pump_model)} at "
        f"<code>{esc(data.port)}</code></p>",
        f'<img alt="rate and cumulative volume" src="data:image/png;base64,{png_b64}">',
        "<h2>Planned vs delivered per phase</h2>",
        _html_table(PHASE_COLUMNS, phase_rows(data)),
        "<h2>Rolling totals (largest in any window, and the last window)</h2>",
        _html_table(ROLLING_COLUMNS, rolling_rows(data)),
        "<h2>Titrations, pauses and alarms</h2>",
        _html_table(("clock", "event", "who", "reason / detail"), event_rows)
        if event_rows
        else "<p>none</p>",
    ]
    if data.warnings:
        parts.append("<h2>Plan warnings</h2><ul>")
        parts += [f"<li>{esc(w)}</li>" for w in data.warnings]
        parts.append("</ul>")
    parts.append(
        "<p><small>From the journal alone; delivered volume from the pump's counters, "
        "checkpointed every 60 clock seconds and on every state change.</small></p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
