"""Human-readable progress and summaries for the CLI (plain lines; safe when piped)."""

from __future__ import annotations

from collections.abc import Callable

from pumpctl.plan import Plan
from pumpctl.supervisor import Progress, RunResult

__all__ = ["ProgressPrinter", "format_duration", "summary_lines"]


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    days, rem = divmod(round(seconds), 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text


class ProgressPrinter:
    """Prints a line on every phase change and every `every_s` clock seconds."""

    def __init__(self, emit: Callable[[str], None], *, every_s: float = 15 * 60.0) -> None:
        self.emit = emit
        self.every_s = every_s
        self._last_phase: str | None = None
        self._last_line_s: float | None = None
        self._t0: float | None = None

    def __call__(self, p: Progress) -> None:
        if self._t0 is None:
            self._t0 = p.clock_s
        due = self._last_line_s is None or p.clock_s - self._last_line_s >= self.every_s
        if p.phase == self._last_phase and not due:
            return
        self._last_phase = p.phase
        self._last_line_s = p.clock_s
        self.emit(self.format(p))

    def format(self, p: Progress) -> str:
        t = format_duration(p.clock_s - (self._t0 or 0.0))
        dose = (
            f" ({p.dose_rate:.4g} {p.dose_rate_unit})"
            if p.dose_rate is not None and p.dose_rate_unit and p.rate_ml_per_h > 0
            else ""
        )
        seg = (
            f"{p.segment_delivered_ml:8.3f}/{p.segment_planned_ml:.3f} mL"
            if p.segment_planned_ml is not None
            else f"{p.segment_delivered_ml:8.3f} mL"
        )
        left = (
            f"  {format_duration(p.segment_remaining_s)} left"
            if p.segment_remaining_s is not None
            else ""
        )
        alarms = f"  ALARM: {', '.join(p.alarms)}" if p.alarms else ""
        return (
            f"[{t}] {p.phase:<11} {p.rate_ml_per_h:8.3f} mL/h{dose}  {seg}"
            f"  total {p.total_delivered_ml:.3f} mL{left}{alarms}"
        )


def summary_lines(plan: Plan, result: RunResult, *, resolution_ml: float) -> list[str]:
    """Planned vs delivered per phase, flagged where they disagree beyond the pump resolution."""
    lines = [
        f"program {plan.program}: {result.outcome.value}"
        + (f" (alarm: {result.alarm})" if result.alarm else ""),
        f"{'phase':<12}{'planned mL':>12}{'delivered mL':>14}{'diff mL':>10}  check",
    ]
    for ph in result.phases:
        planned = ph.planned_ml
        diff = ph.delivered_ml - planned if planned is not None else None
        ok = diff is not None and abs(diff) <= resolution_ml + 1e-9
        mark = "ok" if ok else ("open-ended" if planned is None else "DIFFERS")
        lines.append(
            f"{ph.phase.value:<12}"
            f"{(f'{planned:.3f}' if planned is not None else '-'):>12}"
            f"{ph.delivered_ml:>14.3f}"
            f"{(f'{diff:+.3f}' if diff is not None else '-'):>10}  {mark}"
        )
    volumes = [ph.planned_ml for ph in result.phases]
    total_planned = None if any(v is None for v in volumes) else sum(v or 0.0 for v in volumes)
    lines.append(
        f"{'total':<12}{(f'{total_planned:.3f}' if total_planned is not None else '-'):>12}"
        f"{result.delivered_ml:>14.3f}"
    )
    lines.append(
        f"clock time {format_duration(result.ended_s - result.started_s)};"
        f" pump volume resolution {resolution_ml:g} mL"
    )
    return lines
