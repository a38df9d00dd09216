"""Durable, append-only event journal in SQLite (SR29-SR31).

A restarted controller must rebuild what was delivered and never double-dose, so the supervisor
journals every command, reply summary, transition, alarm, titration and override *before* it
sends the next command. Hence:

- WAL mode with `synchronous=FULL`: a commit is fsynced before `append` returns;
- one transaction per append: a crash at any point leaves a consistent prefix (a torn last
  transaction is simply absent);
- append-only: SQL triggers reject UPDATE/DELETE of events and of every run column but
  `status`, so not even a stray SQL statement can rewrite history.

Timestamps: `t_wall` is epoch seconds (audit), `t_clock_s` is the supervisor's clock (real or
virtual) so a virtual-clock run journals simulated time.

Schema versions (SQLite's `user_version`): the tables are the same in both; what changed is how
payloads are written. Schema 1 wrote payloads as dicts at each call site (the run's first note
named by `note`, a container-change note's container by `kind`, commands and segments with
whatever keys the caller had); schema 2 writes only the typed events of
`pumpctl.infusion.events`, whose models also read every schema-1 payload. A writer opening a
schema-1 file marks it schema 2 and appends (old rows are never rewritten: the journal is
append-only), so one file may hold both layouts; a reader opens either, and refuses a newer
schema it does not know.

The tables, triggers, schema version and row models are in `journal_schema` (exported here as
before); this module is the connection: opening and upgrading a file, appending, reading.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from pumpctl.clock import wall_time
from pumpctl.infusion.journal_schema import (
    RUN_COLUMNS,
    SCHEMA_SQL,
    SCHEMA_VERSION,
    EventKind,
    JournalEvent,
    RunRecord,
    RunStatus,
)

__all__ = [
    "SCHEMA_VERSION",
    "EventKind",
    "Journal",
    "JournalError",
    "JournalEvent",
    "RunRecord",
    "RunStatus",
]

#: older schemas this version reads, and migrates on opening for writing (see the docstring)
_OLDER_SCHEMAS = frozenset({1})


class JournalError(Exception):
    """The journal cannot be used as asked (read-only, unknown run, foreign schema)."""


def _payload_json(payload: Mapping[str, Any]) -> str:
    """Strict JSON (no NaN/inf, no silent str() of unknown objects) so a reader can trust it."""
    try:
        return json.dumps(dict(payload), allow_nan=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"journal payload is not strict JSON: {exc}") from exc


def _check_checkpoint(payload: Mapping[str, Any]) -> None:
    """The payload's `phase` is the plan segment (prime/loading/maintenance/kvo); the event's
    `phase` column is the machine phase when it was written (priming, paused, stopped...), so the
    two legitimately differ and are not compared."""
    missing = {"phase", "delivered_ml", "pump_counter_ml"} - payload.keys()
    if missing:
        raise ValueError(f"checkpoint payload lacks {sorted(missing)}")
    delivered = payload["delivered_ml"]
    if isinstance(delivered, bool) or not isinstance(delivered, int | float):
        raise ValueError(f"checkpoint delivered_ml must be a number, got {delivered!r}")


class Journal:
    """One SQLite journal file: runs and their events. Thread-safe; every write is durable."""

    def __init__(
        self,
        path: Path,
        *,
        wall_clock: Callable[[], float] = wall_time,
        _readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.readonly = _readonly
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        if _readonly:
            if not self.path.exists():
                raise JournalError(f"no journal at {self.path}")
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn: sqlite3.Connection | None = conn
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            self._conn = None
            raise

    @classmethod
    def open_readonly(cls, path: Path) -> Journal:
        """Open an existing journal for reading (reports, a second process watching a run)."""
        return cls(path, _readonly=True)

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 5000")
        if not self.readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise JournalError(f"cannot enable WAL on {self.path} (journal_mode={mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and not self.readonly:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise JournalError(f"{self.path} is an SQLite file but not a pumpctl journal")
            conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA_SQL} COMMIT;")
        elif version in _OLDER_SCHEMAS and not self.readonly:
            conn.executescript(f"BEGIN IMMEDIATE; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version != SCHEMA_VERSION and version not in _OLDER_SCHEMAS:
            raise JournalError(
                f"{self.path} has journal schema {version}; this pumpctl reads schema"
                f" {SCHEMA_VERSION} and older"
            )

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._conn

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise JournalError(f"journal {self.path} was opened read-only")
        return self._db()

    def pragmas(self) -> dict[str, Any]:
        """The durability settings in force (journal_mode, synchronous, user_version)."""
        with self._lock:
            db = self._db()
            return {
                name: db.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "user_version", "foreign_keys")
            }

    # --- writes -------------------------------------------------------------------------------

    def start_run(
        self,
        *,
        program: str,
        program_hash: str,
        plan_json: str,
        pump_model: str,
        port: str,
        address: int,
        t_clock_s: float,
    ) -> str:
        """Record a new run (status running) and a `note` event marking its start; returns its id."""
        run_id = uuid.uuid4().hex
        started_wall = self._wall_clock()
        # the payload of `events.RunStarted` (that module builds on this one, so it is spelled out)
        note = _payload_json({"event": "run_started", "program_hash": program_hash})
        with self._lock:
            db = self._writable()
            with _transaction(db):
                db.execute(
                    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        run_id,
                        started_wall,
                        program,
                        program_hash,
                        plan_json,
                        pump_model,
                        port,
                        int(address),
                        RunStatus.RUNNING.value,
                    ),
                )
                self._insert_event(db, run_id, started_wall, t_clock_s, EventKind.NOTE, None, note)
        return run_id

    def append(
        self,
        run_id: str,
        kind: str,
        payload: Mapping[str, Any],
        *,
        t_clock_s: float,
        phase: str | None = None,
    ) -> int:
        """Append one event and return its seq; the event is on disk (fsynced) when this returns."""
        kind = EventKind(kind)
        if not math.isfinite(t_clock_s):
            raise ValueError(f"t_clock_s must be finite, got {t_clock_s!r}")
        if kind is EventKind.CHECKPOINT:
            _check_checkpoint(payload)
        payload_json = _payload_json(payload)
        t_wall = self._wall_clock()
        with self._lock:
            db = self._writable()
            with _transaction(db):
                if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                    raise JournalError(f"unknown run {run_id!r}")
                return self._insert_event(db, run_id, t_wall, t_clock_s, kind, phase, payload_json)

    @staticmethod
    def _insert_event(
        db: sqlite3.Connection,
        run_id: str,
        t_wall: float,
        t_clock_s: float,
        kind: EventKind,
        phase: str | None,
        payload_json: str,
    ) -> int:
        cursor = db.execute(
            "INSERT INTO events (run_id, t_wall, t_clock_s, kind, phase, payload_json)"
            " VALUES (?,?,?,?,?,?)",
            (run_id, t_wall, float(t_clock_s), kind.value, phase, payload_json),
        )
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def set_run_status(self, run_id: str, status: str) -> None:
        """The only update the journal allows: a run's status (running/completed/alarm/stopped)."""
        status = RunStatus(status)
        with self._lock:
            db = self._writable()
            with _transaction(db):
                cursor = db.execute(
                    "UPDATE runs SET status = ? WHERE run_id = ?", (status.value, run_id)
                )
                if cursor.rowcount != 1:
                    raise JournalError(f"unknown run {run_id!r}")

    # --- reads --------------------------------------------------------------------------------

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first (insertion order, not wall time, which may step)."""
        with self._lock:
            rows = (
                self._db()
                .execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY rowid")
                .fetchall()
            )
        return [RunRecord(**dict(zip(RUN_COLUMNS, row, strict=True))) for row in rows]

    def latest_run(self) -> RunRecord | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def events(self, run_id: str, kinds: Collection[str] | None = None) -> list[JournalEvent]:
        """A run's events in seq order, optionally only some kinds."""
        sql = (
            "SELECT seq, run_id, t_wall, t_clock_s, kind, phase, payload_json FROM events"
            " WHERE run_id = ?"
        )
        params: list[Any] = [run_id]
        if kinds is not None:
            wanted = [EventKind(k).value for k in kinds]
            sql += f" AND kind IN ({', '.join('?' * len(wanted))})"
            params.extend(wanted)
        with self._lock:
            rows = self._db().execute(sql + " ORDER BY seq", params).fetchall()
        return [
            JournalEvent(
                seq=seq,
                run_id=rid,
                t_wall=t_wall,
                t_clock_s=t_clock_s,
                kind=kind,
                phase=phase,
                payload=json.loads(payload_json),
            )
            for seq, rid, t_wall, t_clock_s, kind, phase, payload_json in rows
        ]


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection; anything failing rolls back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
