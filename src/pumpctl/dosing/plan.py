"""The compiled plan: what the supervisor executes, entirely in pump units (mL, mL/h, s).

Conversion from dose units happens once, when a validated program is compiled into a `Plan`; the
supervisor never sees mg/kg. Each segment keeps its dose-unit rate for display and the factor
needed to turn an operator's titration (in dose units) back into mL/h.

Quantization (done once, in `pumpctl.dosing.compiler`): every volume and rate is rounded DOWN
by the target pump's `Quantizer` (`pumpctl.families.quantizer(model, ...)`; default
`FixedStepQuantizer()`, 0.001 mL and 0.001 mL/h), so a plan compiled for a pump holds exactly
what that pump is sent, and its driver sends it unchanged. Durations follow from the quantized
volume and rate. With the pump's `FamilySpec`, the plan is also checked against the pump's
ranges (`pumpctl.dosing.pumpfit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pumpctl.dosing import plan_pk
from pumpctl.dosing.compiler import DEFAULT_PRIME_RATE_ML_PER_H, Compiler
from pumpctl.dosing.library import DrugLibrary, Override, Violation
from pumpctl.dosing.plan_limits import (
    container_spec,
    max_window_volume,
    rolling_limits,
    titration_limits,
)
from pumpctl.dosing.program import Program
from pumpctl.dosing.pumpfit import pump_violations
from pumpctl.dosing.segments import (
    WINDOWS_S,
    ContainerSpec,
    Plan,
    RollingLimits,
    Segment,
    SegmentPhase,
    TitrationLimits,
    program_hash,
)
from pumpctl.families.quantize import FixedStepQuantizer, Quantizer, floor_to
from pumpctl.families.spec import FamilySpec

__all__ = [
    "DEFAULT_PRIME_RATE_ML_PER_H",
    "WINDOWS_S",
    "Compilation",
    "ContainerSpec",
    "Plan",
    "PlanRefused",
    "RollingLimits",
    "Segment",
    "SegmentPhase",
    "TitrationLimits",
    "compile_program",
    "compile_with_violations",
    "floor_to",
    "max_window_volume",
    "program_hash",
]


class PlanRefused(ValueError):
    """The program crosses hard limits or soft limits that were not overridden."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("; ".join(v.message for v in violations))


@dataclass
class Compilation:
    """Everything `check` reports: the plan (when it could be computed) and what it crossed."""

    plan: Plan | None
    #: limits still in force: every hard one, and soft ones without an override
    violations: list[Violation] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.violations)


def _apply_overrides(
    found: list[Violation], overrides: Mapping[str, str] | None
) -> tuple[list[Violation], list[Override], list[str]]:
    """Soft violations with a non-empty reason become overrides; notes on the others."""
    remaining: list[Violation] = []
    applied: list[Override] = []
    given = {k: v.strip() for k, v in (overrides or {}).items()}
    used: set[str] = set()
    for v in found:
        reason = given.get(v.field)
        if v.severity == "soft" and reason:
            used.add(v.field)
            applied.append(
                Override(
                    field=v.field,
                    value=v.value,
                    limit=v.limit,
                    unit=v.unit,
                    library_version=v.library_version,
                    rule=v.rule,
                    reason=reason,
                )
            )
        else:
            remaining.append(v)
    notes: list[str] = []
    for fld, reason in given.items():
        if not reason:
            notes.append(f"override of {fld} ignored: a reason is required (SR03)")
        elif fld not in used and not any(v.field == fld for v in remaining):
            notes.append(f"override of {fld} unused: no soft limit crossed there")
        elif fld not in used:
            notes.append(f"override of {fld} refused: hard limits cannot be overridden (SR03)")
    return remaining, applied, notes


def _resolutions(q: Quantizer, segments: list[Segment]) -> tuple[float, float]:
    """The coarsest volume step at the plan's volumes, and the rate step at the maintenance
    rate (or the fastest segment's): what resume and titration round down to."""
    volumes = [s.volume_ml for s in segments if s.volume_ml is not None]
    volume_step = max((q.volume_step_ml(v) for v in volumes), default=q.volume_step_ml(1.0))
    maint = next((s for s in segments if s.phase is SegmentPhase.MAINTENANCE), None)
    rates = [s.rate_ml_per_h for s in segments]
    rate = maint.rate_ml_per_h if maint is not None else max(rates, default=1.0)
    return volume_step, q.rate_step_ml_per_h(rate)


