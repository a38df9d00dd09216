"""`pumpctl report`: series, tables and images derived from a journal alone."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from click.testing import CliRunner

from pumpctl.clock import Clock, run_with_clock
from pumpctl.dosing.plan import ContainerSpec, Plan, RollingLimits, Segment, SegmentPhase
from pumpctl.dosing.program import example_path
from pumpctl.families import family
from pumpctl.infusion.journal import Journal, JournalError
from pumpctl.operator.cli import main
from pumpctl.operator.cli.common import Exit
from pumpctl.operator.report import (
    Alarm,
    Pause,
    PhaseRow,
    build_report,
    phase_rows,
    render_report,
    report_figure,
    rolling_max_ml,
    rolling_rows,
)
from pumpctl.operator.report_draw import hours_minutes, tick_minutes
from pumpctl.runner import DemoScenario, run_on_simulator

from .conftest import analgesia_plan

T0 = 1000.0  # clock seconds at the run's start: report times are relative to it

PLAN = analgesia_plan(rolling_limits=RollingLimits(max_1h_ml=30.0, max_4h_ml=100.0))


def checkpoint(phase: str, delivered_ml: float) -> dict[str, Any]:
    return {"phase": phase, "delivered_ml": delivered_ml, "pump_counter_ml": delivered_ml}


def transition(source: str, dest: str, trigger: str, **info: Any) -> dict[str, Any]:
    return {"source": source, "dest": dest, "trigger": trigger, "info": info}


#: loading 24.5 mL in 10 min; maintenance 14 mL/h for 30 min, titrated to 21 mL/h for 30 min,
#: paused 5 min, 30 min more, then a stall alarm (times are clock seconds after T0)
EVENTS: list[tuple[float, str, str | None, dict[str, Any]]] = [
    (0, "transition", "loading", transition("ready", "loading", "start_loading")),
    (0, "segment_start", "loading", PLAN.segments[0].model_dump(mode="json")),
    (300, "checkpoint", "loading", checkpoint("loading", 12.25)),
    (600, "segment_end", "loading", {"phase": "loading", "planned_ml": 24.5, "delivered_ml": 24.5}),
    (600, "transition", "maintenance", transition("loading", "maintenance", "start_maintenance")),
    (600, "segment_start", "maintenance", PLAN.segments[1].model_dump(mode="json")),
    (2400, "checkpoint", "maintenance", checkpoint("maintenance", 7.0)),
    (
        2400,
        "titration",
        "maintenance",
        {
            "accepted": True,
            "old_ml_per_h": 14.0,
            "new_ml_per_h": 21.0,
            "who": "dr",
            "reason": "pain",
        },
    ),
    (4200, "checkpoint", "maintenance", checkpoint("maintenance", 17.5)),
    (
        4200,
        "transition",
        "paused",
        transition("maintenance", "paused", "pause", who="nurse", reason="reposition"),
    ),
    (4500, "checkpoint", "paused", checkpoint("maintenance", 17.5)),
    (4500, "transition", "maintenance", transition("paused", "maintenance", "resume", who="nurse")),
    (
        4600,
        "titration",
        "maintenance",
        {
            "accepted": False,
            "old_ml_per_h": 21.0,
            "new_ml_per_h": 50.0,
            "who": "dr",
            "error": "step",
        },
    ),
    (6300, "checkpoint", "maintenance", checkpoint("maintenance", 28.0)),
    (6300, "alarm", "maintenance", {"reason": "stall", "detail": "pump reports alarm (S)"}),
    (6300, "transition", "alarm", transition("maintenance", "alarm", "alarm", reason="stall")),
    (6310, "checkpoint", "alarm", checkpoint("maintenance", 28.0)),
    (6310, "note", "alarm", {"event": "run_ended", "result": {"outcome": "alarm"}}),
]


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "j.db"
    ticks = itertools.count()
    with Journal(path, wall_clock=lambda: 1_790_000_000.0 + next(ticks)) as journal:
        run_id = journal.start_run(
            program=PLAN.program,
            program_hash=PLAN.program_hash,
            plan_json=PLAN.model_dump_json(),
            pump_model="ne1000",
            port="sim://ne1000",
            address=0,
            t_clock_s=T0,
        )
        for t, kind, phase, payload in EVENTS:
            journal.append(run_id, kind, payload, t_clock_s=T0 + t, phase=phase)
        journal.set_run_status(run_id, "alarm")
    return path


def test_series_of_a_hand_written_run(journal_path: Path) -> None:
    data = build_report(journal_path)
    assert data.program == "ketamine-analgesia"
    assert data.status == "alarm"
    assert data.duration_s == 6310.0
    assert data.rate_steps == (
        (0.0, 147.0),
        (600.0, 14.0),
        (2400.0, 21.0),
        (4200.0, 0.0),
        (4500.0, 21.0),
        (6300.0, 0.0),
    )
    assert data.delivered == (
        (0.0, 0.0),
        (300.0, 12.25),
        (600.0, 24.5),
        (2400.0, 31.5),
        (4200.0, 42.0),
        (4500.0, 42.0),
        (6300.0, 52.5),
        (6310.0, 52.5),
    )
    assert data.delivered_ml == 52.5
    # the plan back to back: loading ends at 600 s, maintenance 4 h later
    assert data.planned == ((0.0, 0.0), (600.0, 24.5), (15000.0, 80.5))
    assert data.planned_ml == 80.5


def test_phases_pauses_titrations_alarms(journal_path: Path) -> None:
    data = build_report(journal_path)
    assert data.phases == (
        PhaseRow("loading", 24.5, 24.5, 147.0, 0.035, "mg/kg/min", 0.0, 600.0),
        PhaseRow("maintenance", 56.0, 28.0, 14.0, 0.2, "mg/kg/h", 600.0, 6300.0),
    )
    assert data.phases[1].difference_ml == -28.0
    assert data.pauses == (Pause(4200.0, 4500.0, "nurse", "reposition"),)
    assert [
        (t.t_s, t.old_ml_per_h, t.new_ml_per_h, t.accepted, t.who, t.reason)
        for t in data.titrations
    ] == [
        (2400.0, 14.0, 21.0, True, "dr", "pain"),
        (4600.0, 21.0, 50.0, False, "dr", "step"),
    ]
    assert data.alarms == (Alarm(6300.0, "stall", "pump reports alarm (S)"),)


def test_dose_rate_in_one_unit_for_the_whole_run(journal_path: Path) -> None:
    data = build_report(journal_path)
    # 1 mg/mL, 70 kg: 14 mL/h = 0.2 mg/kg/h, 147 mL/h = 2.1 mg/kg/h (= 0.035 mg/kg/min)
    assert data.dose_rate_unit == "mg/kg/h"
    assert data.dose_rate(14.0) == pytest.approx(0.2, abs=1e-12)
    assert data.dose_rate(147.0) == pytest.approx(2.1, abs=1e-12)


def test_rolling_totals_against_library_limits(journal_path: Path) -> None:
    data = build_report(journal_path)
    by_window = {r.window: r for r in data.rolling}
    # first hour: 24.5 loading + 14 mL/h x 0.5 h + 21 mL/h x 1/3 h = 38.5 mL (over the 30 mL limit)
    assert by_window["1h"].max_ml == pytest.approx(38.5, abs=1e-9)
    assert by_window["1h"].max_window_end_s == 3600.0
    assert by_window["1h"].within_limit is False
    # last hour (5:10..1:45:10): 52.5 - (31.5 + 21 x 310/3600)
    assert by_window["1h"].last_ml == pytest.approx(52.5 - 31.5 - 21 * 310 / 3600, abs=1e-9)
    assert by_window["4h"].max_ml == pytest.approx(52.5, abs=1e-9)
    assert by_window["4h"].within_limit is True
    assert by_window["24h"].limit_ml is None
    assert by_window["24h"].within_limit is None
    assert rolling_rows(data) == [
        ("1h", "38.500", "1:00:00", "19.192", "30.000 EXCEEDED"),
        ("4h", "52.500", "1:45:00", "52.500", "100.000"),
        ("24h", "52.500", "1:45:00", "52.500", "-"),
    ]


def test_phase_table_rows(journal_path: Path) -> None:
    assert phase_rows(build_report(journal_path)) == [
        ("loading", "24.500", "24.500", "+0.000", "147", "0.035 mg/kg/min", "0:00:00–0:10:00"),
        ("maintenance", "56.000", "28.000", "-28.000", "14", "0.2 mg/kg/h", "0:10:00–1:45:00"),
        ("total", "80.500", "52.500", "-28.000", "", "", ""),
    ]


def test_rolling_max_is_exact_between_breakpoints() -> None:
    # 10 mL in the first 10 min, then nothing until 55 min, then 6 mL in 5 min
    points = [(0.0, 0.0), (600.0, 10.0), (3000.0, 10.0), (3300.0, 16.0), (7200.0, 16.0)]
    assert rolling_max_ml(points, 3600.0) == (pytest.approx(16.0), 3300.0)  # both bursts
    assert rolling_max_ml(points, 600.0) == (pytest.approx(10.0), 600.0)  # the first only
    # 50 min: the best window ends with the second burst (5:00..55:00 + 5 min), holding
    # 10 - 5 mL of the first burst (the part after 5:00) and all 6 mL of the second: 11 mL; this
    # end is a breakpoint, its start (300 s) is not one
    assert rolling_max_ml(points, 3000.0) == (pytest.approx(11.0), 3300.0)
    assert rolling_max_ml([], 3600.0) == (0.0, 0.0)


def test_unknown_run_and_missing_journal(journal_path: Path, tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="not in this journal"):
        build_report(journal_path, "ffff")
    with pytest.raises(JournalError, match="no journal"):
        build_report(tmp_path / "missing.db")


@pytest.mark.parametrize("suffix", [".png", ".svg", ".html"])
def test_render_every_format(journal_path: Path, tmp_path: Path, suffix: str) -> None:
    out = render_report(build_report(journal_path), tmp_path / f"report{suffix}")
    content = out.read_bytes()
    if suffix == ".png":
        assert content.startswith(b"\x89PNG\r\n\x1a\n")
    elif suffix == ".svg":
        assert b"<svg" in content
        # no date in the metadata: the same journal draws the same bytes
        again = render_report(build_report(journal_path), tmp_path / "again.svg")
        assert again.read_bytes() == content
    else:
        text = content.decode()
        assert "data:image/png;base64,iVBORw0KGgo" in text  # base64 of the PNG signature
        assert "<td>38.500</td>" in text and "30.000 EXCEEDED" in text
        assert "ALARM stall" in text and "titration 14 → 21 mL/h (0.2 → 0.3 mg/kg/h)" in text
        assert "reposition (ended at 1:15:00)" in text


def test_unsupported_format(journal_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"use \.png, \.svg or \.html"):
        render_report(build_report(journal_path), tmp_path / "report.pdf")


def _demo_journal(path: Path) -> None:
    from pumpctl.dosing.check import check_program

    plan = check_program(example_path(family("ne1000").demo_program), {}).plan
    assert plan is not None

    async def main(clock: Clock) -> Any:
        with Journal(path) as journal:
            return await run_on_simulator(plan, clock, journal=journal, operator=DemoScenario())

    run_with_clock(main, virtual=True)


def test_report_of_the_demo_draws_phases_and_delivered_curve(tmp_path: Path) -> None:
    """The issue's acceptance: the demo's journal gives a PNG with the phases and the curve."""
    journal = tmp_path / "demo.db"
    _demo_journal(journal)
    data = build_report(journal)
    assert [(p.phase, p.planned_ml, p.delivered_ml) for p in data.phases] == [
        ("prime", 0.5, 0.5),
        ("loading", 12.25, 12.25),
        ("maintenance", 28.0, 28.0),
    ]
    assert data.delivered_ml == pytest.approx(40.75, abs=1e-9)
    assert [(p.ended_s - p.started_s) for p in data.pauses if p.ended_s is not None] == [300.0]
    fig = report_figure(data, tables=False)
    try:
        ax_rate, ax_volume = fig.axes[:2]
        shaded = {patch.get_label() for patch in ax_rate.patches}
        assert {"prime", "loading", "maintenance", "paused"} <= shaded
        lines = {line.get_label(): line for line in ax_volume.get_lines()}
        delivered = lines["delivered (pump counter)"]
        assert delivered.get_ydata()[-1] == pytest.approx(40.75)
        assert lines["planned"].get_ydata()[-1] == pytest.approx(40.75)
    finally:
        plt.close(fig)
    out = tmp_path / "report.png"
    result = CliRunner().invoke(main, ["report", str(journal), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "40.750 mL delivered of 40.750 mL planned" in result.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_cli_errors(journal_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad_run = runner.invoke(
        main, ["report", str(journal_path), "--run", "ffff", "-o", str(tmp_path / "r.png")]
    )
    assert bad_run.exit_code == Exit.BAD_INPUT
    assert "not in this journal" in bad_run.output
    bad_format = runner.invoke(main, ["report", str(journal_path), "-o", str(tmp_path / "r.pdf")])
    assert bad_format.exit_code == Exit.USAGE
    assert "r.pdf: use .png, .svg, .html" in bad_format.output


def test_an_event_that_matches_no_model_is_left_out_and_named(
    journal_path: Path, tmp_path: Path
) -> None:
    with Journal(journal_path) as journal:
        run = journal.latest_run()
        assert run is not None
        # a titration whose keys were renamed by some other writer: not guessed at
        journal.append(run.run_id, "titration", {"accepted": True, "to": 99.0}, t_clock_s=T0 + 6310)
    data = build_report(journal_path)
    assert len(data.skipped_events) == 1
    assert "does not match TitrationEvent" in data.skipped_events[0]
    assert data.delivered_ml == 52.5 and len(data.titrations) == 2  # the rest is intact
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(journal_path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: left out of the report: event " in result.stderr
    assert "Journal events left out" in out.read_text(encoding="utf-8")


def test_open_ended_maintenance_and_an_operator_stop(tmp_path: Path) -> None:
    """A segment `until stopped` has no planned volume: the plan curve runs at its rate to the
    end of the run, and the totals say '-' rather than invent a plan."""
    plan = Plan(
        program="until-stopped",
        program_hash="cd" * 32,
        container=ContainerSpec(inner_diameter_mm=26.7, capacity_ml=60.0),
        segments=(Segment(phase=SegmentPhase.MAINTENANCE, rate_ml_per_h=6.0),),
    )
    path = tmp_path / "open.db"
    with Journal(path) as journal:
        run_id = journal.start_run(
            program=plan.program,
            program_hash=plan.program_hash,
            plan_json=plan.model_dump_json(),
            pump_model="ne1000",
            port="sim://ne1000",
            address=0,
            t_clock_s=0.0,
        )
        for t, kind, phase, payload in [
            (0.0, "segment_start", "maintenance", plan.segments[0].model_dump(mode="json")),
            (1800.0, "checkpoint", "maintenance", checkpoint("maintenance", 3.0)),
            (1800.0, "note", "maintenance", {"event": "stop_requested", "who": "op"}),
            (1800.0, "transition", "stopped", transition("maintenance", "stopped", "stop")),
        ]:
            journal.append(run_id, kind, payload, t_clock_s=t, phase=phase)
    data = build_report(path)
    assert data.planned == ((0.0, 0.0), (1800.0, 3.0))
    assert data.planned_ml is None
    assert data.rate_steps == ((0.0, 6.0), (1800.0, 0.0))
    assert data.phases[0].ended_s == 1800.0
    assert data.dose_rate_unit is None and data.dose_rate(6.0) is None
    assert phase_rows(data)[-1] == ("total", "-", "3.000", "-", "", "", "")
    assert rolling_rows(data)[0] == ("1h", "3.000", "0:30:00", "3.000", "-")


# ------------------------------------------------------------------ reading the PNG (issue 12)

SMALL_SYRINGE = """
program: small-syringe
drug: {{name: ketamine, concentration: 2 mg/mL}}
patient: {{weight: 70 kg, care_area: adult}}
library: {library}
pump: {{syringe: {{inner_diameter: 14.5 mm, volume: 10 mL}}, changes: allowed}}
phases:
  prime: {{volume: 0.5 mL}}
  maintenance: {{rate: 0.2 mg/kg/h, duration: 4 h}}
