"""A journal written by schema 1 (payloads as dicts, before the typed events) stays readable.

The file is built here with raw SQL in the old layout, not kept as a binary fixture, so the test
says exactly what an old file holds: the run's first note named by `note`, a container change's
container under `kind`, commands and segments with the keys their callers had, checkpoints
without the estimate fields. It is then read by the report, the history and resume, and a new
run appended by a writer, which marks the file schema 2 without rewriting the old rows.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pumpctl.infusion.events import (
    CheckpointEvent,
    CommandEvent,
    ContainerChangeNeeded,
    RunStarted,
    SegmentStart,
    parse_event,
)
from pumpctl.infusion.journal import SCHEMA_VERSION, Journal
from pumpctl.infusion.resume import PumpReading, latest_run, plan_resume
from pumpctl.operator.history import render_history
from pumpctl.operator.report import build_report

from .conftest import analgesia_plan

PLAN = analgesia_plan(program_hash="cd" * 32)

#: the tables of schema 1, as that version created them (schema 2 keeps them unchanged)
SCHEMA_1 = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY NOT NULL, started_wall REAL NOT NULL, program TEXT NOT NULL,
    program_hash TEXT NOT NULL, plan_json TEXT NOT NULL, pump_model TEXT NOT NULL,
    port TEXT NOT NULL, address INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'alarm', 'stopped'))
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(run_id),
    t_wall REAL NOT NULL, t_clock_s REAL NOT NULL, kind TEXT NOT NULL, phase TEXT,
    payload_json TEXT NOT NULL
);
CREATE INDEX events_by_run ON events(run_id, seq);
PRAGMA user_version = 1;
"""

RUN_ID = "0123456789abcdef0123456789abcdef"
WALL0 = 1_790_000_000.0


def _segment(i: int) -> dict[str, Any]:
    return PLAN.segments[i].model_dump(mode="json")  # schema 1 dumped the whole segment


#: (clock s, kind, machine phase, payload as schema 1 wrote it): loading done, maintenance
#: running, a new syringe needed, then the controller died (the run is still `running`)
EVENTS: list[tuple[float, str, str | None, dict[str, Any]]] = [
    (0, "note", None, {"note": "run_started", "program_hash": PLAN.program_hash}),
    (0, "note", "idle", {"event": "plan_accepted", "warnings": []}),
    (0, "command", "idle", {"command": "configure_syringe", "inner_diameter_mm": 26.7}),
    (0, "reply", "idle", {"command": "configure_syringe", "outcome": "ok"}),
    (
        0,
        "transition",
        "loading",
        {"trigger": "start_loading", "source": "ready", "dest": "loading", "info": {}},
    ),
    (0, "segment_start", "loading", _segment(0)),
    (
        300,
        "checkpoint",
        "loading",
        {"phase": "loading", "delivered_ml": 12.25, "pump_counter_ml": 12.25},
    ),
    (
        600,
        "segment_end",
        "loading",
        {"phase": "loading", "planned_ml": 24.5, "delivered_ml": 24.5},
    ),
    (600, "segment_start", "maintenance", _segment(1)),
    (
        1200,
        "checkpoint",
        "maintenance",
        {"phase": "maintenance", "delivered_ml": 2.0, "pump_counter_ml": 2.0},
    ),
    (1200, "note", "maintenance", {"event": "container_change_needed", "kind": "syringe"}),
]


@pytest.fixture
def old_journal(tmp_path: Path) -> Path:
    path = tmp_path / "schema1.sqlite"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_1)
    con.execute(
        "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
        (
            RUN_ID,
            WALL0,
            PLAN.program,
            PLAN.program_hash,
            PLAN.model_dump_json(),
            "ne1000",
            "/dev/ttyUSB0",
            0,
            "running",
        ),
    )
    for t, kind, phase, payload in EVENTS:
        con.execute(
            "INSERT INTO events (run_id, t_wall, t_clock_s, kind, phase, payload_json)"
            " VALUES (?,?,?,?,?,?)",
            (RUN_ID, WALL0 + t, 100.0 + t, kind, phase, json.dumps(payload)),
        )
    con.commit()
    con.close()
    return path


def _user_version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


def test_every_schema_1_event_parses_to_its_typed_event(old_journal: Path) -> None:
    with Journal.open_readonly(old_journal) as journal:
        records = [parse_event(e) for e in journal.events(RUN_ID)]
    assert isinstance(records[0], RunStarted)
    assert records[0].program_hash == PLAN.program_hash
    command = records[2]
    assert isinstance(command, CommandEvent)
    assert command.arguments == {"inner_diameter_mm": 26.7}
    start = records[5]
    assert isinstance(start, SegmentStart)
    assert (start.dose_rate, start.dose_rate_unit) == (0.035, "mg/kg/min")
    checkpoint = records[6]
    assert isinstance(checkpoint, CheckpointEvent)
    assert (checkpoint.estimated_ml, checkpoint.lost_ml) == (0.0, 0.0)
    change = records[-1]
    assert isinstance(change, ContainerChangeNeeded) and change.container == "syringe"
    assert _user_version(old_journal) == 1  # reading never migrates


def test_report_of_a_schema_1_run(old_journal: Path) -> None:
    data = build_report(old_journal)
    assert data.skipped_events == ()
    assert {r.phase: r.delivered_ml for r in data.phases} == {"loading": 24.5, "maintenance": 2.0}
    assert [(c.needed_s, c.kind) for c in data.container_changes] == [(1200.0, "syringe")]
    assert data.rate_steps[-1] == (600.0, 14.0)


def test_history_of_a_schema_1_run(old_journal: Path) -> None:
    text = render_history(old_journal)
    assert "UNREADABLE" not in text
    for line in (
        "run started",
        "pump: configure_syringe 26.7 mm: ok",
        "segment loading starts: 147 mL/h (0.035 mg/kg/min), 24.500 mL planned",
        "segment loading ends: 24.500 mL delivered of 24.500 mL planned",
        "container_change_needed: container=syringe",
        "(no end recorded",
    ):
        assert line in text, line


def test_resume_of_a_schema_1_run_then_a_new_run_in_schema_2(old_journal: Path) -> None:
    with Journal(old_journal) as journal:
        assert _user_version(old_journal) == SCHEMA_VERSION  # a writer marks it schema 2
        facts = latest_run(journal)
        assert facts is not None and facts.interrupted
        assert facts.active == "maintenance" and facts.held == "awaiting_change"
        assert facts.ended == {"loading": 24.5}
        decision = plan_resume(
            facts,
            PLAN,
            PumpReading(counter_ml=2.5, reset=False),
            now_wall=WALL0 + 1260,
        )
        assert decision.delivered_ml == {"loading": 24.5, "maintenance": 2.5}
        assert decision.remaining is not None
        assert [s.volume_ml for s in decision.remaining.segments] == [pytest.approx(53.5)]
        new_run = journal.start_run(
            program=PLAN.program,
            program_hash=PLAN.program_hash,
            plan_json=decision.remaining.model_dump_json(),
            pump_model="ne1000",
            port="/dev/ttyUSB0",
            address=0,
            t_clock_s=0.0,
        )
        old, new = journal.events(RUN_ID)[0], journal.events(new_run)[0]
    assert "note" in old.payload and "event" in new.payload  # old rows are never rewritten
    assert isinstance(parse_event(old), RunStarted) and isinstance(parse_event(new), RunStarted)
    assert "container_change_needed: container=syringe" in render_history(old_journal, RUN_ID)
