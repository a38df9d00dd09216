"""Human-readable progress and summaries for the CLI (plain lines; safe when piped)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pumpctl.dosing.plan import Plan, Segment, SegmentPhase
from pumpctl.infusion.outcome import Progress, RunResult
from pumpctl.operator.numbers import signed

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = ["LiveView", "PhaseTiming", "ProgressPrinter", "format_duration", "summary_lines"]


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
        alarms += f"  NOTE: {'; '.join(p.notices)}" if p.notices else ""
        return (
            f"[{t}] {p.phase:<11} {p.rate_ml_per_h:8.3f} mL/h{dose}  {seg}"
            f"  total {p.total_delivered_ml:.3f} mL{predicted_text(p)}{left}{alarms}"
        )


def predicted_text(p: Progress) -> str:
    """'  Cp 0.25 Ce 0.24 ug/mL (target 0.25)': population prediction, not a measurement."""
    if p.plasma_ug_per_ml is None or p.effect_ug_per_ml is None:
        return ""
    target = f" (target {p.tci_target_ug_per_ml:.3g})" if p.tci_target_ug_per_ml is not None else ""
    return f"  Cp {p.plasma_ug_per_ml:.3g} Ce {p.effect_ug_per_ml:.3g} ug/mL{target}"


class PhaseTiming:
    """Time each segment spent with the pump running and stopped (paused, waiting for a
    container change), from the progress the supervisor reports on every poll: what a summary
    needs to say why a phase took longer than planned."""

    def __init__(self) -> None:
        self.running_s: dict[SegmentPhase, float] = {}
        self.stopped_s: dict[SegmentPhase, float] = {}
        self._last: Progress | None = None

    def __call__(self, p: Progress) -> None:
        last, self._last = self._last, p
        if last is None or last.segment is None or last.segment != p.segment:
            return
        into = self.running_s if last.rate_ml_per_h > 0 else self.stopped_s
        into[last.segment] = into.get(last.segment, 0.0) + (p.clock_s - last.clock_s)


def _nominal_ml_per_h(plan: Plan, seg: Segment) -> float:
    """The rate the program asked for: from its dose rate as written when it has one (the
    plan's mL/h may be what the pump can be set to), else the plan's rate."""
    from pumpctl.dosing.units import QuantityError, parse_dose_rate

    if seg.dose_rate is None or not seg.dose_rate_unit or plan.concentration_mg_per_ml is None:
        return seg.rate_ml_per_h
    try:
        rate = parse_dose_rate(f"{seg.dose_rate:.12g} {seg.dose_rate_unit}", "rate")
    except QuantityError:
        return seg.rate_ml_per_h
    return rate.to_ml_per_h(
        weight_kg=plan.weight_kg or 1.0, concentration_mg_per_ml=plan.concentration_mg_per_ml
    )


def _why_longer(plan: Plan, result: RunResult, timing: PhaseTiming | None) -> list[str]:
    """A note for each phase that ended later than its nominal duration, saying why."""
    notes = []
    for ph in result.phases:
        seg = plan.segment_by_key(ph.key)
        if seg is None or seg.duration_s is None or ph.started_s is None or ph.ended_s is None:
            continue
        ran_s = ph.ended_s - ph.started_s
        if ran_s <= seg.duration_s * 1.002 + 5.0:
            continue
        why = []
        stopped_s = timing.stopped_s.get(ph.phase, 0.0) if timing else 0.0
        if stopped_s > 1.0:
            why.append(f"stopped for {format_duration(stopped_s)} (paused or changing containers)")
        nominal = _nominal_ml_per_h(plan, seg)
        if abs(ph.rate_ml_per_h - seg.rate_ml_per_h) > 1e-9:
            why.append(f"titrated to {ph.rate_ml_per_h:g} mL/h")
        elif seg.rate_ml_per_h < nominal * 0.998:  # the plan says what the pump was sent
            why.append(
                f"it ran at {seg.rate_ml_per_h:.4g} mL/h, "
                f"the pump's nearest rate at or below {nominal:.4g} mL/h"
            )
        if not why:
            why.append("no pause, titration or rate step explains it (late polls or a slow pump?)")
        notes.append(
            f"note: {ph.key} ran {format_duration(ran_s)}, "
            f"planned {format_duration(seg.duration_s)}: {'; '.join(why)}"
        )
    return notes


def summary_lines(plan: Plan, result: RunResult, timing: PhaseTiming | None = None) -> list[str]:
    """Planned vs delivered per phase, flagged where they disagree beyond the pump resolution,
    and a note for each phase that took longer than planned (with `timing`, saying why)."""
    resolution_ml = result.volume_resolution_ml
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
        if ph.phase.value == "tci":  # its volume is a ceiling (the pump's hard stop)
            mark = "ceiling" if planned is None or ph.delivered_ml <= planned + 1e-9 else "OVER"
        lines.append(
            f"{ph.key:<12}"
            f"{(f'{planned:.3f}' if planned is not None else '-'):>12}"
            f"{ph.delivered_ml:>14.3f}"
            f"{(signed(diff) if diff is not None else '-'):>10}  {mark}"
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
    return lines + _why_longer(plan, result, timing)


class LiveView:
    """A live panel for people at the pump (SR34): phase, rate in dose units and mL/h,
    delivered and remaining volume, time left, a progress bar per phase, alarms in red; and,
    on a virtual or scaled clock, simulated time next to wall time.

    Use only when stdout is a terminal (`rich.console.Console().is_terminal`); pipes and logs get
    `ProgressPrinter` lines instead.
    """

    def __init__(
        self, plan: Plan, *, pump: str, time_scale: float, console: Console | None = None
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self.plan = plan
        self.pump = pump
        self.time_scale = time_scale
        self.console = console or Console()
        # Live redirects stdout and stderr while it runs: log lines and echoes written to them
        # are printed above the panel instead of tearing it (see pumpctl.log._ConsoleHandler)
        self._live = Live(
            console=self.console,
            refresh_per_second=8,
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._wall0: float | None = None
        self._t0: float | None = None
        self._delivered: dict[str, float] = {}
        self._last_render = -1.0
        self._last_phase: str | None = None

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def __call__(self, p: Progress) -> None:
        from pumpctl.clock import wall_monotonic

        if self._t0 is None:
            self._t0, self._wall0 = p.clock_s, wall_monotonic()
        if p.segment is not None:
            self._delivered[p.segment_key or p.segment.value] = p.segment_delivered_ml
        now = wall_monotonic()
        # a virtual clock polls thousands of times a wall second: render ~10 times a second,
        # but at once on a phase change or an alarm
        if now - self._last_render < 0.1 and p.phase == self._last_phase and not p.alarms:
            return
        self._last_render, self._last_phase = now, p.phase
        self._live.update(self.render(p, now - (self._wall0 or 0.0)), refresh=True)

    def render(self, p: Progress, wall_s: float) -> RenderableType:
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        alarm = bool(p.alarms)
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[bold]{self.plan.program}[/]",
            f"phase [bold {'red' if alarm else 'cyan'}]{p.phase}[/]",
            f"rate [bold]{p.rate_ml_per_h:.3f}[/] mL/h"
            + (
                f" ({p.dose_rate:.4g} {p.dose_rate_unit})"
                if p.dose_rate is not None and p.dose_rate_unit and p.rate_ml_per_h > 0
                else ""
            ),
        )
        elapsed = p.clock_s - (self._t0 or 0.0)
        times = f"clock {format_duration(elapsed)}"
        if self.time_scale != 1.0:
            times += f"   wall {format_duration(wall_s)}"
        if p.segment_remaining_s is not None:
            times += f"   phase ends in {format_duration(p.segment_remaining_s)}"
        total = (
            f"delivered {p.total_delivered_ml:.3f} of {p.total_planned_ml:.3f} mL"
            f" (remaining {max(0.0, p.total_planned_ml - p.total_delivered_ml):.3f} mL)"
            if p.total_planned_ml is not None
            else f"delivered {p.total_delivered_ml:.3f} mL"
        )
        bars = Table.grid(padding=(0, 1))
        for seg in self.plan.segments:
            done = self._delivered.get(seg.key, 0.0)
            planned = seg.volume_ml
            width = planned if planned is not None else max(done, 1.0)
            bars.add_row(
                f"{seg.key:<12}",
                ProgressBar(total=width, completed=min(done, width), width=40),
                f"{done:8.3f} / {planned:.3f} mL" if planned is not None else f"{done:8.3f} mL",
            )
        parts: list[RenderableType] = [head, times, total]
        if predicted := predicted_text(p):
            parts.append(
                f"predicted{predicted}  [dim](population model, not a measured concentration)[/]"
            )
        parts.append(bars)
        parts.extend(f"[bold yellow]{notice}[/]" for notice in p.notices)
        if alarm:
            parts.append(f"[bold white on red] ALARM: {', '.join(p.alarms)} [/]")
        return Panel(
            Group(*parts),
            title=f"pump {self.pump}",
            border_style="red" if alarm else "green",
        )