"""


@pytest.fixture(scope="module")
def changes_and_stop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 mL syringe (one change after 10 mL) and an operator stop at 2 h."""
    from pumpctl.dosing.check import check_program

    tmp = tmp_path_factory.mktemp("report")
    program = tmp / "small.yaml"
    library = example_path("acute-pain.yaml").parent / "library" / "ketamine.yaml"
    program.write_text(SMALL_SYRINGE.format(library=library))
    plan = check_program(program).plan
    assert plan is not None
    path = tmp / "stopped.db"

    async def stop_at_2h(sup: Any, clock: Clock) -> None:
        await clock.sleep(2 * 3600)
        await sup.stop(reason="end of study", who="dr who")

    async def main(clock: Clock) -> Any:
        with Journal(path) as journal:
            return await run_on_simulator(
                plan, clock, journal=journal, operator=stop_at_2h, change_containers=True
            )

    run_with_clock(main, virtual=True)
    return path


def test_stops_and_container_changes_are_events_not_pauses(changes_and_stop: Path) -> None:
    data = build_report(changes_and_stop)
    assert [(s.who, s.reason) for s in data.stops] == [("dr who", "end of study")]
    (change,) = data.container_changes
    assert change.kind == "syringe" and change.who == "demo nurse"
    assert change.changed_s is not None and change.changed_s - change.needed_s >= 300.0
    assert data.pauses == ()  # waiting for a syringe is not the operator's pause
    rate_at = dict(data.rate_steps)
    assert rate_at[change.needed_s] == 0.0 and rate_at[change.changed_s] == 7.0


