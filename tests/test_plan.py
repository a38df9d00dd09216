"""Compiling programs into plans: rounding, windows, titration limits, hash, properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpctl.dosing.library import default_library
from pumpctl.dosing.plan import (
    PlanRefused,
    Segment,
    SegmentPhase,
    compile_program,
    compile_with_violations,
    floor_to,
    max_window_volume,
    program_hash,
)
from pumpctl.dosing.program import Program, load_program_text
from pumpctl.families import FixedStepQuantizer

LIB = default_library()


def make(
    *,
    weight: float = 70,
    conc: float = 1,
    care_area: str = "adult",
    loading: str | None = "{dose: 0.35 mg/kg, over: 10 min}",
    maintenance: str | None = "{rate: 0.2 mg/kg/h, duration: 4 h}",
    extra_phases: str = "",
    pump: str = "{syringe: {inner_diameter: 26.7 mm, volume: 60 mL}, changes: allowed}",
    tail: str = "",
) -> Program:
    lines = [
        "program: p",
        f"drug: {{name: ketamine, concentration: {conc!r} mg/mL}}",
        f"patient: {{weight: {weight!r} kg, care_area: {care_area}}}",
        f"pump: {pump}",
        "phases:",
    ]
    if loading:
        lines.append(f"  loading: {loading}")
    if maintenance:
        lines.append(f"  maintenance: {maintenance}")
    if extra_phases:
        lines.append(extra_phases)
    return load_program_text("\n".join(lines) + "\n" + tail)


def test_floor_to_absorbs_float_noise_but_never_rounds_up() -> None:
    assert floor_to(24.499999999999996, 0.001) == 24.5
    assert floor_to(24.4996, 0.001) == 24.499
    assert floor_to(0.0009, 0.001) == 0.0
    assert floor_to(12.425, 0.01) == 12.42
    assert floor_to(147.0, 0.001) == 147.0


def test_compile_worked_check_segments() -> None:
    plan = compile_program(make(), LIB)
    load, maint = plan.segments
    assert (load.phase, load.volume_ml, load.rate_ml_per_h, load.duration_s) == (
        SegmentPhase.LOADING,
        24.5,
        147.0,
        600.0,
    )
    assert (maint.rate_ml_per_h, maint.volume_ml, maint.duration_s) == (14.0, 56.0, 14400.0)
    assert (plan.total_volume_ml, plan.total_drug_mg) == (80.5, 80.5)
    assert (plan.drug, plan.weight_kg, plan.concentration_mg_per_ml) == ("ketamine", 70.0, 1.0)
    assert plan.library_entry == "ketamine adult IV 1 mg/mL"
    assert plan.drug_in_library


def test_rounding_is_down_and_once() -> None:
    # 0.35 mg/kg x 71 kg / 2 mg/mL = 12.425 mL; at 0.01 mL resolution -> 12.42 mL
    plan = compile_program(
        make(weight=71, conc=2, maintenance=None), LIB, quantizer=FixedStepQuantizer(0.01, 0.01)
    )
    (load,) = plan.segments
    assert load.volume_ml == 12.42
    assert load.rate_ml_per_h == 74.52  # 12.42 mL / (1/6 h)
    assert (plan.volume_resolution_ml, plan.rate_resolution_ml_per_h) == (0.01, 0.01)


@settings(max_examples=200, deadline=None)
@given(
    weight=st.integers(10, 700).map(lambda x: x / 10),
    conc=st.sampled_from([1.0, 2.0]),
    hours=st.integers(1, 12),
)
def test_property_doses_at_the_soft_limits_are_never_rounded_past_them(
    weight: float, conc: float, hours: int
) -> None:
    """Canine soft maxima (0.5 mg/kg loading, 10 mcg/kg/min) prescribed exactly, any weight."""
    result = compile_with_violations(
        make(
            weight=weight,
            conc=conc,
            care_area="canine",
            loading="{dose: 0.5 mg/kg, over: 2 min}",
            maintenance=f"{{rate: 10 mcg/kg/min, duration: {hours} h}}",
        ),
        LIB,
    )
    assert result.violations == []
    assert result.plan is not None
    maint = result.plan.segment(SegmentPhase.MAINTENANCE)
    assert maint is not None
    assert maint.rate_ml_per_h * conc / weight <= 0.6 * (1 + 1e-9)  # float noise only


def test_prime_kvo_and_open_ended_totals() -> None:
    plan = compile_program(
        make(
            maintenance="{rate: 0.2 mg/kg/h, volume: 20 mL}",
            extra_phases="  prime: {volume: 0.5 mL, rate: 30 mL/h}\n  kvo: {rate: 0.5 mL/h}",
        ),
        LIB,
    )
    phases = [s.phase for s in plan.segments]
    assert phases == ["prime", "loading", "maintenance", "kvo"]
    prime, _, maint, kvo = plan.segments
    assert (prime.volume_ml, prime.rate_ml_per_h, prime.duration_s) == (0.5, 30.0, 60.0)
    assert (maint.volume_ml, maint.duration_s) == (20.0, 20 / 14 * 3600)
    assert (kvo.rate_ml_per_h, kvo.volume_ml, kvo.duration_s) == (0.5, None, None)
    assert plan.total_volume_ml is None and plan.total_drug_mg is None


def test_prime_skip_is_a_warning_and_prime_is_not_patient_drug() -> None:
    plan = compile_program(
        make(extra_phases="  prime: {skip: true, reason: primed at the bedside}"), LIB
    )
    assert plan.warnings == (
        "prime skipped: primed at the bedside",
        "plan needs 80.5 mL: 2 syringes of 60 mL (changes allowed)",
    )
    plan = compile_program(make(extra_phases="  prime: {volume: 2 mL}"), LIB)
    assert (plan.total_volume_ml, plan.total_drug_mg) == (82.5, 80.5)


def test_until_stopped_warns_that_the_syringe_empties() -> None:
    plan = compile_program(
        make(
            loading=None,
            maintenance="{rate: 0.2 mg/kg/h, until_stopped: true}",
            pump="{syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}",
        ),
        LIB,
    )
    assert plan.warnings == (
        "runs until stopped: the 60 mL syringe empties and stops with an alarm",
    )


def test_tubing_container() -> None:
    plan = compile_program(
        make(pump="{tubing: {ml_per_rev: 0.8}, reservoir: {volume: 250 mL}}"), LIB
    )
    assert (plan.container.ml_per_rev, plan.container.capacity_ml) == (0.8, 250.0)
    with pytest.raises(PlanRefused, match=r"pump.reservoir.volume = 80.5 mL"):
        compile_program(make(pump="{tubing: {ml_per_rev: 0.8}, reservoir: {volume: 50 mL}}"), LIB)


def test_titration_limits_from_program_and_library() -> None:
    plan = compile_program(
        make(tail="titration: {max_step: 0.05 mg/kg/h, min_interval: 20 min}"), LIB
    )
    t = plan.titration
    assert t is not None
    assert (t.max_step_ml_per_h, t.min_interval_s) == (3.5, 1200.0)
    # ceiling: adult soft maxima 0.6 mg/kg/h (42 mL/h) and 40 mg/h (40 mL/h) -> 40 mL/h
    assert t.max_rate_ml_per_h == 40.0
    assert (t.ml_per_h_per_dose_unit, t.dose_rate_unit) == (70.0, "mg/kg/h")
    # library defaults: 0.1 mg/kg/h every 15 min
    t = compile_program(make(), LIB).titration
    assert t is not None and (t.max_step_ml_per_h, t.min_interval_s) == (7.0, 900.0)


def test_titration_limits_crossing_library() -> None:
    result = compile_with_violations(
        make(tail="titration: {max_step: 0.3 mg/kg/h, min_interval: 5 min}"), LIB
    )
    v = {x.field: x for x in result.violations}
    assert (v["titration.max_step"].severity, v["titration.max_step"].limit) == ("hard", 0.2)
    assert (v["titration.min_interval"].value, v["titration.min_interval"].limit) == (300.0, 600.0)


def test_program_hash_is_canonical() -> None:
    a = make(maintenance="{rate: 0.2 mg/kg/h, duration: 4 h}")
    b = make(maintenance="{rate: 0.2 mg/kg/hr, duration: 240 min}")
    c = make(weight=71)
    assert program_hash(a) == program_hash(b)
    assert program_hash(a) != program_hash(c)
    assert len(program_hash(a)) == 64
    assert compile_program(a, LIB).program_hash == program_hash(a)


def test_max_window_volume() -> None:
    segs = [
        Segment(phase=SegmentPhase.LOADING, rate_ml_per_h=147, volume_ml=24.5, duration_s=600),
        Segment(phase=SegmentPhase.MAINTENANCE, rate_ml_per_h=14, volume_ml=56, duration_s=14400),
    ]
    assert max_window_volume(segs, 3600) == pytest.approx(24.5 + 14 * 50 / 60)
    assert max_window_volume(segs, 86400) == pytest.approx(80.5)
    open_ended = [*segs[:1], Segment(phase=SegmentPhase.KVO, rate_ml_per_h=2)]
    assert max_window_volume(open_ended, 86400) == pytest.approx(24.5 + 2 * (24 - 1 / 6))
    assert max_window_volume([], 3600) == 0.0


def test_SR01_compile_program_refuses_with_every_violation() -> None:
    with pytest.raises(PlanRefused) as info:
        compile_program(make(weight=300, loading="{dose: 2 mg/kg, over: 10 min}"), LIB)
    assert {"patient.weight", "phases.loading.dose"} <= {v.field for v in info.value.violations}


# -- properties ------------------------------------------------------------------------------

RES = FixedStepQuantizer()


def check_volume_times_concentration_is_the_prescribed_drug(
    weight: float, conc: float, dose: float, over_min: int, rate: float, hours: float
) -> None:
    program = make(
        weight=weight,
        conc=conc,
        loading=f"{{dose: {dose} mg/kg, over: {over_min} min}}",
        maintenance=f"{{rate: {rate} mg/kg/h, duration: {hours} h}}",
    )
    result = compile_with_violations(program, LIB)
    assert result.plan is not None
    load = result.plan.segment(SegmentPhase.LOADING)
    maint = result.plan.segment(SegmentPhase.MAINTENANCE)
    assert load is not None and maint is not None
    assert load.volume_ml is not None and maint.volume_ml is not None
    prescribed_load_mg = dose * weight
    delivered = load.volume_ml * conc
    assert (
        prescribed_load_mg - RES.volume_ml * conc - 1e-9 <= delivered <= prescribed_load_mg + 1e-9
    )
    prescribed_maint_mg = rate * weight * hours
    tolerance_ml = RES.volume_ml + RES.rate_ml_per_h * hours  # rate rounded once, then volume
    delivered = maint.volume_ml * conc
    assert prescribed_maint_mg - tolerance_ml * conc - 1e-9 <= delivered
    assert delivered <= prescribed_maint_mg + 1e-9
    assert maint.duration_s == pytest.approx(maint.volume_ml / maint.rate_ml_per_h * 3600)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weight=st.integers(400, 1500).map(lambda x: x / 10),
    conc=st.sampled_from([1.0, 2.0]),
    dose=st.integers(1, 35).map(lambda x: x / 100),
    over_min=st.integers(10, 60),
    rate=st.integers(1, 50).map(lambda x: x / 100),
    hours=st.integers(1, 96).map(lambda x: x / 4),
)
def test_property_volume_times_concentration_is_the_prescribed_drug(
    weight: float, conc: float, dose: float, over_min: int, rate: float, hours: float
) -> None:
    check_volume_times_concentration_is_the_prescribed_drug(
        weight, conc, dose, over_min, rate, hours
    )


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weight=st.integers(400, 1500).map(lambda x: x / 10),
    conc=st.sampled_from([1.0, 2.0]),
    dose=st.integers(1, 35).map(lambda x: x / 100),
    over_min=st.integers(10, 60),
    rate=st.integers(1, 50).map(lambda x: x / 100),
    hours=st.integers(1, 96).map(lambda x: x / 4),
)
def test_property_volume_times_concentration_is_the_prescribed_drug_larger_sample(
    weight: float, conc: float, dose: float, over_min: int, rate: float, hours: float
) -> None:
    check_volume_times_concentration_is_the_prescribed_drug(
        weight, conc, dose, over_min, rate, hours
    )


ADULT = LIB.lookup("ketamine", "adult", "IV", 1.0)


def check_hard_limits_are_refused_and_accepted_plans_respect_them(
    weight: float, dose: float, over_s: int, rate: float, hours: int
) -> None:
    assert ADULT is not None
    program = make(
        weight=weight,
        loading=f"{{dose: {dose} mg/kg, over: {over_s} s}}",
        maintenance=f"{{rate: {rate} mg/kg/h, duration: {hours} h}}",
    )
    result = compile_with_violations(program, LIB)
    hard = any(v.severity == "hard" for v in result.violations)
    # an independent oracle on the prescription, with a margin for the downward rounding
    crossed = (
        weight < 30
        or weight > 250
        or dose > 1.0 * 1.001
        or over_s < 60
        or dose / (over_s / 60) > 0.5 * 1.001
        or rate > 1.0 * 1.001
        or rate * weight > 100 * 1.001
    )
    if crossed:
        assert hard
    if not hard:
        # what the pump will run stays within every hard limit
        assert result.plan is not None
        load = result.plan.segment(SegmentPhase.LOADING)
        maint = result.plan.segment(SegmentPhase.MAINTENANCE)
        assert load is not None and maint is not None and load.volume_ml is not None
        assert load.duration_s is not None
        assert load.volume_ml / weight <= 1.0 + 1e-9
        assert load.duration_s >= 60 - 1e-9
        assert load.rate_ml_per_h / 60 / weight <= 0.5 + 1e-9
        assert maint.rate_ml_per_h / weight <= 1.0 + 1e-9
        assert maint.rate_ml_per_h <= 100 + 1e-9
        assert math.isfinite(maint.rate_ml_per_h)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weight=st.integers(100, 3000).map(lambda x: x / 10),
    dose=st.integers(1, 300).map(lambda x: x / 100),
    over_s=st.integers(10, 1200),
    rate=st.integers(1, 200).map(lambda x: x / 100),
    hours=st.integers(1, 48),
)
def test_property_hard_limits_are_refused_and_accepted_plans_respect_them(
    weight: float, dose: float, over_s: int, rate: float, hours: int
) -> None:
    check_hard_limits_are_refused_and_accepted_plans_respect_them(weight, dose, over_s, rate, hours)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weight=st.integers(100, 3000).map(lambda x: x / 10),
    dose=st.integers(1, 300).map(lambda x: x / 100),
    over_s=st.integers(10, 1200),
    rate=st.integers(1, 200).map(lambda x: x / 100),
    hours=st.integers(1, 48),
)
def test_property_hard_limits_are_refused_and_accepted_plans_respect_them_larger_sample(
    weight: float, dose: float, over_s: int, rate: float, hours: int
) -> None:
    check_hard_limits_are_refused_and_accepted_plans_respect_them(weight, dose, over_s, rate, hours)
