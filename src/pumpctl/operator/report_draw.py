"""Drawing a report: the rate and volume axes, the tables, and the one-file HTML page.

Read at a glance by someone who was not there: the time axis is in h:mm of clock time, legends
sit beside the plots (never over the curves), stops and container changes are labelled where
they happened, each table has a title, and the dose axis speaks the program's own unit.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pumpctl.operator.report_data import ReportData
from pumpctl.operator.report_tables import (
    PHASE_COLUMNS,
    ROLLING_COLUMNS,
    duration,
    phase_rows,
    rolling_rows,
)

__all__ = ["event_rows", "hours_minutes", "render_report", "report_figure", "tick_minutes"]

_PHASE_COLOURS = {
    "prime": "#d9d9d9",
    "loading": "#fdd0a2",
    "maintenance": "#c6dbef",
    "kvo": "#c7e9c0",
}
_CHANGE_COLOUR = "#6a51a3"
_STOP_COLOUR = "#252525"
_ALARM_COLOUR = "#d62728"
#: container changes are named one by one up to this many; beyond, the legend counts them
_NAMED_CHANGES = 8


def render_report(data: ReportData, out: Path) -> Path:
    """Write the report to `out`: `.png` or `.svg` (figure with tables), `.html` (tables as HTML
    and the PNG embedded as base64, one self-contained file). Returns `out`."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".svg", ".html", ".htm"):
        raise ValueError(f"report format {out.suffix!r} not supported: use .png, .svg or .html")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".png", ".svg"):
        _save(report_figure(data, tables=True), out, suffix[1:])
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


def hours_minutes(hours: float, _pos: object = None) -> str:
    """An axis position in hours as `h:mm` (`0:30`, `4:05`, `121:00` for a 5-day run)."""
    minutes = max(0, round(hours * 60))
    return f"{minutes // 60}:{minutes % 60:02d}"


