"""Supervisor end to end: real NE-1000 driver <-> in-memory NE-1000 emulation, virtual clock.

Every assertion is about what the pump physically did (the emulation's ground truth) as well as
what the supervisor reports, so a supervisor that merely *believes* it stopped the pump fails.
"""

from __future__ import annotations

import pytest

from pumpctl.clock import Clock
from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.supervisor import Outcome, Supervisor, SupervisorConfig, SupervisorError
from pumpctl.runner import DemoScenario, run_on_simulator
from pumpctl.simulator.server import build_emulation

from .conftest import make_plan, run_virtual, segment

RESOLUTION_ML = 0.001  # NE-1000 with a >14 mm syringe counts mL with 3 decimals


async def wait_for_phase(sup: Supervisor, clock: Clock, phase: Phase) -> None:
    while sup.phase is not phase:
        await clock.sleep(1.0)


def test_acute_program_delivers_plan_per_phase(acute_plan: Plan) -> None:
    emu = build_emulation("ne1000", [0])

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(acute_plan, clock, emulation=emu, operator=DemoScenario())

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED
    for ph in result.phases:
        assert ph.planned_ml is not None
        assert ph.delivered_ml == pytest.approx(ph.planned_ml, abs=RESOLUTION_ML)
    assert truth.delivered_ml == pytest.approx(40.75, abs=3 * RESOLUTION_ML)
    assert truth.running is False
    # 4 h of maintenance at 14 mL/h plus a 5 min pause plus prime/loading, all on simulated time
    maintenance = next(p for p in result.phases if p.phase is SegmentPhase.MAINTENANCE)
    assert maintenance.started_s is not None and maintenance.ended_s is not None
    assert maintenance.ended_s - maintenance.started_s == pytest.approx(4 * 3600 + 300, abs=3.0)


def check_multi_day(days: int, config: SupervisorConfig | None) -> None:
    plan = make_plan(segment(SegmentPhase.MAINTENANCE, 0.5, 12.0 * days))  # at 0.5 mL/h

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, config=config)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED
    assert result.ended_s - result.started_s == pytest.approx(days * 24 * 3600, abs=3.0)
    assert truth.delivered_ml == pytest.approx(12.0 * days, abs=RESOLUTION_ML)


def test_multi_day_program_runs_on_virtual_clock() -> None:
    """Two days polled every 10 s (exactness does not depend on the poll: the pump stops at its
    own target); the slow suite runs three days at the default 1 s poll."""
    check_multi_day(2, SupervisorConfig(poll_interval_s=10.0, watchdog_timeout_s=30.0))


@pytest.mark.slow
def test_multi_day_program_runs_on_virtual_clock_at_the_default_poll() -> None:
    check_multi_day(3, None)


def test_SR26_stall_stops_infusion_with_alarm(acute_plan: Plan) -> None:
    emu = build_emulation("ne1000", [0])

    async def occlude(sup: Supervisor, clock: Clock) -> None:
        await wait_for_phase(sup, clock, Phase.MAINTENANCE)
        await clock.sleep(600)
        emu.set_occlusion(0, True)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(acute_plan, clock, emulation=emu, operator=occlude)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.ALARM
    assert result.alarm == "stall"
    assert truth.running is False
    assert truth.delivered_ml < 40.75


def test_SR25_SR26_empty_syringe_stops_with_alarm() -> None:
    # 81 mL planned from a 60 mL syringe whose capacity the controller was not told: the plunger
    # bottoms out and the pump's own stall alarm stops the run (with the capacity known, the
    # supervisor stops first: tests/test_container_change.py)
    plan = make_plan(
        segment(SegmentPhase.LOADING, 147.0, 24.5),
        segment(SegmentPhase.MAINTENANCE, 14.0, 56.0),
        capacity_ml=None,
    )

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.ALARM
    assert result.alarm == "stall"
    assert truth.running is False
    assert truth.delivered_ml == pytest.approx(60.0, abs=RESOLUTION_ML)
    assert result.delivered_ml == pytest.approx(60.0, abs=RESOLUTION_ML)


def test_SR17_SR19_link_loss_alarms_and_pump_watchdog_stops(acute_plan: Plan) -> None:
    emu = build_emulation("ne1000", [0])
    config = SupervisorConfig(stop_confirm_deadline_s=20.0)

    async def cut_link(sup: Supervisor, clock: Clock) -> None:
        await wait_for_phase(sup, clock, Phase.MAINTENANCE)
        await clock.sleep(120)
        emu.set_link_up(False)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(
            acute_plan, clock, emulation=emu, operator=cut_link, config=config
        )

    result, _ = run_virtual(main)
    assert result.alarm == "communication_lost"
    # the controller could not reach the pump, so it must not claim a confirmed stop (SR18)
    assert result.outcome is Outcome.UNCONFIRMED
    # the pump's own link watchdog (SR19) stopped it: at most watchdog timeout after the last packet
    emu.advance(0.0)
    snap = emu.snapshot()[0]
    assert snap.running is False
    assert snap.alarm is not None


def test_SR15_pause_longer_than_limit_raises_alarm(acute_plan: Plan) -> None:
    emu = build_emulation("ne1000", [0])
    config = SupervisorConfig(max_pause_s=600.0)

    async def pause_forever(sup: Supervisor, clock: Clock) -> None:
        await wait_for_phase(sup, clock, Phase.MAINTENANCE)
        await sup.pause(reason="bed bath")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(
            acute_plan, clock, emulation=emu, operator=pause_forever, config=config
        )

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.ALARM
    assert result.alarm == "paused_too_long"
    assert truth.running is False


