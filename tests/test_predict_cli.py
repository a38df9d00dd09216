"""`pumpctl predict`: checked exactly like `check`, then the population prediction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pumpctl.dosing.check import check_program
from pumpctl.dosing.pk.predict import predict_plan
from pumpctl.operator.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

PROGRAM = """
program: predict-test
drug: {{name: ketamine, concentration: {conc}}}
patient: {{weight: {weight}, care_area: {area}}}
library: {library}
pump: {{syringe: {{inner_diameter: 26.7 mm, volume: 60 mL}}, changes: allowed}}
phases:
{phases}
"""


def write(
    tmp_path: Path,
    *,
    conc: str = "1 mg/mL",
    weight: str = "70 kg",
    area: str = "adult",
    phases: str = "  maintenance: {rate: 0.2 mg/kg/h, duration: 1 h}",
) -> Path:
    path = tmp_path / "program.yaml"
    library = EXAMPLES / "library" / "ketamine.yaml"
    path.write_text(
        PROGRAM.format(conc=conc, weight=weight, area=area, library=library, phases=phases)
    )
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["predict", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_is_the_documented_object_and_matches_the_api() -> None:
    code, out, _ = invoke(str(EXAMPLES / "acute-pain.yaml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["pk_model", "t_s", "plasma_ug_per_ml", "effect_ug_per_ml", "infusions"]
    assert data["pk_model"] == "domino"
    assert data["t_s"][:3] == [0.0, 10.0, 20.0] and data["t_s"][-1] == 15030.0
    assert data["infusions"] == [
        {"start_s": 30.0, "duration_s": 600.0, "rate_mg_per_h": 147.0},
        {"start_s": 630.0, "duration_s": 14400.0, "rate_mg_per_h": 14.0},
    ]
    plan = check_program(EXAMPLES / "acute-pain.yaml").plan
    assert plan is not None
    pred = predict_plan(plan)
    assert data["plasma_ug_per_ml"] == pytest.approx(list(pred.plasma_ug_per_ml), rel=1e-6)
    assert data["effect_ug_per_ml"] == pytest.approx(list(pred.effect_ug_per_ml), rel=1e-6)


def test_table_shows_peaks_end_model_population_and_the_warning() -> None:
    code, out, _ = invoke(str(EXAMPLES / "acute-pain.yaml"))
    assert code == 0
    plan = check_program(EXAMPLES / "acute-pain.yaml").plan
    assert plan is not None
    pred = predict_plan(plan)
    peak = f"{pred.peak_plasma.value_ug_per_ml:.4g} at 0:10:30"
    assert peak in out
    assert "end 4:10:30" in out and f"{pred.end_plasma_ug_per_ml:.4g}" in out
    assert "pk model    domino: Domino 1984" in out
    assert "population  Not verified" in out
    assert "ASSUMED time to peak effect of 60 s" in out
    assert "not this patient's measured concentration" in out


def test_refused_program_exits_like_check_and_predicts_nothing() -> None:
    code, out, err = invoke(str(EXAMPLES / "rejected-loading.yaml"), "--json")
    assert code == 1 and out == ""
    assert "above the hard maximum 1 mg/kg" in err and "nothing predicted" in err


def test_soft_limit_needs_the_same_override_as_check(tmp_path: Path) -> None:
    # 0.2 mg/kg (not 0.35) so the predicted peak stays under the library's concentration limit
    path = write(tmp_path, phases="  loading: {dose: 0.2 mg/kg, over: 5 min}")
    code, out, err = invoke(str(path), "--json")
    assert code == 2 and out == "" and "--override" in err
    code, out, _ = invoke(
        str(path), "--json", "--override", "phases.loading.over", "--reason", "monitored"
    )
    assert code == 0
    assert json.loads(out)["infusions"][0]["rate_mg_per_h"] == pytest.approx(14 * 12)


def test_pk_model_choice_and_children(tmp_path: Path) -> None:
    adult = write(tmp_path)
    code, out, _ = invoke(str(adult), "--json", "--pk-model", "clements250")
    assert code == 0 and json.loads(out)["pk_model"] == "clements250"
    code, out, err = invoke(str(adult), "--pk-model", "hornik2018")
    assert code == 1 and out == "" and "not provided" in err
    child = write(tmp_path, weight="20 kg", area="pediatric")
    code, out, _ = invoke(str(child), "--json")
    assert code == 0 and json.loads(out)["pk_model"] == "herd2007"
    code, out, _ = invoke(str(child), "--pk-model", "domino")
    assert code == 0 and "warning     domino was fitted on adult patients" in out


def test_veterinary_programs_have_no_default_model() -> None:
    code, out, err = invoke(str(EXAMPLES / "canine-cri.yaml"))
    assert code == 1 and out == "" and "no default pharmacokinetic model for canine" in err
