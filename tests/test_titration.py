"""Titration (SR09) and operator rate entry in dose units (SR04)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpctl.dosing.library import default_library
from pumpctl.dosing.plan import Plan, TitrationLimits, compile_program
from pumpctl.dosing.program import load_program_text
from pumpctl.dosing.titration import (
    TitrationRefused,
    check_titration,
    dose_rate_to_ml_per_h,
    ml_per_h_to_dose_rate,
)

LIMITS = TitrationLimits(max_step_ml_per_h=7.0, min_interval_s=900.0, max_rate_ml_per_h=40.0)


def plan_for(drug: str = "ketamine", conc: str = "1 mg/mL", rate: str = "0.2 mg/kg/h") -> Plan:
    text = f"""\
program: p
drug: {{name: {drug}, concentration: {conc}}}
patient: {{weight: 70 kg, care_area: adult}}
pump: {{syringe: {{inner_diameter: 26.7 mm, volume: 60 mL}}, changes: allowed}}
phases:
  maintenance: {{rate: {rate}, duration: 4 h}}
"""
    # a drug the library does not list runs only in the explicit no-library mode
    return compile_program(
        load_program_text(text), default_library(), no_library=drug != "ketamine"
    )


def titrate(
    current: float, requested: float, now: float = 10_000.0, last: float | None = None
) -> None:
    check_titration(
        LIMITS,
        current_ml_per_h=current,
        requested_ml_per_h=requested,
        now_s=now,
        last_increase_s=last,
    )


def test_SR09_increase_within_step_interval_and_ceiling_is_allowed() -> None:
    titrate(14.0, 21.0, now=1900.0, last=1000.0)
    titrate(33.0, 40.0)


def test_SR09_increase_above_step_is_refused() -> None:
    with pytest.raises(TitrationRefused) as info:
        titrate(14.0, 21.5)
    err = info.value
    assert (err.field, err.value, err.limit, err.unit, err.rule) == (
        "titration.max_step",
        7.5,
        7.0,
        "mL/h",
        "SR09",
    )


def test_SR09_increase_too_soon_is_refused() -> None:
    with pytest.raises(TitrationRefused) as info:
        titrate(14.0, 15.0, now=1899.0, last=1000.0)
    assert (info.value.field, info.value.value, info.value.limit, info.value.unit) == (
        "titration.min_interval",
        899.0,
        900.0,
        "s",
    )


def test_SR09_increase_above_maximum_rate_is_refused() -> None:
    with pytest.raises(TitrationRefused) as info:
        titrate(36.0, 40.5)
    assert (info.value.field, info.value.limit) == ("titration.max_rate", 40.0)


def test_SR09_decreases_are_always_allowed_and_immediate() -> None:
    titrate(40.0, 1.0, now=1000.0, last=999.9)  # right after an increase, a big step down
    titrate(60.0, 50.0)  # even when above the ceiling (e.g. the ceiling is lower than the start)
    titrate(14.0, 0.0)
    titrate(14.0, 14.0, now=0.0, last=0.0)  # no change


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_SR09_nonsense_rates_are_refused(bad: float) -> None:
    with pytest.raises(TitrationRefused):
        titrate(14.0, bad)


def test_dose_rate_entry_in_dose_units() -> None:
    plan = plan_for()
    assert dose_rate_to_ml_per_h("0.3 mg/kg/h", plan) == 21.0
    assert dose_rate_to_ml_per_h("25 mg/h", plan) == 25.0
    assert dose_rate_to_ml_per_h("5 mcg/kg/min", plan) == 21.0  # 0.3 mg/kg/h
    plan2 = plan_for(conc="2 mg/mL")
    assert dose_rate_to_ml_per_h("0.1 mg/kg/h", plan2) == 3.5
    assert ml_per_h_to_dose_rate(21.0, plan) == (0.3, "mg/kg/h")


def test_SR04_bare_ml_per_h_refused_for_library_drug() -> None:
    with pytest.raises(TitrationRefused) as info:
        dose_rate_to_ml_per_h("7 mL/h", plan_for())
    assert (info.value.field, info.value.rule, info.value.unit) == ("rate", "SR04", "mL/h")


def test_bare_ml_per_h_allowed_for_drug_outside_library() -> None:
    plan = plan_for(drug="saline", rate="14 mL/h")
    assert dose_rate_to_ml_per_h("7 mL/h", plan) == 7.0


def test_no_known_step_means_no_increase() -> None:
    """Without a library entry or a program step, limits exist and allow only decreases."""
    plan = plan_for(drug="saline", rate="14 mL/h")
    assert plan.titration is not None
    assert plan.titration.max_rate_ml_per_h == 14.0
    assert "no titration step known: rate increases are refused" in plan.warnings
    with pytest.raises(TitrationRefused, match="max_rate"):
        check_titration(
            plan.titration,
            current_ml_per_h=14.0,
            requested_ml_per_h=14.5,
            now_s=0.0,
            last_increase_s=None,
        )


def test_dose_rate_entry_errors_are_titration_refusals() -> None:
    with pytest.raises(TitrationRefused, match="rate"):
        dose_rate_to_ml_per_h("0.3 mg/kg", plan_for())


# a titration session: each op is (seconds since the previous op, requested rate mL/h)
ops = st.lists(
    st.tuples(st.floats(0, 3600), st.floats(0, 80, allow_nan=False)), min_size=1, max_size=40
)


@settings(max_examples=300, deadline=None)
@given(
    ops=ops,
    start=st.floats(0.5, 40),
    step=st.floats(0.1, 10),
    interval=st.floats(0, 1800),
    ceiling=st.floats(40, 60),
)
def test_SR09_property_titration_sequences_never_exceed_the_limits(
    ops: list[tuple[float, float]], start: float, step: float, interval: float, ceiling: float
) -> None:
    limits = TitrationLimits(
        max_step_ml_per_h=step, min_interval_s=interval, max_rate_ml_per_h=ceiling
    )
    now, rate, last_increase = 0.0, start, None
    for dt, requested in ops:
        now += dt
        try:
            check_titration(
                limits,
                current_ml_per_h=rate,
                requested_ml_per_h=requested,
                now_s=now,
                last_increase_s=last_increase,
            )
        except TitrationRefused:
            assert requested > rate  # a decrease is never refused
            continue
        if requested > rate:
            assert requested - rate <= step * (1 + 1e-9) + 1e-12
            assert requested <= ceiling * (1 + 1e-9)
            if last_increase is not None:
                assert now - last_increase >= interval * (1 - 1e-9)
            last_increase = now
        rate = requested
        assert rate <= max(start, ceiling * (1 + 1e-9))
