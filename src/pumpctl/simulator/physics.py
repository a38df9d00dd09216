"""Syringe mechanics: plunger travel, delivered volume, line pressure and stall.

Pure and clock-free: the caller says how many seconds passed (`advance`). Motion is piecewise
constant, so every quantity is computed analytically from the state at the start of the current
motion segment (`anchor + rate × elapsed`), never by summing small steps: a 5-day run advanced every
few milliseconds ends on the same volume as one advanced once. Elapsed time itself is accumulated
with compensated (Kahan) summation.

Occlusion model (SR27): with the line occluded, the volume the plunger pushes is stored in the
compliant line (syringe stopper, tubing) instead of reaching the patient; line pressure is
`stored_ml / compliance_ml_per_kpa`. Above `stall_pressure_kpa` the motor stalls. Releasing the
occlusion releases the stored bolus at once into the delivered (outflow) volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_COMPLIANCE_ML_PER_KPA",
    "DEFAULT_STALL_PRESSURE_KPA",
    "StopReason",
    "SyringePhysics",
]

#: Line + syringe compliance, mL per kPa. 0.004 mL/kPa ≈ 0.53 µL/mmHg, the order of a 50–60 mL
#: plastic syringe with a short extension line; it makes the bolus stored at the stall threshold
#: 0.32 mL, in the range infusion-pump standards report for post-occlusion boluses.
DEFAULT_COMPLIANCE_ML_PER_KPA = 0.004
#: Motor stall threshold, kPa (≈ 600 mmHg, a typical syringe-pump occlusion limit).
DEFAULT_STALL_PRESSURE_KPA = 80.0


class StopReason(StrEnum):
    """Why the physics stopped the plunger by itself."""

    EMPTY = "empty"  # infusing, barrel empty (end of travel)
    FULL = "full"  # withdrawing, barrel at capacity (end of travel)
    STALL = "stall"  # occluded line pressure above the stall threshold
    LIMIT = "limit"  # the caller's travel limit (pump's target volume) reached exactly


@dataclass(frozen=True, slots=True)
class _Anchor:
    t_s: float
    infused_ml: float  # cumulative forward plunger travel, monotone
    withdrawn_ml: float  # cumulative backward plunger travel, monotone
    contents_ml: float  # liquid in the barrel
    line_ml: float  # volume stored in the compliant line (signed: >0 pressurised)
    outflow_ml: float  # net volume past the occlusion point (to the patient)


class SyringePhysics:
    """One syringe on one pump: contents, plunger motion, compliant line."""

    def __init__(
        self,
        inner_diameter_mm: float,
        capacity_ml: float,
        contents_ml: float | None = None,
        *,
        compliance_ml_per_kpa: float = DEFAULT_COMPLIANCE_ML_PER_KPA,
        stall_pressure_kpa: float = DEFAULT_STALL_PRESSURE_KPA,
    ) -> None:
        if inner_diameter_mm <= 0 or capacity_ml <= 0:
            raise ValueError("inner diameter and capacity must be > 0")
        if compliance_ml_per_kpa <= 0 or stall_pressure_kpa <= 0:
            raise ValueError("compliance and stall pressure must be > 0")
        self.inner_diameter_mm = inner_diameter_mm
        self.capacity_ml = capacity_ml
        self.compliance_ml_per_kpa = compliance_ml_per_kpa
        self.stall_pressure_kpa = stall_pressure_kpa
        contents = capacity_ml if contents_ml is None else contents_ml
        if not 0 <= contents <= capacity_ml:
            raise ValueError(f"contents {contents} mL outside 0..{capacity_ml} mL")
        self._t = 0.0
        self._t_comp = 0.0  # Kahan compensation for the elapsed-time sum
        self._a = _Anchor(0.0, 0.0, 0.0, contents, 0.0, 0.0)
        self._rate_ml_per_s = 0.0
        self._sign = 1  # +1 infuse, -1 withdraw
        self._moving = False
        self._limit_ml: float | None = None  # travel allowed in this segment (caller's target)
        self.occluded = False
        # `_segment_end()` of the current segment, worked out at its first advance (every
        # exchange advances the physics); every change of segment goes through `_freeze`
        self._end: tuple[float, StopReason] | None = None
        self._end_known = False

    # -- derived geometry --------------------------------------------------------------------

    @property
    def area_mm2(self) -> float:
        return math.pi * self.inner_diameter_mm**2 / 4.0

    @property
    def elapsed_s(self) -> float:
        return self._t

    # -- state at the current time -----------------------------------------------------------

    def _travel_ml(self) -> float:
        if not self._moving:
            return 0.0
        return self._rate_ml_per_s * (self._t - self._a.t_s)

    @property
    def moving(self) -> bool:
        return self._moving

    @property
    def infusing(self) -> bool:
        return self._sign > 0

    @property
    def rate_ml_per_h(self) -> float:
        return self._rate_ml_per_s * 3600.0 if self._moving else 0.0

    @property
    def infused_ml(self) -> float:
        """Cumulative forward plunger travel since start, mL (monotone)."""
        return self._a.infused_ml + (self._travel_ml() if self._sign > 0 else 0.0)

    @property
    def withdrawn_ml(self) -> float:
        """Cumulative backward plunger travel since start, mL (monotone)."""
        return self._a.withdrawn_ml + (self._travel_ml() if self._sign < 0 else 0.0)

    def travel_counters_ml(self) -> tuple[float, float]:
        """(`infused_ml`, `withdrawn_ml`) at once, the travel worked out once (a pump's `DIS`
        reads both on every poll)."""
        a, travel, infusing = self._a, self._travel_ml(), self._sign > 0
        return (
            a.infused_ml + (travel if infusing else 0.0),
            a.withdrawn_ml + (0.0 if infusing else travel),
        )

    @property
    def pushed_net_ml(self) -> float:
        """Net volume the plunger has pushed since start (ground truth of the pump's motion)."""
        return self.infused_ml - self.withdrawn_ml

    @property
    def contents_ml(self) -> float:
        return self._a.contents_ml - self._sign * self._travel_ml()

    @property
    def remaining_ml(self) -> float:
        """Volume left to infuse (near-empty warning, SR25)."""
        return self.contents_ml

    @property
    def line_ml(self) -> float:
        """Volume stored in the compliant line by an occlusion (the bolus waiting to go)."""
        extra = self._sign * self._travel_ml() if self.occluded else 0.0
        return self._a.line_ml + extra

    @property
    def pressure_kpa(self) -> float:
        return self.line_ml / self.compliance_ml_per_kpa

    @property
    def outflow_ml(self) -> float:
        """Net volume delivered past the occlusion point since start (the patient's volume)."""
        extra = 0.0 if self.occluded else self._sign * self._travel_ml()
        return self._a.outflow_ml + extra

    def time_to_empty_s(self) -> float | None:
        """Seconds until the barrel is empty at the current motion, None if not infusing."""
        if not self._moving or self._sign < 0:
            return None
        return self.contents_ml / self._rate_ml_per_s

    # -- commands ----------------------------------------------------------------------------

    def start(self, rate_ml_per_h: float, *, infuse: bool, limit_ml: float | None = None) -> None:
        """Move the plunger at `rate_ml_per_h`; `limit_ml` = travel after which to stop exactly."""
        if rate_ml_per_h <= 0:
            raise ValueError(f"rate must be > 0, got {rate_ml_per_h}")
        self._freeze()
        self._rate_ml_per_s = rate_ml_per_h / 3600.0
        self._sign = 1 if infuse else -1
        self._moving = True
        self._limit_ml = limit_ml

    def set_rate(self, rate_ml_per_h: float) -> None:
        """Change the rate mid-motion; the travel limit keeps counting from where it was."""
        if rate_ml_per_h <= 0:
            raise ValueError(f"rate must be > 0, got {rate_ml_per_h}")
        limit = self._remaining_limit()
        self._freeze()
        self._rate_ml_per_s = rate_ml_per_h / 3600.0
        if self._moving:
            self._limit_ml = limit

    def set_direction(self, *, infuse: bool) -> None:
        limit = self._remaining_limit()
        self._freeze()
        self._sign = 1 if infuse else -1
        self._limit_ml = limit

    def stop(self) -> None:
        self._freeze()
        self._moving = False
        self._limit_ml = None

    def set_occluded(self, occluded: bool) -> None:
        """Occlude or release the line; release delivers the stored bolus at once (SR27)."""
        limit = self._remaining_limit()
        self._freeze()
        self._limit_ml = limit
        if occluded == self.occluded:
            return
        self.occluded = occluded
        if not occluded:
            a = self._a
            self._a = _Anchor(
                a.t_s, a.infused_ml, a.withdrawn_ml, a.contents_ml, 0.0, a.outflow_ml + a.line_ml
            )

    def load(self, inner_diameter_mm: float, capacity_ml: float, contents_ml: float) -> None:
        """Replace the syringe (motor must be stopped); counters of travel are kept."""
        if not 0 <= contents_ml <= capacity_ml:
            raise ValueError(f"contents {contents_ml} mL outside 0..{capacity_ml} mL")
        self.stop()
        self.inner_diameter_mm = inner_diameter_mm
        self.capacity_ml = capacity_ml
        a = self._a
        self._a = _Anchor(a.t_s, a.infused_ml, a.withdrawn_ml, contents_ml, a.line_ml, a.outflow_ml)

    def _remaining_limit(self) -> float | None:
        if self._limit_ml is None or not self._moving:
            return self._limit_ml
        return max(0.0, self._limit_ml - self._travel_ml())

    def _freeze(self) -> None:
        """Start a new segment at the current time with the current state as anchor (the
        caller then sets its motion: its end is worked out again at the next advance)."""
        self._end_known = False
        self._a = _Anchor(
            self._t,
            self.infused_ml,
            self.withdrawn_ml,
            self.contents_ml,
            self.line_ml,
            self.outflow_ml,
        )

    # -- time --------------------------------------------------------------------------------

    def _segment_end(self) -> tuple[float, StopReason] | None:
        """Travel (mL) at which the current segment ends by itself, and why."""
        if not self._moving:
            return None
        a = self._a
        if self._sign > 0:
            travel, reason = a.contents_ml, StopReason.EMPTY
        else:
            travel, reason = self.capacity_ml - a.contents_ml, StopReason.FULL
        # ties: the first reason found wins (`<`), so a physical one over the caller's limit
        if self.occluded:
            threshold_ml = self.stall_pressure_kpa * self.compliance_ml_per_kpa
            stall = threshold_ml - self._sign * a.line_ml
            if stall < travel:
                travel, reason = stall, StopReason.STALL
        limit = self._limit_ml
        if limit is not None and limit < travel:
            travel, reason = limit, StopReason.LIMIT
        return travel, reason

    def advance(self, seconds: float) -> StopReason | None:
        """Let `seconds` pass; returns why the plunger stopped during them, if it did."""
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        if not self._end_known:
            self._end, self._end_known = self._segment_end(), True
        end = self._end
        t0 = self._t
        y = seconds - self._t_comp
        t = t0 + y
        self._t_comp = (t - t0) - y
        self._t = t
        if end is None:
            return None
        travel_limit_ml, reason = end
        if self._rate_ml_per_s * (t - self._a.t_s) < travel_limit_ml:
            return None
        # Stop exactly at the limit: place the state there, then freeze at the current time.
        travel = max(0.0, travel_limit_ml)
        a = self._a
        sign = self._sign
        self._a = _Anchor(
            self._t,
            a.infused_ml + (travel if sign > 0 else 0.0),
            a.withdrawn_ml + (travel if sign < 0 else 0.0),
            0.0
            if reason is StopReason.EMPTY
            else (self.capacity_ml if reason is StopReason.FULL else a.contents_ml - sign * travel),
            a.line_ml + sign * travel if self.occluded else a.line_ml,
            a.outflow_ml if self.occluded else a.outflow_ml + sign * travel,
        )
        self._moving = False
        self._limit_ml = None
        self._end_known = False
        return reason
