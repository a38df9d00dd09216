"""Exact solution of the mammillary model with an effect site, per constant-rate interval.

State `x = [A1, A2, A3, Ce]`: drug amounts in the central and two peripheral compartments (mg)
and the effect-site concentration (mg/L = µg/mL). With a constant rate R over an interval the
model is linear with constant coefficients, so the solution is exact, not stepped:

    x(t + Δt) = Φ(Δt) x(t) + Γ(Δt) R,    Φ = expm(M Δt),   Γ = ∫0^Δt expm(M s) b ds

Φ and Γ come together from the exponential of the augmented matrix [[M, b], [0, 0]] (Van Loan
1978). Physical amounts rather than Shafer's "virtual compartments" keep the state easy to check
(never negative; Cp = A1/V1) and let the supervisor rebuild it from reported volumes alone.

Time is in seconds and rates in mg/h at the interface; rate constants are published per minute
and converted once here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Kinetics",
    "PkState",
    "Propagator",
    "expm",
    "ke0_from_t_peak",
    "t_peak_s",
]

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class Kinetics:
    """One patient's micro-constants (model scaled to a weight). k in 1/min, V1 in L.

    A two-compartment model has k13 = k31 = 0; its third compartment then stays empty.
    """

    name: str
    weight_kg: float
    v1_l: float
    k10_per_min: float
    k12_per_min: float
    k21_per_min: float
    k13_per_min: float = 0.0
    k31_per_min: float = 0.0
    ke0_per_min: float = 0.0

    def __post_init__(self) -> None:
        if self.v1_l <= 0 or self.k10_per_min <= 0:
            raise ValueError(f"{self.name}: V1 and k10 must be > 0")
        ks = (self.k12_per_min, self.k21_per_min, self.k13_per_min, self.k31_per_min)
        if any(k < 0 or not math.isfinite(k) for k in ks) or self.ke0_per_min < 0:
            raise ValueError(f"{self.name}: rate constants must be finite and >= 0")
        for into, back in (
            (self.k12_per_min, self.k21_per_min),
            (self.k13_per_min, self.k31_per_min),
        ):
            if (into > 0) != (back > 0):
                raise ValueError(f"{self.name}: a peripheral compartment needs both rate constants")

    def with_ke0(self, ke0_per_min: float) -> Kinetics:
        return replace(self, ke0_per_min=ke0_per_min)

    @property
    def v2_l(self) -> float:
        return self.v1_l * self.k12_per_min / self.k21_per_min if self.k21_per_min else 0.0

    @property
    def v3_l(self) -> float:
        return self.v1_l * self.k13_per_min / self.k31_per_min if self.k31_per_min else 0.0

    @property
    def clearance_l_per_min(self) -> float:
        return self.v1_l * self.k10_per_min

    def matrix_per_s(self) -> Matrix:
        """dx/dt = M x + b R with t in s, R in mg/s (b = e1)."""
        k10, k12, k21 = self.k10_per_min, self.k12_per_min, self.k21_per_min
        k13, k31, ke0 = self.k13_per_min, self.k31_per_min, self.ke0_per_min
        m = np.array(
            [
                [-(k10 + k12 + k13), k21, k31, 0.0],
                [k12, -k21, 0.0, 0.0],
                [k13, 0.0, -k31, 0.0],
                [ke0 / self.v1_l, 0.0, 0.0, -ke0],
            ]
        )
        return m / 60.0


@dataclass(frozen=True)
class PkState:
    """Amounts (mg) in the three compartments and the effect-site concentration (µg/mL)."""

    a1_mg: float = 0.0
    a2_mg: float = 0.0
    a3_mg: float = 0.0
    ce_ug_per_ml: float = 0.0

    def plasma_ug_per_ml(self, kinetics: Kinetics) -> float:
        return self.a1_mg / kinetics.v1_l

    def as_array(self) -> Matrix:
        return np.array([self.a1_mg, self.a2_mg, self.a3_mg, self.ce_ug_per_ml])

    @classmethod
    def from_array(cls, x: Matrix) -> PkState:
        a1, a2, a3, ce = x.tolist()  # the same floats as float(x[i]), in one call
        return cls(a1, a2, a3, ce)

    def with_bolus(self, dose_mg: float) -> PkState:
        """An instantaneous dose into the central compartment (Ce is continuous)."""
        return replace(self, a1_mg=self.a1_mg + dose_mg)


def expm(a: Matrix) -> Matrix:
    """Matrix exponential by scaling and squaring of a Taylor series.

    The matrices here are small (5x5) with real eigenvalues <= 0. Scaling to a 1-norm <= 1/2
    makes the series converge to double precision within about 20 terms; squaring back costs
    a relative error of order 2^s ε, below 1e-12 for every interval this module is asked for.
    """
    n = a.shape[0]
    norm = float(np.abs(a).sum(axis=0).max())
    squarings = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    scaled = a / (2.0**squarings)
    result = np.eye(n)
    term = np.eye(n)
    for k in range(1, 40):
        term = term @ scaled / k
        result = result + term
        if float(np.abs(term).max()) <= 1e-18 * float(np.abs(result).max()):
            break
    for _ in range(squarings):
        result = result @ result
    return result


class Propagator:
    """Advances a state exactly over constant-rate intervals; caches Φ, Γ per interval length."""

    def __init__(self, kinetics: Kinetics) -> None:
        self.kinetics = kinetics
        self._m = kinetics.matrix_per_s()
        self._cache: dict[float, tuple[Matrix, Matrix]] = {}
        #: (Φ row, Γ entry) pairs as floats per interval, for `advance`
        self._rows: dict[float, tuple[tuple[float, ...], ...]] = {}

    def transition(self, dt_s: float) -> tuple[Matrix, Matrix]:
        """(Φ, Γ) for an interval of `dt_s` seconds; Γ is per mg/s of infusion."""
        if dt_s < 0:
            raise ValueError(f"interval must be >= 0 s, got {dt_s}")
        key = round(dt_s, 9)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        aug = np.zeros((5, 5))
        aug[:4, :4] = self._m
        aug[0, 4] = 1.0
        e = expm(aug * dt_s)
        pair = (e[:4, :4].copy(), e[:4, 4].copy())
        if len(self._cache) < 4096:
            self._cache[key] = pair
        return pair

    def step(self, x: Matrix, rate_mg_per_h: float, dt_s: float) -> Matrix:
        phi, gamma = self.transition(dt_s)
        out: Matrix = phi @ x + gamma * (rate_mg_per_h / 3600.0)
        return out

    def advance(self, state: PkState, rate_mg_per_h: float, duration_s: float) -> PkState:
        """`step` on a `PkState`, in floats: a run advances its prediction every few polls,
        and on a 4x4 numpy's cost per call was most of the step. The sums go in one fixed
        order, so the result does not depend on the machine's BLAS either."""
        key = round(duration_s, 9)
        rows = self._rows.get(key)
        if rows is None:
            phi, gamma = self.transition(duration_s)
            # tuples of floats only: the collector stops tracking them (lists it would walk at
            # every full collection, and a real-time run keeps thousands of intervals)
            rows = tuple((*r, g) for r, g in zip(phi.tolist(), gamma.tolist(), strict=True))
            if len(self._rows) < 4096:
                self._rows[key] = rows
        u = rate_mg_per_h / 3600.0
        x0, x1, x2, x3 = state.a1_mg, state.a2_mg, state.a3_mg, state.ce_ug_per_ml
        a1, a2, a3, ce = [
            p0 * x0 + p1 * x1 + p2 * x2 + p3 * x3 + g * u for p0, p1, p2, p3, g in rows
        ]
        return PkState(a1, a2, a3, ce)

    def plasma(self, x: Matrix) -> float:
        return float(x[0]) / self.kinetics.v1_l


