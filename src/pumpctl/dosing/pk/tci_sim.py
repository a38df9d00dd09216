"""A TCI phase run on an ideal pump: what `check` and `predict` show before anything is sent.

The supervisor runs the same `TciController` every interval against the volume the pump
reports; here the pump is taken to deliver exactly the rate it is sent (quantized down), so the
schedule is what a perfect pump would do. It also bounds the drug any run that respects the
plasma ceiling can give (`max_drug_mg`), which becomes the pump's own hard stop for the phase.
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpctl.dosing.pk.history import Infusion
from pumpctl.dosing.pk.solver import Kinetics, PkState, Propagator
from pumpctl.dosing.pk.tci import TciController, TciLimits, TciSite
from pumpctl.families.quantize import Quantizer

__all__ = ["TciRun", "max_drug_mg", "simulate_tci"]


@dataclass(frozen=True)
class TciRun:
    infusions: tuple[Infusion, ...]
    end_state: PkState

    @property
    def drug_mg(self) -> float:
        return sum(i.drug_mg for i in self.infusions)


def simulate_tci(
    kinetics: Kinetics,
    *,
    concentration_mg_per_ml: float,
    target_ug_per_ml: float,
    site: TciSite,
    duration_s: float,
    max_plasma_ug_per_ml: float,
    max_rate_ml_per_h: float,
    quantizer: Quantizer | None = None,
    interval_s: float = 10.0,
    t0_s: float = 0.0,
    state: PkState | None = None,
) -> TciRun:
    """The controller's rate every `interval_s` for `duration_s`, on an exact pump."""
    ctl = TciController(
        kinetics,
        concentration_mg_per_ml=concentration_mg_per_ml,
        limits=TciLimits(
            max_plasma_ug_per_ml=max_plasma_ug_per_ml, pump_max_rate_ml_per_h=max_rate_ml_per_h
        ),
        interval_s=interval_s,
        quantizer=quantizer,
    )
    prop = Propagator(kinetics)
    x = state or PkState()
    pieces: list[Infusion] = []
    t = 0.0
    while t < duration_s - 1e-9:
        dt = min(interval_s, duration_s - t)
        cmd = ctl.command(x, min(target_ug_per_ml, max_plasma_ug_per_ml), site)
        if cmd.rate_mg_per_h > 0:
            if pieces and pieces[-1].rate_mg_per_h == cmd.rate_mg_per_h:
                last = pieces[-1]
                pieces[-1] = Infusion(last.start_s, last.duration_s + dt, last.rate_mg_per_h)
            else:
                pieces.append(Infusion(t0_s + t, dt, cmd.rate_mg_per_h))
        x = prop.advance(x, cmd.rate_mg_per_h, dt)
        t += dt
    return TciRun(tuple(pieces), x)


def max_drug_mg(kinetics: Kinetics, *, max_plasma_ug_per_ml: float, duration_s: float) -> float:
    """Most drug (mg) any schedule can give in `duration_s` from an empty patient while the
    plasma never exceeds `max_plasma`: what was eliminated (k10·V1·Cp ≤ k10·V1·Cmax) plus what
    the body holds (every compartment fed only by plasma stays at or below Cmax)."""
    k = kinetics
    c = max_plasma_ug_per_ml  # mg/L
    eliminated = k.k10_per_min * k.v1_l * c * duration_s / 60.0
    return eliminated + c * (k.v1_l + k.v2_l + k.v3_l)