def test_the_png_reads_at_a_glance(changes_and_stop: Path) -> None:
    """h:mm time axis, legends beside the plots, stop and change labelled where they happened,
    titled tables, and the dose axis in the program's unit."""
    data = build_report(changes_and_stop)
    fig = report_figure(data, tables=True)
    try:
        fig.canvas.draw()
        ax_rate, ax_vol, ax_tables = fig.axes[0], fig.axes[1], fig.axes[-1]
        left, right = ax_vol.get_xlim()
        ticks = [
            t.get_text() for t in ax_vol.get_xticklabels() if left <= t.get_position()[0] <= right
        ]
        assert ticks[:3] == ["0:00", "0:10", "0:20"] and ticks[-1] == "2:00"
        assert ax_vol.get_xlabel() == "clock time since start (h:mm)"
        renderer = fig.canvas.get_renderer()
        for ax in (ax_rate, ax_vol):
            legend = ax.get_legend().get_window_extent(renderer)
            assert legend.x0 > ax.get_window_extent(renderer).x1  # off the data
        words = [t.get_text() for t in ax_rate.texts]
        assert "syringe change 1" in words and "stopped by operator (dr who)" in words
        titles = [t.get_text() for t in ax_tables.texts]
        assert titles[0] == "Planned vs delivered per phase"
        assert titles[1].startswith("Rolling totals")
        (dose_axis,) = ax_rate.child_axes
        assert dose_axis.get_ylabel() == "dose rate (mg/kg/h)"
    finally:
        plt.close(fig)


