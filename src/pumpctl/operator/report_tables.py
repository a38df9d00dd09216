"""The report's tables as text: the same cells in the figure and in the HTML page.

Apart from `report` (which derives the data from a journal) and `report_draw` (matplotlib), so
what a cell says is written once and tested without either.
"""

from __future__ import annotations

from pumpctl.operator.numbers import signed
from pumpctl.operator.report_data import ReportData

__all__ = ["PHASE_COLUMNS", "ROLLING_COLUMNS", "duration", "phase_rows", "rolling_rows"]

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
                "-" if r.difference_ml is None else signed(r.difference_ml),
                f"{r.planned_rate_ml_per_h:.4g}",
                dose,
                ran,
            )
        )
    planned = data.planned_ml
    diff = "-" if planned is None else signed(data.delivered_ml - planned)
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


def duration(seconds: float) -> str:
    """`4:05:30`, `2d 01:00:00`: clock time in the tables and event lists."""
    return _duration(seconds)


def _duration(seconds: float) -> str:
    total = max(0, round(seconds))
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    text = f"{hours:d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}" if days else text
