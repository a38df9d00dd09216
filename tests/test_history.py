"""`pumpctl journal`: run list, collapsed timeline, titrations with who and why, totals."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from pumpctl.clock import Clock, run_with_clock
from pumpctl.dosing.plan import TitrationLimits
from pumpctl.infusion.events import delivered_by_phase
from pumpctl.infusion.journal import EventKind, Journal, JournalError
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.supervisor import Outcome, Supervisor, SupervisorConfig
from pumpctl.operator.history import render_history
from pumpctl.runner import run_on_simulator

from .conftest import analgesia_plan

START_WALL = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC

PLAN = analgesia_plan(
    titration=TitrationLimits(
        max_step_ml_per_h=7.0,
        min_interval_s=900.0,
        max_rate_ml_per_h=70.0,
        ml_per_h_per_dose_unit=70.0,
    )
)


def wall_clock() -> Any:
    ticks = itertools.count()
    return lambda: START_WALL + next(ticks)


def start(journal: Journal, program: str = "ketamine-analgesia") -> str:
    return journal.start_run(
        program=program,
        program_hash="ab" * 32,
        plan_json=PLAN.model_dump_json(),
        pump_model="ne1000",
        port="/dev/ttyUSB0",
        address=0,
        t_clock_s=100.0,
    )


def write_run(journal: Journal) -> str:
    """A short, hand-written run: loading, maintenance, a titration each way, pause, stop."""
    run_id = start(journal)

    def add(t: float, kind: EventKind, at: str, /, **payload: Any) -> None:
        journal.append(run_id, kind.value, payload, t_clock_s=100.0 + t, phase=at)

    def transition(t: float, source: str, dest: str, trigger: str, **info: Any) -> None:
        add(t, EventKind.TRANSITION, dest, trigger=trigger, source=source, dest=dest, info=info)

    def command(t: float, phase: str, command: str, outcome: str = "ok", **args: Any) -> None:
        add(t, EventKind.COMMAND, phase, command=command, **args)
        add(t, EventKind.REPLY, phase, command=command, outcome=outcome)

    def checkpoint(t: float, phase: str, segment: str, ml: float) -> None:
        add(t, EventKind.CHECKPOINT, phase, phase=segment, delivered_ml=ml, pump_counter_ml=ml)

    add(0, EventKind.NOTE, "idle", event="plan_accepted", warnings=["no prime phase"])
    command(0, "idle", "stop")
    command(0, "idle", "configure_syringe", inner_diameter_mm=26.7)
    transition(0, "idle", "ready", "skip_priming", reason="program has no prime phase")
    transition(0, "ready", "loading", "start_loading", rate_ml_per_h=147.0, volume_ml=24.5)
    add(0, EventKind.SEGMENT_START, "loading", **PLAN.segments[0].model_dump(mode="json"))
    command(0, "loading", "clear_counters")
    command(0, "loading", "set_rate", rate_ml_per_h=147.0)
    command(0, "loading", "set_target_volume", volume_ml=24.5)
    command(0, "loading", "start")
    for minute in range(1, 11):
        checkpoint(60 * minute, "loading", "loading", round(24.5 * minute / 10, 3))
    add(600, EventKind.SEGMENT_END, "loading", phase="loading", planned_ml=24.5, delivered_ml=24.5)
    transition(600, "loading", "maintenance", "start_maintenance", rate_ml_per_h=14.0)
    add(600, EventKind.SEGMENT_START, "maintenance", **PLAN.segments[1].model_dump(mode="json"))
    command(600, "maintenance", "start", outcome="unknown")
    checkpoint(1200, "maintenance", "maintenance", 2.333)
    titration = {"old_ml_per_h": 14.0, "new_ml_per_h": 21.0, "reason": "distress", "who": "alice"}
    add(1200, EventKind.TITRATION, "maintenance", accepted=True, **titration)
    command(1200, "maintenance", "set_rate", rate_ml_per_h=21.0)
    transition(1200, "maintenance", "maintenance", "titrate", **titration)
    add(
        1260,
        EventKind.TITRATION,
        "maintenance",
        accepted=False,
        old_ml_per_h=21.0,
        new_ml_per_h=28.0,
        reason="still in pain",
        who="alice",
        error="titration.min_interval: only 60 s since the last increase; wait 900 s (SR09)",
    )
    add(1800, EventKind.TITRATION, "maintenance", accepted=True, old_ml_per_h=21.0,
        new_ml_per_h=7.0, reason="sedated", who="bob")  # fmt: skip
    command(1800, "maintenance", "set_rate", rate_ml_per_h=7.0)
    command(2400, "maintenance", "pause", reason="line check", who="carol")
    transition(2400, "maintenance", "paused", "pause", reason="line check", who="carol")
    add(2500, EventKind.NOTE, "paused", event="stop_requested", reason="end", who="carol")
    transition(2500, "paused", "stopped", "stop", reason="operator")
    add(2500, EventKind.NOTE, "stopped", event="stop_confirmed", why="operator stop", attempts=1)
    checkpoint(2500, "stopped", "maintenance", 7.5)
    add(2500, EventKind.NOTE, "stopped", event="run_ended", result={"outcome": "stopped"})
    journal.set_run_status(run_id, "stopped")
    return run_id


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "run.sqlite"


def test_timeline_of_a_hand_written_run(journal_path: Path) -> None:
    with Journal(journal_path, wall_clock=wall_clock()) as journal:
        run_id = write_run(journal)
    assert render_history(journal_path).splitlines() == [
        "  run           program                  started (UTC)        status",
        f"* {run_id[:12]}  ketamine-analgesia       2026-09-21 14:13:20  stopped",
        "",
        f"run {run_id} — ketamine-analgesia — stopped",
        "started 2026-09-21 14:13:20 UTC on ne1000 at /dev/ttyUSB0 address 0;"
        " program sha256 abababababab",
        "",
        "     clock  phase        event",
        "   0:00:00               run started",
        "   0:00:00  idle         plan accepted; warning: no prime phase",
        "   0:00:00  idle         pump: stop, configure_syringe 26.7 mm: ok",
        "   0:00:00  ready        idle -> ready (skip_priming): program has no prime phase",
        "   0:00:00  loading      ready -> loading (start_loading)",
        "   0:00:00  loading      segment loading starts: 147 mL/h (0.035 mg/kg/min),"
        " 24.500 mL planned",
        "   0:00:00  loading      pump: clear_counters, set_rate 147 mL/h,"
        " set_target_volume 24.5 mL, start: ok",
        "   0:10:00  loading      delivered so far: loading 24.500 mL (10 checkpoints)",
        "   0:10:00  loading      segment loading ends: 24.500 mL delivered of 24.500 mL planned",
        "   0:10:00  maintenance  loading -> maintenance (start_maintenance)",
        "   0:10:00  maintenance  segment maintenance starts: 14 mL/h (0.2 mg/kg/h),"
        " 56.000 mL planned",
        "   0:10:00  maintenance  pump: start (NO REPLY)",
        "   0:20:00  maintenance  delivered so far: maintenance 2.333 mL",
        "   0:20:00  maintenance  TITRATION 14 -> 21 mL/h (0.2 -> 0.3 mg/kg/h) by alice: distress",
        "   0:20:00  maintenance  pump: set_rate 21 mL/h: ok",
        "   0:21:00  maintenance  titration REFUSED 21 -> 28 mL/h (0.3 -> 0.4 mg/kg/h)"
        " by alice: still in pain: titration.min_interval: only 60 s since the last increase;"
        " wait 900 s (SR09)",
        "   0:30:00  maintenance  TITRATION 21 -> 7 mL/h (0.3 -> 0.1 mg/kg/h) by bob: sedated",
        "   0:30:00  maintenance  pump: set_rate 7 mL/h: ok",
        "   0:40:00  maintenance  pump: pause: ok",
        "   0:40:00  paused       maintenance -> paused (pause) by carol: line check",
        "   0:41:40  paused       STOP requested by carol: end",
        "   0:41:40  stopped      paused -> stopped (stop): operator",
        "   0:41:40  stopped      pump stop confirmed (operator stop, 1 attempt(s))",
        "   0:41:40  stopped      delivered so far: maintenance 7.500 mL",
        "   0:41:40  stopped      run ended: stopped",
        "",
        "phase         planned mL  delivered mL",
        "loading           24.500        24.500",
        "maintenance       56.000         7.500",
        "total             80.500        32.000",
    ]


def test_run_list_and_selection_by_prefix(journal_path: Path) -> None:
    with Journal(journal_path, wall_clock=wall_clock()) as journal:
        first = write_run(journal)
        second = start(journal, program="second-program")
    text = render_history(journal_path)
    lines = text.splitlines()
    assert lines[1] == f"  {first[:12]}  ketamine-analgesia       2026-09-21 14:13:20  stopped"
    assert lines[2].startswith(f"* {second[:12]}  second-program ")
    assert lines[2].endswith("  running")
    assert f"run {second} — second-program — running" in lines
    assert lines[-6].startswith("  (no end recorded")  # a live or crashed run says so
    chosen = render_history(journal_path, run_id=first[:8]).splitlines()
    assert chosen[1].startswith(f"* {first[:12]}")
    assert f"run {first} — ketamine-analgesia — stopped" in chosen
    assert not any(line.startswith("  (no end recorded") for line in chosen)


def test_an_event_that_matches_no_model_is_shown_as_unreadable(journal_path: Path) -> None:
    with Journal(journal_path, wall_clock=wall_clock()) as journal:
        run_id = write_run(journal)
        journal.append(run_id, "alarm", {"why": "renamed"}, t_clock_s=100.0 + 2600, phase="x")
    last_events = render_history(journal_path).split("run ended: stopped")[1]
    assert "UNREADABLE alarm event: event " in last_events
    assert "does not match AlarmEvent" in last_events


def test_unknown_or_ambiguous_run_and_missing_journal(journal_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        render_history(journal_path)
    with Journal(journal_path) as journal:
        pass
    assert render_history(journal_path) == f"no runs in {journal_path}"
    with Journal(journal_path) as journal:
        write_run(journal)
        write_run(journal)
    with pytest.raises(JournalError, match="no run 'zz'"):
        render_history(journal_path, run_id="zz")
    with pytest.raises(JournalError, match="ambiguous"):
        render_history(journal_path, run_id="")


def test_history_of_a_supervised_run(journal_path: Path) -> None:
    """A real run (NE-1000 emulation, virtual clock): the history tells the operator's story."""

    async def operator(sup: Supervisor, clock: Clock) -> None:
        while sup.phase is not Phase.MAINTENANCE:
            await clock.sleep(1.0)
        await clock.sleep(600.0)
        await sup.titrate(21.0, reason="distress", who="alice")
        await clock.sleep(600.0)
        await sup.pause(reason="line check", who="bob")
        await clock.sleep(60.0)
        await sup.resume(who="bob")
        await clock.sleep(600.0)
        await sup.stop(reason="end of procedure", who="carol")

    with Journal(journal_path) as journal:

        async def main(clock: Clock) -> Any:
            return await run_on_simulator(
                PLAN,
                clock,
                config=SupervisorConfig(checkpoint_interval_s=60.0),
                journal=journal,
                operator=operator,
            )

        result, _truth = run_with_clock(main, virtual=True)
        assert result.outcome is Outcome.STOPPED
        run = journal.latest_run()
        assert run is not None
        events = journal.events(run.run_id)

    text = render_history(journal_path)
    timeline = [line[25:] for line in text.splitlines() if line[:10].strip().count(":") == 2]
    assert "TITRATION 14 -> 21 mL/h (0.2 -> 0.3 mg/kg/h) by alice: distress" in timeline
    assert "maintenance -> paused (pause) by bob: line check" in timeline
    assert "paused -> maintenance (resume) by bob" in timeline
    assert "STOP requested by carol: end of procedure" in timeline
    assert "segment loading ends: 24.500 mL delivered of 24.500 mL planned" in timeline
    assert timeline[-1] == "run ended: stopped"
    # collapsed: far fewer lines than events, no line per checkpoint or per command
    commands = sum(e.kind is EventKind.COMMAND for e in events)
    checkpoints = sum(e.kind is EventKind.CHECKPOINT for e in events)
    assert checkpoints > 20
    assert sum(line.startswith("pump: ") for line in timeline) < commands
    assert sum(line.startswith("delivered so far") for line in timeline) < checkpoints / 4
    delivered = delivered_by_phase(events)
    totals = text.splitlines()[-3:]
    assert totals[0] == f"loading           24.500{delivered['loading']:>14.3f}"
    assert totals[1] == f"maintenance       56.000{delivered['maintenance']:>14.3f}"
    assert totals[2] == f"total             80.500{sum(delivered.values()):>14.3f}"
