"""Masterflex L/S family, the tubing side of the driver: what one calibration (mL per
revolution) makes of a drive that counts revolutions and turns at rpm.

The accuracy a calibration gives, the rate span and steps in mL, the rounding, the speed a
rate needs within the drive's rpm range, and the mL each direction delivered out of the one
revolution counter are pure arithmetic on the family's spec and the driver's readings. They are
kept apart from the codec (the wire) and from the driver (`pumpctl.drivers.masterflex`, which
re-exports the constants here), so the driver module is the command sequencing alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pumpctl.drivers.base import Capabilities, DeliveredVolume, Direction, UnsupportedError
from pumpctl.families.masterflex import (
    NOMINAL_ML_PER_REV,
    REV_STEP,
    RPM_STEP,
    SPEC,
    MasterflexQuantizer,
    SpeedSetting,
)
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import RotorMotor

__all__ = [
    "CALIBRATED_ACCURACY_PERCENT",
    "DEFAULT_MAX_RPM",
    "DEFAULT_MIN_RPM",
    "NOMINAL_ACCURACY_PERCENT",
    "CounterSplit",
    "nominal_ml_per_rev",
    "speed_for_rate",
    "tubing_capabilities",
    "tubing_quantizer",
]

_MOTOR = SPEC.motor
assert isinstance(_MOTOR, RotorMotor)
#: volumetric accuracy with a gravimetric calibration of this tubing on this head (typical for
#: calibrated peristaltic dosing: the drive's speed error is far smaller than the tubing's)
CALIBRATED_ACCURACY_PERCENT = SPEC.accuracy_percent
#: with a nominal table value (typical head-to-head and material variance; not for dosing)
NOMINAL_ACCURACY_PERCENT = SPEC.nominal_accuracy_percent or 10.0
#: typical speed range of the 600-rpm L/S computer-compatible drives; the 100-rpm models
#: (e.g. 07523-90) need `max_rpm=100`
DEFAULT_MIN_RPM, DEFAULT_MAX_RPM = _MOTOR.rpm
#: before a calibration: the finest and the coarsest nominal tubing (L/S 13 and 36)
_FINEST_ML_PER_REV = min(NOMINAL_ML_PER_REV.values())
_COARSEST_ML_PER_REV = max(NOMINAL_ML_PER_REV.values())


def nominal_ml_per_rev(size: int) -> float:
    """The nominal mL/rev of an L/S tubing size; ValueError naming the known sizes."""
    if size not in NOMINAL_ML_PER_REV:
        raise ValueError(f"unknown L/S tubing size {size}; known: {sorted(NOMINAL_ML_PER_REV)}")
    return NOMINAL_ML_PER_REV[size]


def tubing_quantizer(ml_per_rev: float | None) -> MasterflexQuantizer:
    """The family's rounding for the tubing calibration (before one: the finest nominal
    tubing, so nothing is rounded coarser than the pump can do)."""
    return MasterflexQuantizer(ml_per_rev or _FINEST_ML_PER_REV)


def tubing_capabilities(
    family: str, ml_per_rev: float | None, calibrated: bool, min_rpm: float, max_rpm: float
) -> Capabilities:
    """Rates from the rpm range and the calibration (before one: the L/S 13..36 span);
    volume steps of 0.01 rev (`V`, `C`), rate steps of 0.1 rpm (`S`)."""
    low = ml_per_rev or _FINEST_ML_PER_REV
    high = ml_per_rev or _COARSEST_ML_PER_REV
    return Capabilities(
        family=family,
        can_withdraw=True,
        min_rate_ml_per_h=min_rpm * 60 * low,
        max_rate_ml_per_h=max_rpm * 60 * high,
        volume_resolution_ml=REV_STEP * low,
        rate_resolution_ml_per_h=RPM_STEP * 60 * low,
        accuracy_percent=CALIBRATED_ACCURACY_PERCENT if calibrated else NOMINAL_ACCURACY_PERCENT,
        has_link_watchdog=False,
    )


def speed_for_rate(
    rate_ml_per_h: float, ml_per_rev: float, min_rpm: float, max_rpm: float
) -> SpeedSetting:
    """The `S` speed for `rate_ml_per_h` (rate / 60 / mL per rev, rounded down to 0.1 rpm);
    `UnsupportedError` when that is outside the drive's `min_rpm`..`max_rpm`."""
    rpm = rate_ml_per_h / 60 / ml_per_rev
    try:
        speed = MasterflexQuantizer(ml_per_rev).speed(rate_ml_per_h)
    except NotRepresentable:
        speed = None
    if speed is None or not min_rpm <= speed.rpm <= max_rpm:
        raise UnsupportedError(
            f"{rate_ml_per_h} mL/h is {rpm:.3g} rpm with {ml_per_rev} mL/rev, outside the "
            f"drive's {min_rpm:g}..{max_rpm:g} rpm"
        )
    return speed


@dataclass
class CounterSplit:
    """The drive's one cumulative counter (`C`) counts both directions, so the revolutions
    counted up to each direction change are banked to the direction they ran in."""

    banked: dict[Direction, float] = field(
        default_factory=lambda: {Direction.INFUSE: 0.0, Direction.WITHDRAW: 0.0}
    )
    #: the counter's reading at the last direction change
    baseline: float = 0.0

    def bank(self, direction: Direction, counted: float) -> None:
        """The direction changes at counter reading `counted`: what ran since goes to
        `direction`, the one that was in force."""
        self.banked[direction] += counted - self.baseline
        self.baseline = counted

    def delivered(self, counted: float, direction: Direction, ml_per_rev: float) -> DeliveredVolume:
        """Infused and withdrawn mL at counter reading `counted`, `direction` in force."""
        revs = dict(self.banked)
        revs[direction] += counted - self.baseline
        return DeliveredVolume(
            infused_ml=revs[Direction.INFUSE] * ml_per_rev,
            withdrawn_ml=revs[Direction.WITHDRAW] * ml_per_rev,
        )
