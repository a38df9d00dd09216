"""Titration of a running maintenance infusion (SR09) and operator rate entry (SR04).

Increases are limited per step, per interval and by the plan's ceiling; decreases are always
allowed and immediate (a clinician must never be blocked from giving less drug). The caller (the
supervisor) is responsible for allowing titration only in maintenance and for journaling (SR10).
"""

from __future__ import annotations

import math

from pumpctl.dosing.plan import Plan, SegmentPhase, TitrationLimits, floor_to
from pumpctl.dosing.units import QuantityError, RateKind, parse_dose_rate

__all__ = [
    "TitrationRefused",
    "check_titration",
    "dose_rate_to_ml_per_h",
    "ml_per_h_to_dose_rate",
]

_EPS = 1e-9


class TitrationRefused(ValueError):
    """A requested rate change that is not allowed; names field, value, limit and unit (SR02)."""

    def __init__(
        self,
        field: str,
        value: float | str,
        limit: float | str | None,
        unit: str | None,
        message: str,
        rule: str = "SR09",
    ) -> None:
        self.field = field
        self.value = value
        self.limit = limit
        self.unit = unit
        self.rule = rule
        super().__init__(f"{field}: {message} ({rule})")


def check_titration(
    limits: TitrationLimits,
    *,
    current_ml_per_h: float,
    requested_ml_per_h: float,
    now_s: float,
    last_increase_s: float | None,
) -> None:
    """Return if the change is allowed, else raise `TitrationRefused`.

    `last_increase_s` is the clock time of the previous accepted increase (None: none yet);
    decreases do not restart the interval.
    """
    if not math.isfinite(requested_ml_per_h) or requested_ml_per_h < 0:
        raise TitrationRefused(
            "rate", requested_ml_per_h, 0.0, "mL/h", f"{requested_ml_per_h} mL/h is not a rate"
        )
    if requested_ml_per_h <= current_ml_per_h * (1 + _EPS):
        return  # decreases (and no change) are always allowed and immediate
    if requested_ml_per_h > limits.max_rate_ml_per_h * (1 + _EPS):
        raise TitrationRefused(
            "titration.max_rate",
            requested_ml_per_h,
            limits.max_rate_ml_per_h,
            "mL/h",
            f"{requested_ml_per_h:g} mL/h is above the maximum {limits.max_rate_ml_per_h:g} mL/h",
        )
    step = requested_ml_per_h - current_ml_per_h
    if step > limits.max_step_ml_per_h * (1 + _EPS) + 1e-12:
        raise TitrationRefused(
            "titration.max_step",
            step,
            limits.max_step_ml_per_h,
            "mL/h",
            f"an increase of {step:g} mL/h is above the maximum step "
            f"{limits.max_step_ml_per_h:g} mL/h",
        )
    if last_increase_s is not None:
        elapsed = now_s - last_increase_s
        if elapsed < limits.min_interval_s * (1 - _EPS):
            raise TitrationRefused(
                "titration.min_interval",
                elapsed,
                limits.min_interval_s,
                "s",
                f"only {elapsed:g} s since the last increase; wait {limits.min_interval_s:g} s",
            )


def dose_rate_to_ml_per_h(text: str, plan: Plan) -> float:
    """An operator's rate ("0.3 mg/kg/h", "25 mg/h", "7 mL/h") in mL/h, rounded down.

    A bare mL/h rate is refused for a drug that is in the library (SR04).
    """
    try:
        rate = parse_dose_rate(text, "rate")
    except QuantityError as exc:  # its reason without its field: TitrationRefused names it
        raise TitrationRefused("rate", text, None, None, exc.reason, rule="schema") from exc
    if rate.kind is RateKind.VOLUMETRIC:
        if plan.drug_in_library:
            raise TitrationRefused(
                "rate",
                text,
                "mg/kg/h or mg/h",
                "mL/h",
                f"{plan.drug} is in the library: give a dose rate, not mL/h",
                rule="SR04",
            )
        ml_per_h = rate.canonical
    else:
        if plan.concentration_mg_per_ml is None or plan.weight_kg is None:
            raise TitrationRefused("rate", text, None, None, "the plan has no drug data")
        ml_per_h = rate.to_ml_per_h(
            weight_kg=plan.weight_kg, concentration_mg_per_ml=plan.concentration_mg_per_ml
        )
    return floor_to(ml_per_h, plan.rate_resolution_ml_per_h)


def ml_per_h_to_dose_rate(ml_per_h: float, plan: Plan) -> tuple[float, str] | None:
    """A pump rate in the maintenance segment's dose unit, for display (SR34)."""
    maint = plan.segment(SegmentPhase.MAINTENANCE)
    limits = plan.titration
    if maint is None or maint.dose_rate is None or maint.dose_rate_unit is None:
        return None
    factor = maint.rate_ml_per_h / maint.dose_rate
    if limits is not None and limits.ml_per_h_per_dose_unit is not None:
        factor = limits.ml_per_h_per_dose_unit
    return ml_per_h / factor, maint.dose_rate_unit
