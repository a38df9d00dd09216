"""`check --model`: the plan quantized for the pump it will run on and checked against that pump
(issue #11), the syringe table and the library's drug names (issue #12 items 4 and 5)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pumpctl.dosing.check import CheckResult, check_program
from pumpctl.dosing.pumpfit import inside
from pumpctl.dosing.syringes import syringe_table
from pumpctl.families import UnknownModel, models
from pumpctl.operator.cli import main

EXAMPLES = Path(__file__).parent.parent / "src" / "pumpctl" / "examples"

BASE: dict[str, Any] = {
    "program": "t",
    "drug": {"name": "ketamine", "concentration": "2 mg/mL"},
    "patient": {"weight": "71.3 kg", "care_area": "adult"},
    "pump": {"syringe": {"inner_diameter": "26.7 mm", "volume": "60 mL"}},
    "phases": {
        "prime": {"volume": "0.5 mL"},
        "loading": {"dose": "0.35 mg/kg", "over": "10 min"},
        "maintenance": {"rate": "0.2 mg/kg/h", "duration": "4 h"},
    },
}


def write(tmp_path: Path, **changes: Any) -> Path:
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def fields(result: CheckResult) -> dict[str, Any]:
    return {v.field: v for v in result.violations}


def segs(result: CheckResult) -> dict[str, Any]:
    assert result.plan is not None
    return {s.phase.value: s for s in result.plan.segments}


# --------------------------------------------------------------------------- quantization


def test_issue_11_check_prints_what_the_ne1000_is_sent(tmp_path: Path) -> None:
    """71.3 kg: 12.4775 mL loading. Without a model the plan keeps 12.477 (1 µL steps); for the
    NE-1000 it is 12.47 mL at 74.82 mL/h, exactly the numbers the driver sends."""
    path = write(tmp_path)
    generic = segs(check_program(path))
    assert (generic["loading"].volume_ml, generic["loading"].rate_ml_per_h) == (12.477, 74.862)
    result = check_program(path, model="ne1000")
    assert result.exit_code == 0
    ne = segs(result)
    assert (ne["loading"].volume_ml, ne["loading"].rate_ml_per_h) == (12.47, 74.82)
    assert ne["loading"].duration_s == pytest.approx(600.0)
    assert ne["maintenance"].volume_ml == 28.52
    assert result.plan is not None and result.plan.pump_model == "ne1000"
    out = result.to_json()
    assert out["pump_commands"]["loading"] == "RAT74.82MH; VOLML VOL12.47"
    table = result.render_table()
    assert "RAT74.82MH; VOLML VOL12.47" in table
    assert "every volume and rate below is exactly what the pump is sent" in table


def test_masterflex_plan_shows_the_rate_the_drive_really_runs() -> None:
    result = check_program(EXAMPLES / "acute-pain-peristaltic.yaml", model="masterflex-ls")
    assert result.exit_code == 0
    maint = segs(result)["maintenance"]
    # 7 mL/h at 0.06 mL/rev is 1.944 rpm: the drive runs 1.9 rpm = 6.84 mL/h, 27.36 mL in 4 h
    assert maint.rate_ml_per_h == pytest.approx(6.84)
    assert maint.volume_ml == pytest.approx(27.36)
    assert result.to_json()["pump_commands"]["maintenance"] == "S+001.9; V00456.00"


def test_a_value_the_pump_cannot_express_is_refused_with_its_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        drug={"name": "ketamine", "concentration": "1 mg/mL"},
        patient={"weight": "5 kg", "care_area": "canine"},
        pump={"tubing": {"ml_per_rev": 0.06}, "reservoir": {"volume": "100 mL"}},
        phases={"maintenance": {"rate": "1 mcg/kg/min", "duration": "1 h"}},
    )
    result = check_program(path, model="masterflex-ls")
    assert result.exit_code == 1
    v = fields(result)["phases.maintenance.rate"]
    assert (v.rule, v.unit, v.value) == ("pump", "mL/h", pytest.approx(0.3))
    assert v.limit == pytest.approx(0.36)
    assert "cannot be expressed" in v.message and "step 0.36" in v.message


# --------------------------------------------------------------------------- pump ranges


def test_issue_12_prime_rate_above_the_small_syringe_maximum(tmp_path: Path) -> None:
    path = write(tmp_path, pump__syringe={"inner_diameter": "2.67 mm", "volume": "60 mL"})
    result = check_program(path, model="ne1000")
    assert result.exit_code == 1
    prime = fields(result)["phases.prime.rate"]
    assert prime.message.startswith(
        "phases.prime.rate = 60 mL/h: above the maximum 17.1 mL/h of the NE-1000 with a "
        "2.67 mm syringe"
    )
    assert (prime.severity, prime.limit, prime.unit) == ("hard", 17.1, "mL/h")
    # at 2.67 mm the pump counts in µL: 12477.5 µL does not fit its 4 digits
    too_big = fields(result)["phases.loading.dose"]
    assert "above the largest NE target 9.999 mL" in too_big.message
    assert too_big.limit == pytest.approx(9.999) and "step" not in too_big.message


def test_a_diameter_the_pump_does_not_take_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, pump__syringe={"inner_diameter": "2670 mm", "volume": "60 mL"})
    result = check_program(path, model="ne1000")
    v = fields(result)["pump.syringe.inner_diameter"]
    assert v.severity == "hard" and "above the largest 80 mm the NE-1000 takes" in v.message
    assert check_program(path, model="harvard-elite").exit_code == 1


def test_rates_below_the_pump_minimum_name_it_rounded_inward(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        drug={"name": "ketamine", "concentration": "1 mg/mL"},
        pump={"tubing": {"ml_per_rev": 4.8}, "reservoir": {"volume": "500 mL"}},
        phases={"maintenance": {"rate": "0.6 mg/kg/h", "duration": "1 h"}},
    )
    result = check_program(path, model="masterflex-ls")
    v = fields(result)["phases.maintenance.rate"]
    # 42.78 mL/h with 4.8 mL/rev is 0.149 rpm, sent as 0.1 rpm: below 1 rpm = 288 mL/h
    assert "below the minimum 288 mL/h of the Masterflex L/S with 4.8 mL/rev tubing" in v.message
    assert inside(17.13086, down=True) == 17.1 and inside(0.000235686, down=False) == 0.000236


def test_the_container_must_suit_the_pump(tmp_path: Path) -> None:
    syringe_program = write(tmp_path)
    result = check_program(syringe_program, model="masterflex-ls")
    assert fields(result)["pump.syringe"].message.endswith(
        "the masterflex-ls is a peristaltic drive: give pump.tubing (mL per revolution) "
        "(hard limit, library 2026.11-1, pump)"
    )
    tubing = check_program(EXAMPLES / "acute-pain-peristaltic.yaml", model="ne1000")
    assert "syringe pump" in fields(tubing)["pump.tubing"].message


def test_unknown_model_is_a_value_error_naming_the_models(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="valid models: chemyx-fusion, hamilton-psd4"):
        check_program(write(tmp_path), model="ne9999")


@pytest.mark.parametrize("name", ["acute-pain", "canine-cri", "crps-inpatient", "outpatient-4h"])
@pytest.mark.parametrize("model", ["ne1000", "harvard-legacy", "harvard-elite"])
def test_every_syringe_example_fits_every_syringe_pump(name: str, model: str) -> None:
    result = check_program(EXAMPLES / f"{name}.yaml", model=model)
    assert result.exit_code == 0, result.render_table()


# --------------------------------------------------------------------------- syringe table


def test_issue_12_a_60_ml_syringe_of_2_67_mm_matches_no_known_syringe(tmp_path: Path) -> None:
    path = write(tmp_path, pump__syringe={"inner_diameter": "2.67 mm", "volume": "60 mL"})
    result = check_program(path)  # no model: the table alone catches it
    assert result.exit_code == 2
    v = fields(result)["pump.syringe.inner_diameter"]
    assert (v.severity, v.rule, v.value, v.unit) == ("soft", "syringes", 2.67, "mm")
    assert "no known 60 mL syringe has this inner diameter" in v.message
    assert "26.59 mm (BD plastic), 26.6 mm (Monoject), 26.7 mm (BD Plastipak)" in v.message
    reason = {"pump.syringe.inner_diameter": "custom glass syringe, measured"}
    assert check_program(path, reason).violations == []  # a real custom syringe: overridden


def test_syringe_table_entries_are_sourced_and_match_themselves() -> None:
    table = syringe_table()
    assert {s.source for s in table.syringes} <= {"ne", "hamilton", "table"}
    for s in table.syringes:
        assert table.mismatch(s.volume, s.inner_diameter) is None
    assert table.mismatch(24.0, 2.0) is not None  # not in the table: its neighbours bound it
    assert table.mismatch(24.0, 21.0) is None


# --------------------------------------------------------------------------- drug names


def test_issue_12_misspelt_drug_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, drug={"name": "ketamne", "concentration": "2 mg/mL"})
    result = check_program(path)
    v = fields(result)["drug.name"]
    assert v.severity == "hard"
    assert "not in the drug library: did you mean ketamine?" in v.message
    # an override reason cannot remove every dose limit
    assert check_program(path, {"drug.name": "sure"}).exit_code == 1


def test_no_library_mode_is_explicit_prominent_and_carried_by_the_plan(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        drug={"name": "saline", "concentration": "1 mg/mL"},
        phases={"maintenance": {"rate": "7 mL/h", "duration": "1 h"}},
    )
    result = check_program(path, no_library=True, model="ne1000")
    assert result.exit_code == 0
    assert result.plan is not None and result.plan.no_library
    assert result.render_table().count("NO DRUG LIBRARY") == 2  # the banner and the warning
    library_drug = check_program(write(tmp_path), no_library=True)
    assert "its limits apply" in fields(library_drug)["drug.name"].message


def test_issue_12_bare_ml_per_h_messages_do_not_mislead(tmp_path: Path) -> None:
    path = write(tmp_path, phases__maintenance={"rate": "7 mL/h", "duration": "4 h"})
    result = check_program(path)
    v = fields(result)["phases.maintenance.rate"]
    assert v.message.startswith(
        "phases.maintenance.rate = 7 mL/h: ketamine is in the library: give a dose rate "
        "(mg/kg/h, mcg/kg/min or mg/h), not mL/h"
    )
    assert not any("no maintenance phase" in w for w in result.warnings)


# --------------------------------------------------------------------------- the command line


def test_check_cli_with_model_and_wrong_model(tmp_path: Path) -> None:
    path = write(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(main, ["check", str(path), "--model", "harvard-legacy"])
    assert ok.exit_code == 0, ok.output
    assert "MLH74.82; MLT12.47" in ok.output
    bad = runner.invoke(main, ["check", str(path), "--model", "ne9999"])
    assert bad.exit_code == 64
    assert bad.output.strip() == (
        "error: unknown pump model 'ne9999'; valid models: " + ", ".join(models())
    )


@pytest.mark.parametrize(
    "args",
    [
        ["run", "PROGRAM", "--model", "bogus", "--port", "/nonexistent"],
        ["demo", "--model", "bogus"],
        ["simulate", "bogus"],
    ],
)
def test_wrong_model_is_one_line_everywhere(tmp_path: Path, args: list[str]) -> None:
    args = [str(write(tmp_path)) if a == "PROGRAM" else a for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 64
    assert len(result.output.strip().splitlines()) == 1
    assert "unknown pump model 'bogus'; valid models:" in result.output


def test_a_segment_larger_than_any_one_target_is_fine_when_the_syringe_is_changed(
    tmp_path: Path,
) -> None:
    """A Pump 11 with a 5 mL syringe (12.06 mm) counts in µL, 5 characters: 99.999 mL at most
    per target. With changes allowed the pump is only ever sent one syringe at a time."""
    program = {
        "pump__syringe": {"inner_diameter": "12.06 mm", "volume": "5 mL"},
        "phases__maintenance": {"rate": "0.2 mg/kg/h", "duration": "24 h"},  # 171 mL
        "phases__loading": None,
        "phases__prime": {"volume": "0.5 mL", "rate": "10 mL/h"},
    }
    refused = check_program(write(tmp_path, **program), model="harvard-legacy")
    assert "phases.maintenance.duration" in fields(refused)  # too big for one target
    path = write(tmp_path, **program, pump__changes="allowed")
    result = check_program(path, model="harvard-legacy")
    assert "phases.maintenance.duration" not in fields(result), result.violations
    maintenance = segs(result)["maintenance"]
    assert 171.0 < maintenance.volume_ml <= 0.2 * 71.3 / 2 * 24
