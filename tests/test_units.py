"""Quantity parsing: every spelling the issue lists, canonical values, and clear errors."""

from __future__ import annotations

import pytest

from pumpctl.dosing.units import Kind, QuantityError, RateKind, parse, parse_dose_rate


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("0.35 mg/kg", Kind.DOSE_PER_WEIGHT, 0.35),
        ("350 mcg/kg", Kind.DOSE_PER_WEIGHT, 0.35),
        ("350 µg/kg", Kind.DOSE_PER_WEIGHT, 0.35),  # micro sign
        ("350 μg/kg", Kind.DOSE_PER_WEIGHT, 0.35),  # greek mu
        ("350 ug/kg", Kind.DOSE_PER_WEIGHT, 0.35),
        ("70 kg", Kind.WEIGHT, 70.0),
        ("26.7 mm", Kind.LENGTH, 26.7),
        ("60 mL", Kind.VOLUME, 60.0),
        ("1 mg/mL", Kind.CONCENTRATION, 1.0),
        ("30 s", Kind.TIME, 30.0),
        ("10 min", Kind.TIME, 600.0),
        ("4 h", Kind.TIME, 14400.0),
        ("4 hr", Kind.TIME, 14400.0),
        ("2 d", Kind.TIME, 172800.0),
        ("0.5 mg/kg/min", Kind.DOSE_RATE_PER_WEIGHT_PER_MIN, 0.5),
        ("0.5 mL/h", Kind.VOLUME_RATE, 0.5),
    ],
)
def test_parse_canonical(text: str, kind: Kind, expected: float) -> None:
    assert parse(text, kind, "f") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "kind", "canonical", "value", "unit"),
    [
        ("0.2 mg/kg/h", RateKind.PER_WEIGHT, 0.2, 0.2, "mg/kg/h"),
        ("0.2 mg/kg/hr", RateKind.PER_WEIGHT, 0.2, 0.2, "mg/kg/h"),
        ("10 mcg/kg/min", RateKind.PER_WEIGHT, 0.6, 10.0, "mcg/kg/min"),
        ("10 µg/kg/min", RateKind.PER_WEIGHT, 0.6, 10.0, "mcg/kg/min"),
        ("20 mg/h", RateKind.ABSOLUTE, 20.0, 20.0, "mg/h"),
        ("7 mL/h", RateKind.VOLUMETRIC, 7.0, 7.0, "mL/h"),
    ],
)
def test_parse_dose_rate_kinds(
    text: str, kind: RateKind, canonical: float, value: float, unit: str
) -> None:
    rate = parse_dose_rate(text, "rate")
    assert rate.kind is kind
    assert rate.canonical == pytest.approx(canonical, rel=1e-12)
    assert (rate.value, rate.unit) == (value, unit)


def test_mcg_per_kg_per_min_is_0_6_mg_per_kg_per_h() -> None:
    """dosing.md §1: 10 mcg/kg/min = 0.6 mg/kg/h."""
    assert parse("10 mcg/kg/min", Kind.DOSE_RATE_PER_WEIGHT, "f") == pytest.approx(0.6)


def test_rate_to_ml_per_h_worked_checks() -> None:
    """dosing.md §1: 0.2 mg/kg/h, 70 kg, 1 mg/mL -> 14 mL/h; 0.1 mg/kg/h at 2 mg/mL -> 3.5."""
    r = parse_dose_rate("0.2 mg/kg/h", "rate")
    assert r.to_ml_per_h(weight_kg=70, concentration_mg_per_ml=1) == pytest.approx(14.0)
    r = parse_dose_rate("0.1 mg/kg/h", "rate")
    assert r.to_ml_per_h(weight_kg=70, concentration_mg_per_ml=2) == pytest.approx(3.5)
    r = parse_dose_rate("10 mcg/kg/min", "rate")
    assert r.to_ml_per_h(weight_kg=20, concentration_mg_per_ml=1) == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("0.35", "a unit is required"),
        (0.35, "a unit is required"),
        ("0.35 ppm", "unknown unit 'ppm'"),  # dimensionless like mg/kg, but not a dose
        ("0.35 mL", "got mL"),
        ("0.35 mg/kg/h", "got mg/kg/h"),
        ("abc mg/kg", "write a number and a unit, nothing else"),
        ("nan mg/kg", "not a finite number"),
    ],
)
def test_errors_name_field_value_and_expectation(text: object, detail: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse(text, Kind.DOSE_PER_WEIGHT, "phases.loading.dose")
    err = info.value
    assert err.field == "phases.loading.dose"
    assert err.value == text
    assert "dose per body weight" in str(err)
    assert detail in str(err)


def test_rate_kind_restriction() -> None:
    with pytest.raises(QuantityError, match="a rate in mg/kg/h or mg/h"):
        parse_dose_rate("7 mL/h", "rate", allowed=(RateKind.PER_WEIGHT, RateKind.ABSOLUTE))
    with pytest.raises(QuantityError, match="got mg/kg"):
        parse_dose_rate("0.2 mg/kg", "rate")
