"""A station supervises several pumps in one process, each exactly as `pumpctl run` would.

On the virtual clock, against the wire-level emulations: a fault on one pump safe-stops that
pump only; a refused program opens nothing; a port that fails faults its own pumps only; plain
doses are checked plans; a restarted station resumes its pumps' interrupted runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pumpctl.clock import Clock, RealClock, run_with_clock
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.supervisor import Outcome
from pumpctl.station.programs import ProgramRefused
from pumpctl.station.pump import PumpBusy, PumpFault
from pumpctl.station.spec import StationSpec, load_station_text
from pumpctl.station.station import DoseRefused, Station, UnknownPump

ROOT = Path(__file__).resolve().parents[1]
SYRINGE = "container: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}"


# prime 0.5 mL (30 s), then 0.2 mg/kg/h (7 mL/h) for 30 min: 3.5 mL; 4 mL in all
SHORT = """
program: station-short
drug: {name: ketamine, concentration: 2 mg/mL}
patient: {weight: 70 kg, care_area: adult}
pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}
phases:
  prime: {volume: 0.5 mL}
  maintenance: {rate: 0.2 mg/kg/h, duration: 30 min}
"""


def run_virtual(main):  # type: ignore[no-untyped-def]
    return run_with_clock(main, virtual=True)


def station_spec(tmp_path: Path, pumps: str) -> StationSpec:
    return load_station_text(f"station: test\npumps:\n{pumps}", ROOT / "examples")


def two_pumps(tmp_path: Path, port_b: str = "sim://ne1000") -> StationSpec:
    return station_spec(
        tmp_path,
        f"  a: {{model: ne1000, port: sim://ne1000, address: 0, journal: a.sqlite, {SYRINGE}}}\n"
        f"  b: {{model: ne1000, port: {port_b}, address: 1, journal: b.sqlite}}\n",
    )


def test_a_stall_on_one_pump_safe_stops_that_pump_only(tmp_path: Path) -> None:
    spec = two_pumps(tmp_path)  # both on one emulated NE-1000 chain
    plan = Station(spec, RealClock(), cwd=tmp_path).checked(SHORT, pump="a")

    async def main(clock: Clock) -> dict[str, Any]:
        station = Station(spec, clock, faults={"b": ["stall@10m"]}, cwd=tmp_path)
        await station.open()
        watches = {n: await station.start(n, plan, who="test") for n in ("a", "b")}
        while not all(w.done for w in watches.values()):
            await clock.sleep(60)
        truth = {n: station.ground_truth(n) for n in watches}
        await station.close()
        return {"watches": watches, "truth": truth}

    out = run_virtual(main)
    watches, truth = out["watches"], out["truth"]
    a, b = watches["a"].result, watches["b"].result
    assert a.outcome is Outcome.COMPLETED and a.delivered_ml == pytest.approx(4.0)
    assert b.outcome is Outcome.ALARM and b.alarm == "stall"
    assert truth["a"].delivered_ml == pytest.approx(4.0, abs=1e-3)
    assert not truth["b"].running and truth["b"].delivered_ml < 4.0
    # each pump journaled its own run, and only its own
    for name, status in (("a", "completed"), ("b", "alarm")):
        with Journal(tmp_path / f"{name}.sqlite") as journal:
            runs = journal.runs()
            assert [r.status.value for r in runs] == [status]
            assert runs[0].address == (0 if name == "a" else 1)


def test_SR01_a_refused_station_program_opens_nothing(tmp_path: Path) -> None:
    spec = station_spec(
        tmp_path,
        "  a: {model: ne1000, port: sim://ne1000, journal: a.sqlite, program: acute-pain.yaml}\n"
        "  b: {model: ne1000, port: /dev/ttyUSB9, journal: b.sqlite,"
        " program: rejected-loading.yaml}\n",
    )
    station = Station(spec, RealClock(), cwd=tmp_path)
    with pytest.raises(ProgramRefused) as info:
        station.station_programs()
    assert info.value.pump == "b"
    fields = {v.field for v in info.value.result.violations}
    assert "phases.loading.dose" in fields
    assert not (tmp_path / "a.sqlite").exists() and not (tmp_path / "b.sqlite").exists()


def test_a_port_that_fails_faults_its_own_pumps_only(tmp_path: Path) -> None:
    spec = two_pumps(tmp_path, port_b=str(tmp_path / "no-such-port"))
    plan = Station(spec, RealClock(), cwd=tmp_path).checked(SHORT, pump="a")

    async def main(clock: Clock) -> Outcome:
        station = Station(spec, clock, cwd=tmp_path)
        await station.open()
        assert station.pumps["b"].fault is not None and "no-such-port" in station.pumps["b"].fault
        assert station.pumps["a"].fault is None
        with pytest.raises(PumpFault):
            await station.start("b", plan, who="test")
        watch = await station.start("a", plan, who="test")
        while not watch.done:
            await clock.sleep(60)
        await station.close()
        assert watch.result is not None
        return watch.result.outcome

    assert run_virtual(main) is Outcome.COMPLETED


def test_plain_dose_is_a_checked_plan_and_the_fill_level_follows(tmp_path: Path) -> None:
    spec = two_pumps(tmp_path)

    async def main(clock: Clock) -> None:
        station = Station(spec, clock, cwd=tmp_path)
        await station.open()
        plan = station.plain_plan("a", volume_ml=1.5, rate_ml_per_h=60.0, what="test", who="test")
        assert [(s.phase.value, s.volume_ml, s.rate_ml_per_h) for s in plan.segments] == [
            ("maintenance", 1.5, 60.0)
        ]
        assert plan.overrides == () and not plan.drug_in_library
        assert any("NO DRUG LIBRARY" in w for w in plan.warnings)  # the explicit no-library mode
        watch = await station.start("a", plan, who="test", plain=True)
        with pytest.raises(PumpBusy):
            await station.start("a", plan, who="test", plain=True)
        with pytest.raises(PumpBusy):
            await station.set_simulated(True)
        while not watch.done:
            await clock.sleep(10)
        assert watch.result is not None and watch.result.outcome is Outcome.COMPLETED
        assert station.pumps["a"].fill_ml == pytest.approx(58.5)
        truth = station.ground_truth("a")
        assert truth is not None and truth.delivered_ml == pytest.approx(1.5, abs=1e-3)
        # a second dose continues from the fill level, and may not take more than is left
        with pytest.raises(DoseRefused) as info:
            station.plain_plan("a", volume_ml=59.0, rate_ml_per_h=60.0, what="t", who="t")
        assert (info.value.field, info.value.value, info.value.limit) == ("Volume", 59.0, 58.5)
        with pytest.raises(DoseRefused) as info:
            station.plain_plan("a", volume_ml=1.0, rate_ml_per_h=1e6, what="t", who="t")
        assert info.value.flow_rate and info.value.limit is not None
        with pytest.raises(DoseRefused, match="no syringe or tubing"):
            station.plain_plan("b", volume_ml=1.0, rate_ml_per_h=60.0, what="t", who="t")
        with pytest.raises(UnknownPump):
            station.plain_plan("c", volume_ml=1.0, rate_ml_per_h=60.0, what="t", who="t")
        await station.close()

    run_virtual(main)


def test_SR30_a_restarted_station_resumes_what_its_pump_left(tmp_path: Path) -> None:
    spec = two_pumps(tmp_path)
    plan = Station(spec, RealClock(), cwd=tmp_path).checked(SHORT, pump="a")

    async def crashed(clock: Clock) -> None:
        station = Station(spec, clock, cwd=tmp_path)
        await station.open()
        watch = await station.start("a", plan, who="test")
        await clock.sleep(600.0)  # ten minutes in, the process dies (its runs are cancelled)
        await station.pumps["a"].cancel()
        await station.close()
        assert watch.error is not None and watch.result is None

    async def restarted(clock: Clock) -> tuple[list[str], float, float, Outcome]:
        station = Station(spec, clock, cwd=tmp_path)
        await station.open()  # a new process: the emulated pump lost its counter
        watch = await station.start("a", plan, who="test")
        while not watch.done:
            await clock.sleep(60)
        await station.close()
        assert watch.result is not None and watch.plan is not None
        result = watch.result
        return watch.notes, result.delivered_ml, watch.plan.total_volume_ml or 0.0, result.outcome

    run_virtual(crashed)
    notes, second_ml, remaining_ml, outcome = run_virtual(restarted)
    assert outcome is Outcome.COMPLETED
    assert any("resuming run" in n for n in notes), notes
    assert 0 < remaining_ml < 3.5  # the prime and a third of maintenance were done
    assert second_ml <= remaining_ml + 0.001
    with Journal(tmp_path / "a.sqlite") as journal:
        first, second = journal.runs()
    assert second.program == first.program
    assert 0 < second_ml < 4.0  # only what remained, never the whole program again
