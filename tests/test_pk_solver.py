"""The exact solver against hand-derived closed forms (sums of exponentials).

The reference below is written independently of the solver: eigenvalues from the cubic
(trigonometric solution) or the quadratic, unit-disposition coefficients of Shafer's form, and
the effect site as their convolution with ke0. The solver uses a matrix exponential instead, so
agreement checks both.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

from pumpctl.dosing.pk.solver import (
    Kinetics,
    PkState,
    Propagator,
    expm,
    ke0_from_t_peak,
    t_peak_s,
)

# -- the closed-form reference -------------------------------------------------------------------


def eigenvalues_per_min(k: Kinetics) -> list[float]:
    """Hybrid rate constants λ1 > λ2 (> λ3), 1/min."""
    k10, k12, k21, k13, k31 = (
        k.k10_per_min,
        k.k12_per_min,
        k.k21_per_min,
        k.k13_per_min,
        k.k31_per_min,
    )
    if k13 == 0:
        if k12 == 0:
            return [k10]
        s = k10 + k12 + k21
        d = math.sqrt(s * s - 4 * k10 * k21)
        return [(s + d) / 2, (s - d) / 2]
    a2 = k10 + k12 + k13 + k21 + k31
    a1 = k10 * k31 + k21 * k31 + k21 * k13 + k10 * k21 + k31 * k12
    a0 = k10 * k21 * k31
    p = a1 - a2 * a2 / 3
    q = 2 * a2**3 / 27 - a1 * a2 / 3 + a0
    r1 = math.sqrt(-(p**3) / 27)
    phi = math.acos(max(-1.0, min(1.0, -q / (2 * r1)))) / 3
    r2 = 2 * r1 ** (1 / 3)
    roots = [-(math.cos(phi + 2 * math.pi * j / 3) * r2 - a2 / 3) for j in range(3)]
    return sorted(roots, reverse=True)


def plasma_coefficients(k: Kinetics) -> list[float]:
    """p_i (1/L): Cp after a 1-mg bolus = Σ p_i exp(−λ_i t)."""
    lam = eigenvalues_per_min(k)
    backs = [b for b in (k.k21_per_min, k.k31_per_min) if b > 0]
    coefs = []
    for i, li in enumerate(lam):
        num = math.prod(b - li for b in backs)
        den = math.prod(lj - li for j, lj in enumerate(lam) if j != i)
        coefs.append(num / den / k.v1_l)
    return coefs


def closed_form(
    k: Kinetics, dose_mg: float, rate_mg_per_min: float, t_min: float
) -> tuple[float, float]:
    """(Cp, Ce) at t after a bolus at 0 plus a constant infusion from 0, empty patient."""
    lam = eigenvalues_per_min(k)
    p = plasma_coefficients(k)
    ke0 = k.ke0_per_min
    e = [pi * ke0 / (ke0 - li) for pi, li in zip(p, lam, strict=True)]
    e4 = -sum(e)
    cp = sum(
        pi * (dose_mg * math.exp(-li * t_min) + rate_mg_per_min / li * (1 - math.exp(-li * t_min)))
        for pi, li in zip(p, lam, strict=True)
    )
    ce_terms = [*zip(e, lam, strict=True), (e4, ke0)]
    ce = sum(
        ei * (dose_mg * math.exp(-li * t_min) + rate_mg_per_min / li * (1 - math.exp(-li * t_min)))
        for ei, li in ce_terms
    )
    return cp, ce


def domino(weight_kg: float = 70.0, ke0: float = 0.085668) -> Kinetics:
    """Domino as in dosing.md §5 (the ke0 is the research's 3-min time to peak)."""
    return Kinetics("domino", weight_kg, 0.063 * weight_kg, 0.438, 0.592, 0.247, 0.590, 0.0146, ke0)


def hijazi(weight_kg: float = 70.0, ke0: float = 4.7734) -> Kinetics:
    return Kinetics(
        "hijazi2003", weight_kg, 1.08 * weight_kg, 0.0333, 0.0088, 0.0030, ke0_per_min=ke0
    )


def simulate(k: Kinetics, dose_mg: float, rate_mg_per_h: float, t_s: float) -> tuple[float, float]:
    prop = Propagator(k)
    state = prop.advance(PkState().with_bolus(dose_mg), rate_mg_per_h, t_s)
    return state.plasma_ug_per_ml(k), state.ce_ug_per_ml


# -- the reference checks itself -------------------------------------------------------------


def test_reference_coefficients_sum_to_one_over_v1() -> None:
    k = domino()
    assert sum(plasma_coefficients(k)) == pytest.approx(1 / k.v1_l, rel=1e-12)
    # the eigenvalues of the cubic are those of the compartment matrix
    m = k.matrix_per_s()[:3, :3] * 60
    assert sorted(-np.linalg.eigvals(m).real) == pytest.approx(sorted(eigenvalues_per_min(k)))


# -- the solver -----------------------------------------------------------------------------


def test_expm_of_known_matrices() -> None:
    d = np.diag([-3.0, 0.5, 0.0])
    assert expm(d) == pytest.approx(np.diag(np.exp([-3.0, 0.5, 0.0])), rel=1e-14)
    nil = np.array([[0.0, 1.0], [0.0, 0.0]])
    assert expm(nil * 7) == pytest.approx(np.array([[1.0, 7.0], [0.0, 1.0]]))
    theta = 40.0  # large norm: many squarings
    rot = expm(np.array([[0.0, -theta], [theta, 0.0]]))
    expected = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    assert rot == pytest.approx(expected, abs=1e-10)


def test_one_compartment_bolus_is_a_single_exponential() -> None:
    k = Kinetics("one", 70, 20.0, 0.1, 0.0, 0.0)
    cp, _ = simulate(k, 50.0, 0.0, 600.0)
    assert cp == pytest.approx(50.0 / 20.0 * math.exp(-0.1 * 10), rel=1e-12)


@pytest.mark.parametrize("t_min", [0.5, 1, 2, 3, 5, 10, 30, 60, 120])
def test_single_bolus_three_compartments(t_min: float) -> None:
    k = domino()
    cp, ce = simulate(k, 140.0, 0.0, t_min * 60)
    ref_cp, ref_ce = closed_form(k, 140.0, 0.0, t_min)
    assert cp == pytest.approx(ref_cp, rel=1e-10)
    assert ce == pytest.approx(ref_ce, rel=1e-10)


def test_bolus_at_time_zero_is_dose_over_v1_and_no_effect_yet() -> None:
    k = domino()
    state = PkState().with_bolus(140.0)
    assert state.plasma_ug_per_ml(k) == pytest.approx(140.0 / 4.41)
    assert state.ce_ug_per_ml == 0.0


@pytest.mark.parametrize("t_min", [1, 10, 60, 240])
def test_constant_infusion_two_and_three_compartments(t_min: float) -> None:
    for k in (domino(), hijazi()):
        cp, ce = simulate(k, 0.0, 60.0, t_min * 60)  # 1 mg/min
        ref_cp, ref_ce = closed_form(k, 0.0, 1.0, t_min)
        assert cp == pytest.approx(ref_cp, rel=1e-10)
        assert ce == pytest.approx(ref_ce, rel=1e-10)


def test_constant_infusion_reaches_rate_over_clearance() -> None:
    k = domino()
    # 1 mg/min for 48 h (25 terminal half-lives): Cp = R / CL = 1 / (4.41 × 0.438) µg/mL
    prop = Propagator(k)
    state = PkState()
    for _ in range(48):
        state = prop.advance(state, 60.0, 3600.0)
    steady = 1.0 / (4.41 * 0.438)
    assert state.plasma_ug_per_ml(k) == pytest.approx(steady, rel=1e-6)
    assert state.ce_ug_per_ml == pytest.approx(steady, rel=1e-6)
    # amounts in the peripheral compartments at equilibrium: V2·C, V3·C
    assert state.a2_mg == pytest.approx(k.v2_l * steady, rel=1e-6)
    assert state.a3_mg == pytest.approx(k.v3_l * steady, rel=1e-6)


def test_superposition_and_linearity() -> None:
    k = domino()
    prop = Propagator(k)
    both = prop.advance(PkState().with_bolus(20.0), 30.0, 900.0)
    bolus = prop.advance(PkState().with_bolus(20.0), 0.0, 900.0)
    infusion = prop.advance(PkState(), 30.0, 900.0)
    assert both.as_array() == pytest.approx(bolus.as_array() + infusion.as_array(), rel=1e-12)
    double = prop.advance(PkState(), 60.0, 900.0)
    assert double.as_array() == pytest.approx(2 * infusion.as_array(), rel=1e-12)
    # one interval or many: the same exact answer
    split = PkState()
    for dt in (1.0, 9.0, 290.0, 600.0):
        split = prop.advance(split, 30.0, dt)
    assert split.as_array() == pytest.approx(infusion.as_array(), rel=1e-11)


def test_advance_in_floats_is_the_matrix_step() -> None:
    """`advance` sums in floats, in a fixed order, what `step` multiplies with numpy: the
    same state to rounding, and it refuses an interval that goes back as `step` does."""
    k = domino()
    prop = Propagator(k)
    state = PkState(3.0, 1.5, 0.25, 0.01)
    for rate, dt in ((30.0, 10.0), (0.0, 10.0), (120.0, 0.5), (30.0, 10.0)):
        expected = prop.step(state.as_array(), rate, dt)
        state = prop.advance(state, rate, dt)
        assert state.as_array() == pytest.approx(expected, rel=1e-14, abs=1e-300)
    with pytest.raises(ValueError, match="interval"):
        prop.advance(state, 30.0, -1.0)


def test_kept_intervals_are_nothing_the_collector_walks() -> None:
    """A real-time run advances over a new interval length nearly every time, and keeps up to
    4096 of them per propagator: as lists they made each full collection of a 50-pump
    station walk millions of objects (poll lateness p99 2 -> 400 ms)."""
    prop = Propagator(domino())
    state = PkState()
    for i in range(300):
        state = prop.advance(state, 30.0, 10.0 + i * 1e-3)
    gc.collect()
    gc.collect()  # a tuple of tuples is let go one level a collection
    assert not any(gc.is_tracked(rows) for rows in prop._rows.values())


def test_after_an_infusion_stops() -> None:
    k = domino()
    prop = Propagator(k)
    state = prop.advance(PkState(), 60.0, 3600.0)
    state = prop.advance(state, 0.0, 3600.0)
    # closed form: infusion to T, then decay of each exponential for t − T
    lam, p = eigenvalues_per_min(k), plasma_coefficients(k)
    ref = sum(
        pi / li * (1 - math.exp(-li * 60)) * math.exp(-li * 60)
        for pi, li in zip(p, lam, strict=True)
    )
    assert state.plasma_ug_per_ml(k) == pytest.approx(ref, rel=1e-10)
    assert min(state.as_array()) >= 0.0


def test_ke0_from_time_to_peak_puts_the_effect_peak_there() -> None:
    k = domino(ke0=0.0)
    ke0 = ke0_from_t_peak(k, 60.0)
    with_ke0 = k.with_ke0(ke0)
    # at the effect-site peak dCe/dt = ke0 (Cp − Ce) = 0: Cp = Ce in the closed form
    cp, ce = closed_form(with_ke0, 1.0, 0.0, 1.0)
    assert ce == pytest.approx(cp, rel=1e-8)
    before = closed_form(with_ke0, 1.0, 0.0, 0.99)[1]
    after = closed_form(with_ke0, 1.0, 0.0, 1.01)[1]
    assert before < ce and after < ce
    assert t_peak_s(with_ke0) == pytest.approx(60.0, abs=0.02)


@pytest.mark.parametrize(
    ("kinetics", "t_peak", "expected"),
    [
        # independent values from the project's PK research (Brent root of dCe/dt at t_peak)
        (domino(ke0=0.0), 60.0, 0.6524),
        (domino(ke0=0.0), 180.0, 0.0857),
        (hijazi(ke0=0.0), 60.0, 4.7734),
        (Kinetics("clements250", 70, 1.7522 * 70, 0.0109, 0.0186, 0.0137), 60.0, 5.2105),
    ],
)
def test_ke0_values_match_the_research(kinetics: Kinetics, t_peak: float, expected: float) -> None:
    assert ke0_from_t_peak(kinetics, t_peak) == pytest.approx(expected, abs=6e-5)


def test_invalid_kinetics_are_refused() -> None:
    with pytest.raises(ValueError, match="both rate constants"):
        Kinetics("bad", 70, 4.0, 0.4, 0.5, 0.0)
    with pytest.raises(ValueError, match="V1 and k10"):
        Kinetics("bad", 70, 0.0, 0.4, 0.5, 0.2)
    with pytest.raises(ValueError, match="must be > 0 s"):
        ke0_from_t_peak(domino(ke0=0.0), 0.0)
