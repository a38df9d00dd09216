"""Target-controlled infusion: the rate for the next interval, from the state the pump reports.

Pure: the supervisor calls `TciController.command` every interval (10 s) with the state that
`DeliveryTracker` built from the pump's reported volumes, and sends the returned mL/h.

- Plasma target (Bailey & Shafer 1991, STANPUMP `model()`): the rate that brings the predicted
  Cp to the target at the end of the interval. From an empty patient that is a bolus given at
  the highest allowed rate, then a falling maintenance rate.
- Effect-site target (Shafer & Gregg 1992): the largest rate for one interval such that, if the
  pump then stopped, the predicted Ce peak just touches the target: min over τ of
  (target − Ce_free(τ)) / Ce_unit(τ). Within 5 % of the target it hands over to the plasma rule
  (STANPUMP and stanpumpR both do), which holds Cp = Ce = target.
- Caps: the pump's maximum rate, a library/program maximum rate, an allowance of drug left in
  the rolling windows, and a maximum plasma concentration that the prediction may not cross at
  any second of the next `ceiling_guard_s` even if the next update comes late (cf. Van Poucke,
  Bravo & Shafer 2004, effect-site targeting with a plasma limit).
- A target below the prediction gives a negative rate: the pump stays off until the prediction
  has fallen to it.

The rate is quantized DOWN by the pump's `Quantizer`; whatever was not given shows up in the
next reported volume, so the next interval makes it up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pumpctl.dosing.pk.solver import Kinetics, Matrix, PkState, Propagator
from pumpctl.families.quantize import NotRepresentable, Quantizer

__all__ = ["TciCommand", "TciController", "TciLimits", "TciSite"]

TciSite = Literal["plasma", "effect"]

#: effect mode hands over to the plasma rule within this fraction of the target
HANDOFF_FRACTION = 0.05
#: the effect-site search grid (s)
GRID_S = 1.0
#: longest effect-site look-ahead (s)
MAX_HORIZON_S = 3600.0


@dataclass(frozen=True)
class TciLimits:
    """What the rate may never exceed. Rates in mL/h are the pump's; mg/h the library's."""

    max_plasma_ug_per_ml: float
    pump_max_rate_ml_per_h: float
    max_rate_mg_per_h: float | None = None

    def __post_init__(self) -> None:
        if not (self.max_plasma_ug_per_ml > 0 and self.pump_max_rate_ml_per_h > 0):
            raise ValueError("the plasma ceiling and the pump's max rate must be > 0")
        if self.max_rate_mg_per_h is not None and self.max_rate_mg_per_h <= 0:
            raise ValueError("max_rate_mg_per_h must be > 0")


@dataclass(frozen=True)
class TciCommand:
    """The rate for the next interval and why it is what it is (for the journal and display)."""

    rate_mg_per_h: float
    rate_ml_per_h: float
    #: the rule's rate before any cap (negative: the prediction is above the target)
    wanted_mg_per_h: float
    #: the binding limit, or None when the rule's rate was sent as computed
    limited_by: str | None
    mode: TciSite
    plasma_ug_per_ml: float
    effect_ug_per_ml: float


class TciController:
    """One patient model, drug concentration and set of limits; `command` is pure."""

    def __init__(
        self,
        kinetics: Kinetics,
        *,
        concentration_mg_per_ml: float,
        limits: TciLimits,
        interval_s: float = 10.0,
        quantizer: Quantizer | None = None,
        ceiling_guard_s: float | None = None,
    ) -> None:
        if concentration_mg_per_ml <= 0 or interval_s <= 0:
            raise ValueError("concentration and interval must be > 0")
        self.kinetics = kinetics
        self.conc = concentration_mg_per_ml
        self.limits = limits
        self.interval_s = interval_s
        self.quantizer = quantizer
        self.prop = Propagator(kinetics)
        self._v1 = kinetics.v1_l
        # plasma rule: Cp at the end of the interval = free decay + R * unit response
        phi, gamma = self.prop.transition(interval_s)
        self._cp_free_row = phi[0] / self._v1
        self._cp_unit = float(gamma[0]) / self._v1 / 3600.0  # per mg/h
        # plasma ceiling: every second of the guard, with the rate still running
        guard = ceiling_guard_s if ceiling_guard_s is not None else 2.0 * interval_s
        taus = np.arange(1, math.ceil(max(guard, interval_s) / GRID_S) + 1) * GRID_S
        pairs = [self.prop.transition(float(t)) for t in taus]
        self._ceil_free = np.array([p[0][0] for p in pairs]) / self._v1
        self._ceil_unit = np.array([p[1][0] for p in pairs]) / self._v1 / 3600.0
        self._effect_free, self._effect_unit = self._effect_tables(kinetics.ke0_per_min > 0)

    def _effect_tables(self, has_effect: bool) -> tuple[Matrix, Matrix]:
        """Ce after τ = 1, 2, ... s: free-decay rows and the response to 1 mg/h for one interval.

        The horizon is twice the peak time of that response (STANPUMP's `peak_time`), which is
        where the touching point of the effect-site rule lies.
        """
        if not has_effect:
            return np.zeros((0, 4)), np.zeros(0)
        step_phi, _ = self.prop.transition(GRID_S)
        end_gamma = self.prop.transition(self.interval_s)[1]
        phi_row = np.eye(4)
        x_unit = np.zeros(4)
        free_rows: list[Matrix] = []
        unit: list[float] = []
        peak_k = 0
        for k in range(1, int(MAX_HORIZON_S / GRID_S) + 1):
            tau = k * GRID_S
            if tau <= self.interval_s:
                x_unit = self.prop.transition(tau)[1] / 3600.0
            elif tau - GRID_S < self.interval_s:  # first point after the pump stops
                x_unit = self.prop.transition(tau - self.interval_s)[0] @ end_gamma / 3600.0
            else:
                x_unit = step_phi @ x_unit
            phi_row = step_phi @ phi_row
            free_rows.append(phi_row[3].copy())
            unit.append(float(x_unit[3]))
            if unit[-1] > unit[peak_k]:
                peak_k = k - 1
            if k * GRID_S > max(2.0 * (peak_k + 1) * GRID_S, 2.0 * self.interval_s, 60.0):
                break
        return np.array(free_rows), np.array(unit)

    # -- the rules ------------------------------------------------------------------------------
    def _plasma_rate(self, x: Matrix, target: float) -> float:
        return (target - float(self._cp_free_row @ x)) / self._cp_unit

    def _effect_rate(self, x: Matrix, target: float) -> float:
        free = self._effect_free @ x
        ok = self._effect_unit > 0
        return float(np.min((target - free[ok]) / self._effect_unit[ok]))

    def _ceiling_rate(self, x: Matrix) -> float:
        cap = self.limits.max_plasma_ug_per_ml
        free = self._ceil_free @ x
        return float(np.min((cap - free) / self._ceil_unit))

    def command(
        self,
        state: PkState,
        target_ug_per_ml: float,
        site: TciSite,
        *,
        allowance_mg: float | None = None,
    ) -> TciCommand:
        """Rate for the next interval. `allowance_mg`: drug the rolling limits still allow."""
        if not 0 <= target_ug_per_ml <= self.limits.max_plasma_ug_per_ml:
            raise ValueError(
                f"target {target_ug_per_ml:g} µg/mL outside 0-{self.limits.max_plasma_ug_per_ml:g}"
                " µg/mL (the plasma ceiling)"
            )
        x = state.as_array()
        cp, ce = float(x[0]) / self._v1, float(x[3])
        effect = site == "effect" and self.kinetics.ke0_per_min > 0
        mode: TciSite = "plasma"
        if target_ug_per_ml == 0:
            wanted = 0.0
        elif effect and abs(ce - target_ug_per_ml) >= HANDOFF_FRACTION * target_ug_per_ml:
            wanted, mode = self._effect_rate(x, target_ug_per_ml), "effect"
        else:
            wanted = self._plasma_rate(x, target_ug_per_ml)
        caps = [
            ("max plasma concentration", self._ceiling_rate(x)),
            ("pump max rate", self.limits.pump_max_rate_ml_per_h * self.conc),
        ]
        if self.limits.max_rate_mg_per_h is not None:
            caps.append(("max rate", self.limits.max_rate_mg_per_h))
        if allowance_mg is not None:
            caps.append(("rolling limit", max(allowance_mg, 0.0) / self.interval_s * 3600.0))
        rate, limited_by = wanted, None
        for name, cap in caps:
            if cap < rate:
                rate, limited_by = cap, name
        if rate <= 0:
            rate = 0.0
            if wanted <= 0 and target_ug_per_ml > 0:
                limited_by = "prediction above target"
        rate_ml = self._quantize(rate / self.conc)
        return TciCommand(
            rate_mg_per_h=rate_ml * self.conc,
            rate_ml_per_h=rate_ml,
            wanted_mg_per_h=wanted,
            limited_by=limited_by,
            mode=mode,
            plasma_ug_per_ml=cp,
            effect_ug_per_ml=ce,
        )

    def _quantize(self, rate_ml_per_h: float) -> float:
        if rate_ml_per_h <= 0:
            return 0.0
        if self.quantizer is None:
            return rate_ml_per_h
        try:
            return self.quantizer.floor_rate_ml_per_h(rate_ml_per_h)
        except NotRepresentable:
            return 0.0  # below the pump's smallest rate: off (never rounded up)

    def time_to_fall_s(
        self, state: PkState, level_ug_per_ml: float, site: TciSite, *, max_s: float = 86400.0
    ) -> float:
        """Seconds until the prediction, with the pump off, is at or below `level` for good.

        For the effect site that is once Ce is at or below the level and no longer rising
        (Cp <= Ce). Scans in 10-s steps, then to 1 s. `math.inf` beyond `max_s`.
        """
        x = state.as_array()

        def done(y: Matrix) -> bool:
            cp, ce = float(y[0]) / self._v1, float(y[3])
            if site == "plasma":
                return cp <= level_ug_per_ml
            return ce <= level_ug_per_ml and cp <= ce

        if done(x):
            return 0.0
        t = 0.0
        while t < max_s:
            y = self.prop.step(x, 0.0, 10.0)
            if done(y):
                for k in range(1, 11):
                    if done(self.prop.step(x, 0.0, float(k))):
                        return t + k
            x, t = y, t + 10.0
        return math.inf
