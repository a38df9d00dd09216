"""Fault matrix: every simulator fault in every phase, through the real driver and supervisor.

For each cell: the run's outcome and alarm reason, the pump physically stopped (or stopped by its
own watchdog where the controller cannot reach it), the journal accounts for what the pump
counted, and no phase delivered more than planned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pumpctl.clock import Clock
from pumpctl.dosing.plan import ContainerSpec, SegmentPhase
from pumpctl.drivers.registry import default_address
from pumpctl.infusion.events import delivered_by_phase
from pumpctl.infusion.journal import EventKind, Journal, JournalEvent
from pumpctl.infusion.supervisor import Outcome, RunResult
from pumpctl.runner import run_on_simulator
from pumpctl.simulator.faults import FaultSchedule
from pumpctl.simulator.server import build_emulation

from .conftest import make_plan, run_virtual, segment

RES = 0.001
PLAN = make_plan(
    segment(SegmentPhase.PRIME, 120.0, 0.5),  # 0-15 s
    segment(SegmentPhase.LOADING, 60.0, 5.0),  # 15-315 s
    segment(SegmentPhase.MAINTENANCE, 12.0, 3.0),  # 315-1215 s
)
PLANNED = {"prime": 0.5, "loading": 5.0, "maintenance": 3.0}
WHEN = {"prime": "5s", "loading": "100s", "maintenance": "1000s"}


@dataclass(frozen=True)
class Expect:
    spec: str  # fault spec without the time: KIND[:DURATION][=ARG] as "{kind}@{when}{rest}"
    outcome: Outcome
    alarm: str | None


FAULTS = {
    # the pump's own alarms: stopped, reason named, no restart (SR26)
    "stall": Expect("stall@{when}", Outcome.ALARM, "stall"),
    "empty": Expect(
        "empty@{when}", Outcome.ALARM, "stall"
    ),  # the NE reports end of travel as stall
    "reset": Expect("reset@{when}", Outcome.ALARM, "reset"),  # SR28
    # silence for good: alarm, and the stop cannot be confirmed (SR17, SR18)
    "link-drop": Expect("link-drop@{when}", Outcome.UNCONFIRMED, "communication_lost"),
    "baud": Expect("baud@{when}=9600", Outcome.UNCONFIRMED, "communication_lost"),
    # transient faults the controller rides through, never acting on a bad reply (SR20)
    "short-drop": Expect("link-drop@{when}:2s", Outcome.COMPLETED, None),
    "garble": Expect("garble@{when}=1", Outcome.COMPLETED, None),
    "crc": Expect("crc@{when}=1", Outcome.COMPLETED, None),
    "truncate": Expect("truncate@{when}=1", Outcome.COMPLETED, None),
    "slow": Expect("slow@{when}:60s=0.3", Outcome.COMPLETED, None),
}


@pytest.mark.parametrize("phase", list(WHEN))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_SR17_SR18_SR19_SR20_SR23_SR26_SR28_SR29_fault_in_every_phase(
    fault: str, phase: str, tmp_path: Path
) -> None:
    expect = FAULTS[fault]
    spec = expect.spec.format(when=WHEN[phase])
    emu = build_emulation("ne1000", [0])
    journal = Journal(tmp_path / "run.sqlite")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        schedule = FaultSchedule.from_specs([spec], seed=7)
        return await run_on_simulator(PLAN, clock, emulation=emu, journal=journal, faults=schedule)

    result, _ = run_virtual(main)
    assert (result.outcome, result.alarm) == (expect.outcome, expect.alarm), spec

    # the pump physically ends stopped; where the controller could not reach it, its own link
    # watchdog (SR19, 10 s) stopped it
    emu.advance(15.0)
    truth = emu.snapshot()[0]
    assert truth.running is False, spec
    assert truth.delivered_ml <= sum(PLANNED.values()) + 3 * RES, spec

    run = journal.latest_run()
    assert run is not None
    events = journal.events(run.run_id)
    by_phase = delivered_by_phase(events)
    for ph in result.phases:
        assert ph.delivered_ml <= PLANNED[ph.phase.value] + RES, (spec, ph)  # SR23
        if ph.delivered_ml > 0:
            assert by_phase[ph.phase.value] == pytest.approx(ph.delivered_ml), spec  # SR29
    if expect.outcome is Outcome.COMPLETED:
        assert truth.delivered_ml == pytest.approx(sum(PLANNED.values()), abs=3 * RES)
    else:
        assert any(e.kind == "alarm" and e.payload["reason"] == expect.alarm for e in events)
        assert run.status == "alarm"
    journal.close()


# ------------------------------------------------------------------ every family (issue #17)

#: what a family cannot see, so its journal counts what its own counter says: a peristaltic
#: drive has no pressure or air-in-line sensor, so an occluded line or an empty reservoir goes on
#: turning (and counting revolutions) with less or no liquid moving
UNDETECTABLE = {("masterflex-ls", "stall"), ("masterflex-ls", "empty")}
#: the same phases, shorter and at rates every family's pump can run (a Cavro with its 1 mL
#: syringe: 3..75 mL/h): 100 cells of this run, each fault in maintenance (the longest, "slow"
#: for 60 s, ends 130 s before the phase does)
FAMILY_PLAN = make_plan(
    segment(SegmentPhase.PRIME, 60.0, 0.5),  # 0-30 s
    segment(SegmentPhase.LOADING, 30.0, 0.5),  # 30-90 s
    segment(SegmentPhase.MAINTENANCE, 12.0, 1.0),  # 90-390 s
)
FAMILY_PLANNED = {"prime": 0.5, "loading": 0.5, "maintenance": 1.0}
FAMILY_WHEN = "200s"
FAMILY_PLANS = {
    "masterflex-ls": FAMILY_PLAN.model_copy(
        update={"container": ContainerSpec(ml_per_rev=0.06, capacity_ml=500.0)}
    )
}
# issue #16. A Cavro pump senses no air either: an emptied syringe goes on dispensing (air).
# Its program names the syringe's stroke volume (1 mL) and the reservoir bottle. DT and OEM
# framing and both mechanics (3000/24000 increments, 6000/48000) are covered by three models.
CAVRO = ["tecan-xcalibur", "tecan-xlp6000-oem", "hamilton-psd6"]
UNDETECTABLE |= {(model, "empty") for model in CAVRO}
FAMILY_PLANS |= {
    model: FAMILY_PLAN.model_copy(
        update={"container": ContainerSpec(ml_per_rev=1.0, capacity_ml=500.0)}
    )
    for model in CAVRO
}
FAMILIES = ["ne1000", "harvard-legacy", "harvard-elite", "masterflex-ls"]
FAMILIES += ["chemyx-fusion", "kds-legato", *CAVRO]


def _journal_total(events: list[JournalEvent]) -> tuple[float, float]:
    """(total the journal books, of which marked as an estimate in the last checkpoints)."""
    last: dict[str, float] = {}
    for e in events:
        if e.kind is EventKind.CHECKPOINT:
            last[str(e.payload["phase"])] = float(e.payload.get("estimated_ml", 0.0))
    return sum(delivered_by_phase(events).values()), sum(last.values())


def _family_cells() -> list[object]:
    return [
        pytest.param(model, fault, id=f"{model}-{fault}") for model in FAMILIES for fault in FAULTS
    ]


@pytest.mark.parametrize(("model", "fault"), _family_cells())
def test_journal_is_the_ground_truth_or_a_marked_estimate_above_it(
    model: str, fault: str, tmp_path: Path
) -> None:
    _check_cell(model, fault, 7, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("model", FAMILIES)
def test_SR20_a_garbled_reply_on_any_seed_neither_stops_the_run_nor_changes_the_books(
    model: str, tmp_path: Path
) -> None:
    """Which bytes a garble hits is the seed's choice: seed 7 alone once hid a Cavro position
    latched from one reading, and other seeds a false reset after a digit read a little high."""
    for seed in range(20):
        result = _check_cell(model, "garble", seed, tmp_path / str(seed))
        assert (result.outcome, result.alarm) == (Outcome.COMPLETED, None), (model, seed)


def _check_cell(model: str, fault: str, seed: int, folder: Path) -> RunResult:
    """Run `fault` in maintenance; check the pump stopped and the journal against the pump."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = FAULTS[fault].spec.format(when=FAMILY_WHEN)
    plan = FAMILY_PLANS.get(model, FAMILY_PLAN)
    address = default_address(model)
    emu = build_emulation(model, [address])
    if plan.container.ml_per_rev is not None:
        emu.set_ml_per_rev(address, plan.container.ml_per_rev)
    journal = Journal(folder / "run.sqlite")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        schedule = FaultSchedule.from_specs([spec], seed=seed)
        return await run_on_simulator(
            plan, clock, model=model, emulation=emu, journal=journal, faults=schedule
        )

    result, _ = run_virtual(main)
    spec = f"{spec} seed {seed}"
    # the fault landed in maintenance: the run got there (a plan the pump refuses would pass
    # every check below without a fault ever happening)
    reached = {ph.phase for ph in result.phases if ph.started_s is not None}
    assert SegmentPhase.MAINTENANCE in reached, (spec, result.alarm)
    # left alone, every pump stops: at its own target, or by its link watchdog (SR19)
    emu.advance(3600.0)
    truth = emu.snapshot()[address]
    assert truth.running is False, spec
    run = journal.latest_run()
    assert run is not None
    booked, estimated = _journal_total(journal.events(run.run_id))
    journal.close()
    assert truth.delivered_ml <= sum(FAMILY_PLANNED.values()) + 3 * RES, spec
    if (model, fault) in UNDETECTABLE:
        assert booked >= truth.delivered_ml - 3 * RES, spec
    elif estimated > 0:
        assert booked >= truth.delivered_ml - 3 * RES, (spec, booked, truth)  # worst case
    else:
        assert booked == pytest.approx(truth.delivered_ml, abs=3 * RES), (spec, result.alarm)
    if result.outcome is not Outcome.COMPLETED:
        assert result.alarm is not None
    return result
