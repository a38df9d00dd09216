"""Programs that need more than one syringe (issue: container capacity; SR25)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pumpctl.clock import Clock
from pumpctl.dosing.plan import ContainerSpec, SegmentPhase
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.supervisor import Outcome, Supervisor, SupervisorError
from pumpctl.runner import run_on_simulator
from pumpctl.simulator.server import build_emulation

from .conftest import make_plan, run_virtual, segment

RES = 0.001


def test_SR25_syringe_change_warns_pauses_and_continues_after_confirmation() -> None:
    base = make_plan(segment(SegmentPhase.MAINTENANCE, 30.0, 100.0))  # 100 mL from 60 mL syringes
    plan = base.model_copy(
        update={
            "container": ContainerSpec(
                inner_diameter_mm=26.7, capacity_ml=60.0, changes_allowed=True
            )
        }
    )
    emu = build_emulation("ne1000", [0])
    seen: dict[str, object] = {}

    async def nurse(sup: Supervisor, clock: Clock) -> None:
        while not sup.progress().notices:
            await clock.sleep(10.0)
        seen["warning"] = list(sup.progress().notices)
        seen["warned_at_ml"] = sup.progress().total_delivered_ml
        while "change needed" not in " ".join(sup.progress().notices):
            await clock.sleep(10.0)
        seen["phase_at_empty"] = sup.phase
        seen["delivered_at_empty"] = sup.progress().total_delivered_ml
        with pytest.raises(SupervisorError, match="syringe change first"):
            await sup.resume()
        await clock.sleep(300.0)  # five minutes to change the syringe
        emu.load_syringe(0, 26.7, 60.0, 60.0)
        await sup.container_changed(who="nurse")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, emulation=emu, operator=nurse)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED
    assert result.delivered_ml == pytest.approx(100.0, abs=2 * RES)
    assert truth.delivered_ml == pytest.approx(100.0, abs=3 * RES)
    assert "nearly empty" in str(seen["warning"])
    assert float(seen["warned_at_ml"]) == pytest.approx(54.0, abs=0.1)  # 10 % of 60 mL left
    assert seen["phase_at_empty"] is Phase.PAUSED
    # the pump stopped itself a 0.12 mL reserve short of the plunger bottoming out (0.2 %)
    assert float(seen["delivered_at_empty"]) == pytest.approx(60.0 - 0.12, abs=RES)


def test_SR25_empty_container_without_changes_is_an_alarm_before_the_syringe_stalls() -> None:
    base = make_plan(segment(SegmentPhase.MAINTENANCE, 30.0, 80.0))
    plan = base.model_copy(
        update={"container": ContainerSpec(inner_diameter_mm=26.7, capacity_ml=60.0)}
    )

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock)

    result, truth = run_virtual(main)
    assert (result.outcome, result.alarm) == (Outcome.ALARM, "container_empty")
    assert truth.running is False
    assert truth.alarm != "stall"  # the controller stopped it, not the end of travel
    assert truth.delivered_ml == pytest.approx(60.0 - 0.12, abs=RES)


async def test_syringe_changed_reaches_the_supervisor_over_the_control_socket(
    tmp_path: Path,
) -> None:
    from pumpctl.infusion.supervisor import Progress
    from pumpctl.operator.control import ControlServer
    from pumpctl.operator.control_client import send_request

    class Sup:
        """Stands in for a running supervisor: records the confirmation it receives."""

        confirmed_by: str | None = None
        driver = SimpleNamespace(pump_id="ne1000-0")
        plan = SimpleNamespace(program="crps")

        async def container_changed(self, *, volume_ml: float | None = None, who: str) -> None:
            self.confirmed_by = who

        def progress(self) -> Progress:
            return Progress(
                clock_s=0.0,
                phase="maintenance",
                segment=None,
                rate_ml_per_h=7.0,
                dose_rate=None,
                dose_rate_unit=None,
                segment_delivered_ml=0.0,
                segment_planned_ml=None,
                total_delivered_ml=60.0,
                total_planned_ml=100.0,
                segment_remaining_s=None,
                alarms=[],
            )

    sup = Sup()
    path = tmp_path / "run.ctl"
    async with ControlServer(sup, path, rate_parser=float):  # type: ignore[arg-type]
        reply = await send_request(path, {"op": "syringe-changed", "who": "nurse"}, 10.0)
    assert reply["ok"] is True
    assert sup.confirmed_by == "nurse"


def test_demo_nurse_changes_syringes_so_a_long_program_runs_unattended() -> None:
    base = make_plan(segment(SegmentPhase.MAINTENANCE, 60.0, 150.0))  # 2.5 syringes
    plan = base.model_copy(
        update={
            "container": ContainerSpec(
                inner_diameter_mm=26.7, capacity_ml=60.0, changes_allowed=True
            )
        }
    )

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, change_containers=True)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED
    assert truth.delivered_ml == pytest.approx(150.0, abs=3 * RES)
    # two changes of five minutes each on top of 2.5 h of pumping (plus up to a poll each)
    assert result.ended_s - result.started_s == pytest.approx(2.5 * 3600 + 600, abs=130)


def test_SR25_a_fast_prime_from_a_fresh_small_syringe_is_not_near_empty() -> None:
    """10 min at the prime's 60 mL/h would empty a 10 mL syringe, but the prime is 0.5 mL: the
    look-ahead follows the plan, so the warning comes near the end of the syringe, not at once."""
    base = make_plan(
        segment(SegmentPhase.PRIME, 60.0, 0.5),
        segment(SegmentPhase.MAINTENANCE, 2.0, 12.0),  # needs a second syringe
    )
    plan = base.model_copy(
        update={
            "container": ContainerSpec(
                inner_diameter_mm=14.5,
                capacity_ml=10.0,
                changes_allowed=True,  # BD 10 mL
            )
        }
    )
    emu = build_emulation("ne1000", [0])
    emu.load_syringe(0, 14.5, 10.0, 10.0)
    warned_at: list[float] = []

    async def watch(sup: Supervisor, clock: Clock) -> None:
        while sup.phase not in (Phase.COMPLETED, Phase.ALARM, Phase.STOPPED):
            if not warned_at and any("nearly empty" in n for n in sup.progress().notices):
                warned_at.append(sup.progress().total_delivered_ml)
            if sup.awaiting_container_change:
                await sup.stop(reason="seen enough")
            await clock.sleep(5.0)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, emulation=emu, operator=watch)

    run_virtual(main)
    assert warned_at and warned_at[0] >= 8.9  # 1 mL (10 % of the syringe) or less left
