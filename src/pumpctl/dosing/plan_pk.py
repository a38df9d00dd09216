"""The pharmacology parts of a compilation: taper, TCI phase, bolus limits, predicted peak.

Every number is checked against the library like the rest of the program (soft limits need an
override with a reason, hard limits refuse) and quantized down with the target pump's rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from pumpctl.dosing.compiler import Compiler
from pumpctl.dosing.pk.history import Infusion
from pumpctl.dosing.pk.models import UnknownModel, default_model_name, get_model
from pumpctl.dosing.pk.predict import predict_plan
from pumpctl.dosing.pk.taper import TaperError, taper_segments
from pumpctl.dosing.pk.tci_sim import max_drug_mg, simulate_tci
from pumpctl.dosing.segments import BolusPlan, Plan, Segment, SegmentPhase, TciPlan
from pumpctl.families.quantize import NotRepresentable, floor_to

__all__ = ["bolus_plan", "check_predicted_peak", "pk_model_name", "taper", "tci_segment"]

#: target steps and ceilings are limits, never sent to a pump: 0.001 µg/mL is far below any
#: model's accuracy
_FINE = 0.001


def taper(c: Compiler, maint: Segment | None, pump_min_ml_per_h: float = 0.0) -> list[Segment]:
    """The maintenance, or the maintenance and its step-down when the program asks for one.

    A step below the pump's slowest rate ends the taper there (the pump stops early, it never
    runs faster than the step)."""
    spec = c.p.phases.maintenance
    if maint is None:
        return []
    if spec is None or spec.taper is None:
        return [maint]
    try:
        steps = taper_segments(maint, steps=spec.taper.steps, over_s=spec.taper.over, quantizer=c.q)
    except TaperError as exc:
        c.add("phases.maintenance.taper", spec.taper.over, None, "s", "hard", "taper", "",
              message=str(exc))  # fmt: skip
        return [maint]
    out: list[Segment] = []
    for seg in steps:
        if seg.taper_step is not None and seg.rate_ml_per_h < pump_min_ml_per_h:
            c.warnings.append(
                f"taper ends at step {seg.taper_step}: {seg.rate_ml_per_h:g} mL/h is below the "
                f"pump's slowest {pump_min_ml_per_h:g} mL/h"
            )
            break
        out.append(seg)
    if not out:  # every segment below the pump's slowest rate: never drop the phase unsaid
        c.add("phases.maintenance.taper", spec.taper.over, None, "s", "hard", "taper", "",
              message=f"the taper leaves nothing this pump can run: less than one pump step "
                      f"before it and no step at or above the pump's slowest "
                      f"{pump_min_ml_per_h:g} mL/h; taper less of it (taper.over) or not at "
                      "all")  # fmt: skip
        return [maint]
    return out


def pk_model_name(c: Compiler) -> str | None:
    """The model the run's predictions use: the TCI's, else the care area's default."""
    tci = c.p.phases.tci
    name = tci.model if tci is not None and tci.model else None
    try:
        name = name or default_model_name(c.p.patient.care_area, c.weight)
        get_model(name, c.p.drug.name)
    except UnknownModel as exc:
        if tci is not None:
            c.add("phases.tci.model", name, None, None, "hard", "PK", "", message=str(exc))
        return None
    return name


def _ceiling(c: Compiler) -> float | None:
    """The TCI's plasma ceiling: the program's, else the library's (soft, then hard) limit."""
    tci = c.p.phases.tci
    assert tci is not None
    lim = c.entry.concentration if c.entry is not None else None
    if tci.max_concentration is not None:
        if lim is not None:
            c.limit(lim, tci.max_concentration, "phases.tci.max_concentration", "PK")
        return tci.max_concentration
    if lim is not None and lim.upper is not None:
        return lim.upper
    c.add("phases.tci.max_concentration", None, None, "ug/mL", "hard", "PK", "",
          message="no library concentration limit: give phases.tci.max_concentration")  # fmt: skip
    return None


def _max_rate(c: Compiler, pump_max_ml_per_h: float | None) -> float | None:
    """The TCI rate ceiling in mL/h: the program's max_rate, else the library's loading rate
    ceiling (a TCI start is a loading dose given by the controller); never above the pump's."""
    tci = c.p.phases.tci
    assert tci is not None
    fld = "phases.tci.max_rate"
    if tci.max_rate is not None:
        if c.refuse_bare_ml_per_h(tci.max_rate, fld):
            return None
        rate = c.rate_ml(tci.max_rate)
    elif c.entry is not None and c.entry.loading.rate.upper is not None:
        rate = c.entry.loading.rate.upper * 60.0 * c.weight / c.conc
    else:
        c.add(fld, None, None, None, "hard", "PK", "",
              message="no library loading-rate limit: give phases.tci.max_rate")  # fmt: skip
        return None
    if pump_max_ml_per_h is not None and rate > pump_max_ml_per_h:
        c.warnings.append(
            f"tci rate ceiling {rate:.4g} mL/h cut to the pump's {pump_max_ml_per_h:g}"
        )
        rate = pump_max_ml_per_h
    ml = c.rate(rate, fld)
    if ml is not None and c.entry is not None:
        c.limit(c.entry.loading.rate, c.per_weight(ml) / 60.0, fld, "SR05")
    return ml


def _step(c: Compiler) -> tuple[float, float]:
    """(largest target change µg/mL, min interval s) for `ctl target`."""
    tci = c.p.phases.tci
    assert tci is not None
    lim = c.entry.tci.max_step if c.entry is not None else None
    step = tci.max_step if tci.max_step is not None else (lim.default if lim else None)
    if step is None:
        c.warnings.append("no TCI target step known: target increases are refused")
        step = _FINE
    elif lim is not None:
        c.limit(lim, step, "phases.tci.max_step", "SR09")
    spec = c.p.titration
    interval = spec.min_interval if spec is not None else None
    tlim = c.entry.titration.min_interval if c.entry is not None else None
    if interval is None and tlim is not None:
        interval = tlim.default
    if interval is not None and tlim is not None:
        c.limit(tlim, interval, "titration.min_interval", "SR09")
    return step, interval or 0.0


