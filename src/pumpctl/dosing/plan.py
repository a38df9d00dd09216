"""The compiled plan: what the supervisor executes, entirely in pump units (mL, mL/h, s).

Conversion from dose units happens once, when a validated program is compiled into a `Plan`; the
supervisor never sees mg/kg. Each segment keeps its dose-unit rate for display and the factor
needed to turn an operator's titration (in dose units) back into mL/h.

Rounding (done once, here): volumes are rounded DOWN to `Resolution.volume_ml` and rates DOWN to
`Resolution.rate_ml_per_h` (default 0.001 mL and 0.001 mL/h; a driver may only round further
down). Durations follow from the rounded volume and rate. Rounding down can only lower a dose or
a rate and lengthen a loading, so a value at or below a limit before rounding stays there; limits
are checked on the rounded values the pump will actually run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from pumpctl.dosing.library import (
    DrugLibrary,
    Entry,
    Limit,
    Override,
    Severity,
    Violation,
    violation,
)
from pumpctl.dosing.program import Program
from pumpctl.dosing.units import DoseRate, RateKind

__all__ = [
    "DEFAULT_PRIME_RATE_ML_PER_H",
    "Compilation",
    "ContainerSpec",
    "Plan",
    "PlanRefused",
    "Resolution",
    "RollingLimits",
    "Segment",
    "SegmentPhase",
    "TitrationLimits",
    "compile_program",
    "compile_with_violations",
    "floor_to",
    "program_hash",
]

#: purge rate when the program gives none: 1 mL/min, a common syringe-driver prime rate
DEFAULT_PRIME_RATE_ML_PER_H = 60.0

#: rolling windows of SR08, seconds
WINDOWS_S = {"1h": 3600.0, "4h": 4 * 3600.0, "24h": 24 * 3600.0}


class SegmentPhase(StrEnum):
    PRIME = "prime"
    LOADING = "loading"
    MAINTENANCE = "maintenance"
    KVO = "kvo"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Segment(_Frozen):
    """One constant-rate stretch of the infusion."""

    phase: SegmentPhase
    rate_ml_per_h: float = Field(gt=0)
    volume_ml: float | None = Field(
        default=None, gt=0, description="volume to deliver; None = until stopped"
    )
    duration_s: float | None = Field(
        default=None, gt=0, description="volume_ml / rate; None = until stopped"
    )
    dose_rate: float | None = Field(default=None, description="rate in dose units, for display")
    dose_rate_unit: str | None = Field(default=None, examples=["mg/kg/h", "mcg/kg/min"])
    drug_mg: float | None = Field(default=None, ge=0, description="drug in this segment, mg")
    dose: float | None = Field(default=None, description="dose delivered by the segment")
    dose_unit: str | None = Field(default=None, examples=["mg/kg"])


class TitrationLimits(_Frozen):
    """Maintenance-rate changes allowed while running, already in mL/h (SR09)."""

    max_step_ml_per_h: float = Field(gt=0)
    min_interval_s: float = Field(ge=0)
    max_rate_ml_per_h: float = Field(gt=0)
    min_rate_ml_per_h: float = Field(default=0.0, ge=0)
    #: multiply a dose-unit rate (`dose_rate_unit` of the maintenance segment) to get mL/h
    ml_per_h_per_dose_unit: float | None = Field(default=None, gt=0)
    dose_rate_unit: str | None = None


class RollingLimits(_Frozen):
    """Library hard maxima of drug delivered in any 1 h / 4 h / 24 h window, in mL (SR08).

    Rounded down to the volume resolution; None where the library sets no limit.
    """

    max_1h_ml: float | None = None
    max_4h_ml: float | None = None
    max_24h_ml: float | None = None

    def by_window(self) -> dict[float, float]:
        """Window length in s -> maximum mL, for the limits that exist."""
        pairs = [
            (WINDOWS_S["1h"], self.max_1h_ml),
            (WINDOWS_S["4h"], self.max_4h_ml),
            (WINDOWS_S["24h"], self.max_24h_ml),
        ]
        return {w: v for w, v in pairs if v is not None}


class ContainerSpec(_Frozen):
    """Syringe (inner diameter, capacity) or peristaltic tubing (mL per revolution)."""

    inner_diameter_mm: float | None = Field(default=None, gt=0)
    capacity_ml: float | None = Field(default=None, gt=0)
    ml_per_rev: float | None = Field(default=None, gt=0)
    changes_allowed: bool = False


class Plan(_Frozen):
    program: str
    program_hash: str = Field(description="sha256 of the canonical program, for the journal")
    library_version: str | None = None
    drug: str | None = None
    concentration_mg_per_ml: float | None = None
    weight_kg: float | None = None
    container: ContainerSpec
    segments: tuple[Segment, ...]
    titration: TitrationLimits | None = None
    warnings: tuple[str, ...] = ()
    care_area: str | None = None
    #: "ketamine adult IV 2 mg/mL" when a library entry applies
    library_entry: str | None = None
    #: SR04: a library drug is never titrated or programmed in bare mL/h
    drug_in_library: bool = False
    rolling_limits: RollingLimits | None = None
    #: soft limits crossed with an operator's reason (the supervisor journals them, SR03)
    overrides: tuple[Override, ...] = ()
    volume_resolution_ml: float = 0.001
    rate_resolution_ml_per_h: float = 0.001

    @property
    def total_volume_ml(self) -> float | None:
        """None when a segment runs until stopped."""
        vols = [s.volume_ml for s in self.segments]
        if any(v is None for v in vols):
            return None
        return sum(v for v in vols if v is not None)

    @property
    def total_drug_mg(self) -> float | None:
        """Drug reaching the patient (prime excluded: it fills the line); None if open-ended."""
        mg = [s.drug_mg for s in self.segments if s.phase is not SegmentPhase.PRIME]
        if any(m is None for m in mg):
            return None
        return sum(m for m in mg if m is not None)

    def segment(self, phase: SegmentPhase) -> Segment | None:
        return next((s for s in self.segments if s.phase is phase), None)


@dataclass(frozen=True)
class Resolution:
    """Smallest steps the plan is expressed in (rounded down to these, once)."""

    volume_ml: float = 0.001
    rate_ml_per_h: float = 0.001


def floor_to(value: float, step: float) -> float:
    """Round down to a multiple of `step`; within 1e-6 step of the next multiple counts as on it.

    The tolerance absorbs float noise (0.35 × 70 = 24.499999999999996) and is a millionth of the
    resolution, so it can never round a dose up by anything a pump could deliver.
    """
    n = math.floor(value / step + 1e-6)
    decimals = max(0, -math.floor(math.log10(step))) + 3
    return round(n * step, decimals)


def program_hash(program: Program) -> str:
    """sha256 of the canonical JSON of the validated program (canonical units, sorted keys)."""
    canonical = json.dumps(
        program.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


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


class _Compiler:
    """One compilation; collects violations instead of stopping at the first (SR01, SR02)."""

    def __init__(self, program: Program, library: DrugLibrary | None, res: Resolution) -> None:
        self.p = program
        self.lib = library
        self.res = res
        self.version = library.version if library else None
        self.weight = program.patient.weight
        self.conc = program.drug.concentration
        self.found: list[Violation] = []
        self.warnings: list[str] = []
        self.in_library = bool(library and library.has_drug(program.drug.name))
        self.entry: Entry | None = None

    # -- helpers -----------------------------------------------------------------------------
    def add(
        self,
        fld: str,
        value: float | str | None,
        limit: float | str | None,
        unit: str | None,
        severity: Severity,
        rule: str,
        what: str,
        message: str | None = None,
    ) -> None:
        self.found.append(
            violation(
                field=fld,
                value=value,
                limit=limit,
                unit=unit,
                severity=severity,
                version=self.version,
                rule=rule,
                what=what,
                message=message,
            )
        )

    def limit(self, lim: Limit, value: float, fld: str, rule: str, unit: str | None = None) -> None:
        v = lim.check(value, field=fld, version=self.version, rule=rule, unit=unit)
        if v is not None:
            self.found.append(v)

    def per_weight(self, rate_ml_per_h: float) -> float:
        """mL/h -> mg/kg/h."""
        return rate_ml_per_h * self.conc / self.weight

    def rate_ml(self, rate: DoseRate) -> float:
        return rate.to_ml_per_h(weight_kg=self.weight, concentration_mg_per_ml=self.conc)

    def display_factor(self, rate: DoseRate) -> float:
        """mL/h per one unit of the rate as written (e.g. per mcg/kg/min)."""
        return self.rate_ml(rate) / rate.value

    # -- steps -------------------------------------------------------------------------------
    def resolve_entry(self) -> None:
        drug = self.p.drug
        if self.lib is None or not self.in_library:
            self.add(
                "drug.name",
                drug.name,
                "not in library",
                None,
                "soft",
                "SR03",
                "",
                message="not in the drug library: no dose limit can be checked",
            )
            return
        area, route = self.p.patient.care_area, drug.route
        entries = self.lib.entries_for(drug.name, area, route)
        if not entries:
            self.add(
                "patient.care_area",
                area,
                "no entry",
                None,
                "hard",
                "SR07",
                "",
                message=f"the library has no {drug.name} {route} entry for {area}",
            )
            return
        self.entry = self.lib.lookup(drug.name, area, route, self.conc)
        if self.entry is None:
            allowed = sorted({c for e in entries for c in e.concentrations})
            self.add(
                "drug.concentration",
                self.conc,
                ", ".join(f"{c:g}" for c in allowed),
                "mg/mL",
                "hard",
                "SR07",
                f"not an allowed {drug.name} {area} {route} concentration; allowed:",
            )
            return
        self.limit(self.entry.weight, self.weight, "patient.weight", "SR06")

    def prime(self) -> Segment | None:
        spec = self.p.phases.prime
        if spec is None:
            return None
        if spec.skip:
            self.warnings.append(f"prime skipped: {spec.reason}")
            return None
        assert spec.volume is not None  # validated by the Prime model
        volume = floor_to(spec.volume, self.res.volume_ml)
        rate = floor_to(spec.rate or DEFAULT_PRIME_RATE_ML_PER_H, self.res.rate_ml_per_h)
        return Segment(
            phase=SegmentPhase.PRIME,
            rate_ml_per_h=rate,
            volume_ml=volume,
            duration_s=volume / rate * 3600.0,
            drug_mg=volume * self.conc,
        )

    def loading(self) -> Segment | None:
        spec = self.p.phases.loading
        if spec is None:
            return None
        if self.entry is not None and not self.entry.loading.allowed:
            self.add("phases.loading", spec.dose, 0.0, "mg/kg", "hard", "SR05", "no loading dose:")
        volume = floor_to(spec.dose * self.weight / self.conc, self.res.volume_ml)
        if volume <= 0:
            self.add(
                "phases.loading.dose",
                spec.dose,
                self.res.volume_ml,
                "mL",
                "hard",
                "schema",
                "volume below the pump resolution",
            )
            return None
        rate = floor_to(volume / (spec.over / 3600.0), self.res.rate_ml_per_h)
        duration_s = volume / rate * 3600.0
        dose = volume * self.conc / self.weight
        rate_mg_per_kg_min = self.per_weight(rate) / 60.0
        if self.entry is not None:
            lim = self.entry.loading
            self.limit(lim.dose, dose, "phases.loading.dose", "SR05")
            self.limit(lim.duration, duration_s, "phases.loading.over", "SR05")
            self.limit(lim.rate, rate_mg_per_kg_min, "phases.loading.rate", "SR05")
        return Segment(
            phase=SegmentPhase.LOADING,
            rate_ml_per_h=rate,
            volume_ml=volume,
            duration_s=duration_s,
            dose_rate=rate_mg_per_kg_min,
            dose_rate_unit="mg/kg/min",
            drug_mg=volume * self.conc,
            dose=dose,
            dose_unit="mg/kg",
        )

    def refuse_bare_ml_per_h(self, rate: DoseRate, fld: str) -> bool:
        if rate.kind is RateKind.VOLUMETRIC and self.in_library:
            self.add(
                fld,
                rate.value,
                "mg/kg/h or mg/h",
                rate.unit,
                "hard",
                "SR04",
                f"{self.p.drug.name} is in the library: give a dose rate, not",
            )
            return True
        return False

    def maintenance(self) -> tuple[Segment | None, float | None]:
        """The maintenance segment and the program's cap in mL/h (None if none)."""
        spec = self.p.phases.maintenance
        if spec is None:
            return None, None
        fld = "phases.maintenance.rate"
        if self.refuse_bare_ml_per_h(spec.rate, fld):
            return None, None
        rate = floor_to(self.rate_ml(spec.rate), self.res.rate_ml_per_h)
        if rate <= 0:
            self.add(
                fld,
                spec.rate.value,
                self.res.rate_ml_per_h,
                "mL/h",
                "hard",
                "schema",
                "rate below the pump resolution",
            )
            return None, None
        if self.entry is not None:
            self.limit(self.entry.maintenance.rate, self.per_weight(rate), fld, "SR03")
            self.limit(self.entry.maintenance.absolute_rate, rate * self.conc, fld, "SR03")
        cap: float | None = None
        if spec.max_rate is not None and not self.refuse_bare_ml_per_h(
            spec.max_rate, "phases.maintenance.max_rate"
        ):
            cap = floor_to(self.rate_ml(spec.max_rate), self.res.rate_ml_per_h)
            if rate > cap:
                self.add(
                    fld,
                    spec.rate.value,
                    str(spec.max_rate),
                    spec.rate.unit,
                    "hard",
                    "SR03",
                    "above the program's max_rate",
                )
            if self.entry is not None:
                mf = "phases.maintenance.max_rate"
                self.limit(self.entry.maintenance.rate, self.per_weight(cap), mf, "SR03")
                self.limit(self.entry.maintenance.absolute_rate, cap * self.conc, mf, "SR03")
        if spec.until_stopped:
            volume: float | None = None
        elif spec.volume is not None:
            volume = floor_to(spec.volume, self.res.volume_ml)
        else:
            assert spec.duration is not None  # validated: exactly one end
            volume = floor_to(rate * spec.duration / 3600.0, self.res.volume_ml)
        if volume is not None and volume <= 0:
            self.add(fld, 0.0, self.res.volume_ml, "mL", "hard", "schema", "volume below")
            return None, cap
        factor = self.display_factor(spec.rate)
        return (
            Segment(
                phase=SegmentPhase.MAINTENANCE,
                rate_ml_per_h=rate,
                volume_ml=volume,
                duration_s=None if volume is None else volume / rate * 3600.0,
                dose_rate=rate / factor,
                dose_rate_unit=spec.rate.unit,
                drug_mg=None if volume is None else volume * self.conc,
            ),
            cap,
        )

    def kvo(self) -> Segment | None:
        spec = self.p.phases.kvo
        if spec is None:
            return None
        rate = floor_to(spec.rate, self.res.rate_ml_per_h)
        if self.entry is not None:
            self.limit(self.entry.kvo.rate, rate, "phases.kvo.rate", "SR03")
        return Segment(
            phase=SegmentPhase.KVO,
            rate_ml_per_h=rate,
            dose_rate=rate * self.conc,
            dose_rate_unit="mg/h",
        )

    def titration(
        self, maint: Segment | None, cap_ml_per_h: float | None
    ) -> TitrationLimits | None:
        spec = self.p.titration
        if maint is None:
            if spec is not None:
                self.warnings.append("titration ignored: the program has no maintenance phase")
            return None
        assert self.p.phases.maintenance is not None
        written = self.p.phases.maintenance.rate
        lim = self.entry.titration if self.entry else None
        step_ml: float | None = None
        if spec is not None and spec.max_step is not None:
            if not self.refuse_bare_ml_per_h(spec.max_step, "titration.max_step"):
                step_ml = floor_to(self.rate_ml(spec.max_step), self.res.rate_ml_per_h)
        elif lim is not None and lim.max_step.default is not None:
            step_ml = floor_to(
                lim.max_step.default * self.weight / self.conc, self.res.rate_ml_per_h
            )
        if lim is not None and step_ml is not None:
            self.limit(lim.max_step, self.per_weight(step_ml), "titration.max_step", "SR09")
        interval = spec.min_interval if spec is not None else None
        if interval is None and lim is not None:
            interval = lim.min_interval.default
        if lim is not None and interval is not None:
            self.limit(lim.min_interval, interval, "titration.min_interval", "SR09")
        if step_ml is None or step_ml <= 0:
            # never None with a maintenance phase: limits that allow no increase at all
            self.warnings.append("no titration step known: rate increases are refused")
            return TitrationLimits(
                max_step_ml_per_h=self.res.rate_ml_per_h,
                min_interval_s=interval or 0.0,
                max_rate_ml_per_h=maint.rate_ml_per_h,
                ml_per_h_per_dose_unit=self.display_factor(written),
                dose_rate_unit=written.unit,
            )
        max_rate = self.titration_ceiling(maint.rate_ml_per_h, cap_ml_per_h)
        return TitrationLimits(
            max_step_ml_per_h=step_ml,
            min_interval_s=interval or 0.0,
            max_rate_ml_per_h=max_rate,
            ml_per_h_per_dose_unit=self.display_factor(written),
            dose_rate_unit=written.unit,
        )

    def titration_ceiling(self, start_ml_per_h: float, cap_ml_per_h: float | None) -> float:
        """Highest rate titration may reach: the program cap, else the library's soft ceiling.

        Never below the starting rate (already checked, or overridden) and never above a hard
        maximum, so titration can never walk past a limit that the program itself would need an
        override for.
        """
        ceiling = cap_ml_per_h
        hard: float | None = None
        if self.entry is not None:
            m = self.entry.maintenance
            per_kg = 1.0 * self.weight / self.conc  # mL/h per mg/kg/h
            per_mg = 1.0 / self.conc  # mL/h per mg/h
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
        return floor_to(ceiling, self.res.rate_ml_per_h)

    def rolling(self, patient_segments: list[Segment]) -> RollingLimits | None:
        """Check the plan's own worst 1/4/24 h windows and give the supervisor the maxima in mL."""
        if self.entry is None:
            return None
        r = self.entry.rolling
        per_kg_ml = self.weight / self.conc  # mL per mg/kg
        limits = {"1h": r.per_1h, "4h": r.per_4h, "24h": r.per_24h}
        for label, lim in limits.items():
            worst_ml = max_window_volume(patient_segments, WINDOWS_S[label])
            self.limit(lim, worst_ml / per_kg_ml, f"rolling.{label}", "SR08")

        def ml(lim: Limit) -> float | None:
            return None if lim.hard_max is None else floor_to(lim.hard_max * per_kg_ml, 1e-3)

        return RollingLimits(
            max_1h_ml=ml(r.per_1h), max_4h_ml=ml(r.per_4h), max_24h_ml=ml(r.per_24h)
        )

    def container(self, segments: list[Segment]) -> ContainerSpec:
        pump = self.p.pump
        changes = pump.changes == "allowed"
        if pump.syringe is not None:
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
        finite = [s.volume_ml for s in segments if s.volume_ml is not None]
        open_ended = any(s.volume_ml is None for s in segments)
        total = sum(finite)
        cap = spec.capacity_ml
        if cap is None:
            self.warnings.append(f"{what} capacity unknown: the plan volume is not checked")
        elif total > cap * (1 + 1e-9):
            if changes:
                n = math.ceil(total / cap)
                self.warnings.append(
                    f"plan needs {total:g} mL: {n} {what}s of {cap:g} mL (changes allowed)"
                )
            else:
                self.add(
                    fld,
                    total,
                    cap,
                    "mL",
                    "hard",
                    "SR25",
                    f"plan volume does not fit the {what}; declare pump.changes: allowed? capacity",
                )
        elif open_ended and not changes:
            self.warnings.append(
                f"runs until stopped: the {cap:g} mL {what} empties and stops with an alarm"
            )
        return spec


