"""`check_program`: worked checks of dosing.md §1, the SR01-SR08 validation rules, examples."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from pumpctl.dosing.check import CheckResult, check_program
from pumpctl.dosing.library import default_library, load_library_text
from pumpctl.dosing.program import example_path

EXAMPLES = Path(__file__).parent.parent / "src" / "pumpctl" / "examples"
VERSION = default_library().version

BASE: dict[str, Any] = {
    "program": "t",
    "drug": {"name": "ketamine", "concentration": "1 mg/mL"},
    "patient": {"weight": "70 kg", "care_area": "adult"},
    "pump": {"syringe": {"inner_diameter": "26.7 mm", "volume": "60 mL"}, "changes": "allowed"},
    "phases": {
        "loading": {"dose": "0.35 mg/kg", "over": "10 min"},
        "maintenance": {"rate": "0.2 mg/kg/h", "duration": "4 h"},
    },
}


def program(tmp_path: Path, **sections: Any) -> Path:
    """Write BASE with top-level sections replaced (a None value removes the section)."""
    data = copy.deepcopy(BASE)
    for key, value in sections.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def phases(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE["phases"])
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def check(tmp_path: Path, overrides: dict[str, str] | None = None, **sections: Any) -> CheckResult:
    return check_program(program(tmp_path, **sections), overrides or {})


def by_field(result: CheckResult) -> dict[str, Any]:
    """First violation per field (a field can cross a per-kg and an absolute limit)."""
    out: dict[str, Any] = {}
    for v in result.violations:
        out.setdefault(v.field, v)
    return out


def segs(result: CheckResult) -> dict[str, dict[str, Any]]:
    return {s["phase"]: s for s in result.to_json()["segments"]}


# -- worked checks (dosing.md §1), through the JSON `pumpctl check --json` prints ---------------


def test_worked_check_adult_loading_and_maintenance(tmp_path: Path) -> None:
    """70 kg, 0.35 mg/kg over 10 min at 1 mg/mL -> 24.5 mL at 147 mL/h; 0.2 mg/kg/h -> 14 mL/h,
    4 h -> 56 mL."""
    result = check(tmp_path)
    assert result.exit_code == 0, result.violations
    out = json.loads(json.dumps(result.to_json()))
    s = {x["phase"]: x for x in out["segments"]}
    assert (s["loading"]["volume_ml"], s["loading"]["rate_ml_per_h"]) == (24.5, 147.0)
    assert s["loading"]["duration_s"] == 600.0
    assert (s["loading"]["dose"], s["loading"]["drug_mg"]) == (0.35, 24.5)
    assert (s["maintenance"]["rate_ml_per_h"], s["maintenance"]["volume_ml"]) == (14.0, 56.0)
    assert s["maintenance"]["duration_s"] == 14400.0
    assert (s["maintenance"]["dose_rate"], s["maintenance"]["dose_rate_unit"]) == (0.2, "mg/kg/h")
    assert out["program"] == "t"
    assert out["library_version"] == VERSION
    assert (out["total_volume_ml"], out["total_drug_mg"]) == (80.5, 80.5)
    assert out["warnings"] == ["plan needs 80.5 mL: 2 syringes of 60 mL (changes allowed)"]
    assert (out["violations"], out["overrides"]) == ([], [])


def test_worked_check_0_1_mg_per_kg_per_h_at_2_mg_per_ml(tmp_path: Path) -> None:
    """70 kg, 0.1 mg/kg/h, 2 mg/mL -> 3.5 mL/h."""
    result = check(
        tmp_path,
        drug={"name": "ketamine", "concentration": "2 mg/mL"},
        phases=phases(loading=None, maintenance={"rate": "0.1 mg/kg/h", "duration": "4 h"}),
    )
    assert result.exit_code == 0
    assert segs(result)["maintenance"]["rate_ml_per_h"] == 3.5
    assert segs(result)["maintenance"]["volume_ml"] == 14.0


def test_worked_check_10_mcg_per_kg_per_min_is_0_6_mg_per_kg_per_h(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        patient={"weight": "50 kg", "care_area": "adult"},
        phases=phases(maintenance={"rate": "10 mcg/kg/min", "volume": "5 mL"}),
    )
    assert result.exit_code == 0, result.violations
    m = segs(result)["maintenance"]
    assert m["rate_ml_per_h"] == 30.0  # 0.6 mg/kg/h x 50 kg / 1 mg/mL
    assert (m["dose_rate"], m["dose_rate_unit"]) == (10.0, "mcg/kg/min")
    assert result.plan is not None and result.plan.titration is not None
    assert result.plan.titration.ml_per_h_per_dose_unit == pytest.approx(3.0)


def test_worked_check_dog(tmp_path: Path) -> None:
    """Dog 20 kg, 0.5 mg/kg loading, then 10 mcg/kg/min at 1 mg/mL -> 10 mL loading, 12 mL/h."""
    result = check(
        tmp_path,
        patient={"weight": "20 kg", "care_area": "canine"},
        phases={
            "loading": {"dose": "0.5 mg/kg", "over": "2 min"},
            "maintenance": {"rate": "10 mcg/kg/min", "duration": "4 h"},
        },
    )
    assert result.exit_code == 0, result.violations
    s = segs(result)
    assert (s["loading"]["volume_ml"], s["loading"]["rate_ml_per_h"]) == (10.0, 300.0)
    assert (s["maintenance"]["rate_ml_per_h"], s["maintenance"]["volume_ml"]) == (12.0, 48.0)


# -- examples --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["acute-pain", "crps-inpatient", "outpatient-4h", "canine-cri"])
def test_examples_pass(name: str) -> None:
    result = check_program(EXAMPLES / f"{name}.yaml", {})
    assert result.exit_code == 0, [v.message for v in result.violations]
    assert result.library_version == VERSION
    assert "OK: program valid" in result.render_table()


def test_example_acute_pain_plan() -> None:
    assert example_path("acute-pain.yaml").samefile(EXAMPLES / "acute-pain.yaml")
    result = check_program(example_path("acute-pain.yaml"), {})
    s = segs(result)
    assert (s["prime"]["volume_ml"], s["prime"]["rate_ml_per_h"]) == (0.5, 60.0)
    assert (s["loading"]["volume_ml"], s["loading"]["rate_ml_per_h"]) == (12.25, 73.5)
    assert (s["maintenance"]["volume_ml"], s["maintenance"]["rate_ml_per_h"]) == (28.0, 7.0)
    assert result.to_json()["total_volume_ml"] == 40.75
    assert result.to_json()["total_drug_mg"] == 80.5


def test_example_crps_titrates_in_5_mg_per_h_steps_up_to_40() -> None:
    result = check_program(EXAMPLES / "crps-inpatient.yaml", {})
    assert result.plan is not None and result.plan.titration is not None
    t = result.plan.titration
    assert (t.max_step_ml_per_h, t.max_rate_ml_per_h, t.min_interval_s) == (2.5, 20.0, 3600.0)
    assert result.plan.container.changes_allowed
    assert segs(result)["maintenance"]["duration_s"] == 5 * 86400.0


def test_example_outpatient_cap_25_mg_per_h() -> None:
    result = check_program(EXAMPLES / "outpatient-4h.yaml", {})
    assert result.plan is not None and result.plan.titration is not None
    assert segs(result)["maintenance"]["rate_ml_per_h"] == 12.25  # 24.5 mg/h at 2 mg/mL
    assert result.plan.titration.max_rate_ml_per_h == 12.5  # 25 mg/h


def test_example_rejected_loading() -> None:
    result = check_program(EXAMPLES / "rejected-loading.yaml", {})
    assert result.exit_code == 1
    v = by_field(result)
    assert (v["phases.loading.dose"].value, v["phases.loading.dose"].limit) == (5.0, 1.0)
    assert (v["phases.loading.rate"].value, v["phases.loading.rate"].limit) == (5.0, 0.5)
    assert "REFUSED phases.loading.dose = 5 mg/kg" in result.render_table()


# -- SR01-SR08 --------------------------------------------------------------------------------


def test_SR01_everything_is_reported_at_once_and_no_plan_is_accepted(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        patient={"weight": "300 kg", "care_area": "adult"},
        phases=phases(loading={"dose": "2 mg/kg", "over": "10 min"}),
    )
    assert result.exit_code == 1
    assert {"patient.weight", "phases.loading.dose"} <= set(by_field(result))
    assert not result.ok


def test_SR01_schema_error_exits_1_without_plan(tmp_path: Path) -> None:
    result = check(tmp_path, phases=phases(maintenance={"rate": "0.2 mg/kg/h", "duraton": "4 h"}))
    assert result.exit_code == 1 and result.plan is None
    (v,) = result.violations
    assert (v.field, v.rule, v.severity) == ("phases.maintenance.duraton", "schema", "hard")
    assert v.message == (
        "phases.maintenance.duraton = '4 h': Extra inputs are not permitted "
        "(library not loaded, schema)"
    )
    assert result.to_json()["segments"] == []


def test_SR02_every_violation_names_field_value_limit_unit_version(tmp_path: Path) -> None:
    result = check(tmp_path, phases=phases(maintenance={"rate": "1.5 mg/kg/h", "duration": "1 h"}))
    v = by_field(result)["phases.maintenance.rate"]
    assert (v.value, v.limit, v.unit, v.severity) == (1.5, 1.0, "mg/kg/h", "hard")
    assert v.library_version == VERSION
    assert v.message == (
        f"phases.maintenance.rate = 1.5 mg/kg/h: above the hard maximum 1 mg/kg/h "
        f"(hard limit, library {VERSION}, SR03)"
    )
    dumped = result.to_json()["violations"][0]
    assert {"field", "value", "limit", "unit", "severity", "library_version", "message"} <= set(
        dumped
    )


def test_SR03_soft_limit_needs_override_with_reason(tmp_path: Path) -> None:
    soft = phases(loading={"dose": "0.5 mg/kg", "over": "15 min"})
    result = check(tmp_path, phases=soft)
    assert result.exit_code == 2
    assert by_field(result)["phases.loading.dose"].severity == "soft"

    with capture_logs() as logs:
        result = check(tmp_path, {"phases.loading.dose": "  "}, phases=soft)
    assert result.exit_code == 2
    assert "override of phases.loading.dose ignored: a reason is required (SR03)" in (
        result.warnings
    )

    with capture_logs() as logs:
        result = check(tmp_path, {"phases.loading.dose": "opioid-tolerant"}, phases=soft)
    assert result.exit_code == 0
    (o,) = result.overrides
    assert (o.field, o.value, o.limit, o.unit, o.reason) == (
        "phases.loading.dose",
        0.5,
        0.35,
        "mg/kg",
        "opioid-tolerant",
    )
    assert result.plan is not None and result.plan.overrides == (o,)
    assert result.to_json()["overrides"][0]["reason"] == "opioid-tolerant"
    logged = [e for e in logs if e["event"] == "limit_overridden"]
    assert logged[0]["reason"] == "opioid-tolerant"
    assert logged[0]["library_version"] == VERSION


def test_SR03_hard_limit_cannot_be_overridden(tmp_path: Path) -> None:
    with capture_logs() as logs:
        result = check(
            tmp_path,
            {"phases.loading.dose": "I insist"},
            phases=phases(loading={"dose": "2 mg/kg", "over": "10 min"}),
        )
    assert result.exit_code == 1
    assert result.overrides == []
    assert "override of phases.loading.dose refused: hard limits cannot be overridden (SR03)" in (
        result.warnings
    )
    assert any(e["event"] == "limit_refused" and e["field"] == "phases.loading.dose" for e in logs)


def test_SR03_unused_override_is_reported(tmp_path: Path) -> None:
    result = check(tmp_path, {"patient.weight": "why not"})
    assert result.exit_code == 0
    assert "override of patient.weight unused: no soft limit crossed there" in result.warnings


def test_SR04_library_drug_refused_as_bare_ml_per_h(tmp_path: Path) -> None:
    result = check(tmp_path, phases=phases(maintenance={"rate": "14 mL/h", "duration": "4 h"}))
    assert result.exit_code == 1
    v = by_field(result)["phases.maintenance.rate"]
    assert (v.rule, v.value, v.unit) == ("SR04", 14.0, "mL/h")
    result = check(tmp_path, titration={"max_step": "7 mL/h"})
    assert by_field(result)["titration.max_step"].rule == "SR04"


def test_SR04_drug_outside_library_may_use_ml_per_h_only_in_no_library_mode(
    tmp_path: Path,
) -> None:
    drug = {"name": "saline", "concentration": "1 mg/mL"}
    maint = phases(loading=None, maintenance={"rate": "14 mL/h", "duration": "1 h"})
    result = check(tmp_path, drug=drug, phases=maint)
    assert result.exit_code == 1  # no library entry: refused, an override reason is not enough
    v = by_field(result)["drug.name"]
    assert v.severity == "hard" and "--no-library" in v.message
    result = check(tmp_path, {"drug.name": "flush, not a drug"}, drug=drug, phases=maint)
    assert result.exit_code == 1
    result = check_program(program(tmp_path, drug=drug, phases=maint), {}, no_library=True)
    assert result.exit_code == 0
    assert result.plan is not None and result.plan.no_library
    assert segs(result)["maintenance"]["rate_ml_per_h"] == 14.0
    assert "NO DRUG LIBRARY: saline runs without any dose limit" in result.warnings
    assert "NO DRUG LIBRARY (--no-library)" in result.render_table()
    assert result.to_json()["no_library"] is True


@pytest.mark.parametrize(
    ("loading", "field", "value", "limit"),
    [
        ({"dose": "1.5 mg/kg", "over": "10 min"}, "phases.loading.dose", 1.5, 1.0),
        # faster than 0.5 mg/kg/min: 0.7 mg/kg over 1 min
        ({"dose": "0.7 mg/kg", "over": "1 min"}, "phases.loading.rate", 0.7, 0.5),
        # shorter than 60 s, at an allowed rate (0.2 mg/kg/min)
        ({"dose": "0.1 mg/kg", "over": "30 s"}, "phases.loading.over", 30.0, 60.0),
    ],
)
def test_SR05_loading_hard_limits(
    tmp_path: Path, loading: dict[str, str], field: str, value: float, limit: float
) -> None:
    result = check(tmp_path, phases=phases(loading=loading))
    assert result.exit_code == 1
    v = by_field(result)[field]
    assert (v.severity, v.rule, v.limit) == ("hard", "SR05", limit)
    assert v.value == pytest.approx(value)


def test_SR05_loading_at_exactly_the_limits_is_accepted(tmp_path: Path) -> None:
    # 0.5 mg/kg over 60 s = 0.5 mg/kg/min, exactly the hard maximum; soft limits overridden
    # (its predicted plasma peak, ~2 ug/mL, is above the library's soft concentration limit too)
    result = check(
        tmp_path,
        {
            "phases.loading.dose": "test",
            "phases.loading.over": "test",
            "predicted.peak_plasma": "test",
        },
        phases=phases(loading={"dose": "0.5 mg/kg", "over": "60 s"}),
    )
    assert by_field(result) == {}, result.violations
    assert segs(result)["loading"]["duration_s"] == 60.0


@pytest.mark.parametrize(
    ("weight", "severity", "limit"),
    [("29 kg", "hard", 30.0), ("251 kg", "hard", 250.0), ("35 kg", "soft", 40.0)],
)
def test_SR06_weight_outside_range(
    tmp_path: Path, weight: str, severity: str, limit: float
) -> None:
    result = check(
        tmp_path,
        patient={"weight": weight, "care_area": "adult"},
        phases=phases(loading=None),
    )
    v = by_field(result)["patient.weight"]
    assert (v.severity, v.rule, v.limit, v.unit) == (severity, "SR06", limit, "kg")


def test_SR06_weight_range_is_per_care_area(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        patient={"weight": "20 kg", "care_area": "feline"},
        phases=phases(loading=None, maintenance={"rate": "5 mcg/kg/min", "duration": "1 h"}),
    )
    assert by_field(result)["patient.weight"].limit == 15.0


def test_SR07_undiluted_100_mg_per_ml_refused(tmp_path: Path) -> None:
    result = check(tmp_path, drug={"name": "ketamine", "concentration": "100 mg/mL"})
    assert result.exit_code == 1
    v = by_field(result)["drug.concentration"]
    assert (v.value, v.limit, v.unit, v.rule, v.severity) == (
        100.0,
        "1, 2",
        "mg/mL",
        "SR07",
        "hard",
    )
    assert "allowed:" in v.message


def test_SR07_concentration_must_match_entry(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        drug={"name": "ketamine", "concentration": "2 mg/mL"},
        patient={"weight": "4 kg", "care_area": "feline"},
        phases=phases(loading=None, maintenance={"rate": "5 mcg/kg/min", "duration": "1 h"}),
    )
    assert by_field(result)["drug.concentration"].limit == "1"


def test_SR08_rolling_totals_checked_and_given_in_ml(tmp_path: Path) -> None:
    # 1 mg/kg loading (soft, overridden) + 1 mg/kg/h: 1.98 mg/kg in the first hour, hard max 2
    result = check(
        tmp_path,
        {
            "phases.loading.dose": "t",
            "phases.maintenance.rate": "t",
            "rolling.1h": "t",
            "rolling.4h": "t",
            "phases.loading.over": "t",
            "predicted.peak_plasma": "t",
        },
        phases=phases(
            loading={"dose": "1 mg/kg", "over": "5 min"},
            maintenance={"rate": "1 mg/kg/h", "duration": "4 h"},
        ),
    )
    assert by_field(result) == {}
    assert result.plan is not None and result.plan.rolling_limits is not None
    r = result.plan.rolling_limits
    assert (r.max_1h_ml, r.max_4h_ml, r.max_24h_ml) == (140.0, 350.0, 1750.0)
    # every ketamine hard limit together stays within the hard rolling maxima; a tighter local
    # library shows the window check itself
    lib = load_library_text(
        'version: "tight-1"\nentries:\n  - drug: ketamine\n    care_area: adult\n'
        "    concentrations: [1 mg/mL]\n"
        "    rolling: {per_1h: {hard_max: 0.5 mg/kg}, per_24h: {soft_max: 4 mg/kg}}\n"
    )
    data = copy.deepcopy(BASE)
    data["phases"]["maintenance"]["duration"] = "24 h"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    result = check_program(path, {}, library=lib)
    v = by_field(result)
    assert (v["rolling.1h"].severity, v["rolling.1h"].limit) == ("hard", 0.5)
    assert v["rolling.1h"].value == pytest.approx(0.35 + 0.2 * 50 / 60)
    assert v["rolling.1h"].library_version == "tight-1"
    assert (v["rolling.24h"].severity, v["rolling.24h"].value) == (
        "soft",
        pytest.approx(0.35 + 0.2 * (24 - 10 / 60)),
    )


def test_capacity_refused_without_changes(tmp_path: Path) -> None:
    pump = {"syringe": {"inner_diameter": "26.7 mm", "volume": "60 mL"}}
    result = check(tmp_path, pump=pump)
    assert result.exit_code == 1
    v = by_field(result)["pump.syringe.volume"]
    assert (v.value, v.limit, v.unit) == (80.5, 60.0, "mL")


def test_library_named_by_program_is_used(tmp_path: Path) -> None:
    lib = tmp_path / "lib.yaml"
    lib.write_text(
        'version: "local-7"\nentries:\n  - {drug: ketamine, care_area: adult, '
        "concentrations: [1 mg/mL]}\n"
    )
    result = check(tmp_path, library="lib.yaml")
    assert (result.exit_code, result.library_version) == (0, "local-7")
    result = check(tmp_path, library="missing.yaml")
    assert result.exit_code == 1 and result.violations[0].field == "library"
