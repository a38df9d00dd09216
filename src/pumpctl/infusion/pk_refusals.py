"""Why a TCI target or a clinician bolus is refused, as typed errors naming field, value, limit.

Both are `SupervisorError`s with the same message as before, so the control socket's handling
and the journal are unchanged; a caller that sends typed errors (the station's SiLA face, SR02)
reads their fields instead of parsing the message.
"""

from __future__ import annotations

from pumpctl.dosing.bolus import FOUR_HOURS_S, HOUR_S, BolusDecision, BolusLockout
from pumpctl.dosing.segments import TciPlan
from pumpctl.infusion.requests import SupervisorError

__all__ = ["BolusRefused", "LimitRefused", "TargetRefused", "bolus_refusal", "target_refusal"]

_EPS = 1e-12


class LimitRefused(SupervisorError):
    """A request a limit of the program refuses: `name` is the limit (max_step, lockout...)."""

    def __init__(
        self,
        field: str,
        name: str,
        value: float | None,
        limit: float | None,
        unit: str,
        message: str,
    ) -> None:
        self.field, self.name, self.value, self.limit, self.unit = field, name, value, limit, unit
        super().__init__(message)

    def record(self) -> dict[str, object]:
        """Field, limit name, value, limit, unit and the message: what a typed error carries."""
        return {
            "field": self.field,
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "message": str(self),
        }


class TargetRefused(LimitRefused):
    """A TCI target outside the allowed range, or a step or increase too soon (SR09)."""


class BolusRefused(LimitRefused):
    """A bolus the lockout refuses; `next_allowed_in_s` is when one would be given (None: never)."""

    def __init__(
        self,
        name: str,
        value: float | None,
        limit: float | None,
        unit: str,
        message: str,
        next_allowed_in_s: float | None,
    ) -> None:
        super().__init__("bolus", name, value, limit, unit, message)
        self.next_allowed_in_s = next_allowed_in_s

    def record(self) -> dict[str, object]:
        return {**super().record(), "next_allowed_in_s": self.next_allowed_in_s}


def target_refusal(
    tci: TciPlan, old: float, new: float, now: float, last_increase_s: float | None
) -> TargetRefused | None:
    """Why a target change is refused (titration's rules, in µg/mL), or None."""
    top = tci.max_target_ug_per_ml
    if not 0 <= new <= top + _EPS:
        msg = f"target {new:g} ug/mL outside 0-{top:g} ug/mL"
        return TargetRefused("target", "max_target", new, top, "ug/mL", msg)
    if new > old:
        step, largest = new - old, tci.max_step_ug_per_ml
        if step > largest + _EPS:
            msg = f"step {step:g} ug/mL above the largest step {largest:g}"
            return TargetRefused("target", "max_step", step, largest, "ug/mL", msg)
        since = None if last_increase_s is None else now - last_increase_s
        if since is not None and since < tci.min_interval_s - 1e-9:
            wait = tci.min_interval_s - since
            msg = f"last increase {since:.0f} s ago: wait {wait:.0f} s (SR09)"
            return TargetRefused("target", "min_interval", since, tci.min_interval_s, "s", msg)
    return None


def bolus_refusal(lockout: BolusLockout, decision: BolusDecision, now: float) -> BolusRefused:
    """The refused `decision` as a typed error: the limit it broke, with its value and unit."""
    limits, history, dose = lockout.limits, lockout.history, decision.request.dose_mg
    name = decision.limit or "request"
    value: float | None = dose
    limit: float | None = None
    unit = "mg"
    if name == "dose":
        limit = limits.max_dose_mg
    elif name == "lockout":
        last_end = max((b.end_s for b in history), default=now)
        # seconds into the lockout (0 while the last bolus is still being given)
        value, limit, unit = max(0.0, now - last_end), limits.lockout_s, "s"
    elif name == "per_hour":
        recent = sum(1 for b in history if b.t_s > now - HOUR_S)
        value, limit, unit = float(recent + 1), float(limits.max_per_hour), "boluses per hour"
    elif name == "per_4h":
        given = sum(b.dose_mg for b in history if b.t_s > now - FOUR_HOURS_S)
        value, limit, unit = given + dose, limits.max_mg_per_4h, "mg per 4 h"
    nxt = decision.next_allowed_s
    wait = None if nxt is None else max(0.0, nxt - now)
    return BolusRefused(name, value, limit, unit, decision.message, wait)
