"""Harvard Apparatus 11 Elite / PHD Ultra / Pump 33 DDS "text" family: its spec, and the
quantizer of its number format.

Numbers (PHD Ultra / 11 Elite manuals, "Command set"): the driver writes up to 6 significant
digits with the unit as text. Rates of 1 mL/h and more go as `ml/hr`, smaller ones as `ul/hr`;
volumes of 1 mL and more as `ml`, smaller ones as `ul`, so 6 digits keep their precision. Both
are rounded DOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from pumpctl.families.numbers import decimal, floor_significant, plain
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import (
    Addresses,
    FamilySpec,
    LineSettings,
    NumberFormat,
    SyringeMotor,
)

__all__ = ["NUMBER", "SIGNIFICANT", "SPEC", "EliteQuantizer", "TextSetting", "floor_text"]

SIGNIFICANT = 6
NUMBER = NumberFormat(significant=SIGNIFICANT)


class TextSetting(NamedTuple):
    text: str  # number and unit as sent: "12.477 ml", "250 ul/hr"
    value_ml: float  # mL or mL/h, what the pump is set to


def floor_text(value: float, big_unit: str, small_unit: str) -> TextSetting:
    """`value` (mL or mL/h) with 6 significant digits, rounded down: in `big_unit` from 1 up,
    below 1 in `small_unit` (a thousandth). ValueError when it rounds to 0."""
    exact = decimal(value)
    if exact <= 0:
        raise ValueError(f"value must be > 0, got {value}")
    if exact >= 1:
        q = floor_significant(exact, SIGNIFICANT)
        return TextSetting(f"{plain(q)} {big_unit}", float(q))
    q = floor_significant(exact * 1000, SIGNIFICANT)
    if q <= 0:
        raise ValueError(f"{value} rounds to 0 {small_unit}")
    return TextSetting(f"{plain(q)} {small_unit}", float(q / 1000))


def _step(value: float) -> float:
    exact = decimal(value)
    return 10.0 ** (exact.adjusted() - SIGNIFICANT + 1) if exact > 0 else 1e-9


@dataclass(frozen=True)
class EliteQuantizer:
    """11 Elite rounding: 6 significant digits, the same for every syringe."""

    @classmethod
    def for_container(
        cls, spec: FamilySpec, inner_diameter_mm: float | None, ml_per_rev: float | None
    ) -> EliteQuantizer:
        return cls()

    def volume_setting(self, volume_ml: float) -> TextSetting:
        try:
            return floor_text(volume_ml, "ml", "ul")
        except ValueError as exc:
            raise NotRepresentable("volume", volume_ml, "mL", 1e-9, str(exc)) from exc

    def rate_setting(self, rate_ml_per_h: float) -> TextSetting:
        try:
            return floor_text(rate_ml_per_h, "ml/hr", "ul/hr")
        except ValueError as exc:
            raise NotRepresentable("rate", rate_ml_per_h, "mL/h", 1e-9, str(exc)) from exc

    def floor_volume_ml(self, volume_ml: float) -> float:
        return self.volume_setting(volume_ml).value_ml

    def floor_rate_ml_per_h(self, rate_ml_per_h: float) -> float:
        return self.rate_setting(rate_ml_per_h).value_ml

    def volume_step_ml(self, volume_ml: float) -> float:
        return _step(volume_ml)

    def rate_step_ml_per_h(self, rate_ml_per_h: float) -> float:
        return _step(rate_ml_per_h)

    def wire_volume(self, volume_ml: float | None) -> str:
        if volume_ml is None:
            return "ctvolume"
        return f"tvolume {self.volume_setting(volume_ml).text}"

    def wire_rate(self, rate_ml_per_h: float) -> str:
        return f"irate {self.rate_setting(rate_ml_per_h).text}"


#: the protocol notes' `irate lim` example with a 14.5 mm bore: `1.061 nl/min to 25.023 ml/min`
_REFERENCE_MM = 14.5

SPEC = FamilySpec(
    model="harvard-elite",
    name="11 Elite",
    title="Harvard Apparatus 11 Elite / PHD Ultra (text protocol)",
    pumps=("11 Elite", "11 Elite Pico", "PHD Ultra", "Pump 33 DDS"),
    protocol="text protocol",
    container="syringe",
    line=LineSettings(baud=115200),
    baud_rates=(9600, 19200, 38400, 57600, 115200),
    addresses=Addresses(first=0, last=99, default=0, reply_digits=2),
    numbers={"volume": NUMBER, "rate": NUMBER, "diameter": NUMBER},
    rate_units=("ml/hr", "ul/hr", "ml/min", "ul/min", "nl/min"),
    target_volume_unit="ml",
    reply_widths={"address": 2},
    motor=SyringeMotor(
        min_rate_ml_per_h=float(Decimal("0.000001061") * 60),
        min_rate_diameter_mm=_REFERENCE_MM,
        max_rate_ml_per_h=float(Decimal("25.023") * 60),
        max_rate_diameter_mm=_REFERENCE_MM,
        diameter_mm=(0.1, 33.0),
    ),
    accuracy_percent=0.5,
    demo_program="acute-pain.yaml",
    driver="pumpctl.drivers.harvard_elite:HarvardEliteDriver",
    emulation="pumpctl.simulator.devices.harvard_elite:HarvardEliteEmulation",
    make_quantizer=EliteQuantizer.for_container,
)
