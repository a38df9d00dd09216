"""Harvard Apparatus legacy "pump chain" family (Pump 11 / 11 Plus, PHD2000, Model 22/33/44 and
the KDS / Cole-Parmer clones): its spec, and the quantizer of its number format.

Numbers (pump manuals, "RS-232 / pump chain"): at most 5 characters including the point, as many
decimals as fit. Rates are sent with the unit in the command (`MLH`, `ULH`, `ULM`, `MLM`), also
while running. The target volume `MLT` is in the unit of `target_volume_unit`: today's drivers
and emulation follow: a Pump 11 counts "by_diameter" as New Era pumps do (µL up to 14.00 mm, as
pumpy, whose author ran real Pump 11s, sends it), a PHD2000 in mL (the Model 22 manual). Not
verified on hardware; it is data, so the fact can be flipped in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from pumpctl.families.numbers import decimal, floor_width, plain
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import (
    Addresses,
    FamilySpec,
    LineSettings,
    NumberFormat,
    SyringeMotor,
    Variant,
    VolumeUnits,
)

__all__ = [
    "NUMBER",
    "NUMBER_WIDTH",
    "RATE_TOLERANCE",
    "SPEC",
    "LegacyQuantizer",
    "RateSetting",
    "RateUnit",
    "TargetSetting",
    "choose_rate_unit",
    "floor_number",
]

NUMBER_WIDTH = 5
NUMBER = NumberFormat(width=NUMBER_WIDTH)


def floor_number(value: float, width: int = NUMBER_WIDTH) -> str:
    """`value` in at most `width` characters, rounded DOWN, trailing zeros dropped
    (12.3456 -> "12.34"). ValueError for negative, non-finite or too large values."""
    return plain(floor_width(decimal(value), width))


def _places_at(number: Decimal) -> int:
    """Decimals 5 characters hold at this magnitude (`12.3` -> 2: `12.30`)."""
    return min(NUMBER_WIDTH - 2, max(0, NUMBER_WIDTH - 1 - len(str(int(number)))))


class RateUnit(StrEnum):
    """Rate-setting commands."""

    MLH = "MLH"
    ULH = "ULH"
    ULM = "ULM"
    MLM = "MLM"

    @property
    def size_ml_per_h(self) -> Decimal:
        return {
            "MLH": Decimal(1),
            "ULH": Decimal("0.001"),
            "ULM": Decimal("0.06"),
            "MLM": Decimal(60),
        }[self.value]

    @property
    def per_ml_per_h(self) -> float:
        """This unit's amount per mL/h."""
        return float(1 / self.size_ml_per_h)

    @property
    def reply_text(self) -> str:
        """How `RAT` names the unit."""
        return {"MLH": "ml/h", "ULH": "ul/h", "ULM": "ul/m", "MLM": "ml/m"}[self.value]


class RateSetting(NamedTuple):
    unit: RateUnit
    text: str
    rate_ml_per_h: float  # what the pump will actually run

    @property
    def command(self) -> str:
        return f"{self.unit.value}{self.text}"


class TargetSetting(NamedTuple):
    text: str  # the MLT number
    volume_ml: float


_UNIT_ORDER = (RateUnit.MLH, RateUnit.ULH, RateUnit.ULM, RateUnit.MLM)
#: units within this relative distance of the best count as equally precise
RATE_TOLERANCE = 5e-5


def _choose_once(rate_ml_per_h: float) -> RateSetting:
    options: list[tuple[float, int, RateSetting]] = []
    for order, unit in enumerate(_UNIT_ORDER):
        try:
            q = floor_width(decimal(rate_ml_per_h) / unit.size_ml_per_h, NUMBER_WIDTH)
        except ValueError:
            continue
        actual = float(q * unit.size_ml_per_h)
        if actual > 0:
            options.append((rate_ml_per_h - actual, order, RateSetting(unit, plain(q), actual)))
    if not options:
        raise ValueError(f"{rate_ml_per_h} mL/h cannot be expressed in any Harvard rate unit")
    tolerance = max(min(o[0] for o in options), rate_ml_per_h * RATE_TOLERANCE) * (1 + 1e-9)
    return min((o for o in options if o[0] <= tolerance), key=lambda o: o[1])[2]


def choose_rate_unit(rate_ml_per_h: float) -> RateSetting:
    """The unit (MLH/ULH/ULM/MLM) expressing `rate_ml_per_h` most precisely in 5 characters,
    rounded down; among equally precise ones (within `RATE_TOLERANCE`) the order MLH, ULH, ULM,
    MLM. A fixed point, like the NE choice: a rate it returns is sent as is."""
    if not rate_ml_per_h > 0 or rate_ml_per_h == float("inf"):
        raise ValueError(f"rate must be > 0 mL/h, got {rate_ml_per_h}")
    setting = _choose_once(rate_ml_per_h)
    for _ in range(8):
        again = _choose_once(setting.rate_ml_per_h)
        if again.rate_ml_per_h == setting.rate_ml_per_h:
            return again
        setting = again
    return setting


