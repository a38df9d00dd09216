"""What the operator sees (SR34): the live panel and the plain progress lines."""

from __future__ import annotations

from rich.console import Console

from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.infusion.supervisor import Progress
from pumpctl.operator.display import LiveView, ProgressPrinter, format_duration


def progress(**overrides: object) -> Progress:
    values: dict[str, object] = {
        "clock_s": 7200.0,
        "phase": "maintenance",
        "segment": SegmentPhase.MAINTENANCE,
        "rate_ml_per_h": 7.0,
        "dose_rate": 0.2,
        "dose_rate_unit": "mg/kg/h",
        "segment_delivered_ml": 10.5,
        "segment_planned_ml": 28.0,
        "total_delivered_ml": 23.25,
        "total_planned_ml": 40.75,
        "segment_remaining_s": 9000.0,
        "alarms": [],
    }
    values.update(overrides)
    return Progress.model_validate(values)


def render_text(view: LiveView, p: Progress) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(view.render(p, wall_s=3.0))
    return console.export_text()


def test_SR34_panel_shows_phase_rates_volumes_time_left_and_both_clocks(acute_plan: Plan) -> None:
    view = LiveView(acute_plan, pump="sim://ne1000", time_scale=float("inf"))
    view._t0 = 0.0
    text = render_text(view, progress())
    assert "phase maintenance" in text
    assert "7.000 mL/h (0.2 mg/kg/h)" in text
    assert "delivered 23.250 of 40.750 mL" in text and "remaining 17.500 mL" in text
    assert "phase ends in 02:30:00" in text
    assert "clock 02:00:00" in text and "wall 00:00:03" in text
    assert "ALARM" not in text


def test_SR34_panel_shows_alarm_in_red_and_no_wall_clock_in_real_time(acute_plan: Plan) -> None:
    view = LiveView(acute_plan, pump="ne1000@/dev/ttyUSB0", time_scale=1.0)
    view._t0 = 0.0
    text = render_text(view, progress(phase="alarm", rate_ml_per_h=0.0, alarms=["stall"]))
    assert "ALARM: stall" in text
    assert "wall" not in text
    assert "(0.2 mg/kg/h)" not in text  # a stopped pump delivers no dose rate


def test_progress_lines_on_phase_change_and_interval() -> None:
    lines: list[str] = []
    printer = ProgressPrinter(lines.append, every_s=600.0)
    printer(progress(clock_s=0.0, phase="loading"))
    printer(progress(clock_s=60.0, phase="loading"))  # same phase, not due: silent
    printer(progress(clock_s=120.0, phase="maintenance"))  # phase change: printed
    printer(progress(clock_s=720.0, phase="maintenance"))  # interval due: printed
    assert len(lines) == 3
    assert lines[1].startswith("[00:02:00] maintenance")
    assert format_duration(2 * 86400 + 3661) == "2d 01:01:01"
