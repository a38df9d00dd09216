"""Program blocks of issue #13: taper, TCI phase and bolus limits, compiled and checked."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pumpctl.dosing.check import check_program
from pumpctl.dosing.program import ProgramError, load_program_text
from pumpctl.dosing.segments import SegmentPhase
from pumpctl.families import family
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.registry import models

BASE: dict[str, Any] = {
    "program": "t",
    "drug": {"name": "ketamine", "concentration": "2 mg/mL"},
    "patient": {"weight": "70 kg", "care_area": "adult"},
    "pump": {"syringe": {"inner_diameter": "26.7 mm", "volume": "60 mL"}, "changes": "allowed"},
    "phases": {"maintenance": {"rate": "0.2 mg/kg/h", "duration": "4 h"}},
}
TCI = {"target": "0.25 ug/mL", "site": "effect", "model": "domino", "duration": "1 h"}


def write(tmp_path: Path, **sections: Any) -> Path:
    data = copy.deepcopy(BASE)
    data.update(sections)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def fields(exc: ProgramError) -> set[str]:
    return {i.field for i in exc.issues}


def test_tci_target_is_a_concentration_in_ug_per_ml() -> None:
    text = yaml.safe_dump({**BASE, "phases": {"tci": TCI}})
    assert load_program_text(text).phases.tci.target == pytest.approx(0.25)  # type: ignore[union-attr]
    bad = yaml.safe_dump({**BASE, "phases": {"tci": {**TCI, "target": "0.25 mg/kg"}}})
    with pytest.raises(ProgramError) as exc:
        load_program_text(bad)
    assert "phases.tci.target" in fields(exc.value)
    assert "ug/mL" in str(exc.value)


def test_tci_replaces_loading_and_maintenance() -> None:
    text = yaml.safe_dump({**BASE, "phases": {"tci": TCI, **BASE["phases"]}})
    with pytest.raises(ProgramError, match="tci computes its own rates"):
        load_program_text(text)


def test_taper_needs_an_end_and_a_step_count_in_range() -> None:
    forever = {
        "rate": "0.2 mg/kg/h",
        "until_stopped": True,
        "taper": {"steps": 3, "over": "30 min"},
    }
    with pytest.raises(ProgramError, match="no end to taper"):
        load_program_text(yaml.safe_dump({**BASE, "phases": {"maintenance": forever}}))
    many = {"rate": "0.2 mg/kg/h", "duration": "4 h", "taper": {"steps": 50, "over": "30 min"}}
    with pytest.raises(ProgramError) as exc:
        load_program_text(yaml.safe_dump({**BASE, "phases": {"maintenance": many}}))
    assert "phases.maintenance.taper.steps" in fields(exc.value)


@pytest.mark.parametrize("model", [m for m in models() if family(m).container == "syringe"])
def test_taper_compiles_exactly_in_each_pumps_steps_never_above_the_plan(
    tmp_path: Path, model: str
) -> None:
    plain = check_program(write(tmp_path), model=model)
    taper = {"rate": "0.2 mg/kg/h", "duration": "4 h", "taper": {"steps": 3, "over": "30 min"}}
    result = check_program(write(tmp_path, phases={"maintenance": taper}), model=model)
    assert result.plan is not None and plain.plan is not None, result.violations
    segments = [s for s in result.plan.segments if s.phase is SegmentPhase.MAINTENANCE]
    assert [s.taper_step for s in segments][:2] == [None, 1]
    q = family(model).quantizer(inner_diameter_mm=26.7)
    for s in segments:
        assert s.volume_ml is not None
        assert q.floor_volume_ml(s.volume_ml) == s.volume_ml  # exactly what the pump is sent
        try:
            assert q.floor_rate_ml_per_h(s.rate_ml_per_h) == s.rate_ml_per_h
        except NotRepresentable:  # pragma: no cover - a step the pump has no rate for is dropped
            pytest.fail(f"{s.key} rate {s.rate_ml_per_h} not representable")
        assert s.rate_ml_per_h <= segments[0].rate_ml_per_h
    assert result.plan.total_volume_ml is not None and plain.plan.total_volume_ml is not None
    assert result.plan.total_volume_ml <= plain.plan.total_volume_ml
    assert len({s.key for s in result.plan.segments}) == len(result.plan.segments)


def test_a_taper_that_leaves_nothing_the_pump_can_run_is_refused_not_dropped(
    tmp_path: Path,
) -> None:
    """0.5 s of maintenance before the taper (under a 0.01-rev step), then one step at half of
    1.65 mL/h, below the L/S's 1 rpm: it used to compile with no maintenance at all."""
    maintenance = {
        "rate": "0.05 mg/kg/h", "duration": "4 h", "taper": {"steps": 1, "over": "14399.5 s"}
    }  # fmt: skip
    pump = {"tubing": {"ml_per_rev": 0.025}, "reservoir": {"volume": "100 mL"}}
    path = write(tmp_path, pump=pump, phases={"maintenance": maintenance})
    result = check_program(path, model="masterflex-ls")
    assert result.exit_code == 1  # refused: nothing of it reaches a pump
    (violation,) = result.violations
    assert violation.field == "phases.maintenance.taper"
    assert "leaves nothing this pump can run" in violation.message
    assert "1.5 mL/h" in violation.message and "taper.over" in violation.message