def max_window_volume(segments: list[Segment], window_s: float) -> float:
    """Largest volume delivered in any window of `window_s` over consecutive segments (mL).

    Rates are piecewise constant, so the maximum is reached with a window edge on a segment
    boundary; an open-ended segment (until stopped) is taken to run forever.
    """
    bounds = [0.0]
    rates: list[float] = []
    for s in segments:
        rates.append(s.rate_ml_per_h / 3600.0)
        bounds.append(bounds[-1] + (s.duration_s if s.duration_s is not None else math.inf))
        if s.duration_s is None:
            break
    if not rates:
        return 0.0

    def delivered(t: float) -> float:
        total = 0.0
        for i, rate in enumerate(rates):
            lo, hi = bounds[i], bounds[i + 1]
            if t <= lo:
                break
            total += rate * (min(t, hi) - lo)
        return total

    starts = {b for b in bounds if math.isfinite(b)} | {
        max(0.0, b - window_s) for b in bounds if math.isfinite(b)
    }
    best = 0.0
    for t0 in starts:
        best = max(best, delivered(t0 + window_s) - delivered(t0))
    return best


def compile_with_violations(
    program: Program,
    library: DrugLibrary | None,
    *,
    overrides: Mapping[str, str] | None = None,
    resolution: Resolution | None = None,
) -> Compilation:
    """Compile and check everything; soft violations with a non-empty reason become overrides."""
    c = _Compiler(program, library, resolution or Resolution())
    c.resolve_entry()
    prime = c.prime()
    loading = c.loading()
    maint, cap = c.maintenance()
    kvo = c.kvo()
    titration = c.titration(maint, cap)
    patient = [s for s in (loading, maint, kvo) if s is not None]
    rolling = c.rolling(patient)
    segments = [s for s in (prime, *patient) if s is not None]
    container = c.container(segments)

    remaining: list[Violation] = []
    applied: list[Override] = []
    given = {k: v.strip() for k, v in (overrides or {}).items()}
    used: set[str] = set()
    for v in c.found:
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
    warnings = list(c.warnings)
    for fld, reason in given.items():
        if not reason:
            warnings.append(f"override of {fld} ignored: a reason is required (SR03)")
        elif fld not in used and not any(v.field == fld for v in remaining):
            warnings.append(f"override of {fld} unused: no soft limit crossed there")
        elif fld not in used:
            warnings.append(f"override of {fld} refused: hard limits cannot be overridden (SR03)")

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
        warnings=tuple(warnings),
        care_area=program.patient.care_area,
        library_entry=c.entry.describe(c.conc) if c.entry else None,
        drug_in_library=c.in_library,
        rolling_limits=rolling,
        overrides=tuple(applied),
        volume_resolution_ml=c.res.volume_ml,
        rate_resolution_ml_per_h=c.res.rate_ml_per_h,
    )
    return Compilation(plan=plan, violations=remaining, overrides=applied, warnings=warnings)


def compile_program(
    program: Program,
    library: DrugLibrary | None,
    *,
    overrides: Mapping[str, str] | None = None,
    resolution: Resolution | None = None,
) -> Plan:
    """The plan, or `PlanRefused` listing every limit still in force (SR01: all or nothing)."""
    result = compile_with_violations(program, library, overrides=overrides, resolution=resolution)
    if result.violations or result.plan is None:
        raise PlanRefused(result.violations)
    return result.plan