def report_figure(data: ReportData, *, tables: bool = True) -> Any:
    """The matplotlib figure (Agg): rate axes, volume axes and, with `tables`, the tables.
    The caller closes it (`matplotlib.pyplot.close`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "pumpctl"
    pk = bool(data.predicted)
    heights = [3.0, 2.6] + ([2.2] if pk else []) + ([2.6] if tables else [])
    fig = plt.figure(figsize=(12, sum(heights) + 0.9))
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.45)
    ax_rate = fig.add_subplot(grid[0])
    ax_vol = fig.add_subplot(grid[1], sharex=ax_rate)
    axes = [ax_rate, ax_vol]
    if pk:
        axes.append(fig.add_subplot(grid[2], sharex=ax_rate))
    fig.suptitle(_title(data), fontsize=11)
    for ax in axes:
        _shade(ax, data)
        _mark_events(ax, data, labelled=ax is ax_rate)
    _draw_rate(ax_rate, data)
    _draw_volume(ax_vol, data)
    if pk:
        _draw_predicted(axes[2], data)
    if tables:
        _draw_tables(fig.add_subplot(grid[len(axes)]), data)
    # room on the right for the dose axis and, beyond it, the legends
    fig.subplots_adjust(left=0.07, right=0.76, top=0.91, bottom=0.05)
    return fig


def _title(data: ReportData) -> str:
    drug = f" — {data.drug} {data.concentration_mg_per_ml:g} mg/mL" if data.drug else ""
    return (
        f"{data.program}{drug} — {data.pump_model} — {data.status} — run {data.run_id[:12]}\n"
        f"delivered {data.delivered_ml:.3f} mL"
        + ("" if data.planned_ml is None else f" of {data.planned_ml:.3f} mL planned")
        + f" in {duration(data.duration_s)} (clock time)"
    )


def _shade(ax: Any, data: ReportData) -> None:
    for row in data.phases:
        if row.started_s is None:
            continue
        end = row.ended_s if row.ended_s is not None else data.duration_s
        colour = _PHASE_COLOURS.get(row.phase, "#eeeeee")
        ax.axvspan(
            _hours(row.started_s), _hours(end), color=colour, alpha=0.6, lw=0, label=row.phase
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


def _mark_events(ax: Any, data: ReportData, *, labelled: bool) -> None:
    """Alarms, operator stops and container changes where they happened; on the rate axes
    each also gets its words at the top (a change's only while there are few of them)."""
    changes = data.container_changes
    kind = changes[0].kind if changes else "container"
    for i, change in enumerate(changes, start=1):
        end = change.changed_s if change.changed_s is not None else data.duration_s
        count = f" ×{len(changes)}" if len(changes) > 1 else ""
        ax.axvspan(
            _hours(change.needed_s),
            _hours(end),
            color=_CHANGE_COLOUR,
            alpha=0.25,
            lw=0,
            label=f"{kind} change{count}",
        )
        if labelled and len(changes) <= _NAMED_CHANGES:
            _annotate(ax, change.needed_s, f"{kind} change {i}", _CHANGE_COLOUR)
    for stop in data.stops:
        ax.axvline(_hours(stop.t_s), color=_STOP_COLOUR, ls="--", lw=1.5, label="operator stop")
        if labelled:
            who = f" ({stop.who})" if stop.who else ""
            _annotate(ax, stop.t_s, f"stopped by operator{who}", _STOP_COLOUR)
    for alarm in data.alarms:
        ax.axvline(_hours(alarm.t_s), color=_ALARM_COLOUR, lw=1.5, label="alarm")
        if labelled:
            _annotate(ax, alarm.t_s, f"alarm: {alarm.reason}", _ALARM_COLOUR)


def _annotate(ax: Any, t_s: float, text: str, colour: str) -> None:
    ax.annotate(
        text,
        (_hours(t_s), 0.98),
        xycoords=("data", "axes fraction"),
        rotation=90,
        va="top",
        ha="right",
        fontsize=8,
        color=colour,
    )


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
            color="#31a354" if tit.accepted else _ALARM_COLOUR,
            ms=8,
            ls="none",
            label="titration" if tit.accepted else "titration refused",
        )
    ax.set_ylabel("rate (mL/h)")
    ax.set_ylim(bottom=0, top=max([1.0, *ys]) * 1.15)
    ax.grid(alpha=0.3)
    factor = data.dose_per_ml
    if factor is not None and data.dose_rate_unit:
        dose_axis = ax.secondary_yaxis(
            "right", functions=(lambda v: v * factor, lambda v: v / factor)
        )
        dose_axis.set_ylabel(f"dose rate ({data.dose_rate_unit})")
    ax.tick_params(labelbottom=True)
    _time_axis(ax, data)
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
    ax.set_ylabel("cumulative volume (mL)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _time_axis(ax, data)
    ax.set_xlabel("clock time since start (h:mm)")
    _legend(ax)


def _draw_predicted(ax: Any, data: ReportData) -> None:
    """Predicted plasma and effect-site concentration, as the supervisor computed them from the
    pump's reported volumes: a population model, not the patient's measured concentration."""
    ts = [_hours(t) for t, _, _ in data.predicted]
    ax.plot(ts, [cp for _, cp, _ in data.predicted], color="#a50f15", lw=1.6, label="plasma")
    ax.plot(ts, [ce for _, _, ce in data.predicted], color="#fd8d3c", lw=1.4, label="effect site")
    ax.set_ylabel("predicted (ug/mL)")
    ax.set_title(
        f"predicted concentration ({data.pk_model or 'model'}; population model, not measured)",
        fontsize=9,
        loc="left",
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _time_axis(ax, data)
    _legend(ax)


#: tick spacings a clock reads easily, minutes
_TICK_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880)


def tick_minutes(duration_s: float, most: int = 12) -> int:
    """The smallest easy spacing that puts at most `most` ticks on a run this long."""
    return next((m for m in _TICK_MINUTES if duration_s / 60 / m <= most), _TICK_MINUTES[-1])


def _time_axis(ax: Any, data: ReportData) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    ax.xaxis.set_major_locator(MultipleLocator(tick_minutes(data.duration_s) / 60))
    ax.xaxis.set_major_formatter(FuncFormatter(hours_minutes))
    ax.set_xlim(left=0, right=max(_hours(data.duration_s), 1e-3))


def _legend(ax: Any) -> None:
    """One entry per label, outside the axes to the right (beyond the dose axis)."""
    handles, labels = ax.get_legend_handles_labels()
    unique: dict[str, Any] = {}
    for handle, label in zip(handles, labels, strict=True):
        unique.setdefault(label, handle)
    ax.legend(
        unique.values(),
        unique.keys(),
        loc="upper left",
        bbox_to_anchor=(1.1, 1.0),
        borderaxespad=0.0,
        fontsize=8,
        frameon=False,
    )


def _draw_tables(ax: Any, data: ReportData) -> None:
    ax.axis("off")
    layout = (
        ("Planned vs delivered per phase", PHASE_COLUMNS, phase_rows(data), (0.0, 0.0, 0.66, 0.86)),
        (
            "Rolling totals: largest in any window, and the last window (SR08)",
            ROLLING_COLUMNS,
            rolling_rows(data),
            (0.70, 0.26, 0.42, 0.6),
        ),
    )
    for title, columns, rows, bbox in layout:
        ax.text(bbox[0], 0.93, title, transform=ax.transAxes, fontsize=9, fontweight="bold")
        table = ax.table(cellText=rows, colLabels=columns, bbox=bbox, cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.auto_set_column_width(list(range(len(columns))))


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


def event_rows(data: ReportData) -> list[tuple[str, str, str, str]]:
    """Titrations, pauses, container changes, stops and alarms in clock order (HTML list)."""
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
            p.reason if p.ended_s is None else f"{p.reason} (ended at {duration(p.ended_s)})",
        )
        for p in data.pauses
    ]
    events += [
        (
            c.needed_s,
            f"{c.kind} change" + ("" if c.changed_s is not None else " (never confirmed)"),
            c.who,
            "" if c.changed_s is None else f"confirmed at {duration(c.changed_s)}",
        )
        for c in data.container_changes
    ]
    events += [(s.t_s, "stopped by operator", s.who, s.reason) for s in data.stops]
    events += [(a.t_s, f"ALARM {a.reason}", "", a.detail) for a in data.alarms]
    return [(duration(t), what, who, why) for t, what, who, why in sorted(events)]


def _html(data: ReportData, png_b64: str) -> str:
    esc = html.escape
    rows = event_rows(data)
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
        "<h2>Titrations, pauses, container changes, stops and alarms</h2>",
        _html_table(("clock", "event", "who", "reason / detail"), rows) if rows else "<p>none</p>",
    ]
    if data.warnings:
        parts.append("<h2>Plan warnings</h2><ul>")
        parts += [f"<li>{esc(w)}</li>" for w in data.warnings]
        parts.append("</ul>")
    if data.skipped_events:
        parts.append("<h2>Journal events left out (they match no known event)</h2><ul>")
        parts += [f"<li>{esc(w)}</li>" for w in data.skipped_events]
        parts.append("</ul>")
    parts.append(
        "<p><small>From the journal alone; delivered volume from the pump's counters, "
        "checkpointed every 60 clock seconds and on every state change.</small></p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
