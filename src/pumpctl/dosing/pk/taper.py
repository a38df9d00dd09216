"""Taper: a maintenance segment that ends by stepping down (`taper: {steps: 3, over: 30 min}`).

The taper takes the LAST `over` of the maintenance: the maintenance runs for its duration minus
`over`, then `steps` equal-length steps at (steps − k + 1)/(steps + 1) of its rate, k = 1..steps
(3 steps: 75 %, 50 %, 25 %), then the plan goes on (KVO or end). So a taper never lengthens the
program and never gives more drug than the maintenance it replaces.

Every rate and volume is rounded DOWN by the pump's `Quantizer`, so no step is above the
maintenance rate; a step too small for the pump ends the taper there (the pump stops early
rather than rounding up), and a taper that would leave nothing the pump can run is refused
(`TaperError`) rather than dropping the maintenance. No ketamine-specific tapering evidence
was found: the linear step-down is a policy, not a clinical recommendation.
"""

from __future__ import annotations

from pumpctl.dosing.segments import Segment, SegmentPhase
from pumpctl.families.quantize import NotRepresentable, Quantizer

__all__ = ["TaperError", "taper_segments"]


class TaperError(ValueError):
    """The taper cannot be applied to this segment (message says why)."""


def _segment(
    base: Segment, rate_ml_per_h: float, duration_s: float, q: Quantizer, step: int | None = None
) -> Segment:
    volume = q.floor_volume_ml(rate_ml_per_h * duration_s / 3600.0)
    share = rate_ml_per_h / base.rate_ml_per_h
    conc = base.drug_mg / base.volume_ml if base.drug_mg is not None and base.volume_ml else None
    return base.model_copy(
        update={
            "rate_ml_per_h": rate_ml_per_h,
            "volume_ml": volume,
            "duration_s": volume / rate_ml_per_h * 3600.0,
            "dose_rate": None if base.dose_rate is None else base.dose_rate * share,
            "drug_mg": None if conc is None else volume * conc,
            "taper_step": step,
        }
    )


def taper_segments(
    maintenance: Segment, *, steps: int, over_s: float, quantizer: Quantizer
) -> tuple[Segment, ...]:
    """The shortened maintenance followed by its step-down segments (same phase).

    Consecutive steps that quantize to the same rate are merged into one segment.
    """
    if maintenance.phase is not SegmentPhase.MAINTENANCE:
        raise TaperError(f"only a maintenance segment can be tapered, not {maintenance.phase}")
    if steps < 1:
        raise TaperError(f"taper.steps must be >= 1, got {steps}")
    total = maintenance.duration_s
    if total is None:
        raise TaperError("a maintenance that runs until stopped has no end to taper")
    if not 0 < over_s < total:
        raise TaperError(
            f"taper.over = {over_s:g} s must be > 0 and shorter than the maintenance ({total:g} s)"
        )
    rate = maintenance.rate_ml_per_h
    try:
        out = [_segment(maintenance, rate, total - over_s, quantizer)]
    except NotRepresentable:  # less than one pump step before the taper: it starts at once
        out = []
    step_s = over_s / steps
    planned: list[tuple[float, float]] = []  # (rate, duration) after quantizing and merging
    for k in range(1, steps + 1):
        try:
            r = quantizer.floor_rate_ml_per_h(rate * (steps - k + 1) / (steps + 1))
        except NotRepresentable:
            break  # the pump has no rate this low: the taper ends (stop), never rounds up
        r = min(r, rate)
        if planned and planned[-1][0] == r:
            planned[-1] = (r, planned[-1][1] + step_s)
        else:
            planned.append((r, step_s))
    for step, (r, duration) in enumerate(planned, start=1):
        try:
            out.append(_segment(maintenance, r, duration, quantizer, step))
        except NotRepresentable:
            break
    if not out:
        # the maintenance would vanish from the plan: refuse it rather than lose a phase
        raise TaperError(
            f"the taper leaves nothing this pump can run: {rate:g} mL/h for {total:g} s, "
            f"{over_s:g} s of it tapered in {steps} step(s), is below the pump's volume or rate "
            "step throughout; taper less of it (taper.over) or not at all"
        )
    return tuple(out)
