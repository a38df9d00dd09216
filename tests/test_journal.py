"""The durable journal: round trip, ordering, append-only, read-only access, crash safety."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pumpctl
from pumpctl.infusion.events import delivered_by_phase
from pumpctl.infusion.journal import (
    SCHEMA_VERSION,
    EventKind,
    Journal,
    JournalError,
    JournalEvent,
    RunRecord,
    RunStatus,
)

RUN_ARGS: dict[str, Any] = {
    "program": "ketamine-analgesia",
    "program_hash": "ab" * 32,
    "plan_json": '{"segments":[]}',
    "pump_model": "ne1000",
    "port": "loop://",
    "address": 3,
}


def ticking(start: float = 1_700_000_000.0, step: float = 0.25) -> Callable[[], float]:
    """A fake wall clock: start, start+step, ... (exact values for assertions)."""
    counter = itertools.count()
    return lambda: start + step * next(counter)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    with Journal(path, wall_clock=ticking()) as j:
        yield j


def test_round_trip_exact(journal: Journal) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=10.0)
    assert len(run_id) == 32 and int(run_id, 16) >= 0
    seq = journal.append(run_id, "command", {"cmd": "RAT 12.5 MH"}, t_clock_s=11.5, phase="loading")
    assert seq == 2
    assert journal.runs() == [
        RunRecord(
            run_id=run_id,
            started_wall=1_700_000_000.0,
            status=RunStatus.RUNNING,
            **RUN_ARGS,
        )
    ]
    assert journal.events(run_id) == [
        JournalEvent(
            seq=1,
            run_id=run_id,
            t_wall=1_700_000_000.0,
            t_clock_s=10.0,
            kind=EventKind.NOTE,
            phase=None,
            payload={"event": "run_started", "program_hash": "ab" * 32},
        ),
        JournalEvent(
            seq=2,
            run_id=run_id,
            t_wall=1_700_000_000.25,
            t_clock_s=11.5,
            kind=EventKind.COMMAND,
            phase="loading",
            payload={"cmd": "RAT 12.5 MH"},
        ),
    ]


def test_ordering_per_run_and_kind_filter(journal: Journal) -> None:
    a = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    b = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    kinds = [EventKind.COMMAND, EventKind.REPLY, EventKind.TRANSITION, EventKind.NOTE]
    for i in range(12):
        journal.append(a if i % 2 else b, kinds[i % 4], {"i": i}, t_clock_s=float(i))
    events_a = journal.events(a)
    assert [e.seq for e in events_a] == [1, 4, 6, 8, 10, 12, 14]
    assert [e.payload.get("i") for e in events_a] == [None, 1, 3, 5, 7, 9, 11]
    assert [e.kind for e in journal.events(a, kinds={"reply", EventKind.NOTE})] == [
        EventKind.NOTE,
        EventKind.REPLY,
        EventKind.NOTE,
        EventKind.REPLY,
        EventKind.NOTE,
        EventKind.REPLY,
        EventKind.NOTE,
    ]
    assert journal.events(a, kinds=[]) == []
    assert [r.run_id for r in journal.runs()] == [a, b]
    latest = journal.latest_run()
    assert latest is not None and latest.run_id == b


def test_SR29_appends_durable_across_close_and_reopen(path: Path) -> None:
    with Journal(path) as j:
        assert j.latest_run() is None
        run_id = j.start_run(**RUN_ARGS, t_clock_s=0.0)
        for i in range(5):
            j.append(run_id, "reply", {"i": i}, t_clock_s=float(i), phase="maintenance")
        before = j.events(run_id)
    with Journal(path) as j:
        assert j.events(run_id) == before
        assert j.append(run_id, "note", {"after": "reopen"}, t_clock_s=9.0) == 7
        j.set_run_status(run_id, "completed")
    with Journal.open_readonly(path) as ro:
        assert ro.events(run_id)[:-1] == before
        latest = ro.latest_run()
        assert latest is not None and latest.status is RunStatus.COMPLETED


def test_SR31_wal_mode_and_full_sync(journal: Journal, path: Path) -> None:
    assert journal.pragmas() == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL: the WAL is fsynced at every commit
        "user_version": SCHEMA_VERSION,
        "foreign_keys": 1,
    }
    other = sqlite3.connect(path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        other.close()


def test_append_only_api_has_no_event_update_or_delete() -> None:
    public = {name for name in vars(Journal) if not name.startswith("_")}
    assert public == {
        "open_readonly",
        "pragmas",
        "close",
        "start_run",
        "append",
        "set_run_status",
        "runs",
        "latest_run",
        "events",
    }


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events SET payload_json = '{}'",
        "UPDATE events SET kind = 'note' WHERE seq = 1",
        "DELETE FROM events",
        "UPDATE runs SET plan_json = '{}'",
        "UPDATE runs SET started_wall = 0",
        "DELETE FROM runs",
    ],
)
def test_append_only_enforced_in_the_database(journal: Journal, path: Path, sql: str) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    journal.append(run_id, "alarm", {"reason": "occlusion"}, t_clock_s=1.0)
    before = (journal.runs(), journal.events(run_id))
    raw = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match=r"append-only|only runs\.status"):
            raw.execute(sql)
        raw.rollback()
    finally:
        raw.close()
    assert (journal.runs(), journal.events(run_id)) == before


def test_set_run_status_is_the_only_update(journal: Journal) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    for status in ("alarm", "stopped", RunStatus.COMPLETED):
        journal.set_run_status(run_id, status)
        assert journal.runs()[0].status == status
    with pytest.raises(ValueError):
        journal.set_run_status(run_id, "paused")
    with pytest.raises(JournalError, match="unknown run"):
        journal.set_run_status("0" * 32, "stopped")
    assert journal.runs()[0].status is RunStatus.COMPLETED


@pytest.mark.parametrize(
    ("kind", "payload", "error"),
    [
        ("telemetry", {}, ValueError),
        ("note", {"x": float("nan")}, ValueError),
        ("note", {"x": float("inf")}, ValueError),
        ("note", {"x": object()}, ValueError),
        ("checkpoint", {"phase": "loading", "delivered_ml": 1.0}, ValueError),
        ("checkpoint", {"phase": "loading", "delivered_ml": "1", "pump_counter_ml": 1}, ValueError),
    ],
)
def test_invalid_appends_write_nothing(
    journal: Journal, kind: str, payload: dict[str, Any], error: type[Exception]
) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    with pytest.raises(error):
        journal.append(run_id, kind, payload, t_clock_s=1.0)
    assert journal.append(run_id, "note", {}, t_clock_s=2.0) == 2


def test_unknown_run_and_checkpoint_written_in_another_machine_phase(journal: Journal) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    with pytest.raises(JournalError, match="unknown run"):
        journal.append("f" * 32, "note", {}, t_clock_s=0.0)
    # the final reading of a stopped maintenance segment: segment phase vs machine phase
    seq = journal.append(
        run_id,
        "checkpoint",
        {"phase": "maintenance", "delivered_ml": 1.0, "pump_counter_ml": 1.0},
        t_clock_s=0.0,
        phase="stopped",
    )
    (event,) = journal.events(run_id, kinds=["checkpoint"])
    assert (event.seq, event.phase, event.payload["phase"]) == (seq, "stopped", "maintenance")
    assert len(journal.events(run_id)) == 2  # run_started note + the checkpoint


def test_readonly_sees_live_writer_and_refuses_writes(journal: Journal, path: Path) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    with Journal.open_readonly(path) as ro:
        journal.append(run_id, "transition", {"trigger": "start_priming"}, t_clock_s=1.0)
        assert [e.kind for e in ro.events(run_id)] == [EventKind.NOTE, EventKind.TRANSITION]
        with pytest.raises(JournalError, match="read-only"):
            ro.append(run_id, "note", {}, t_clock_s=2.0)
        with pytest.raises(JournalError, match="read-only"):
            ro.start_run(**RUN_ARGS, t_clock_s=2.0)
        with pytest.raises(JournalError, match="read-only"):
            ro.set_run_status(run_id, "stopped")
    assert len(journal.events(run_id)) == 2


def test_open_refusals(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        Journal.open_readonly(tmp_path / "missing.sqlite")
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match="not a pumpctl journal"):
        Journal(foreign)
    newer = tmp_path / "newer.sqlite"
    Journal(newer).close()
    con = sqlite3.connect(newer)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match=f"schema {SCHEMA_VERSION + 1}"):
        Journal(newer)


def test_closed_journal_refuses(path: Path) -> None:
    j = Journal(path)
    j.close()
    j.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        j.runs()


def test_concurrent_appends_from_threads_stay_contiguous(journal: Journal) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=0.0)

    def writer(tag: int) -> None:
        for i in range(25):
            journal.append(run_id, "note", {"tag": tag, "i": i}, t_clock_s=float(i))

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)  # safety only
    events = journal.events(run_id)
    assert [e.seq for e in events] == list(range(1, 102))
    for tag in range(4):
        assert [e.payload["i"] for e in events if e.payload.get("tag") == tag] == list(range(25))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


ROWS = st.lists(
    st.tuples(
        st.sampled_from(list(EventKind)).filter(lambda k: k is not EventKind.CHECKPOINT),
        st.dictionaries(st.text(), JSON, max_size=5),
        st.floats(min_value=0, max_value=1e7),
        st.none() | st.sampled_from(["priming", "loading", "maintenance", "kvo"]),
    ),
    max_size=8,
)


def check_round_trip(
    tmp_path: Path, rows: list[tuple[EventKind, dict[str, Any], float, str | None]]
) -> None:
    with Journal(tmp_path / f"{uuid.uuid4().hex}.sqlite") as j:
        run_id = j.start_run(**RUN_ARGS, t_clock_s=0.0)
        for kind, payload, t, phase in rows:
            j.append(run_id, kind, payload, t_clock_s=t, phase=phase)
        got = [(e.kind, e.payload, e.t_clock_s, e.phase) for e in j.events(run_id)[1:]]
    assert got == rows


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ROWS)
def test_payload_round_trip_property(
    tmp_path: Path, rows: list[tuple[EventKind, dict[str, Any], float, str | None]]
) -> None:
    check_round_trip(tmp_path, rows)


@pytest.mark.slow
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ROWS)
def test_payload_round_trip_property_larger_sample(
    tmp_path: Path, rows: list[tuple[EventKind, dict[str, Any], float, str | None]]
) -> None:
    check_round_trip(tmp_path, rows)


# --- dose summary -------------------------------------------------------------------------------


def _event(seq: int, kind: EventKind, payload: dict[str, Any]) -> JournalEvent:
    return JournalEvent(
        seq=seq,
        run_id="r",
        t_wall=0.0,
        t_clock_s=float(seq),
        kind=kind,
        phase=None,
        payload=payload,
    )


def _checkpoint(
    seq: int, phase: str, delivered_ml: float, estimated_ml: float = 0.0
) -> JournalEvent:
    payload = {
        "phase": phase,
        "delivered_ml": delivered_ml,
        "pump_counter_ml": delivered_ml - estimated_ml,
        "estimated_ml": estimated_ml,
    }
    return _event(seq, EventKind.CHECKPOINT, payload)


def test_SR22_an_estimate_gives_way_to_the_counter_read_later() -> None:
    events = [
        _checkpoint(1, "loading", 1.0),
        _checkpoint(2, "loading", 1.6, estimated_ml=0.6),  # link lost: worst case booked
        _checkpoint(3, "loading", 1.2),  # readable again: the pump counted 1.2
    ]
    assert delivered_by_phase(events) == {"loading": 1.2}
    assert delivered_by_phase(events[:2]) == {"loading": 1.6}  # unreadable: the estimate stands


def test_SR30_delivered_by_phase_never_lowers_a_measured_volume() -> None:
    events = [
        _checkpoint(1, "prime", 0.4),
        _checkpoint(2, "loading", 1.25),
        _event(3, EventKind.NOTE, {"delivered_ml": 99.0, "phase": "loading"}),
        _checkpoint(4, "loading", 2.5),
        _checkpoint(5, "maintenance", 0.75),
        _checkpoint(6, "loading", 2.0),  # a later, lower reading never lowers the total
    ]
    result = delivered_by_phase(events)
    assert result == {"prime": 0.4, "loading": 2.5, "maintenance": 0.75}
    assert list(result) == ["prime", "loading", "maintenance"]
    assert delivered_by_phase([]) == {}


def test_SR30_delivered_by_phase_from_the_journal(journal: Journal) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    for i, (phase, ml) in enumerate([("loading", 1.0), ("loading", 3.0), ("maintenance", 0.5)]):
        payload = {"phase": phase, "delivered_ml": ml, "pump_counter_ml": ml + 0.01}
        journal.append(run_id, "checkpoint", payload, t_clock_s=float(i), phase=phase)
    assert delivered_by_phase(journal.events(run_id, kinds=["checkpoint"])) == {
        "loading": 3.0,
        "maintenance": 0.5,
    }


# --- crash safety -------------------------------------------------------------------------------

CHILD = r"""
import hashlib, random, sys
from pathlib import Path
from pumpctl.infusion.journal import Journal