@dataclass(frozen=True)
class LegacyQuantizer:
    """Pump chain rounding: 5-character numbers; the `MLT` unit per `target_volume_unit`."""

    target_unit_ml: Decimal = Decimal(1)

    @classmethod
    def for_container(
        cls,
        spec: FamilySpec,
        inner_diameter_mm: float | None,
        ml_per_rev: float | None,
        *,
        variant: str | None = None,
    ) -> LegacyQuantizer:
        """`variant` (None: the family's default, the Pump 11) may have its own MLT unit."""
        own = spec.variant(variant).target_volume_unit if variant else None
        unit = own or spec.target_volume_unit
        if unit == "by_diameter":
            threshold = spec.volume_units.threshold_mm if spec.volume_units else 14.0
            small = inner_diameter_mm is not None and inner_diameter_mm <= threshold
            unit = "ul" if small else "ml"
        return cls(Decimal("0.001") if unit == "ul" else Decimal(1))

    @property
    def target_unit(self) -> str:
        return "ul" if self.target_unit_ml < 1 else "ml"

    def target_setting(self, volume_ml: float) -> TargetSetting:
        """The `MLT` number for `volume_ml`, rounded down; `NotRepresentable` if none > 0."""
        size = self.target_unit_ml
        smallest = float(size) * 1e-3
        try:
            q = floor_width(decimal(volume_ml) / size, NUMBER_WIDTH)
        except ValueError as exc:
            raise NotRepresentable(
                "volume",
                volume_ml,
                "mL",
                smallest,
                f"{volume_ml:g} mL does not fit a 5-character MLT ({self.target_unit})",
                largest=99999 * float(size),
            ) from exc
        if q <= 0:
            raise NotRepresentable("volume", volume_ml, "mL", smallest)
        return TargetSetting(plain(q), float(q * size))

    def floor_volume_ml(self, volume_ml: float) -> float:
        return self.target_setting(volume_ml).volume_ml

    def rate_setting(self, rate_ml_per_h: float) -> RateSetting:
        try:
            return choose_rate_unit(rate_ml_per_h)
        except ValueError as exc:
            raise NotRepresentable("rate", rate_ml_per_h, "mL/h", 1e-6, str(exc)) from exc

    def floor_rate_ml_per_h(self, rate_ml_per_h: float) -> float:
        return self.rate_setting(rate_ml_per_h).rate_ml_per_h

    def volume_step_ml(self, volume_ml: float) -> float:
        """0.001 below 10 (in the MLT unit), 0.01 below 100, ... 1 from 1000 up."""
        try:
            text = self.target_setting(volume_ml).text
        except NotRepresentable:
            text = "0.001"
        return float(self.target_unit_ml) * 10.0 ** -_places_at(Decimal(text))

    def rate_step_ml_per_h(self, rate_ml_per_h: float) -> float:
        try:
            s = self.rate_setting(rate_ml_per_h)
        except NotRepresentable:
            return 1e-6
        return float(s.unit.size_ml_per_h) * 10.0 ** -_places_at(Decimal(s.text))

    def wire_volume(self, volume_ml: float | None) -> str:
        if volume_ml is None:
            return "CLT"
        return f"MLT{self.target_setting(volume_ml).text}"

    def wire_rate(self, rate_ml_per_h: float) -> str:
        return self.rate_setting(rate_ml_per_h).command


SPEC = FamilySpec(
    model="harvard-legacy",
    name="Pump 11",
    title="Harvard Apparatus pump chain (legacy command set)",
    pumps=("Pump 11", "Pump 11 Plus", "PHD2000", "Model 22", "Model 33", "Model 44", "KDS clones"),
    protocol="pump-chain command set",
    container="syringe",
    # the pump's baud is a keypad setting; common host software opens 9600 8N2
    line=LineSettings(baud=9600, stopbits=2),
    baud_rates=(1200, 2400, 9600, 19200),
    addresses=Addresses(first=0, last=99, default=0, reply_digits=2),
    variants=(
        Variant(
            name="pump11",
            pumps=("Pump 11", "Pump 11 Plus"),
            address_padded=True,
            diameter_mm=(0.1, 35.0),
            diameter_decimals=2,
            version="PUMP11V2.0",
        ),
        Variant(
            name="phd2000",
            pumps=("PHD2000", "Model 22", "Model 33", "Model 44"),
            address_padded=False,
            extra_cr=True,
            diameter_mm=(0.1, 50.0),
            diameter_decimals=4,
            version="PHD2000V20",
            # Model 22 manual, Appendix C: "MLT ... units are ml", "VOL ... units are ml"
            target_volume_unit="ml",
        ),
    ),
    numbers={"volume": NUMBER, "rate": NUMBER, "diameter": NUMBER},
    volume_units=VolumeUnits(threshold_mm=14.0),
    rate_units=tuple(u.value for u in _UNIT_ORDER),
    # Pump 11 / 11 Plus: like New Era pumps, µL up to 14.00 mm, mL above (lead's decision from
    # pumpy, whose author ran real Pump 11s and sends µL with a 10 mm syringe; not verified on
    # hardware). The PHD2000 variant overrides it with mL.
    target_volume_unit="by_diameter",
    # best knowledge of what host software reads by byte count (not hardware-verified)
    reply_widths={"VER": 10, "DIA": 8, "VOL": 8, "RAT": 6, "address": 2},
    # Pump 11 Plus catalogue (nominal): 0.001 µL/h with a 10 µL syringe (0.46 mm) to 26.5 mL/min
    # with a 60 mL syringe (26.7 mm); the pump answers OOR beyond its real limits. Diameters: the
    # default variant's (a Pump 11 takes up to 35 mm; `check` cannot know a PHD2000 is there)
    motor=SyringeMotor(
        min_rate_ml_per_h=1e-6,
        min_rate_diameter_mm=0.46,
        max_rate_ml_per_h=26.5 * 60,
        max_rate_diameter_mm=26.7,
        diameter_mm=(0.1, 35.0),
    ),
    accuracy_percent=0.5,
    demo_program="acute-pain.yaml",
    driver="pumpctl.drivers.harvard_legacy:HarvardLegacyDriver",
    emulation="pumpctl.simulator.devices.harvard_legacy:HarvardLegacyEmulation",
    make_quantizer=LegacyQuantizer.for_container,
)
