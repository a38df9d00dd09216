"""Safety requirements not proven elsewhere by a test of their own name (see docs/safety.md)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from pumpctl.clock import Clock
from pumpctl.dosing.plan import SegmentPhase, TitrationLimits
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.supervisor import Outcome, Supervisor
from pumpctl.log import configure_logging
from pumpctl.runner import run_on_simulator

from .conftest import make_plan, run_virtual, segment
from .fakes import FakePump

LIMITS = TitrationLimits(max_step_ml_per_h=3.0, min_interval_s=60.0, max_rate_ml_per_h=30.0)


def test_SR10_titration_is_journaled_with_old_new_reason_and_who(tmp_path: Path) -> None:
    plan = make_plan(segment(SegmentPhase.MAINTENANCE, 6.0, 3.0), titration=LIMITS)
    journal = Journal(tmp_path / "j.sqlite")

    async def main(clock: Clock) -> None:
        sup = Supervisor(FakePump(clock), plan, clock, journal=journal)
        task = asyncio.create_task(sup.run())
        while sup.phase is not Phase.MAINTENANCE:
            await clock.sleep(1.0)
        await sup.titrate(8.0, reason="patient distress", who="dr-a")
        await task

    run_virtual(main)
    run = journal.latest_run()
    assert run is not None
    (event,) = [e for e in journal.events(run.run_id) if e.kind == "titration"]
    assert event.payload["old_ml_per_h"] == 6.0
    assert event.payload["new_ml_per_h"] == 8.0
    assert event.payload["reason"] == "patient distress"
    assert event.payload["who"] == "dr-a"
    assert event.payload["accepted"] is True
    journal.close()


def test_SR18_stop_is_resent_until_the_pump_confirms_it() -> None:
    plan = make_plan(segment(SegmentPhase.MAINTENANCE, 6.0, 3.0))

    def fault(name: str, n: int) -> str | None:
        if name == "read_status" and n == 20:
            return "no_effect"  # nothing wrong with the pump...
        return "no_effect" if name == "stop" and 2 <= n <= 4 else None  # ...but it ignores STOP

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        pump = FakePump(clock, fault)
        sup = Supervisor(pump, plan, clock)
        task = asyncio.create_task(sup.run())
        while sup.phase is not Phase.MAINTENANCE:
            await clock.sleep(1.0)
        await clock.sleep(30.0)
        await sup.stop(reason="test")
        return await task, pump

    result, pump = run_virtual(main)
    assert result.outcome is Outcome.STOPPED
    assert pump.calls.count("stop") == 5  # the preparing stop, 3 ignored, the one that worked
    assert pump.state.value == "stopped"


def test_SR22_counter_disagreeing_with_rate_times_time_is_an_alarm() -> None:
    plan = make_plan(segment(SegmentPhase.MAINTENANCE, 6.0, 3.0))

    class FastCounter(FakePump):
        """A pump that runs 20 % fast: its own counter shows it, the accumulator disagrees."""

        def _advance(self) -> None:
            rate = self.rate_ml_per_h
            self.rate_ml_per_h = rate * 1.2
            super()._advance()
            self.rate_ml_per_h = rate

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        pump = FastCounter(clock)
        return await Supervisor(pump, plan, clock).run(), pump

    result, pump = run_virtual(main)
    assert (result.outcome, result.alarm) == (Outcome.ALARM, "volume_deviation")
    assert pump.state.value == "stopped"
    assert pump.total_ml < 3.0


def test_SR23_pump_running_past_its_target_is_stopped_with_alarm() -> None:
    plan = make_plan(segment(SegmentPhase.MAINTENANCE, 6.0, 3.0))

    class IgnoresTarget(FakePump):
        async def set_target_volume(self, volume_ml: float | None) -> None:
            await super().set_target_volume(None)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        pump = IgnoresTarget(clock)
        return await Supervisor(pump, plan, clock).run(), pump

    result, pump = run_virtual(main)
    assert (result.outcome, result.alarm) == (Outcome.ALARM, "over_delivery")
    assert pump.state.value == "stopped"
    assert pump.total_ml == pytest.approx(3.0, abs=0.002)  # one poll's worth at most


def test_SR24_end_of_infusion_goes_to_kvo_and_notifies(tmp_path: Path) -> None:
    plan = make_plan(
        segment(SegmentPhase.MAINTENANCE, 6.0, 1.0), segment(SegmentPhase.KVO, 0.5, None)
    )
    journal = Journal(tmp_path / "j.sqlite")

    async def kvo_then_stop(sup: Supervisor, clock: Clock) -> None:
        while sup.phase is not Phase.KVO:
            await clock.sleep(1.0)
        await clock.sleep(3600.0)
        await sup.stop(reason="line removed")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, journal=journal, operator=kvo_then_stop)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED  # the dose was complete; KVO ended by the operator
    run = journal.latest_run()
    assert run is not None
    notes = [e.payload.get("event") for e in journal.events(run.run_id) if e.kind == "note"]
    assert "dosing_complete_kvo" in notes
    assert truth.delivered_ml == pytest.approx(1.0 + 0.5, abs=0.01)  # 1 h of KVO at 0.5 mL/h
    assert truth.running is False
    journal.close()


def test_SR33_audit_lines_carry_pump_program_phase_and_library(tmp_path: Path) -> None:
    plan = make_plan(segment(SegmentPhase.LOADING, 60.0, 1.0)).model_copy(
        update={"library_version": "2026.11-1"}
    )
    audit = tmp_path / "audit.jsonl"
    sink = configure_logging(audit_path=audit, console=False, level=logging.DEBUG)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock)

    run_virtual(main)
    assert sink is not None
    sink.close()
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    ours = [
        e for e in lines if e.get("logger") in ("pumpctl.infusion.supervisor", "pumpctl.driver")
    ]
    assert all(e["pump_id"] == "ne1000-0" for e in ours)  # the connection probe too
    start = next(i for i, e in enumerate(ours) if e["event"] == "run.start")
    ours = ours[start:]  # from here on the program and its phase are known
    assert any(e["event"] == "pump.exchange" for e in ours)  # every wire exchange is there
    for e in ours:
        assert e["pump_id"] == "ne1000-0", e
        assert e.get("program_id") == "test-program", e
        assert e.get("library_version") == "2026.11-1", e
        assert e.get("phase") in {p.value for p in Phase}, e
        assert "timestamp" in e and "level" in e
    phases = {e["phase"] for e in ours}
    assert {"loading", "completed"} <= phases
