"""The parts of a compilation that look at the plan as a whole: titration limits, rolling
totals, the container (capacity, and the syringe against the table of known syringes)."""

from __future__ import annotations

import bisect
import math

from pumpctl.dosing.compiler import Compiler
from pumpctl.dosing.library import Limit
from pumpctl.dosing.segments import (
    WINDOWS_S,
    ContainerSpec,
    RollingLimits,
    Segment,
    TitrationLimits,
)
from pumpctl.dosing.syringes import syringe_table
from pumpctl.families.quantize import NotRepresentable, floor_to

__all__ = [
    "container_spec",
    "max_pieces_volume",
    "max_window_volume",
    "rolling_limits",
    "titration_limits",
]

#: titration steps and rolling maxima are differences and limits, never sent to a pump: they
#: are floored to 1 µL(/h), like the plan's own numbers without a pump
_FINE_STEP = 0.001


def titration_limits(
    c: Compiler, maint: Segment | None, cap_ml_per_h: float | None
) -> TitrationLimits | None:
    spec = c.p.titration
    if maint is None:
        if spec is not None and c.p.phases.maintenance is None:
            c.warnings.append("titration ignored: the program has no maintenance phase")
        return None  # a refused maintenance rate has its own violation
    assert c.p.phases.maintenance is not None
    written = c.p.phases.maintenance.rate
    lim = c.entry.titration if c.entry else None
    step_ml: float | None = None
    if spec is not None and spec.max_step is not None:
        if not c.refuse_bare_ml_per_h(spec.max_step, "titration.max_step"):
            step_ml = floor_to(c.rate_ml(spec.max_step), _FINE_STEP)
    elif lim is not None and lim.max_step.default is not None:
        step_ml = floor_to(lim.max_step.default * c.weight / c.conc, _FINE_STEP)
    if lim is not None and step_ml is not None:
        c.limit(lim.max_step, c.per_weight(step_ml), "titration.max_step", "SR09")
    interval = spec.min_interval if spec is not None else None
    if interval is None and lim is not None:
        interval = lim.min_interval.default
    if lim is not None and interval is not None:
        c.limit(lim.min_interval, interval, "titration.min_interval", "SR09")
    if step_ml is None or step_ml <= 0:
        # never None with a maintenance phase: limits that allow no increase at all
        c.warnings.append("no titration step known: rate increases are refused")
        return TitrationLimits(
            max_step_ml_per_h=c.q.rate_step_ml_per_h(maint.rate_ml_per_h),
            min_interval_s=interval or 0.0,
            max_rate_ml_per_h=maint.rate_ml_per_h,
            ml_per_h_per_dose_unit=c.display_factor(written),
            dose_rate_unit=written.unit,
        )
    return TitrationLimits(
        max_step_ml_per_h=step_ml,
        min_interval_s=interval or 0.0,
        max_rate_ml_per_h=titration_ceiling(c, maint.rate_ml_per_h, cap_ml_per_h),
        ml_per_h_per_dose_unit=c.display_factor(written),
        dose_rate_unit=written.unit,
    )


def titration_ceiling(c: Compiler, start_ml_per_h: float, cap_ml_per_h: float | None) -> float:
    """Highest rate titration may reach: the program cap, else the library's soft ceiling,
    as the pump is sent it.

    Never below the starting rate (already checked, or overridden) and never above a hard
    maximum, so titration can never walk past a limit that the program itself would need an
    override for.
    """
    ceiling = cap_ml_per_h
    hard: float | None = None
    if c.entry is not None:
        m = c.entry.maintenance
        per_kg = 1.0 * c.weight / c.conc  # mL/h per mg/kg/h
        per_mg = 1.0 / c.conc  # mL/h per mg/h
        uppers = [u * per_kg for u in [m.rate.upper] if u is not None]
        uppers += [u * per_mg for u in [m.absolute_rate.upper] if u is not None]
        hards = [u * per_kg for u in [m.rate.hard_max] if u is not None]
        hards += [u * per_mg for u in [m.absolute_rate.hard_max] if u is not None]
        if ceiling is None and uppers:
            ceiling = min(uppers)
        hard = min(hards) if hards else None
    if ceiling is None:
        ceiling = start_ml_per_h
    ceiling = max(ceiling, start_ml_per_h)
    if hard is not None:
        ceiling = min(ceiling, hard)
    try:
        return max(c.q.floor_rate_ml_per_h(ceiling), start_ml_per_h)
    except NotRepresentable:
        return start_ml_per_h


