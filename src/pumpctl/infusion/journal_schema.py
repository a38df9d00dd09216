"""What a journal file holds: its tables, triggers and schema version, and the rows read back.

The SQL that creates a journal (`SCHEMA_SQL`: the `runs` and `events` tables, and the triggers
that keep them append-only), the version it is stamped with, the kinds of event and statuses of
run it stores, and the typed rows (`RunRecord`, `JournalEvent`) a reader gets. Kept apart from
`journal`, the connection that opens, upgrades, appends to and reads a file, which exports all of
these as before; payloads themselves are the models of `events`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "RUN_COLUMNS",
    "SCHEMA_SQL",
    "SCHEMA_VERSION",
    "EventKind",
    "JournalEvent",
    "RunRecord",
    "RunStatus",
]

#: Stored in SQLite's `user_version`; bump with a migration when the schema changes.
SCHEMA_VERSION = 2


class EventKind(StrEnum):
    COMMAND = "command"
    REPLY = "reply"
    TRANSITION = "transition"
    ALARM = "alarm"
    #: cumulative delivered volume of one phase (`events.CheckpointEvent`)
    CHECKPOINT = "checkpoint"
    TITRATION = "titration"
    OVERRIDE = "override"
    SEGMENT_START = "segment_start"
    SEGMENT_END = "segment_end"
    NOTE = "note"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    ALARM = "alarm"
    STOPPED = "stopped"


class RunRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    started_wall: float
    program: str
    program_hash: str
    plan_json: str
    pump_model: str
    port: str
    address: int
    status: RunStatus


class JournalEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    run_id: str
    t_wall: float
    t_clock_s: float
    kind: EventKind
    phase: str | None
    payload: dict[str, Any]


RUN_COLUMNS = (
    "run_id",
    "started_wall",
    "program",
    "program_hash",
    "plan_json",
    "pump_model",
    "port",
    "address",
    "status",
)

SCHEMA_SQL = f"""
CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY NOT NULL,
    started_wall  REAL NOT NULL,
    program       TEXT NOT NULL,
    program_hash  TEXT NOT NULL,
    plan_json     TEXT NOT NULL,
    pump_model    TEXT NOT NULL,
    port          TEXT NOT NULL,
    address       INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in RunStatus)}))
);
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    t_wall        REAL NOT NULL,
    t_clock_s     REAL NOT NULL,
    kind          TEXT NOT NULL,
    phase         TEXT,
    payload_json  TEXT NOT NULL
);
CREATE INDEX events_by_run ON events(run_id, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
CREATE TRIGGER runs_no_rewrite BEFORE UPDATE OF {", ".join(RUN_COLUMNS[:-1])} ON runs
BEGIN SELECT RAISE(ABORT, 'only runs.status may change'); END;
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'journal runs are append-only'); END;
PRAGMA user_version = {SCHEMA_VERSION};
"""
