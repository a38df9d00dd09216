"""Refills in the polled status become one journal event each (`infusion.refills`)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from pumpctl.clock import Clock
from pumpctl.dosing.check import check_program
from pumpctl.dosing.program import example_path
from pumpctl.drivers.base import AlarmReason, PumpState, PumpStatus
from pumpctl.infusion.events import SyringeRefilled, parse_event, parse_record
from pumpctl.infusion.journal import EventKind, Journal
from pumpctl.infusion.outcome import Outcome
from pumpctl.infusion.refills import RefillWatch
from pumpctl.operator.history import render_history
from pumpctl.runner import run_on_simulator
from tests.conftest import run_virtual

RUN = PumpStatus(state=PumpState.RUNNING)
REFILL = PumpStatus(state=PumpState.RUNNING, refilling=True)


def test_each_refill_is_one_event_from_its_first_poll_to_the_first_poll_after_it() -> None:
    watch = RefillWatch()
    polls = [RUN, REFILL, REFILL, RUN, RUN, REFILL, RUN]
    events = [watch.observe(s, float(t)) for t, s in enumerate(polls)]
    ended = [e for e in events if e is not None]
    assert [(e.started_s, e.duration_s) for e in ended] == [(1.0, 2.0), (5.0, 1.0)]
    assert watch.count == 2 and not watch.refilling


def test_an_alarm_during_a_refill_ends_it() -> None:
    watch = RefillWatch()
    assert watch.observe(REFILL, 0.0) is None and watch.refilling
    alarm = PumpStatus(state=PumpState.ALARM, alarm=AlarmReason.STALL, refilling=True)
    event = watch.observe(alarm, 0.5)
    assert event is not None and event.duration_s == pytest.approx(0.5)


def test_the_event_round_trips_through_the_journal_payload() -> None:
    event = SyringeRefilled(started_s=10.0, duration_s=2.5, volume_ml=1.0, port="i")
    assert parse_record(EventKind.NOTE, event.payload()) == event


CAVRO_PROGRAM = """
program: refill-test
drug: {name: ketamine, concentration: 2 mg/mL}
patient: {weight: 70 kg, care_area: adult}
library: LIBRARY
pump: {tubing: {ml_per_rev: 1.0}, reservoir: {volume: 100 mL}}
phases:
  prime: {volume: 0.5 mL}
  maintenance: {rate: 0.2 mg/kg/h, duration: 40 min}
"""


@pytest.mark.parametrize("model", ["tecan-xcalibur", "hamilton-psd4", "tecan-xlp6000-oem"])
def test_a_program_larger_than_the_syringe_journals_each_refill_and_counts_none(
    tmp_path: Path, model: str
) -> None:
    """4.67 mL through a 1 mL syringe: one `syringe_refilled` note per refill, in order, each
    with the total delivered so far; the run ends exactly at the plan, which is what the
    plunger pushed out (the aspirated volume is never counted)."""
    library = example_path("library/ketamine.yaml")
    path = tmp_path / "p.yaml"
    path.write_text(CAVRO_PROGRAM.replace("LIBRARY", str(library)))
    checked = check_program(path, model=model)
    assert checked.plan is not None, checked.violations
    plan = checked.plan
    journal = Journal(tmp_path / "run.sqlite")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, model=model, journal=journal)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    assert result.delivered_ml == pytest.approx(plan.total_volume_ml, abs=1e-3)
    assert truth.delivered_ml == pytest.approx(result.delivered_ml, abs=1e-3)
    run = journal.latest_run()
    assert run is not None
    refills = [
        rec
        for e in journal.events(run.run_id)
        if isinstance(rec := parse_event(e), SyringeRefilled)
    ]
    assert [r.count for r in refills] == list(range(1, len(refills) + 1))
    assert all(r.duration_s > 0 for r in refills)
    totals = [r.delivered_ml or 0.0 for r in refills]
    # the empty syringe is filled first; the prime's string refills what it gave (0.5 mL); then
    # a refill after each whole 1 mL stroke, and none after the last (the plan ends there)
    assert totals[0] == pytest.approx(0.0, abs=0.01)
    assert totals[1] == pytest.approx(0.5, abs=0.01)
    assert [b - a for a, b in itertools.pairwise(totals[1:])] == pytest.approx(
        [1.0] * (len(totals) - 2), abs=0.01
    )
    assert 0 < plan.total_volume_ml - totals[-1] < 1.0
    assert len(refills) == 6
    journal.close()
    history = render_history(tmp_path / "run.sqlite", run.run_id)
    assert history.count("syringe refilled from the reservoir") == len(refills)
