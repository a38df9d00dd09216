"""Predicted plasma and effect-site concentration of a plan or of an infusion history.

`predict_plan` takes the compiled plan as the pump will run it (segments in mL/h and s), turns it
into the drug schedule to the patient (the prime fills the line: time passes, no drug arrives)
and solves the model exactly on a 10-s grid. `predict_infusions` does the same for any schedule,
such as the one the supervisor rebuilds from the pump's reported volumes.

These are population predictions (the study's typical patient), not the patient's measured
concentration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pumpctl.dosing.pk.history import Infusion, states_at
from pumpctl.dosing.pk.models import (
    ModelSpec,
    default_model_name,
    get_model,
    population_warnings,
)
from pumpctl.dosing.pk.solver import Kinetics, Matrix, PkState, Propagator
from pumpctl.dosing.pk.tci_sim import simulate_tci
from pumpctl.dosing.segments import Plan, SegmentPhase

__all__ = [
    "OPEN_ENDED_S",
    "STEP_S",
    "Peak",
    "Prediction",
    "infusions_from_plan",
    "model_for_plan",
    "predict_infusions",
    "predict_plan",
]

#: the timeline's step (STANPUMP's update interval)
STEP_S = 10.0
#: how long a segment that runs "until stopped" is predicted for
OPEN_ENDED_S = 24 * 3600.0
#: the peak is located to this resolution between grid points
PEAK_RESOLUTION_S = 0.5


@dataclass(frozen=True)
class Peak:
    value_ug_per_ml: float
    t_s: float


@dataclass(frozen=True)
class Prediction:
    """Concentration timeline (t = 0: start of the run, prime included) and what it came from."""

    pk_model: str
    kinetics: Kinetics
    t_s: tuple[float, ...]
    plasma_ug_per_ml: tuple[float, ...]
    effect_ug_per_ml: tuple[float, ...]
    infusions: tuple[Infusion, ...]
    peak_plasma: Peak
    peak_effect: Peak
    end_state: PkState
    #: the patient is outside the model's population, or the population is not known
    warnings: tuple[str, ...] = ()
    #: how the timeline was built (open-ended segments cut, effect-site basis)
    notes: tuple[str, ...] = field(default=())

    @property
    def end_t_s(self) -> float:
        return self.t_s[-1]

    @property
    def end_plasma_ug_per_ml(self) -> float:
        return self.plasma_ug_per_ml[-1]

    @property
    def end_effect_ug_per_ml(self) -> float:
        return self.effect_ug_per_ml[-1]

    def summary(self) -> str:
        """One line for `pumpctl check`: the predicted peaks, the model, and what they are."""
        p, e = self.peak_plasma, self.peak_effect
        return (
            f"predicted  peak plasma {p.value_ug_per_ml:.3g} µg/mL at {_hms(p.t_s)}, effect site "
            f"{e.value_ug_per_ml:.3g} µg/mL at {_hms(e.t_s)} ({self.pk_model}; population "
            "prediction, not a measured concentration)"
        )

    def to_json(self) -> dict[str, Any]:
        """Exactly the documented keys (`pumpctl predict --json`)."""
        return {
            "pk_model": self.pk_model,
            "t_s": list(self.t_s),
            "plasma_ug_per_ml": [_sig(v) for v in self.plasma_ug_per_ml],
            "effect_ug_per_ml": [_sig(v) for v in self.effect_ug_per_ml],
            "infusions": [i.to_json() for i in self.infusions],
        }


def _hms(t_s: float) -> str:
    h, rem = divmod(round(t_s), 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


def _sig(value: float) -> float:
    """7 significant digits: far below any model's accuracy, and a readable JSON file."""
    return float(f"{value:.7g}")


def _grid(t0_s: float, t_end_s: float, step_s: float) -> list[float]:
    n = math.floor((t_end_s - t0_s) / step_s + 1e-9)
    grid = [t0_s + i * step_s for i in range(n + 1)]
    if t_end_s - grid[-1] > 1e-6:
        grid.append(t_end_s)
    return grid


def _first_max(values: Sequence[float]) -> int:
    top = max(values)
    return next(i for i, v in enumerate(values) if v >= top - 1e-9 * abs(top))


def _refine_peak(
    prop: Propagator,
    infusions: Sequence[Infusion],
    t: Sequence[float],
    xs: Sequence[Matrix],
    series: Sequence[float],
    row: int,
) -> Peak:
    """The peak between the grid points either side of the largest sample, to 0.5 s.

    On a plateau (a long infusion at steady state) the first sample within 1e-9 of the maximum
    counts, so float noise never decides the reported time.
    """
    i = _first_max(series)
    lo, hi = max(i - 1, 0), min(i + 1, len(t) - 1)
    if hi == lo:
        return Peak(series[i], t[i])
    fine = _grid(t[lo], t[hi], PEAK_RESOLUTION_S)
    edges = {b for inf in infusions for b in (inf.start_s, inf.end_s) if t[lo] < b < t[hi]}
    fine = sorted(set(fine) | edges)
    states = states_at(prop, infusions, fine, x0=xs[lo], t0_s=t[lo])
    scale = 1.0 / prop.kinetics.v1_l if row == 0 else 1.0
    values = [float(x[row]) * scale for x in states]
    k = _first_max(values)
    if values[k] < series[i]:  # cannot happen (the sample is on the fine grid); be safe
        return Peak(series[i], t[i])
    return Peak(values[k], fine[k])


