"""An interrupted run is never restarted from the top: every way a run can end, then a rerun.

Issue #12 item 1 (Ctrl-C then rerun gave the loading dose again) and #17 item 1 (a crash undid
the operator's titration and reset its lockout): the rerun resumes what remains, with the rate,
pause, pending container change, titration interval and rolling-window deliveries of the run it
continues, or refuses and names both ways forward.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpctl.clock import Clock
from pumpctl.dosing.plan import RollingLimits, SegmentPhase, TitrationLimits
from pumpctl.infusion.events import NewRunStarted, parse_record
from pumpctl.infusion.journal import EventKind, Journal
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.resume import ResumeRefused
from pumpctl.infusion.supervisor import Outcome, Supervisor, SupervisorError
from pumpctl.simulator.faults import FaultSchedule
from pumpctl.simulator.server import build_emulation

from .conftest import make_plan, segment
from .crashkit import controller

RES = 0.001
TITRATION = TitrationLimits(max_step_ml_per_h=3.0, min_interval_s=15 * 60.0, max_rate_ml_per_h=30.0)
PLAN = make_plan(
    segment(SegmentPhase.PRIME, 120.0, 0.5),
    segment(SegmentPhase.LOADING, 60.0, 5.0),
    segment(SegmentPhase.MAINTENANCE, 6.0, 6.0),
    titration=TITRATION,
)
TOTAL = 11.5
MAINT_START_S = 15 + 300


def delivered(emu) -> float:  # type: ignore[no-untyped-def]
    emu.advance(0.0)
    return float(emu.snapshot()[0].delivered_ml)


async def stop_in_maintenance(sup: Supervisor, clock: Clock) -> None:
    while sup.phase is not Phase.MAINTENANCE:
        await clock.sleep(5.0)
    await clock.sleep(600.0)
    await sup.stop(reason="signal", who="operator")  # what Ctrl-C does in `pumpctl run`


def run_then(tmp_path: Path, ending: str):  # type: ignore[no-untyped-def]
    """The first run of PLAN ends in `ending`; returns (emulation, journal path, end wall)."""
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"
    kwargs: dict = {}
    if ending == "stopped":
        kwargs["operator"] = stop_in_maintenance
    elif ending == "crashed":
        kwargs["crash_at_s"] = MAINT_START_S + 600.0
    elif ending == "alarm":
        # the link drops for 8 s 10 min into maintenance: communication alarm, stop confirmed
        # when it comes back (SR18), exact final reading
        spec = f"link-drop@{MAINT_START_S + 600}s:8s"
        kwargs["faults"] = FaultSchedule.from_specs([spec], seed=0)
    first = controller(emu, PLAN, path, wall0=0.0, **kwargs)
    if ending == "alarm":
        assert first.result is not None and first.result.outcome is Outcome.ALARM
    return emu, path, first


@pytest.mark.parametrize("ending", ["stopped", "alarm"])
def test_SR16_a_stopped_or_alarmed_run_is_not_rerun_from_the_top(
    tmp_path: Path, ending: str
) -> None:
    emu, path, first = run_then(tmp_path, ending)
    before = delivered(emu)
    assert 5.5 < before < TOTAL
    with pytest.raises(ResumeRefused, match=r"--resume.*--new-run --reason"):
        controller(emu, PLAN, path, wall0=first.end_wall + 30.0)
    assert delivered(emu) == pytest.approx(before, abs=RES)  # nothing was sent to run


@pytest.mark.parametrize("ending", ["stopped", "alarm", "crashed"])
def test_rerun_resumes_what_remains_and_never_the_loading_dose(tmp_path: Path, ending: str) -> None:
    emu, path, first = run_then(tmp_path, ending)
    resume = ending != "crashed"  # a crash resumes by itself; a stop or alarm when asked (SR16)
    second = controller(emu, PLAN, path, wall0=first.end_wall + 30.0, resume=resume)
    assert second.result is not None, second.notes
    assert second.result.outcome is Outcome.COMPLETED
    assert [p.phase for p in second.result.phases] == [SegmentPhase.MAINTENANCE]
    assert delivered(emu) == pytest.approx(TOTAL, abs=3 * RES)


def test_new_run_needs_a_reason_and_journals_it(tmp_path: Path) -> None:
    emu, path, first = run_then(tmp_path, "stopped")
    with pytest.raises(ResumeRefused, match="needs a --reason"):
        controller(emu, PLAN, path, wall0=first.end_wall + 30.0, new_run_reason=" ")
    second = controller(
        emu, PLAN, path, wall0=first.end_wall + 30.0, new_run_reason="line replaced", who="dr a"
    )
    assert second.result is not None and second.result.outcome is Outcome.COMPLETED
    assert second.result.phases[0].phase is SegmentPhase.PRIME  # started anew, on purpose
    with Journal.open_readonly(path) as j:
        first_run = j.runs()[0]
        notes = [parse_record(e.kind, e.payload) for e in j.events(first_run.run_id, ["note"])]
    assert NewRunStarted(reason="line replaced", who="dr a") in notes


def test_a_completed_run_is_followed_by_a_new_one(tmp_path: Path) -> None:
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"
    first = controller(emu, PLAN, path, wall0=0.0)
    assert first.result is not None and first.result.outcome is Outcome.COMPLETED
    second = controller(emu, PLAN, path, wall0=first.end_wall + 30 * 3600.0)
    assert second.result is not None and second.result.outcome is Outcome.COMPLETED
    assert delivered(emu) == pytest.approx(2 * TOTAL, abs=6 * RES)


TWO_CRASHES = {
    "first_s": st.floats(min_value=5.0, max_value=MAINT_START_S + 3000.0),
    "second_s": st.floats(min_value=5.0, max_value=2000.0),
    "gap_s": st.floats(min_value=0.0, max_value=300.0),
}


def check_two_crashes(tmp_path: Path, first_s: float, second_s: float, gap_s: float) -> None:
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"
    path.unlink(missing_ok=True)
    one = controller(emu, PLAN, path, wall0=0.0, crash_at_s=first_s)
    emu.advance(gap_s)
    two = controller(emu, PLAN, path, wall0=one.end_wall + gap_s, crash_at_s=second_s)
    notes = [one.notes, two.notes]
    if two.crashed:  # else the second run finished what remained before its crash time
        emu.advance(gap_s)
        notes.append(controller(emu, PLAN, path, wall0=two.end_wall + gap_s).notes)
    assert delivered(emu) == pytest.approx(TOTAL, abs=4 * RES), notes


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**TWO_CRASHES)
def test_SR30_two_crashes_in_a_row_add_up_to_the_plan(
    tmp_path: Path, first_s: float, second_s: float, gap_s: float
) -> None:
    check_two_crashes(tmp_path, first_s, second_s, gap_s)


@pytest.mark.slow
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**TWO_CRASHES)
def test_SR30_two_crashes_in_a_row_add_up_to_the_plan_larger_sample(
    tmp_path: Path, first_s: float, second_s: float, gap_s: float
) -> None:
    check_two_crashes(tmp_path, first_s, second_s, gap_s)


# ------------------------------------------------------------------ what carries over (#17)


async def titrate_down(sup: Supervisor, clock: Clock) -> None:
    while sup.phase is not Phase.MAINTENANCE:
        await clock.sleep(5.0)
    await sup.titrate(1.5, reason="too drowsy", who="nurse")


def is_set_rate(kind: str, payload: dict) -> bool:  # type: ignore[type-arg]
    return (
        kind == "command"
        and payload.get("command") == "set_rate"
        and payload.get("rate_ml_per_h") == 1.5
    )


def is_titrate_transition(kind: str, payload: dict) -> bool:  # type: ignore[type-arg]
    return kind == "transition" and payload.get("trigger") == "titrate"


def is_titration(kind: str, payload: dict) -> bool:  # type: ignore[type-arg]
    return kind == "titration"


@pytest.mark.parametrize(
    ("crash_when", "before_write", "confirmed"),
    [
        (is_titration, True, False),  # died before journaling the request
        (is_titration, False, False),  # journaled, not yet sent
        (is_set_rate, False, False),  # sent (maybe executed), no reply journaled
        (is_titrate_transition, True, True),  # the pump confirmed; died before the transition
        (is_titrate_transition, False, True),  # fully recorded
    ],
)
def test_crash_at_every_step_of_a_titration_resumes_at_the_last_confirmed_rate(
    tmp_path: Path,
    crash_when,
    before_write: bool,
    confirmed: bool,  # type: ignore[no-untyped-def]
) -> None:
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"
    first = controller(
        emu,
        PLAN,
        path,
        wall0=0.0,
        operator=titrate_down,
        crash_when=crash_when,
        before_write=before_write,
    )
    assert first.crashed
    second = controller(emu, PLAN, path, wall0=first.end_wall + 5.0, crash_at_s=60.0)
    emu.advance(0.0)
    rate = emu.snapshot()[0].rate_ml_per_h
    # "confirmed" = the machine recorded the titration: the reply came back ok before it fired.
    # A reply seen but not recorded (died just before the transition) is not yet confirmed.
    expected = 1.5 if confirmed and not before_write else 6.0
    assert rate == pytest.approx(expected, rel=1e-3), second.notes
    assert delivered(emu) <= TOTAL + 3 * RES


def test_crash_does_not_reset_the_titration_interval(tmp_path: Path) -> None:
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"

    async def increase(sup: Supervisor, clock: Clock) -> None:
        while sup.phase is not Phase.MAINTENANCE:
            await clock.sleep(5.0)
        await sup.titrate(9.0, reason="pain", who="nurse")

    first = controller(emu, PLAN, path, wall0=0.0, operator=increase, crash_at_s=MAINT_START_S + 60)
    assert first.crashed
    refused: list[str] = []

    async def increase_again(sup: Supervisor, clock: Clock) -> None:
        await clock.sleep(30.0)
        try:
            await sup.titrate(12.0, reason="still in pain", who="nurse")
        except SupervisorError as exc:
            refused.append(str(exc))
        await sup.stop(reason="test over")

    second = controller(emu, PLAN, path, wall0=first.end_wall + 60.0, operator=increase_again)
    assert second.result is not None
    assert refused and "interval" in refused[0], refused  # SR09 held across the crash
    assert second.result.phases[0].rate_ml_per_h == pytest.approx(9.0)


def test_a_crash_while_paused_resumes_paused_and_SR15_counts_from_the_pause(
    tmp_path: Path,
) -> None:
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"

    async def pause(sup: Supervisor, clock: Clock) -> None:
        while sup.phase is not Phase.MAINTENANCE:
            await clock.sleep(5.0)
        await sup.pause(reason="x-ray", who="nurse")

    first = controller(emu, PLAN, path, wall0=0.0, operator=pause, crash_at_s=MAINT_START_S + 300)
    assert first.crashed
    at_crash = delivered(emu)
    second = controller(emu, PLAN, path, wall0=first.end_wall + 60.0)
    assert second.result is not None
    assert second.result.outcome is Outcome.ALARM
    assert second.result.alarm == "paused_too_long"
    # nothing ran while paused, and the alarm came 15 min after the pause began, not the restart
    assert delivered(emu) == pytest.approx(at_crash, abs=RES)
    assert second.result.ended_s - second.result.started_s < 15 * 60.0


def test_rolling_limits_count_what_earlier_runs_delivered(tmp_path: Path) -> None:
    limited = PLAN.model_copy(update={"rolling_limits": RollingLimits(max_4h_ml=20.0)})
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"
    first = controller(emu, limited, path, wall0=0.0)
    assert first.result is not None and first.result.outcome is Outcome.COMPLETED
    # 11.5 mL in the first 65 min: the same program again would put 23 mL in 4 h
    second = controller(emu, limited, path, wall0=first.end_wall + 60.0)
    assert second.result is not None
    assert second.result.outcome is Outcome.ALARM and second.result.alarm == "rolling_limit"
    assert 20.0 - 0.01 < delivered(emu) <= 20.0 + 2 * RES + 6.0 / 3600.0  # within one poll


def test_kinds_are_journaled_as_typed_events(tmp_path: Path) -> None:
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"
    controller(emu, PLAN, path, wall0=0.0, operator=stop_in_maintenance)
    with Journal.open_readonly(path) as j:
        events = j.events(j.runs()[0].run_id)
    kinds = {e.kind for e in events}
    assert {EventKind.COMMAND, EventKind.CHECKPOINT, EventKind.TRANSITION} <= kinds
    for e in events:
        parse_record(e.kind, e.payload)  # every stored payload validates
