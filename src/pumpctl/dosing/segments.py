"""The compiled plan's data: segments in pump units (mL, mL/h, s), container, limits.

`pumpctl.dosing.plan` compiles a program into these and re-exports them; they live apart so the
compiler's modules can share them without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pumpctl.dosing.library import Override
from pumpctl.dosing.program import Program

__all__ = [
    "WINDOWS_S",
    "BolusPlan",
    "ContainerSpec",
    "Plan",
    "RollingLimits",
    "Segment",
    "SegmentPhase",
    "TciPlan",
    "TitrationLimits",
    "program_hash",
]

#: rolling windows of SR08, seconds
WINDOWS_S = {"1h": 3600.0, "4h": 4 * 3600.0, "24h": 24 * 3600.0}


class SegmentPhase(StrEnum):
    PRIME = "prime"
    LOADING = "loading"
    MAINTENANCE = "maintenance"
    #: target-controlled: the supervisor sets the rate every interval; the segment's rate is
    #: its ceiling, its volume the pump's own hard stop, its duration how long TCI runs
    TCI = "tci"
    KVO = "kvo"


_PHASE_NAMES = {phase: phase.value for phase in SegmentPhase}


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
    #: the step (1, 2, ...) of a maintenance's taper (`taper_segments`); None: not a taper step
    taper_step: int | None = Field(default=None, ge=1)

    @property
    def key(self) -> str:
        """Names the segment in the books and the journal: its phase, or its taper step."""
        if self.taper_step is None:
            return _PHASE_NAMES[self.phase]  # read every poll: `.value` is slow on 3.11
        return f"{self.phase.value}:taper{self.taper_step}"


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


class TciPlan(_Frozen):
    """A TCI phase, compiled: the model, the target and the ceilings, in µg/mL and mL/h."""

    target_ug_per_ml: float = Field(gt=0)
    site: Literal["plasma", "effect"]
    pk_model: str
    duration_s: float = Field(gt=0)
    #: the predicted plasma concentration the rate may never push above
    max_plasma_ug_per_ml: float = Field(gt=0)
    #: the rate ceiling (program, library, pump), as the pump is sent it
    max_rate_ml_per_h: float = Field(gt=0)
    #: highest target `ctl target` may set without an override (library's soft ceiling)
    max_target_ug_per_ml: float = Field(gt=0)
    #: largest target change and the interval between increases (titration's, SR09)
    max_step_ug_per_ml: float = Field(gt=0)
    min_interval_s: float = Field(ge=0)
    interval_s: float = Field(default=10.0, gt=0)


class BolusPlan(_Frozen):
    """Clinician bolus limits, compiled into mg, s and the pump's mL/h."""

    max_dose_mg: float = Field(gt=0)
    #: extra rate on top of the basal while a bolus runs (full dose in `over_s`)
    rate_ml_per_h: float = Field(gt=0)
    over_s: float = Field(gt=0)
    lockout_s: float = Field(ge=0)
    max_per_hour: int = Field(ge=1)
    max_mg_per_4h: float = Field(gt=0)
    #: the rate once the 4-h limit is reached and there is no basal: KVO (None: stop)
    kvo_ml_per_h: float | None = None


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
    #: the coarsest volume step of the pump at the plan's volumes, and its rate step at the
    #: maintenance rate (the quantizer's; 0.001 without a pump): resume and titration round
    #: down to them
    volume_resolution_ml: float = 0.001
    rate_resolution_ml_per_h: float = 0.001
    #: the pump model whose quantizer the plan was compiled with (None: fixed 0.001 steps);
    #: every volume and rate is then exactly what that pump is sent
    pump_model: str | None = None
    #: compiled in no-library mode (`--no-library`): no dose limit was checked (show it in red)
    no_library: bool = False
    tci: TciPlan | None = None
    bolus: BolusPlan | None = None
    #: the PK model whose predictions the supervisor shows (None: none for this patient)
    pk_model: str | None = None
    #: the plan's predicted plasma peak with that model (population prediction), µg/mL
    predicted_peak_ug_per_ml: float | None = None

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

    def segment_by_key(self, key: str) -> Segment | None:
        return next((s for s in self.segments if s.key == key), None)


def program_hash(program: Program) -> str:
    """sha256 of the canonical JSON of the validated program (canonical units, sorted keys)."""
    canonical = json.dumps(
        program.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
