"""What the operator sees (SR34): the live panel and the plain progress lines."""

from __future__ import annotations

from rich.console import Console

from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.infusion.outcome import Outcome, PhaseResult, RunResult
from pumpctl.infusion.supervisor import Progress
from pumpctl.operator.display import (
    LiveView,
    PhaseTiming,
    ProgressPrinter,
    format_duration,
    summary_lines,
)
from pumpctl.operator.numbers import signed


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


def test_diff_columns_never_show_negative_zero(acute_plan: Plan) -> None:
    result = RunResult(
        outcome=Outcome.COMPLETED,
        phases=[
            PhaseResult(
                phase=SegmentPhase.PRIME, planned_ml=0.5, delivered_ml=0.4996, rate_ml_per_h=120.0
            ),
            PhaseResult(
                phase=SegmentPhase.LOADING, planned_ml=12.25, delivered_ml=12.2, rate_ml_per_h=73.5
            ),
        ],
        started_s=0.0,
        ended_s=660.0,
        volume_resolution_ml=0.001,
    )
    lines = summary_lines(acute_plan, result)
    assert "-0.000" not in "\n".join(lines)
    assert lines[2].split()[3] == "+0.000" and lines[3].split()[3] == "-0.050"
    assert (signed(-0.0004), signed(0.0), signed(-0.0), signed(0.0126)) == (
        "+0.000",
        "+0.000",
        "+0.000",
        "+0.013",
    )


def ran(phase: SegmentPhase, seconds: float, rate: float, delivered: float) -> PhaseResult:
    return PhaseResult(
        phase=phase, planned_ml=28.0, delivered_ml=delivered, rate_ml_per_h=rate,
        started_s=0.0, ended_s=seconds,
    )  # fmt: skip


def timed(running_s: float, stopped_s: float) -> PhaseTiming:
    """The timing the progress of a maintenance segment gives: running, then stopped."""
    timing = PhaseTiming()
    for t, rate in ((0.0, 7.0), (running_s, 0.0), (running_s + stopped_s, 7.0)):
        timing(progress(clock_s=t, rate_ml_per_h=rate))
    return timing


def maintenance_plan() -> Plan:
    """0.2 mg/kg/h for 4 h at 2 mg/mL, 70 kg: 7 mL/h, 28 mL, as `pumpctl check` compiles it."""
    from pumpctl.dosing.check import check_program
    from pumpctl.dosing.program import example_path

    plan = check_program(example_path("acute-pain.yaml")).plan
    assert plan is not None
    return plan


def notes_for(
    phase: PhaseResult, timing: PhaseTiming | None, plan: Plan | None = None
) -> list[str]:
    result = RunResult(
        outcome=Outcome.COMPLETED, phases=[phase], started_s=0.0, ended_s=phase.ended_s or 0.0,
        volume_resolution_ml=0.001,
    )  # fmt: skip
    lines = summary_lines(plan or maintenance_plan(), result, timing)
    return [line for line in lines if line.startswith("note")]


def test_a_phase_slower_than_planned_says_it_was_the_pumps_rate_step() -> None:
    """A pump that can only be set to 6.84 mL/h when the program asks for 7 (0.2 mg/kg/h)
    delivers 28 mL in 4:05:37; the plan's rate is what the pump was sent."""
    plan = maintenance_plan()
    slow = [s.model_copy(update={"rate_ml_per_h": 6.84}) for s in plan.segments]
    plan = plan.model_copy(update={"segments": tuple(slow)})
    ran_s = 28.0 / 6.84 * 3600.0
    (note,) = notes_for(
        ran(SegmentPhase.MAINTENANCE, ran_s, 6.84, 28.0), timed(ran_s, 0.0), plan=plan
    )
    assert note == (
        "note: maintenance ran 04:05:37, planned 04:00:00: it ran at 6.84 mL/h, "
        "the pump's nearest rate at or below 7 mL/h"
    )


def test_a_late_phase_with_no_known_cause_does_not_blame_the_rate_step() -> None:
    """Polls that came late (a loaded machine at a high time scale) make a phase look long:
    the note says nothing explains it rather than invent a rate step."""
    (note,) = notes_for(ran(SegmentPhase.MAINTENANCE, 4 * 3600 + 600, 7.0, 28.0), None)
    assert note.endswith(
        ": no pause, titration or rate step explains it (late polls or a slow pump?)"
    )


def test_a_phase_longer_for_a_pause_says_so_and_blames_no_rate() -> None:
    (note,) = notes_for(
        ran(SegmentPhase.MAINTENANCE, 4 * 3600 + 300, 7.0, 28.0), timed(4 * 3600, 300)
    )
    assert note == (
        "note: maintenance ran 04:05:00, planned 04:00:00: "
        "stopped for 00:05:00 (paused or changing containers)"
    )


def test_a_titrated_phase_says_so_and_an_on_time_phase_gets_no_note() -> None:
    (note,) = notes_for(ran(SegmentPhase.MAINTENANCE, 5 * 3600, 5.0, 28.0), None)
    assert note.endswith(": titrated to 5 mL/h")
    assert notes_for(ran(SegmentPhase.MAINTENANCE, 4 * 3600 + 2, 7.0, 28.0), None) == []