TciPhase = tuple[Segment | None, TciPlan | None, list[tuple[float, float]]]


def tci_segment(c: Compiler, model: str | None, pump_max_ml_per_h: float | None = None) -> TciPhase:
    """The TCI phase: a segment whose rate is the ceiling, whose volume is the most any run
    under the plasma ceiling can give (the pump's own hard stop) and whose duration is the
    phase's; its plan; and the controller's (mL/h, s) schedule on an exact pump."""
    tci = c.p.phases.tci
    if tci is None or model is None:
        return None, None, []
    if c.entry is not None:
        c.limit(c.entry.concentration, tci.target, "phases.tci.target", "PK")
    ceiling, rate = _ceiling(c), _max_rate(c, pump_max_ml_per_h)
    step, interval = _step(c)
    if ceiling is None or rate is None:
        return None, None, []
    if tci.target > ceiling:
        c.add("phases.tci.target", tci.target, ceiling, "ug/mL", "hard", "PK",
              "above the plasma ceiling")  # fmt: skip
        return None, None, []
    kinetics = get_model(model, c.p.drug.name).kinetics(c.weight)
    cap_mg = min(
        max_drug_mg(kinetics, max_plasma_ug_per_ml=ceiling, duration_s=tci.duration),
        rate * c.conc * tci.duration / 3600.0,
    )
    volume = c.volume(cap_mg / c.conc, "phases.tci.duration")
    if volume is None:
        return None, None, []
    run = simulate_tci(
        kinetics,
        concentration_mg_per_ml=c.conc,
        target_ug_per_ml=tci.target,
        site=tci.site,
        duration_s=tci.duration,
        max_plasma_ug_per_ml=ceiling,
        max_rate_ml_per_h=rate,
        quantizer=c.q,
    )
    upper = c.entry.concentration.upper if c.entry is not None else None
    plan = TciPlan(
        target_ug_per_ml=tci.target,
        site=tci.site,
        pk_model=model,
        duration_s=tci.duration,
        max_plasma_ug_per_ml=ceiling,
        max_rate_ml_per_h=rate,
        max_target_ug_per_ml=floor_to(min(upper or ceiling, ceiling), _FINE),
        max_step_ug_per_ml=step,
        min_interval_s=interval,
    )
    segment = Segment(
        phase=SegmentPhase.TCI,
        rate_ml_per_h=rate,
        volume_ml=volume,
        duration_s=tci.duration,
        dose_rate=tci.target,
        dose_rate_unit="ug/mL target",
        drug_mg=run.drug_mg,
    )
    return segment, plan, _schedule(run.infusions, tci.duration, c.conc)


def _schedule(
    infusions: Sequence[Infusion], duration_s: float, conc: float
) -> list[tuple[float, float]]:
    """Consecutive (mL/h, s) pieces over `duration_s`, gaps at 0 mL/h."""
    pieces: list[tuple[float, float]] = []
    t = 0.0
    for inf in infusions:
        if inf.start_s > t + 1e-9:
            pieces.append((0.0, inf.start_s - t))
        pieces.append((inf.rate_mg_per_h / conc, inf.duration_s))
        t = inf.end_s
    if duration_s > t + 1e-9:
        pieces.append((0.0, duration_s - t))
    return pieces


def bolus_plan(c: Compiler, kvo: Segment | None) -> BolusPlan | None:
    spec = c.p.bolus
    if spec is None:
        return None
    lim = c.entry.bolus if c.entry is not None else None
    if lim is not None:
        c.limit(lim.dose, spec.dose, "bolus.dose", "bolus")
        c.limit(lim.lockout, spec.lockout, "bolus.lockout", "bolus")
        c.limit(lim.max_per_hour, float(spec.max_per_hour), "bolus.max_per_hour", "bolus", "")
        c.limit(lim.per_4h, spec.max_per_4h, "bolus.max_per_4h", "bolus")
    volume = c.volume(spec.dose * c.weight / c.conc, "bolus.dose")
    if volume is None:
        return None
    rate = c.rate(volume / spec.over * 3600.0, "bolus.over")
    if rate is None:
        return None
    return BolusPlan(
        max_dose_mg=volume * c.conc,
        rate_ml_per_h=rate,
        over_s=volume / rate * 3600.0,
        lockout_s=spec.lockout,
        max_per_hour=spec.max_per_hour,
        max_mg_per_4h=spec.max_per_4h * c.weight,
        kvo_ml_per_h=kvo.rate_ml_per_h if kvo is not None else None,
    )


def check_predicted_peak(c: Compiler, plan: Plan) -> float | None:
    """The predicted plasma peak of the whole plan, checked against the library's
    concentration limit (None: no model for this patient)."""
    if plan.pk_model is None:
        return None
    try:
        prediction = predict_plan(plan, plan.pk_model)
    except (ValueError, NotRepresentable) as exc:
        c.warnings.append(f"predicted peak not computed: {exc}")
        return None
    peak = prediction.peak_plasma.value_ug_per_ml
    if plan.tci is not None:  # the rates themselves follow the model: say where it may not fit
        c.warnings.extend(f"tci model: {w}" for w in prediction.warnings)
    if c.entry is not None:
        c.limit(c.entry.concentration, peak, "predicted.peak_plasma", "PK", "ug/mL")
    return peak
