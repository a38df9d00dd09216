"""Does a plan fit the pump it will run on? (`pumpctl check --model M`, and `run` before it opens
the port.)

The plan has already been quantized with the pump's own rules (what it prints is what the pump
is sent); this checks the result against the family's spec: a syringe program on a syringe
pump, the syringe's diameter within what the pump takes, and every rate within what its motor
can run with that syringe or tubing. Limits are shown to 3 significant digits, rounded towards
the inside of the range (a maximum down, a minimum up), so the number shown is itself allowed.
"""

from __future__ import annotations

import math

from pumpctl.dosing.library import Violation, violation
from pumpctl.dosing.program import Program
from pumpctl.dosing.segments import Plan
from pumpctl.families.spec import FamilySpec, SyringeMotor

__all__ = ["inside", "pump_violations", "rate_field"]

_RATE_FIELDS = {
    "prime": "phases.prime.rate",
    "loading": "phases.loading.rate",
    "maintenance": "phases.maintenance.rate",
    "kvo": "phases.kvo.rate",
}


def rate_field(phase: str) -> str:
    """The program field a segment's rate comes from."""
    return _RATE_FIELDS.get(phase, f"phases.{phase}.rate")


def inside(value: float, *, down: bool, digits: int = 3) -> float:
    """`value` to `digits` significant digits, rounded down (a maximum) or up (a minimum)."""
    if value <= 0 or not math.isfinite(value):
        return value
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    n = value * scale
    rounded = math.floor(n + 1e-9) if down else math.ceil(n - 1e-9)
    return rounded / scale


def _v(
    fld: str,
    value: float | str,
    limit: float | str | None,
    unit: str | None,
    text: str,
    version: str | None,
) -> Violation:
    return violation(
        field=fld,
        value=value,
        limit=limit,
        unit=unit,
        severity="hard",
        version=version,
        rule="pump",
        what="",
        message=text,
    )


def _container(spec: FamilySpec, program: Program, version: str | None) -> list[Violation]:
    pump = program.pump
    if spec.container == "syringe" and pump.syringe is None:
        return [
            _v(
                "pump.tubing",
                "tubing",
                "syringe",
                None,
                f"the {spec.model} is a syringe pump: give pump.syringe (inner diameter, volume)",
                version,
            )
        ]
    if spec.container == "tubing" and pump.tubing is None:
        return [
            _v(
                "pump.syringe",
                "syringe",
                "tubing",
                None,
                f"the {spec.model} is a peristaltic drive: give pump.tubing (mL per revolution)",
                version,
            )
        ]
    motor = spec.motor
    if pump.syringe is None or not isinstance(motor, SyringeMotor):
        return []
    low, high = motor.diameter_mm
    d = pump.syringe.inner_diameter
    fld = "pump.syringe.inner_diameter"
    if d > high:
        text = f"above the largest {high:g} mm {spec.describe_container()} takes"
        return [_v(fld, d, high, "mm", text, version)]
    if d < low:
        text = f"below the smallest {low:g} mm {spec.describe_container()} takes"
        return [_v(fld, d, low, "mm", text, version)]
    return []


def pump_violations(spec: FamilySpec, program: Program, plan: Plan) -> list[Violation]:
    """Hard violations of `plan` on `spec`'s pump (none: it fits)."""
    version = plan.library_version
    found = _container(spec, program, version)
    if found:
        return found
    c = plan.container
    low, high = spec.rate_range_ml_per_h(
        inner_diameter_mm=c.inner_diameter_mm, ml_per_rev=c.ml_per_rev
    )
    where = spec.describe_container(inner_diameter_mm=c.inner_diameter_mm, ml_per_rev=c.ml_per_rev)
    for seg in plan.segments:
        rate = seg.rate_ml_per_h
        fld = rate_field(seg.phase.value)
        if rate > high * (1 + 1e-9):
            shown = inside(high, down=True)
            text = f"above the maximum {shown:g} mL/h of {where}"
            found.append(_v(fld, rate, shown, "mL/h", text, version))
        elif rate < low * (1 - 1e-9):
            shown = inside(low, down=False)
            text = f"below the minimum {shown:g} mL/h of {where}"
            found.append(_v(fld, rate, shown, "mL/h", text, version))
    return found
