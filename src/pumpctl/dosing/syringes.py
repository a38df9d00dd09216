"""The table of common syringes, and the check that a program's syringe is one of them.

A syringe pump computes volume from plunger travel and the inner diameter it is told, so a wrong
diameter is a wrong dose by its square: 2.67 mm typed for a 60 mL syringe's 26.7 mm delivers a
hundredth of the plan. `check` compares `pump.syringe` with `syringes.yaml` (brand, nominal
volume, inner diameter, with sources) and flags a diameter no known syringe of that volume has.
It is a soft limit: a syringe missing from the table is run with an override and a reason.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pumpctl.dosing.program import Length, ProgramError, Volume, load_yaml_mapping

__all__ = ["SYRINGE_TABLE", "Syringe", "SyringeTable", "syringe_table"]

#: packaged table (see its header for the sources)
SYRINGE_TABLE = "dosing/syringes.yaml"


class Syringe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    brand: str = Field(min_length=1)
    volume: Volume
    inner_diameter: Length
    source: str = Field(min_length=1)

    def describe(self) -> str:
        return f"{self.inner_diameter:g} mm ({self.brand})"


class SyringeTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str = Field(min_length=1)
    #: a diameter within this of a known one matches it (brands and batches vary)
    tolerance_percent: float = Field(gt=0, le=10)
    syringes: list[Syringe] = Field(min_length=1)

    def of_volume(self, volume_ml: float) -> list[Syringe]:
        """The syringes of this nominal volume, by diameter."""
        found = [s for s in self.syringes if math.isclose(s.volume, volume_ml, rel_tol=1e-6)]
        return sorted(found, key=lambda s: s.inner_diameter)

    def matches(self, volume_ml: float, inner_diameter_mm: float) -> Syringe | None:
        """The known syringe of `volume_ml` within tolerance of the diameter, if any."""
        tol = self.tolerance_percent / 100
        for s in self.of_volume(volume_ml):
            if abs(inner_diameter_mm - s.inner_diameter) <= s.inner_diameter * tol:
                return s
        return None

    def plausible_range_mm(self, volume_ml: float) -> tuple[float, float] | None:
        """For a volume the table lacks: diameters between the next smaller and the next larger
        known syringes (with tolerance); None when the volume has entries of its own."""
        if self.of_volume(volume_ml):
            return None
        tol = self.tolerance_percent / 100
        below = [s.volume for s in self.syringes if s.volume < volume_ml]
        above = [s.volume for s in self.syringes if s.volume > volume_ml]
        low = min(s.inner_diameter for s in self.of_volume(max(below))) if below else 0.0
        high = max(s.inner_diameter for s in self.of_volume(min(above))) if above else math.inf
        return low * (1 - tol), high * (1 + tol)

    def mismatch(self, volume_ml: float, inner_diameter_mm: float) -> str | None:
        """Why this syringe is not a known one (the text after `field = value:`), or None."""
        known = self.of_volume(volume_ml)
        if known:
            if self.matches(volume_ml, inner_diameter_mm) is not None:
                return None
            listed = ", ".join(s.describe() for s in known)
            return (
                f"no known {volume_ml:g} mL syringe has this inner diameter "
                f"(±{self.tolerance_percent:g} %); known: {listed}"
            )
        span = self.plausible_range_mm(volume_ml)
        assert span is not None
        low, high = span
        if low <= inner_diameter_mm <= high:
            return None
        if math.isinf(high):
            span_text = f"at least {low:.3g} mm"
        elif low <= 0:
            span_text = f"at most {high:.3g} mm"
        else:
            span_text = f"{low:.3g}..{high:.3g} mm"
        return (
            f"no known syringe of about {volume_ml:g} mL is {inner_diameter_mm:g} mm wide "
            f"(the table's neighbouring sizes give {span_text})"
        )


@cache
def syringe_table() -> SyringeTable:
    """The packaged table, validated once per process."""
    text = resources.files("pumpctl").joinpath(SYRINGE_TABLE).read_text(encoding="utf-8")
    data = load_yaml_mapping(text, "syringes")
    try:
        return SyringeTable.model_validate(data)
    except ValidationError as exc:
        raise ProgramError.from_validation(exc, prefix="syringes") from exc
