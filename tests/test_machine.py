"""The phase state machine against an independent reference of the specified table (SR12-SR16)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from structlog.testing import capture_logs

from pumpctl.infusion.machine import (
    PUMP_MAY_RUN,
    TRANSITIONS,
    InfusionMachine,
    InvalidTransition,
    Phase,
    TransitionRecord,
    Trigger,
    pump_may_run,
)

P, T = Phase, Trigger
PAUSABLE = (P.PRIMING, P.LOADING, P.MAINTENANCE, P.TCI, P.KVO)
REASON = {"reason": "operator"}

# The specification, written out independently of the module: (phase, trigger) -> destination.
# `resume` is listed per remembered phase below.
EXPECTED: dict[tuple[Phase, Trigger], Phase] = {
    (P.IDLE, T.START_PRIMING): P.PRIMING,
    (P.IDLE, T.SKIP_PRIMING): P.READY,
    (P.PRIMING, T.PRIMING_DONE): P.READY,
    (P.READY, T.START_LOADING): P.LOADING,
    (P.READY, T.START_MAINTENANCE): P.MAINTENANCE,
    (P.LOADING, T.START_MAINTENANCE): P.MAINTENANCE,
    (P.MAINTENANCE, T.START_KVO): P.KVO,
    (P.READY, T.START_TCI): P.TCI,
    (P.TCI, T.START_KVO): P.KVO,
    (P.TCI, T.COMPLETE): P.COMPLETED,
    (P.TCI, T.RETARGET): P.TCI,
    (P.MAINTENANCE, T.BOLUS): P.MAINTENANCE,
    (P.LOADING, T.COMPLETE): P.COMPLETED,
    (P.MAINTENANCE, T.COMPLETE): P.COMPLETED,
    (P.KVO, T.COMPLETE): P.COMPLETED,
    **{(p, T.PAUSE): P.PAUSED for p in PAUSABLE},
    (P.MAINTENANCE, T.TITRATE): P.MAINTENANCE,
    **{(p, T.STOP): P.STOPPED for p in Phase},
    **{(p, T.ALARM): P.ALARM for p in Phase},
    (P.STOPPED, T.RESET): P.IDLE,
    (P.ALARM, T.RESET): P.IDLE,
    (P.COMPLETED, T.RESET): P.IDLE,
}
NEEDS_REASON = {T.SKIP_PRIMING, T.ALARM}

# How to reach each phase from idle (paused: one path per phase it was paused from).
Step = tuple[Trigger, dict[str, Any]]
TO_READY: list[Step] = [(T.START_PRIMING, {}), (T.PRIMING_DONE, {})]
TO_MAINTENANCE: list[Step] = [*TO_READY, (T.START_MAINTENANCE, {})]
PATHS: dict[Phase, list[Step]] = {
    P.IDLE: [],
    P.PRIMING: [(T.START_PRIMING, {})],
    P.READY: TO_READY,
    P.LOADING: [*TO_READY, (T.START_LOADING, {})],
    P.MAINTENANCE: TO_MAINTENANCE,
    P.TCI: [*TO_READY, (T.START_TCI, {})],
    P.KVO: [*TO_MAINTENANCE, (T.START_KVO, {})],
    P.STOPPED: [*TO_MAINTENANCE, (T.STOP, {})],
    P.COMPLETED: [*TO_MAINTENANCE, (T.COMPLETE, {})],
    P.ALARM: [*TO_MAINTENANCE, (T.ALARM, {"reason": "occlusion"})],
}


def paused_path(from_phase: Phase) -> list[Step]:
    return [*PATHS[from_phase], (T.PAUSE, {})]


# Every concrete situation: (label, path, phase, remembered phase).
SITUATIONS: list[tuple[str, list[Step], Phase, Phase | None]] = [
    *((p.value, path, p, None) for p, path in PATHS.items()),
    *((f"paused_from_{p.value}", paused_path(p), P.PAUSED, p) for p in PAUSABLE),
]


def expected_dest(phase: Phase, resume: Phase | None, trigger: Trigger) -> Phase | None:
    if phase is P.PAUSED and trigger is T.RESUME:
        return resume
    return EXPECTED.get((phase, trigger))


def machine_at(path: list[Step], **kwargs: Any) -> InfusionMachine:
    m = InfusionMachine(**kwargs)
    for trigger, info in path:
        m.fire(trigger, **info)
    return m


def info_for(trigger: Trigger) -> dict[str, Any]:
    return dict(REASON) if trigger in NEEDS_REASON else {}


ALLOWED_CASES = [
    pytest.param(path, phase, resume, trigger, dest, id=f"{label}-{trigger.value}")
    for label, path, phase, resume in SITUATIONS
    for trigger in Trigger
    if (dest := expected_dest(phase, resume, trigger)) is not None
]
REFUSED_CASES = [
    pytest.param(path, phase, resume, trigger, id=f"{label}-{trigger.value}")
    for label, path, phase, resume in SITUATIONS
    for trigger in Trigger
    if expected_dest(phase, resume, trigger) is None
]


def test_case_lists_cover_full_product() -> None:
    assert len(ALLOWED_CASES) + len(REFUSED_CASES) == len(SITUATIONS) * len(Trigger)
    # 48, plus tci: start, start_kvo, complete, retarget, pause, resume; bolus in maintenance
    assert len(ALLOWED_CASES) == 59
    assert len(REFUSED_CASES) == 181


@pytest.mark.parametrize(("path", "phase", "resume", "trigger", "dest"), ALLOWED_CASES)
def test_allowed_transition(
    path: list[Step], phase: Phase, resume: Phase | None, trigger: Trigger, dest: Phase
) -> None:
    seen: list[TransitionRecord] = []
    m = machine_at(path, on_transition=seen.append)
    assert (m.phase, m.resume_phase) == (phase, resume)
    assert m.may(trigger)
    info = info_for(trigger)
    assert m.fire(trigger, **info) is dest
    assert m.phase is dest
    record = TransitionRecord(trigger=trigger, source=phase, dest=dest, info=info)
    assert m.history[-1] == record
    assert seen[-1] == record
    assert len(seen) == len(path) + 1
    assert m.resume_phase == (phase if dest is P.PAUSED else None)


@pytest.mark.parametrize(("path", "phase", "resume", "trigger"), REFUSED_CASES)
def test_refused_transition_changes_nothing(
    path: list[Step], phase: Phase, resume: Phase | None, trigger: Trigger
) -> None:
    seen: list[TransitionRecord] = []
    m = machine_at(path, on_transition=seen.append)
    before = (m.phase, m.resume_phase, m.alarm_reason, m.alarm_reasons, list(m.history))
    assert not m.may(trigger)
    with pytest.raises(InvalidTransition) as caught:
        m.fire(trigger, **REASON)
    assert (caught.value.phase, caught.value.trigger) == (phase, trigger)
    assert (m.phase, m.resume_phase, m.alarm_reason, m.alarm_reasons, list(m.history)) == before
    assert len(seen) == len(path)


@pytest.mark.parametrize(
    ("label", "path", "phase", "resume"), [pytest.param(*s, id=s[0]) for s in SITUATIONS]
)
def test_allowed_triggers_match_table(
    label: str, path: list[Step], phase: Phase, resume: Phase | None
) -> None:
    m = machine_at(path)
    expected = [t for t in Trigger if expected_dest(phase, resume, t) is not None]
    assert m.allowed_triggers() == expected


def test_SR12_declared_table_is_exactly_the_specification() -> None:
    """The data table at the top of the module, read as data, equals the written spec."""
    declared: dict[tuple[Phase, Trigger], set[Phase]] = {}
    for row in TRANSITIONS:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        for source in sources:
            dest = row["dest"] if row["dest"] is not None else source
            declared.setdefault((Phase(source), Trigger(row["trigger"])), set()).add(Phase(dest))
    spec = {key: {dest} for key, dest in EXPECTED.items()}
    spec[(P.PAUSED, T.RESUME)] = set(PAUSABLE)
    assert declared == spec


def test_SR12_refusal_message_names_phase_trigger_and_allowed() -> None:
    m = InfusionMachine()
    with pytest.raises(InvalidTransition) as caught:
        m.fire(T.START_LOADING)
    assert str(caught.value) == (
        "trigger 'start_loading' refused in phase 'idle' "
        "(allowed: start_priming, skip_priming, stop, alarm)"
    )
    assert caught.value.allowed == [T.START_PRIMING, T.SKIP_PRIMING, T.STOP, T.ALARM]


@pytest.mark.parametrize("info", [{}, {"reason": ""}, {"reason": "   "}, {"reason": 3}])
def test_SR12_guarded_trigger_without_reason_is_refused(info: dict[str, Any]) -> None:
    for label, path, phase, resume in SITUATIONS:
        for trigger in NEEDS_REASON:
            if expected_dest(phase, resume, trigger) is None:
                continue
            m = machine_at(path)
            with pytest.raises(InvalidTransition, match="requires a non-empty reason"):
                m.fire(trigger, **info)
            assert (m.phase, m.resume_phase, len(m.history)) == (phase, resume, len(path)), label


@pytest.mark.parametrize(
    ("label", "path", "phase", "resume"), [pytest.param(*s, id=s[0]) for s in SITUATIONS]
)
def test_SR13_stop_from_every_phase(
    label: str, path: list[Step], phase: Phase, resume: Phase | None
) -> None:
    m = machine_at(path)
    assert m.may(T.STOP)
    assert m.fire(T.STOP) is P.STOPPED
    assert m.resume_phase is None
    assert not pump_may_run(m.phase)
    # Stopping again is accepted and changes nothing.
    assert m.fire(T.STOP) is P.STOPPED
    assert m.history[-1] == TransitionRecord(T.STOP, P.STOPPED, P.STOPPED, {})


def test_SR14_no_loading_before_priming() -> None:
    m = InfusionMachine()
    for _ in range(2):
        with pytest.raises(InvalidTransition):
            m.fire(T.START_LOADING)
        with pytest.raises(InvalidTransition):
            m.fire(T.START_MAINTENANCE)
        if m.phase is P.IDLE:
            m.fire(T.START_PRIMING)
    assert m.phase is P.PRIMING
    m.fire(T.PRIMING_DONE)
    assert m.fire(T.START_LOADING) is P.LOADING


def test_SR14_priming_skipped_explicitly_with_reason() -> None:
    m = InfusionMachine()
    with pytest.raises(InvalidTransition, match="requires a non-empty reason"):
        m.fire(T.SKIP_PRIMING)
    assert m.phase is P.IDLE
    assert m.fire(T.SKIP_PRIMING, reason="line primed by hand") is P.READY
    assert m.history[-1].info == {"reason": "line primed by hand"}
    assert m.fire(T.START_LOADING) is P.LOADING


@pytest.mark.parametrize("end", [P.STOPPED, P.ALARM, P.COMPLETED])
def test_SR16_no_auto_resume_after_stop_alarm_or_completion(end: Phase) -> None:
    m = machine_at(PATHS[end])
    assert m.allowed_triggers() == [T.STOP, T.ALARM, T.RESET]
    for trigger in (T.RESUME, T.START_PRIMING, T.START_LOADING, T.START_MAINTENANCE, T.START_KVO):
        with pytest.raises(InvalidTransition):
            m.fire(trigger)
    assert m.fire(T.RESET) is P.IDLE
    assert m.alarm_reason is None and m.alarm_reasons == ()
    # A new start goes through priming (or an explicit skip) again.
    with pytest.raises(InvalidTransition):
        m.fire(T.START_LOADING)


def test_SR16_reset_is_the_only_way_out_and_never_runs_the_pump() -> None:
    for end, trigger in itertools.product((P.STOPPED, P.ALARM, P.COMPLETED), Trigger):
        m = machine_at(PATHS[end])
        try:
            dest = m.fire(trigger, **REASON)
        except InvalidTransition:
            continue
        assert not pump_may_run(dest)
        assert dest in {P.STOPPED, P.ALARM, P.IDLE}


def test_alarm_keeps_first_reason_and_records_later_ones() -> None:
    m = machine_at(PATHS[P.KVO])
    m.fire(T.ALARM, reason="occlusion")
    assert m.fire(T.ALARM, reason="communication lost") is P.ALARM
    assert m.alarm_reason == "occlusion"
    assert m.alarm_reasons == ("occlusion", "communication lost")
    assert m.history[-1] == TransitionRecord(
        T.ALARM, P.ALARM, P.ALARM, {"reason": "communication lost"}
    )
    m.fire(T.STOP)
    assert m.alarm_reason == "occlusion"  # still the reason the run ended, until reset
    m.fire(T.RESET)
    assert m.alarm_reason is None


def test_titrate_only_in_maintenance_SR09() -> None:
    m = machine_at(PATHS[P.MAINTENANCE])
    assert m.fire(T.TITRATE, old_rate_ml_per_h=10.0, new_rate_ml_per_h=12.0) is P.MAINTENANCE
    assert m.history[-1].info == {"old_rate_ml_per_h": 10.0, "new_rate_ml_per_h": 12.0}
    m.fire(T.PAUSE)
    with pytest.raises(InvalidTransition):
        m.fire(T.TITRATE)


def test_resume_returns_to_the_paused_phase_only() -> None:
    for phase in PAUSABLE:
        m = machine_at(paused_path(phase))
        assert m.resume_phase is phase
        with pytest.raises(InvalidTransition):
            m.fire(T.PAUSE)
        assert m.fire(T.RESUME) is phase
        assert m.resume_phase is None


def test_pump_may_run_set() -> None:
    assert {P.PRIMING, P.LOADING, P.MAINTENANCE, P.TCI, P.KVO} == PUMP_MAY_RUN
    assert [p for p in Phase if pump_may_run(p)] == list(PAUSABLE)


def test_string_triggers_are_accepted_and_info_is_copied() -> None:
    m = InfusionMachine()
    info = {"reason": "primed", "model": "ne1000"}
    assert m.fire("skip_priming", **info) is P.READY  # type: ignore[arg-type]
    info["reason"] = "changed"
    assert m.history[-1].info == {"reason": "primed", "model": "ne1000"}
    with pytest.raises(ValueError):
        m.fire("launch")  # type: ignore[arg-type]


def test_on_transition_errors_propagate_after_the_phase_changed() -> None:
    def boom(record: TransitionRecord) -> None:
        raise RuntimeError("journal full")

    m = InfusionMachine(on_transition=boom)
    with pytest.raises(RuntimeError, match="journal full"):
        m.fire(T.START_PRIMING)
    assert m.phase is P.PRIMING


def test_transitions_are_logged_with_bound_context() -> None:
    with capture_logs() as logs:
        m = InfusionMachine(log_context={"pump_id": "ne1000@0", "program_id": "ket-1"})
        m.fire(T.START_PRIMING)
        with pytest.raises(InvalidTransition):
            m.fire(T.COMPLETE)
    assert logs[0] == {
        "event": "transition",
        "log_level": "info",
        "logger": "pumpctl.infusion.machine",
        "pump_id": "ne1000@0",
        "program_id": "ket-1",
        "trigger": "start_priming",
        "source": "idle",
        "dest": "priming",
        "info": {},
    }
    assert logs[1]["event"] == "transition_refused"
    assert logs[1]["log_level"] == "warning"
    assert (logs[1]["pump_id"], logs[1]["trigger"], logs[1]["phase"]) == (
        "ne1000@0",
        "complete",
        "priming",
    )


# --- property-based: random trigger sequences against the reference ---------------------------

RUN_STARTERS = {T.START_PRIMING, T.START_LOADING, T.START_MAINTENANCE, T.START_TCI, T.START_KVO}
RUN_STARTERS |= {T.RESUME}


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(list(Trigger)), st.booleans()), max_size=40))
def test_random_sequences_follow_the_reference(seq: list[tuple[Trigger, bool]]) -> None:
    m = InfusionMachine()
    phase, resume = P.IDLE, None
    for trigger, with_reason in seq:
        info = dict(REASON) if with_reason else {}
        dest = expected_dest(phase, resume, trigger)
        if dest is not None and trigger in NEEDS_REASON and not with_reason:
            dest = None
        if dest is None:
            with pytest.raises(InvalidTransition):
                m.fire(trigger, **info)
        else:
            assert m.fire(trigger, **info) is dest
            resume = phase if dest is P.PAUSED else None
            phase = dest
        assert (m.phase, m.resume_phase) == (phase, resume)


class MachineRules(RuleBasedStateMachine):
    """Stateful check of the invariants the supervisor relies on."""

    def __init__(self) -> None:
        super().__init__()
        self.m = InfusionMachine()
        self.paused_from: Phase | None = None

    @rule(trigger=st.sampled_from(list(Trigger)), reason=st.sampled_from([None, "", "why"]))
    def fire(self, trigger: Trigger, reason: str | None) -> None:
        source = self.m.phase
        info = {} if reason is None else {"reason": reason}
        try:
            dest = self.m.fire(trigger, **info)
        except InvalidTransition:
            assert self.m.phase is source
            return
        assert isinstance(dest, Phase)
        # The pump starts running only through an explicit start or resume.
        if pump_may_run(dest) and not pump_may_run(source):
            assert trigger in RUN_STARTERS
        if source is P.PAUSED and trigger is T.RESUME:
            assert dest is self.paused_from
        self.paused_from = source if dest is P.PAUSED else None

    @precondition(lambda self: self.m.phase is P.PAUSED)
    @rule()
    def resume(self) -> None:
        assert self.m.fire(T.RESUME) is self.paused_from

    @invariant()
    def phase_is_known(self) -> None:
        assert self.m.phase in set(Phase)

    @invariant()
    def resume_phase_only_while_paused(self) -> None:
        assert self.m.resume_phase == (self.paused_from if self.m.phase is P.PAUSED else None)

    @invariant()
    def stop_always_reachable(self) -> None:
        assert self.m.may(T.STOP)
        assert T.STOP in self.m.allowed_triggers()

    @invariant()
    def alarm_reason_iff_alarmed_since_reset(self) -> None:
        if self.m.phase is P.ALARM:
            assert self.m.alarm_reason
        if self.m.phase in {P.IDLE, P.PRIMING, P.READY}:
            assert self.m.alarm_reason is None


MachineRules.TestCase.settings = settings(max_examples=40, stateful_step_count=40)
TestMachineRules = MachineRules.TestCase


class MachineRulesLargerSample(MachineRules):
    """The same rules, many more runs: `make test-slow`."""


MachineRulesLargerSample.TestCase.settings = settings(max_examples=300, stateful_step_count=60)
TestMachineRulesLargerSample = pytest.mark.slow(MachineRulesLargerSample.TestCase)