path, seed = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
journal = Journal(path)
latest = journal.latest_run()
run_id = latest.run_id if latest is not None else journal.start_run(
    program="crash", program_hash="0" * 64, plan_json="{}", pump_model="ne1000",
    port="loop://", address=0, t_clock_s=0.0)
i = 0
while True:
    blob = rng.randbytes(rng.randint(1, 200_000)).hex()
    payload = {"i": i, "blob": blob, "sha256": hashlib.sha256(blob.encode()).hexdigest()}
    seq = journal.append(run_id, "reply", payload, t_clock_s=float(i))
    print(seq, flush=True)  # acknowledged: append returned
    i += 1
"""


def _crash_child(path: Path, seed: int, kill_after: int) -> list[int]:
    """Run the appender, SIGKILL it after `kill_after` acknowledged appends; return their seqs."""
    src = str(Path(pumpctl.__file__).resolve().parents[1])
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": src, "PATH": ""},
    )
    assert proc.stdout is not None
    acknowledged: list[int] = []
    try:
        while len(acknowledged) < kill_after:
            line = proc.stdout.readline()
            assert line, f"child exited early with {proc.poll()}"
            acknowledged.append(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)  # safety only
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return acknowledged


def _check_consistent_prefix(path: Path) -> list[JournalEvent]:
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        raw.close()
    with Journal.open_readonly(path) as ro:
        run = ro.latest_run()
        assert run is not None and run.program == "crash"
        events = ro.events(run.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    replies = [e for e in events if e.kind is EventKind.REPLY]
    previous_i = -1
    for event in replies:
        # each child restarts its counter at 0; within a child, nothing is skipped
        assert event.payload["i"] in (0, previous_i + 1)
        previous_i = event.payload["i"]
        blob = event.payload["blob"]
        assert hashlib.sha256(blob.encode()).hexdigest() == event.payload["sha256"]
    return events


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_SR31_sigkill_at_random_points_leaves_a_consistent_prefix(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "crash.sqlite"
    total_acknowledged = 0
    for round_ in range(3):
        acknowledged = _crash_child(path, seed * 10 + round_, rng.randint(1, 30))
        events = _check_consistent_prefix(path)
        seqs = {e.seq for e in events}
        # SR29: whatever append acknowledged before the kill is in the journal.
        assert set(acknowledged) <= seqs
        assert len(events) >= total_acknowledged + len(acknowledged)
        total_acknowledged = len(events)
    # The journal keeps working after the crashes: the next append continues the sequence.
    with Journal(path) as j:
        run = j.latest_run()
        assert run is not None
        assert j.append(run.run_id, "note", {"after": "crash"}, t_clock_s=0.0) == len(events) + 1


@pytest.mark.slow
def test_SR29_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "ack.sqlite"
    acknowledged = _crash_child(path, seed=7, kill_after=12)
    with Journal.open_readonly(path) as ro:
        run = ro.latest_run()
        assert run is not None
        stored = {e.seq: e for e in ro.events(run.run_id)}
    # seq 1 is the run_started note; replies 2..13 were acknowledged in order.
    assert acknowledged == list(range(2, 14))
    assert all(stored[seq].payload["i"] == seq - 2 for seq in acknowledged)


def test_payload_json_is_canonical(journal: Journal, path: Path) -> None:
    run_id = journal.start_run(**RUN_ARGS, t_clock_s=0.0)
    journal.append(run_id, "override", {"b": 1, "a": [1.5, None]}, t_clock_s=0.0)
    raw = sqlite3.connect(path)
    try:
        (text,) = raw.execute("SELECT payload_json FROM events WHERE seq = 2").fetchone()
    finally:
        raw.close()
    assert text == '{"a":[1.5,null],"b":1}'
    assert json.loads(text) == {"a": [1.5, None], "b": 1}