def predict_infusions(
    infusions: Sequence[Infusion],
    kinetics: Kinetics,
    *,
    t_end_s: float,
    step_s: float = STEP_S,
    t0_s: float = 0.0,
    initial: PkState | None = None,
    pk_model: str | None = None,
    warnings: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> Prediction:
    """Plasma and effect site every `step_s` from `t0_s` to `t_end_s` (both included).

    Overlapping pieces add (superposition), so a bolus given on top of a running infusion is
    simply one more piece. `initial` continues from an earlier state (e.g. after a resume).
    """
    if not step_s > 0 or t_end_s < t0_s:
        raise ValueError("need step_s > 0 and t_end_s >= t0_s")
    prop = Propagator(kinetics)
    t = _grid(t0_s, t_end_s, step_s)
    x0 = (initial or PkState()).as_array()
    xs = states_at(prop, infusions, t, x0=x0, t0_s=t0_s)
    cp = [float(x[0]) / kinetics.v1_l for x in xs]
    ce = [float(x[3]) for x in xs]
    return Prediction(
        pk_model=pk_model or kinetics.name,
        kinetics=kinetics,
        t_s=tuple(t),
        plasma_ug_per_ml=tuple(cp),
        effect_ug_per_ml=tuple(ce),
        infusions=tuple(infusions),
        peak_plasma=_refine_peak(prop, infusions, t, xs, cp, 0),
        peak_effect=_refine_peak(prop, infusions, t, xs, ce, 3),
        end_state=PkState.from_array(xs[-1]),
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def infusions_from_plan(
    plan: Plan, *, open_ended_s: float = OPEN_ENDED_S, kinetics: Kinetics | None = None
) -> tuple[list[Infusion], float, list[str]]:
    """(drug schedule to the patient, end of the plan in s, notes) for a compiled plan.

    Rates are the segments' mL/h times the concentration; the prime takes time but gives no
    drug. A segment that runs until stopped is predicted for `open_ended_s` and ends the plan.
    A TCI phase is the controller run on an exact pump (`simulate_tci`, needs `kinetics`).
    """
    conc = plan.concentration_mg_per_ml
    if conc is None:
        raise ValueError(f"plan {plan.program}: no drug concentration, nothing to predict")
    pieces: list[Infusion] = []
    notes: list[str] = []
    t = 0.0
    for seg in plan.segments:
        duration = seg.duration_s
        if duration is None:
            duration = open_ended_s
            notes.append(
                f"{seg.phase.value} runs until stopped: predicted for its first "
                f"{open_ended_s / 3600:g} h"
            )
        if seg.phase is SegmentPhase.TCI and plan.tci is not None and kinetics is not None:
            pieces += _tci_pieces(plan, kinetics, pieces, t)
        elif seg.phase is not SegmentPhase.PRIME:
            pieces.append(Infusion(t, duration, seg.rate_ml_per_h * conc))
        t += duration
        if seg.duration_s is None:
            break
    return pieces, t, notes


def _tci_pieces(
    plan: Plan, kinetics: Kinetics, before: list[Infusion], t0_s: float
) -> list[Infusion]:
    tci, conc = plan.tci, plan.concentration_mg_per_ml
    assert tci is not None and conc is not None
    prop = Propagator(kinetics)
    state = PkState.from_array(states_at(prop, before, [t0_s])[0]) if before else None
    return list(
        simulate_tci(
            kinetics,
            concentration_mg_per_ml=conc,
            target_ug_per_ml=tci.target_ug_per_ml,
            site=tci.site,
            duration_s=tci.duration_s,
            max_plasma_ug_per_ml=tci.max_plasma_ug_per_ml,
            max_rate_ml_per_h=tci.max_rate_ml_per_h,
            interval_s=tci.interval_s,
            t0_s=t0_s,
            state=state,
        ).infusions
    )


def model_for_plan(plan: Plan, model_name: str | None = None) -> ModelSpec:
    """The named model, or the default for the plan's care area and weight."""
    if plan.weight_kg is None:
        raise ValueError(f"plan {plan.program}: no patient weight, nothing to predict")
    drug = plan.drug or "ketamine"
    name = model_name or plan.pk_model or default_model_name(plan.care_area, plan.weight_kg)
    return get_model(name, drug)


def predict_plan(
    plan: Plan,
    model_name: str | None = None,
    *,
    step_s: float = STEP_S,
    after_s: float = 0.0,
    open_ended_s: float = OPEN_ENDED_S,
    t_peak_s: float | None = None,
) -> Prediction:
    """Timeline of `plan` as the pump will run it, from t = 0 (start of the prime).

    Default model: adult -> domino, pediatric -> herd2007 (`default_model_name`). `after_s`
    extends the timeline past the end of the plan (pump stopped); `t_peak_s` replaces the
    model's effect-site assumption.
    """
    spec = model_for_plan(plan, model_name)
    assert plan.weight_kg is not None  # checked by model_for_plan
    kinetics = spec.kinetics(plan.weight_kg, t_peak_s=t_peak_s)
    pieces, t_end, notes = infusions_from_plan(plan, open_ended_s=open_ended_s, kinetics=kinetics)
    warnings = population_warnings(spec, weight_kg=plan.weight_kg, care_area=plan.care_area)
    notes.append(spec.effect_site_note(kinetics))
    return predict_infusions(
        pieces,
        kinetics,
        t_end_s=t_end + after_s,
        step_s=step_s,
        pk_model=spec.name,
        warnings=warnings,
        notes=notes,
    )