def _plasma_minus_effect_at(kinetics: Kinetics, t_s: float) -> float:
    """Cp − Ce at `t_s` after a unit bolus: > 0 while Ce still rises (dCe/dt = ke0 (Cp − Ce))."""
    x = Propagator(kinetics).step(np.array([1.0, 0.0, 0.0, 0.0]), 0.0, t_s)
    return float(x[0]) / kinetics.v1_l - float(x[3])


def ke0_from_t_peak(kinetics: Kinetics, t_peak_s: float) -> float:
    """The ke0 (1/min) whose effect-site peak after a bolus falls at `t_peak_s`.

    STANPUMP's way of pairing a PK model with an effect site measured elsewhere (Shafer,
    `recalculate_ke0`): at the peak dCe/dt = ke0 (Cp − Ce) = 0, and the peak comes earlier as
    ke0 grows, so bisect on the sign of Cp − Ce at `t_peak_s` (on log ke0, to 1e-12 relative).
    """
    if not t_peak_s > 0:
        raise ValueError(f"time to peak must be > 0 s, got {t_peak_s}")
    lo, hi = 1e-5, 1e3  # 1/min: T½keo from 11 weeks down to 0.04 s
    if _plasma_minus_effect_at(kinetics.with_ke0(lo), t_peak_s) <= 0:
        raise ValueError(f"{kinetics.name}: time to peak {t_peak_s:g} s is too long")
    if _plasma_minus_effect_at(kinetics.with_ke0(hi), t_peak_s) >= 0:
        raise ValueError(f"{kinetics.name}: time to peak {t_peak_s:g} s is too short")
    while hi / lo > 1 + 1e-12:
        mid = math.sqrt(lo * hi)
        if _plasma_minus_effect_at(kinetics.with_ke0(mid), t_peak_s) > 0:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def t_peak_s(kinetics: Kinetics, resolution_s: float = 0.01) -> float:
    """Time of the effect-site peak after a bolus (the inverse of `ke0_from_t_peak`).

    Cp − Ce changes sign exactly once after a bolus (Ce rises while below Cp, then both fall
    together), so bisect on it between 0 and the first second where it is negative.
    """
    if kinetics.ke0_per_min <= 0:
        raise ValueError(f"{kinetics.name}: no effect site (ke0 = 0)")
    hi = 1.0
    while _plasma_minus_effect_at(kinetics, hi) > 0:
        hi *= 2.0
        if hi > 1e7:
            raise ValueError(f"{kinetics.name}: no effect-site peak found")
    lo = 0.0
    while hi - lo > resolution_s:
        mid = (lo + hi) / 2.0
        if _plasma_minus_effect_at(kinetics, mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0
