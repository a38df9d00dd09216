"""The supervisor keeps its books in what the pump was sent, not in what it asked for.

A plan compiled for no pump in particular (or a resumed remainder, or a leg after a container
change) can hold a volume or rate the pump cannot be sent; its driver rounds down and says what
it sent. The segment then ends when the pump stops at that target, a step short at most, never
above the plan, and a titration is journaled at the rate the pump confirmed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpctl.clock import Clock
from pumpctl.dosing.plan import SegmentPhase, TitrationLimits
from pumpctl.infusion.events import TransitionEvent, parse_record
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.supervisor import Outcome, Supervisor
from pumpctl.runner import run_on_simulator

from .conftest import make_plan, run_virtual, segment

# 12.4775 mL (71.3 kg x 0.35 mg/kg at 2 mg/mL) does not fit the NE's 4 digits: it is sent as 12.47
PLAN = make_plan(
    segment(SegmentPhase.LOADING, 74.865, 12.4775),
    segment(SegmentPhase.MAINTENANCE, 7.1234, 1.0),
    titration=TitrationLimits(max_step_ml_per_h=5.0, min_interval_s=0.0, max_rate_ml_per_h=30.0),
)


@pytest.mark.parametrize("model", ["ne1000", "harvard-legacy", "harvard-elite"])
def test_a_target_the_pump_cannot_take_ends_the_segment_a_step_short(model: str) -> None:
    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(PLAN, clock, model=model)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    loading = result.phases[0]
    assert loading.planned_ml is not None
    assert loading.planned_ml - 0.01 <= loading.delivered_ml <= loading.planned_ml
    assert truth.delivered_ml <= 12.4775 + 1.0


def test_a_titration_is_journaled_at_the_rate_the_pump_confirmed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")

    async def titrate(sup: Supervisor, clock: Clock) -> None:
        while sup.phase is not Phase.MAINTENANCE:
            await clock.sleep(5.0)
        await sup.titrate(9.87654, reason="pain", who="nurse")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(PLAN, clock, journal=journal, operator=titrate)

    result, _ = run_virtual(main)
    run = journal.latest_run()
    assert run is not None
    titrations = [
        rec
        for e in journal.events(run.run_id, ["transition"])
        if isinstance(rec := parse_record(e.kind, e.payload), TransitionEvent)
        and rec.trigger == "titrate"
    ]
    journal.close()
    assert result.outcome is Outcome.COMPLETED
    (t,) = titrations
    assert t.info["requested_ml_per_h"] == 9.87654
    assert t.info["new_ml_per_h"] == pytest.approx(9.876)  # the NE's 4 digits, rounded down
    assert result.phases[1].rate_ml_per_h == t.info["new_ml_per_h"]