def compile_with_violations(
    program: Program,
    library: DrugLibrary | None,
    *,
    overrides: Mapping[str, str] | None = None,
    quantizer: Quantizer | None = None,
    pump: FamilySpec | None = None,
    no_library: bool = False,
) -> Compilation:
    """Compile and check everything; soft violations with a non-empty reason become overrides.

    `pump`: the family the plan will run on; its quantizer (for the program's syringe or
    tubing) is used unless `quantizer` is given, and the plan is checked against its ranges.
    `no_library`: the explicit mode for a drug the library does not list (no dose limits).
    """
    q = quantizer or _quantizer_for(program, pump)
    c = Compiler(program, library, q, no_library=no_library)
    c.resolve_entry()
    prime = c.prime()
    loading = c.loading()
    maint, cap = c.maintenance()
    kvo = c.kvo()
    titration = titration_limits(c, maint, cap)
    pk_model = plan_pk.pk_model_name(c)
    pump_min, pump_max = _pump_range(program, pump)
    tci_seg, tci, tci_pieces = plan_pk.tci_segment(c, pk_model, pump_max)
    tapered = plan_pk.taper(c, maint, pump_min)
    patient = [s for s in (loading, *tapered, tci_seg, kvo) if s is not None]
    rolling = rolling_limits(c, patient, _pieces(patient, tci_pieces))
    segments = [s for s in (prime, *patient) if s is not None]
    container = container_spec(c, segments)
    volume_step, rate_step = _resolutions(q, segments)
    plan = Plan(
        program=program.program,
        program_hash=program_hash(program),
        library_version=c.version,
        drug=program.drug.name,
        concentration_mg_per_ml=c.conc,
        weight_kg=c.weight,
        container=container,
        segments=tuple(segments),
        titration=titration,
        warnings=(),
        care_area=program.patient.care_area,
        library_entry=c.entry.describe(c.conc) if c.entry else None,
        drug_in_library=c.in_library,
        rolling_limits=rolling,
        volume_resolution_ml=volume_step,
        rate_resolution_ml_per_h=rate_step,
        pump_model=pump.model if pump is not None else None,
        no_library=no_library,
        tci=tci,
        bolus=plan_pk.bolus_plan(c, kvo),
        pk_model=pk_model,
    )
    return _checked(c, plan, program, pump, overrides)


def _checked(
    c: Compiler,
    plan: Plan,
    program: Program,
    pump: FamilySpec | None,
    overrides: Mapping[str, str] | None,
) -> Compilation:
    """The compiled plan's last checks (the predicted peak, the pump's ranges), then the
    overrides: checked on the whole plan, since a limit may span segments."""
    peak = plan_pk.check_predicted_peak(c, plan)
    plan = plan.model_copy(update={"predicted_peak_ug_per_ml": peak})
    found = list(c.found)
    if pump is not None:
        found += pump_violations(pump, program, plan)
    remaining, applied, notes = _apply_overrides(found, overrides)
    warnings = [*c.warnings, *notes]
    plan = plan.model_copy(update={"warnings": tuple(warnings), "overrides": tuple(applied)})
    return Compilation(plan=plan, violations=remaining, overrides=applied, warnings=warnings)


def _pieces(
    patient: list[Segment], tci_pieces: list[tuple[float, float]]
) -> list[tuple[float, float | None]] | None:
    """The schedule the rolling windows check when a TCI phase is not its segment's ceiling:
    the controller's rates on an exact pump (what `predict` shows)."""
    if not tci_pieces:
        return None
    out: list[tuple[float, float | None]] = []
    for s in patient:
        if s.phase is SegmentPhase.TCI:
            out += tci_pieces
        else:
            out.append((s.rate_ml_per_h, s.duration_s))
    return out


def _pump_range(program: Program, pump: FamilySpec | None) -> tuple[float, float | None]:
    """The pump's (slowest, fastest) rate with the program's container ((0, None): no pump)."""
    if pump is None:
        return 0.0, None
    syringe, tubing = program.pump.syringe, program.pump.tubing
    try:
        return pump.rate_range_ml_per_h(
            inner_diameter_mm=syringe.inner_diameter if syringe else None,
            ml_per_rev=tubing.ml_per_rev if tubing else None,
        )
    except (ValueError, TypeError):  # the wrong container for this pump: pumpfit says so
        return 0.0, None


def _quantizer_for(program: Program, pump: FamilySpec | None) -> Quantizer:
    if pump is None:
        return FixedStepQuantizer()
    syringe, tubing = program.pump.syringe, program.pump.tubing
    try:
        return pump.quantizer(
            inner_diameter_mm=syringe.inner_diameter if syringe else None,
            ml_per_rev=tubing.ml_per_rev if tubing else None,
        )
    except ValueError:  # the wrong kind of container for this pump: pumpfit refuses it
        return FixedStepQuantizer()


def compile_program(
    program: Program,
    library: DrugLibrary | None,
    *,
    overrides: Mapping[str, str] | None = None,
    quantizer: Quantizer | None = None,
    pump: FamilySpec | None = None,
    no_library: bool = False,
) -> Plan:
    """The plan, or `PlanRefused` listing every limit still in force (SR01: all or nothing)."""
    result = compile_with_violations(
        program,
        library,
        overrides=overrides,
        quantizer=quantizer,
        pump=pump,
        no_library=no_library,
    )
    if result.violations or result.plan is None:
        raise PlanRefused(result.violations)
    return result.plan
