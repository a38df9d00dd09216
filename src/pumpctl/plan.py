"""The compiled plan: what the supervisor executes, entirely in pump units (mL, mL/h, s).

Conversion from dose units happens once, when a validated program is compiled into a `Plan`; the
supervisor never sees mg/kg. Each segment keeps its dose-unit rate for display and the factor
needed to turn an operator's titration (in dose units) back into mL/h.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ContainerSpec", "Plan", "Segment", "SegmentPhase", "TitrationLimits"]


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


class TitrationLimits(_Frozen):
    """Maintenance-rate changes allowed while running, already in mL/h (SR09)."""

    max_step_ml_per_h: float = Field(gt=0)
    min_interval_s: float = Field(ge=0)
    max_rate_ml_per_h: float = Field(gt=0)
    min_rate_ml_per_h: float = Field(default=0.0, ge=0)
    #: multiply a dose-unit rate (`dose_rate_unit` of the maintenance segment) to get mL/h
    ml_per_h_per_dose_unit: float | None = Field(default=None, gt=0)


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

    @property
    def total_volume_ml(self) -> float | None:
        """None when a segment runs until stopped."""
        vols = [s.volume_ml for s in self.segments]
        if any(v is None for v in vols):
            return None
        return sum(v for v in vols if v is not None)

    def segment(self, phase: SegmentPhase) -> Segment | None:
        return next((s for s in self.segments if s.phase is phase), None)
