"""The packaged PK models: transcribed numbers, published checks, populations, defaults."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from pumpctl.dosing.pk.models import (
    ModelSpec,
    UnknownModel,
    default_model_name,
    get_model,
    load_models,
    model_names,
    population_warnings,
)
from pumpctl.dosing.pk.solver import t_peak_s

from .test_pk_solver import eigenvalues_per_min


def test_the_model_file_is_versioned_and_names_its_models() -> None:
    models = load_models("ketamine")
    assert models.version and models.drug == "ketamine"
    assert model_names() == ["domino", "clements250", "hijazi2003", "herd2007"]
    for spec in models.models:
        assert spec.source and spec.verified and spec.population.summary


def test_domino_is_the_stanpump_parameter_set() -> None:
    """dosing.md §5 / STANPUMP: V1 0.063 L/kg; k10 .438, k12 .592, k13 .590, k21 .247, k31 .0146."""
    k = get_model("domino").kinetics(70.0)
    assert k.v1_l == pytest.approx(0.063 * 70)
    got = (k.k10_per_min, k.k12_per_min, k.k13_per_min, k.k21_per_min, k.k31_per_min)
    assert got == (0.438, 0.592, 0.590, 0.247, 0.0146)
    # derived at 70 kg: V2 = V1 k12/k21, V3 = V1 k13/k31, CL = V1 k10
    assert k.v2_l == pytest.approx(4.41 * 0.592 / 0.247)
    assert k.v3_l == pytest.approx(178.2, rel=1e-3)
    assert k.clearance_l_per_min * 1000 / 70 == pytest.approx(27.6, abs=0.05)


def test_hijazi_reproduces_the_published_means() -> None:
    """Abstract: CL 36.0 mL/min/kg, elimination t½ 4.9 h, Vβ 16.0 L/kg (12 ICU patients)."""
    k = get_model("hijazi2003").kinetics(70.0)
    cl_ml_per_min_per_kg = k.clearance_l_per_min * 1000 / 70
    assert cl_ml_per_min_per_kg == pytest.approx(36.0, abs=0.05)
    lam_z = eigenvalues_per_min(k)[-1]
    assert math.log(2) / lam_z / 60 == pytest.approx(4.9, abs=0.06)
    v_beta_l_per_kg = k.clearance_l_per_min / lam_z / 70
    assert v_beta_l_per_kg == pytest.approx(16.0, rel=0.05)


def test_clements_is_two_compartments_with_its_per_kg_constants() -> None:
    k = get_model("clements250").kinetics(70.0)
    assert k.v1_l == pytest.approx(1.7522 * 70)
    assert (k.k10_per_min, k.k12_per_min, k.k21_per_min) == (0.0109, 0.0186, 0.0137)
    assert k.k13_per_min == k.k31_per_min == 0.0
    assert k.clearance_l_per_min * 1000 / 70 == pytest.approx(19.1, abs=0.01)


@pytest.mark.parametrize("weight_kg", [20.0, 32.5, 70.0])
def test_herd_scales_allometrically(weight_kg: float) -> None:
    """V1 38.7 L, V2 102 L, CL 90 L/h, Q 215 L/h per 70 kg; volumes ^1, clearances ^0.75."""
    k = get_model("herd2007").kinetics(weight_kg)
    ratio = weight_kg / 70
    v1, v2 = 38.7 * ratio, 102 * ratio
    cl, q = 90 * ratio**0.75 / 60, 215 * ratio**0.75 / 60  # L/min
    assert k.v1_l == pytest.approx(v1)
    assert k.v2_l == pytest.approx(v2)
    assert k.clearance_l_per_min == pytest.approx(cl)
    assert k.k12_per_min * k.v1_l == pytest.approx(q)


def test_herd_effect_site_is_the_published_half_time() -> None:
    """Herd 2008: T½keo 11 s; with Herd 2007 PK the effect peaks 51 s after a bolus at 20 kg."""
    k20 = get_model("herd2007").kinetics(20.0)
    assert k20.ke0_per_min == pytest.approx(math.log(2) / (11 / 60))
    assert t_peak_s(k20) == pytest.approx(51.1, abs=0.2)
    assert t_peak_s(get_model("herd2007").kinetics(70.0)) == pytest.approx(55.5, abs=0.2)


@pytest.mark.parametrize("name", ["domino", "clements250", "hijazi2003"])
def test_assumed_effect_sites_peak_at_their_stated_time(name: str) -> None:
    spec = get_model(name)
    assert spec.effect_site.basis == "assumed_t_peak"
    assert spec.effect_site.t_peak_s is not None and spec.effect_site.why
    for weight in (50.0, 90.0):
        assert t_peak_s(spec.kinetics(weight)) == pytest.approx(spec.effect_site.t_peak_s, abs=0.05)
    # an explicit assumption replaces the file's
    assert t_peak_s(spec.kinetics(70.0, t_peak_s=180.0)) == pytest.approx(180.0, abs=0.05)
    assert "ASSUMED" in spec.effect_site_note(spec.kinetics(70.0))


def test_hornik_is_left_out_with_its_reason() -> None:
    with pytest.raises(UnknownModel, match=r"not provided: .*parameter values could not be found"):
        get_model("hornik2018")
    with pytest.raises(UnknownModel, match="known: domino, clements250"):
        get_model("nosuch")
    with pytest.raises(UnknownModel, match="no pharmacokinetic models for 'propofol'"):
        load_models("propofol")


def test_default_models_by_care_area_and_weight() -> None:
    assert default_model_name("adult", 70) == "domino"
    assert default_model_name("pediatric", 20) == "herd2007"
    assert default_model_name(None, 20) == "herd2007"
    assert default_model_name(None, 70) == "domino"
    with pytest.raises(UnknownModel, match="canine"):
        default_model_name("canine", 20)


def test_population_warnings() -> None:
    herd = get_model("herd2007")
    # 32.5 ± 15.6 kg: mean ± 2 SD is 1.3-63.7 kg; 8.3 ± 3.5 y: 1.3-15.3 y
    assert population_warnings(herd, weight_kg=30, care_area="pediatric", age_years=8) == []
    far = population_warnings(herd, weight_kg=90, care_area="pediatric", age_years=17)
    assert any("weight 90 kg is outside herd2007" in w for w in far)
    assert any("age 17 y is outside herd2007" in w for w in far)
    adult = population_warnings(herd, weight_kg=70, care_area="adult")
    assert any("fitted on pediatric patients; this patient is adult" in w for w in adult)
    domino = population_warnings(get_model("domino"), weight_kg=70, care_area="adult")
    assert any("weight range is not known" in w for w in domino)
    assert any("not verified" in w for w in domino)


def test_the_schema_refuses_inconsistent_models() -> None:
    good = get_model("hijazi2003").model_dump()
    with pytest.raises(ValidationError, match="do not match 3 compartments"):
        ModelSpec.model_validate({**good, "compartments": 3})
    assumed = {"basis": "assumed_t_peak", "t_peak_s": 60}
    with pytest.raises(ValidationError, match="needs t_peak_s and why"):
        ModelSpec.model_validate({**good, "effect_site": assumed})
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({**good, "typo_field": 1})
