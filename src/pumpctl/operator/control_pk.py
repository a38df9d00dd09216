"""`ctl target` and `ctl bolus` on the control socket (issue #13).

The quantity travels as the operator typed it (in the request's `rate` field, "0.4 ug/mL",
"0.1 mg/kg") and is parsed here by the strict quantity grammar; the supervisor applies the
limits (titration's step and interval for a target, the bolus lockout) and journals who and why.
"""

from __future__ import annotations

import asyncio

from pumpctl.dosing.units import Kind, QuantityError, parse
from pumpctl.infusion.requests import SupervisorError
from pumpctl.infusion.supervisor import Supervisor

__all__ = ["PK_OPS", "bolus_mg", "execute", "precheck", "target_ug_per_ml"]

PK_OPS = ("target", "bolus")
_EXAMPLE = {"target": "0.4ug/mL", "bolus": "0.1mg/kg"}


def precheck(op: str, value: str | None, reason: str) -> str | None:
    """Why a target/bolus request is refused before it reaches the run, or None."""
    if value is None or not value.strip():
        return f"{op} needs a quantity with units, e.g. {_EXAMPLE[op]!r}"
    if not reason:
        return f"{op} needs a reason (journaled with who asked)"
    return None


def target_ug_per_ml(text: str) -> float:
    return parse(text, Kind.PLASMA_CONCENTRATION, "target")


def bolus_mg(text: str, weight_kg: float | None) -> float:
    """A bolus dose in mg from 'mg/kg' (needs the plan's weight) or plain 'mg'."""
    try:
        return parse(text, Kind.MASS, "bolus")
    except QuantityError:
        per_kg = parse(text, Kind.DOSE_PER_WEIGHT, "bolus")
    if weight_kg is None:
        raise SupervisorError("bolus in mg/kg needs the plan's patient weight: give mg")
    return per_kg * weight_kg


async def execute(sup: Supervisor, op: str, value: str, *, reason: str, who: str) -> None:
    """Send one target/bolus request to the run (shielded: a dropped client cannot cancel it).

    Raises `SupervisorError` when the quantity does not parse or the run refuses it."""
    try:
        if op == "target":
            await asyncio.shield(sup.set_target(target_ug_per_ml(value), reason=reason, who=who))
        else:
            dose = bolus_mg(value, sup.plan.weight_kg)
            await asyncio.shield(sup.bolus(dose, reason=reason, who=who))
    except QuantityError as exc:
        raise SupervisorError(str(exc)) from exc
