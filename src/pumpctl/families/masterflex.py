"""Cole-Parmer Masterflex L/S computer-compatible drives: their spec, and the quantizer of their
number format.

A peristaltic drive counts revolutions, not millilitres (drive manual, "Computer control"): a
target is `Vnnnnn.nn` revolutions (0.01 rev steps, at most 99999.99) and a speed `S±nnn.n` rpm
(0.1 rpm steps). Through the tubing's calibration (mL per revolution) a volume step is
0.01 rev × mL/rev and a rate step 0.1 rpm × 60 × mL/rev. Both are rounded DOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from pumpctl.families.numbers import decimal, floor_places
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import (
    Addresses,
    FamilySpec,
    LineSettings,
    NumberFormat,
    RotorMotor,
)

__all__ = [
    "MAX_REVOLUTIONS",
    "MAX_RPM_FORMAT",
    "NOMINAL_ML_PER_REV",
    "REV_STEP",
    "RPM_STEP",
    "SPEC",
    "MasterflexQuantizer",
    "RevolutionSetting",
    "SpeedSetting",
]

REV_STEP, RPM_STEP = 0.01, 0.1
MAX_REVOLUTIONS = Decimal("99999.99")
MAX_RPM_FORMAT = Decimal("999.9")

# Nominal mL per revolution of Masterflex L/S precision tubing in a standard L/S pump head
# (Masterflex L/S tubing selection charts, 600-rpm drives). NOMINAL values only: the real
# figure varies with tubing material, head, wear and back pressure (±10-25 %); calibrate.
NOMINAL_ML_PER_REV: dict[int, float] = {
    13: 0.06,  # 0.8 mm ID
    14: 0.21,  # 1.6 mm ID
    16: 0.8,  # 3.1 mm ID
    25: 1.7,  # 4.8 mm ID
    17: 2.8,  # 6.4 mm ID
    18: 3.8,  # 7.9 mm ID
    15: 1.7,  # 4.8 mm ID, heavy wall
    24: 2.8,  # 6.4 mm ID, heavy wall
    35: 3.8,  # 7.9 mm ID, heavy wall
    36: 4.8,  # 9.7 mm ID, heavy wall
}


class RevolutionSetting(NamedTuple):
    text: str  # `V` argument, `00012.34`
    revolutions: float
    volume_ml: float


class SpeedSetting(NamedTuple):
    rpm_text: str  # `S` argument without its sign, `020.7`
    rpm: float
    rate_ml_per_h: float


@dataclass(frozen=True)
class MasterflexQuantizer:
    """Rounding for one tubing calibration (mL per revolution)."""

    ml_per_rev: float

    def __post_init__(self) -> None:
        if not self.ml_per_rev > 0 or self.ml_per_rev == float("inf"):
            raise ValueError(f"mL per revolution must be > 0, got {self.ml_per_rev}")

    @classmethod
    def for_container(
        cls, spec: FamilySpec, inner_diameter_mm: float | None, ml_per_rev: float | None
    ) -> MasterflexQuantizer:
        if ml_per_rev is None:
            raise ValueError(
                f"{spec.model} is peristaltic: its steps need the tubing's mL per revolution"
            )
        return cls(ml_per_rev)

    @property
    def _ml_per_rev(self) -> Decimal:
        return decimal(self.ml_per_rev)

    def revolutions(self, volume_ml: float) -> RevolutionSetting:
        """`V` for `volume_ml`, rounded down to 0.01 rev; `NotRepresentable` if none > 0."""
        step_ml = self.volume_step_ml(volume_ml)
        rev = floor_places(decimal(volume_ml) / self._ml_per_rev, 2)
        if rev > MAX_REVOLUTIONS:
            raise NotRepresentable(
                "volume",
                volume_ml,
                "mL",
                step_ml,
                f"{volume_ml:g} mL is {float(rev):g} revolutions of {self.ml_per_rev:g} mL/rev "
                f"tubing: above the V maximum 99999.99",
                largest=float(MAX_REVOLUTIONS * self._ml_per_rev),
            )
        if rev <= 0:
            raise NotRepresentable("volume", volume_ml, "mL", step_ml)
        return RevolutionSetting(f"{rev:08.2f}", float(rev), float(rev * self._ml_per_rev))

    def speed(self, rate_ml_per_h: float) -> SpeedSetting:
        """`S` rpm for `rate_ml_per_h`, rounded down to 0.1 rpm; `NotRepresentable`."""
        step = self.rate_step_ml_per_h(rate_ml_per_h)
        rpm = floor_places(decimal(rate_ml_per_h) / 60 / self._ml_per_rev, 1)
        if rpm > MAX_RPM_FORMAT:
            raise NotRepresentable(
                "rate",
                rate_ml_per_h,
                "mL/h",
                step,
                f"{rate_ml_per_h:g} mL/h is {float(rpm):g} rpm: above the S format's 999.9",
                largest=float(MAX_RPM_FORMAT * 60 * self._ml_per_rev),
            )
        if rpm <= 0:
            raise NotRepresentable("rate", rate_ml_per_h, "mL/h", step)
        return SpeedSetting(f"{rpm:05.1f}", float(rpm), float(rpm * 60 * self._ml_per_rev))

    def floor_volume_ml(self, volume_ml: float) -> float:
        return self.revolutions(volume_ml).volume_ml

    def floor_rate_ml_per_h(self, rate_ml_per_h: float) -> float:
        return self.speed(rate_ml_per_h).rate_ml_per_h

    def volume_step_ml(self, volume_ml: float) -> float:
        return float(Decimal("0.01") * self._ml_per_rev)

    def rate_step_ml_per_h(self, rate_ml_per_h: float) -> float:
        return float(Decimal(6) * self._ml_per_rev)

    def wire_volume(self, volume_ml: float | None) -> str:
        if volume_ml is None:
            return "G0"
        return f"V{self.revolutions(volume_ml).text}"

    def wire_rate(self, rate_ml_per_h: float) -> str:
        return f"S+{self.speed(rate_ml_per_h).rpm_text}"


SPEC = FamilySpec(
    model="masterflex-ls",
    name="Masterflex L/S",
    title="Cole-Parmer Masterflex L/S computer-compatible drives (peristaltic)",
    pumps=("07523-80", "07523-90", "07551-x0", "07575-x0"),
    protocol="STX/ENQ/ACK/NAK, pump numbers 01-89",
    container="tubing",
    line=LineSettings(baud=4800, bytesize=7, parity="O", stopbits=1),
    baud_rates=(4800,),
    addresses=Addresses(first=1, last=89, default=1, reply_digits=2),
    numbers={
        "revolutions": NumberFormat(integer_digits=5, max_decimals=2),
        "speed": NumberFormat(integer_digits=3, max_decimals=1, signed=True),
    },
    rate_units=("rpm",),
    target_volume_unit="ml",
    # typical speed range of the 600-rpm drives; the 100-rpm models (07523-90) reach 100
    motor=RotorMotor(rpm=(1.0, 600.0), tubing_ml_per_rev=NOMINAL_ML_PER_REV),
    # calibrated tubing on this head; with the nominal table (not for dosing) ±10 %
    accuracy_percent=2.0,
    nominal_accuracy_percent=10.0,
    demo_program="acute-pain-peristaltic.yaml",
    driver="pumpctl.drivers.masterflex:MasterflexDriver",
    emulation="pumpctl.simulator.devices.masterflex:MasterflexEmulation",
    make_quantizer=MasterflexQuantizer.for_container,
)