def test_operator_stop_ends_run_stopped(acute_plan: Plan) -> None:
    emu = build_emulation("ne1000", [0])

    async def stop_soon(sup: Supervisor, clock: Clock) -> None:
        await wait_for_phase(sup, clock, Phase.LOADING)
        await clock.sleep(60)
        await sup.stop(reason="patient request")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(acute_plan, clock, emulation=emu, operator=stop_soon)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.STOPPED
    assert truth.running is False
    loading = next(p for p in result.phases if p.phase is SegmentPhase.LOADING)
    # 60 s at 73.5 mL/h = 1.225 mL, give or take one poll
    assert loading.delivered_ml == pytest.approx(73.5 * 60 / 3600, abs=73.5 * 1.5 / 3600)
    assert truth.delivered_ml == pytest.approx(0.5 + loading.delivered_ml, abs=0.01)


def test_SR18_an_operator_stop_the_pump_never_confirms_is_unconfirmed(acute_plan: Plan) -> None:
    emu = build_emulation("ne1000", [0])

    async def stop_in_loading(sup: Supervisor, clock: Clock) -> None:
        await wait_for_phase(sup, clock, Phase.LOADING)
        await clock.sleep(60)
        emu.set_link_up(False)  # the cable is pulled as the operator asks for the stop
        await sup.stop(reason="patient request")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(acute_plan, clock, emulation=emu, operator=stop_in_loading)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.UNCONFIRMED
    assert result.alarm == "stop_unconfirmed"
    assert truth.running is False  # its own link watchdog stopped it (SR19)


def test_SR09_titration_only_in_maintenance_and_within_limits(acute_plan: Plan) -> None:
    emu = build_emulation("ne1000", [0])
    seen: dict[str, object] = {}

    async def titrate(sup: Supervisor, clock: Clock) -> None:
        await wait_for_phase(sup, clock, Phase.LOADING)
        with pytest.raises(SupervisorError, match="maintenance"):
            await sup.titrate(10.0, reason="too early")
        await wait_for_phase(sup, clock, Phase.MAINTENANCE)
        with pytest.raises(SupervisorError):
            await sup.titrate(7.0 + 3.6, reason="step too large")  # max step 3.5 mL/h
        await sup.titrate(10.5, reason="distress")  # +3.5 mL/h: allowed
        with pytest.raises(SupervisorError):
            await sup.titrate(14.0, reason="again too soon")  # min interval 15 min
        await sup.titrate(5.0, reason="sedated")  # decreases always allowed, immediately
        seen["rate"] = emu.snapshot()[0].rate_ml_per_h

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(acute_plan, clock, emulation=emu, operator=titrate)

    result, truth = run_virtual(main)
    assert seen["rate"] == pytest.approx(5.0)
    assert result.outcome is Outcome.COMPLETED
    maintenance = next(p for p in result.phases if p.phase is SegmentPhase.MAINTENANCE)
    assert maintenance.delivered_ml == pytest.approx(28.0, abs=RESOLUTION_ML)  # volume is the limit
    assert truth.delivered_ml == pytest.approx(40.75, abs=3 * RESOLUTION_ML)


def test_SR28_pump_reset_is_detected_never_rerun(acute_plan: Plan) -> None:
    emu = build_emulation("ne1000", [0])

    async def power_cut(sup: Supervisor, clock: Clock) -> None:
        await wait_for_phase(sup, clock, Phase.MAINTENANCE)
        await clock.sleep(900)
        emu.power_cycle(0)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(acute_plan, clock, emulation=emu, operator=power_cut)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.ALARM
    assert result.alarm == "reset"
    assert truth.running is False
    # 15 min of maintenance at 7 mL/h = 1.75 mL after prime and loading, then nothing more
    assert truth.delivered_ml == pytest.approx(12.75 + 1.75, abs=0.05)


def test_SR29_journal_accounts_for_every_phase(acute_plan: Plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    journal = Journal(tmp_path / "run.sqlite")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(acute_plan, clock, journal=journal)

    result, _ = run_virtual(main)
    run = journal.latest_run()
    assert run is not None and run.status == "completed"
    events = journal.events(run.run_id)
    kinds = [e.kind for e in events]
    assert kinds.count("segment_start") == 3 and kinds.count("segment_end") == 3
    commands = [e.payload["command"] for e in events if e.kind == "command"]
    assert commands[:2] == ["stop", "configure_syringe"]
    assert commands.count("start") == 3
    ends = {
        e.payload["phase"]: e.payload["delivered_ml"] for e in events if e.kind == "segment_end"
    }
    for ph in result.phases:
        assert ends[ph.phase.value] == pytest.approx(ph.delivered_ml)
    transitions = [
        (e.payload["source"], e.payload["dest"]) for e in events if e.kind == "transition"
    ]
    assert transitions[0] == ("idle", "priming")
    assert transitions[-1] == ("maintenance", "completed")
    journal.close()


def test_SR08_rolling_hourly_total_stops_infusion_with_alarm() -> None:
    from pumpctl.dosing.plan import RollingLimits

    base = make_plan(segment(SegmentPhase.MAINTENANCE, 7.0, 28.0))
    plan = base.model_copy(update={"rolling_limits": RollingLimits(max_1h_ml=5.0)})
    emu = build_emulation("ne1000", [0])

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, emulation=emu)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.ALARM
    assert result.alarm == "rolling_limit"
    assert truth.running is False
    # 7 mL/h crosses 5 mL in the first hour after 5/7 h = 2571 s; stopped within a poll or two
    assert truth.delivered_ml == pytest.approx(5.0, abs=7.0 * 3 / 3600 + RESOLUTION_ML)