def test_the_dose_axis_is_in_the_programs_own_unit(tmp_path: Path) -> None:
    """The canine CRI is written in mcg/kg/min: the axis says so (not mg/kg/h). The unit
    comes from the plan stored with the run, so a run with no events yet shows it too."""
    from pumpctl.dosing.check import check_program

    plan = check_program(example_path("canine-cri.yaml")).plan
    assert plan is not None
    path = tmp_path / "canine.db"
    with Journal(path) as journal:
        journal.start_run(
            program=plan.program,
            program_hash=plan.program_hash,
            plan_json=plan.model_dump_json(),
            pump_model="ne1000",
            port="sim://ne1000",
            address=0,
            t_clock_s=0.0,
        )
    data = build_report(path)
    assert data.dose_rate_unit == "mcg/kg/min"
    assert data.dose_rate(12.0) == pytest.approx(10.0)  # 20 kg, 1 mg/mL: 12 mL/h


def test_time_ticks_are_easy_clock_spacings() -> None:
    assert [hours_minutes(h) for h in (0, 0.5, 4 + 5.5 / 60, 121)] == [
        "0:00", "0:30", "4:06", "121:00"
    ]  # fmt: skip
    assert tick_minutes(2 * 3600) == 10
    assert tick_minutes(4.5 * 3600) == 30
    assert tick_minutes(5 * 86400) == 720