def rolling_limits(
    c: Compiler,
    patient_segments: list[Segment],
    pieces: list[tuple[float, float | None]] | None = None,
) -> RollingLimits | None:
    """Check the plan's own worst 1/4/24 h windows and give the supervisor the maxima in mL.

    `pieces`: (mL/h, s) of the schedule when it is not the segments' (a TCI phase)."""
    if c.entry is None:
        return None
    r = c.entry.rolling
    per_kg_ml = c.weight / c.conc  # mL per mg/kg
    limits = {"1h": r.per_1h, "4h": r.per_4h, "24h": r.per_24h}
    if pieces is None:
        pieces = [(s.rate_ml_per_h, s.duration_s) for s in patient_segments]
    for label, lim in limits.items():
        worst_ml = max_pieces_volume(pieces, WINDOWS_S[label])
        c.limit(lim, worst_ml / per_kg_ml, f"rolling.{label}", "SR08")

    def ml(lim: Limit) -> float | None:
        return None if lim.hard_max is None else floor_to(lim.hard_max * per_kg_ml, _FINE_STEP)

    return RollingLimits(max_1h_ml=ml(r.per_1h), max_4h_ml=ml(r.per_4h), max_24h_ml=ml(r.per_24h))


def _check_syringe(c: Compiler) -> None:
    """A diameter no known syringe of the declared volume has is a soft limit (a typo is a
    dose error by the square of the diameter); a syringe missing from the table is overridden
    with a reason."""
    syringe = c.p.pump.syringe
    if syringe is None:
        return
    why = syringe_table().mismatch(syringe.volume, syringe.inner_diameter)
    if why is not None:
        c.add(
            "pump.syringe.inner_diameter",
            syringe.inner_diameter,
            None,
            "mm",
            "soft",
            "syringes",
            "",
            message=why,
        )


def container_spec(c: Compiler, segments: list[Segment]) -> ContainerSpec:
    pump = c.p.pump
    changes = pump.changes == "allowed"
    if pump.syringe is not None:
        _check_syringe(c)
        spec = ContainerSpec(
            inner_diameter_mm=pump.syringe.inner_diameter,
            capacity_ml=pump.syringe.volume,
            changes_allowed=changes,
        )
        fld, what = "pump.syringe.volume", "syringe"
    else:
        assert pump.tubing is not None
        spec = ContainerSpec(
            ml_per_rev=pump.tubing.ml_per_rev,
            capacity_ml=pump.reservoir.volume if pump.reservoir else None,
            changes_allowed=changes,
        )
        fld, what = "pump.reservoir.volume", "reservoir"
    total = sum(s.volume_ml for s in segments if s.volume_ml is not None)
    open_ended = any(s.volume_ml is None for s in segments)
    cap = spec.capacity_ml
    if cap is None:
        c.warnings.append(f"{what} capacity unknown: the plan volume is not checked")
    elif total > cap * (1 + 1e-9):
        if changes:
            n = math.ceil(total / cap)
            c.warnings.append(
                f"plan needs {total:g} mL: {n} {what}s of {cap:g} mL (changes allowed)"
            )
        else:
            c.add(
                fld,
                total,
                cap,
                "mL",
                "hard",
                "SR25",
                f"plan volume does not fit the {what}; declare pump.changes: allowed? capacity",
            )
    elif open_ended and not changes:
        c.warnings.append(
            f"runs until stopped: the {cap:g} mL {what} empties and stops with an alarm"
        )
    return spec


def max_window_volume(segments: list[Segment], window_s: float) -> float:
    """Largest volume delivered in any window of `window_s` over consecutive segments (mL).

    Rates are piecewise constant, so the maximum is reached with a window edge on a segment
    boundary; an open-ended segment (until stopped) is taken to run forever.
    """
    return max_pieces_volume([(s.rate_ml_per_h, s.duration_s) for s in segments], window_s)


def max_pieces_volume(pieces: list[tuple[float, float | None]], window_s: float) -> float:
    """`max_window_volume` of consecutive (mL/h, s) pieces (None: runs forever)."""
    bounds = [0.0]
    rates: list[float] = []
    for rate, duration in pieces:
        rates.append(rate / 3600.0)
        bounds.append(bounds[-1] + (duration if duration is not None else math.inf))
        if duration is None:
            break
    if not rates:
        return 0.0
    # volume delivered up to each finite bound, so one lookup gives the volume up to any t
    cumulative = [0.0]
    for i, rate in enumerate(rates):
        width = bounds[i + 1] - bounds[i]
        cumulative.append(cumulative[-1] + (rate * width if math.isfinite(width) else 0.0))

    def delivered(t: float) -> float:
        i = min(bisect.bisect_right(bounds, t) - 1, len(rates) - 1)
        if i < 0:
            return 0.0
        return cumulative[i] + rates[i] * (min(t, bounds[i + 1]) - bounds[i])

    finite = [b for b in bounds if math.isfinite(b)]
    starts = set(finite) | {max(0.0, b - window_s) for b in finite}
    return max((delivered(t0 + window_s) - delivered(t0) for t0 in starts), default=0.0)