def test_tci_phase_compiles_with_its_ceilings_and_check_reports_them(tmp_path: Path) -> None:
    result = check_program(write(tmp_path, phases={"prime": {"volume": "0.5 mL"}, "tci": TCI}))
    assert result.exit_code == 0, result.violations
    plan = result.plan
    assert plan is not None and plan.tci is not None
    assert plan.tci.max_plasma_ug_per_ml == pytest.approx(0.6)  # the library's soft ceiling
    seg = plan.segment(SegmentPhase.TCI)
    assert seg is not None and seg.duration_s == 3600.0
    assert plan.predicted_peak_ug_per_ml is not None
    assert plan.predicted_peak_ug_per_ml <= plan.tci.max_plasma_ug_per_ml + 1e-6
    table = result.render_table()
    assert "effect target 0.25 ug/mL (domino)" in table
    assert "predicted  peak plasma" in table and "population prediction" in table
    assert result.to_json()["tci"]["pk_model"] == "domino"


def test_tci_target_above_the_library_concentration_limit_is_refused(tmp_path: Path) -> None:
    hot = {**TCI, "target": "5 ug/mL", "max_concentration": "6 ug/mL"}
    result = check_program(write(tmp_path, phases={"tci": hot}))
    by = {v.field: v for v in result.violations}
    assert by["phases.tci.target"].severity == "hard"
    assert by["phases.tci.target"].unit == "ug/mL"
    assert by["phases.tci.max_concentration"].limit == pytest.approx(4.5)


def test_predicted_peak_is_checked_against_the_library(tmp_path: Path) -> None:
    fast = {"loading": {"dose": "0.35 mg/kg", "over": "60 s"}}
    result = check_program(
        write(tmp_path, phases={**fast, **BASE["phases"]}), {"phases.loading.over": "test"}
    )
    v = {x.field: x for x in result.violations}["predicted.peak_plasma"]
    assert (v.severity, v.limit, v.unit) == ("soft", 0.6, "ug/mL")


def test_bolus_limits_from_the_library_soft_and_hard(tmp_path: Path) -> None:
    bolus = {
        "dose": "0.2 mg/kg",
        "lockout": "2 min",
        "max_per_hour": 5,
        "max_per_4h": "0.6 mg/kg",
    }
    result = check_program(write(tmp_path, bolus=bolus))
    by = {v.field: v for v in result.violations}
    assert by["bolus.dose"].severity == "soft" and by["bolus.dose"].limit == 0.15
    assert by["bolus.lockout"].severity == "hard" and by["bolus.lockout"].limit == 300.0
    assert by["bolus.max_per_hour"].severity == "hard" and by["bolus.max_per_hour"].limit == 4
    ok = {**bolus, "dose": "0.1 mg/kg", "lockout": "10 min", "max_per_hour": 2}
    good = check_program(write(tmp_path, bolus=ok))
    assert good.exit_code == 0, good.violations
    assert good.plan is not None and good.plan.bolus is not None
    assert good.plan.bolus.max_dose_mg == pytest.approx(7.0)
    assert good.plan.bolus.max_mg_per_4h == pytest.approx(42.0)
    assert "bolus      <= 7 mg over 60 s" in good.render_table()


def test_every_example_still_checks_clean() -> None:
    root = Path(__file__).parent.parent / "src" / "pumpctl" / "examples"
    result = check_program(root / "ketamine-tci.yaml", model="ne1000")
    assert result.exit_code == 0, result.violations
