"""Chemyx Fusion 100 / 200 / 4000 / 6000 (and -X) syringe pumps: their spec and the quantizer of
their number format.

Numbers (Chemyx knowledge base, "Serial (RS232) Commands"): the driver sets `set units 1`
(mL/hr, so volumes are mL) and writes `set volume` with at most 5 decimals (the KB's limit) and
`set rate` with at most 4 (the KB gives none; 4 is this project's choice, below the 6 the pump
echoes), `set diameter` with at most 3. Volumes and rates are rounded DOWN, so a 0.1 µL step
and a 0.0001 mL/h step for every syringe.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from pumpctl.families.numbers import decimal, floor_places, plain
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import Addresses, FamilySpec, LineSettings, NumberFormat, SyringeMotor

__all__ = [
    "DIAMETER_DECIMALS",
    "MAX_VOLUME_ML",
    "RATE_DECIMALS",
    "SPEC",
    "VOLUME_DECIMALS",
    "ChemyxQuantizer",
    "ChemyxSetting",
]

VOLUME_DECIMALS = 5
RATE_DECIMALS = 4
DIAMETER_DECIMALS = 3
#: largest `set volume` the format holds (KB: a 60 mL syringe is the largest Fusion 100/200 one;
#: the 4000/6000 take 200 mL): 9999.99999 mL would be 10 digits, never a syringe
MAX_VOLUME_ML = Decimal("999.99999")
MAX_RATE_ML_PER_H = Decimal("99999.9999")


class ChemyxSetting(NamedTuple):
    text: str  # the number as sent: "12.25", "0.00001"
    value: float  # mL or mL/h


def _floor(value: float, places: int, limit: Decimal, what: str, unit: str) -> ChemyxSetting:
    exact = decimal(value)
    q = floor_places(exact, places)
    step = 10.0**-places
    if q <= 0:
        raise NotRepresentable(what, value, unit, step)
    if q > limit:
        raise NotRepresentable(
            what, value, unit, step, f"{what} {value:g} {unit} above the format's {limit} {unit}"
        )
    return ChemyxSetting(plain(q), float(q))


@dataclass(frozen=True)
class ChemyxQuantizer:
    """Fixed decimals in mL and mL/h (`set units 1`), the same for every syringe."""

    @classmethod
    def for_container(
        cls, spec: FamilySpec, inner_diameter_mm: float | None, ml_per_rev: float | None
    ) -> ChemyxQuantizer:
        return cls()

    def volume_setting(self, volume_ml: float) -> ChemyxSetting:
        return _floor(volume_ml, VOLUME_DECIMALS, MAX_VOLUME_ML, "volume", "mL")

    def rate_setting(self, rate_ml_per_h: float) -> ChemyxSetting:
        return _floor(rate_ml_per_h, RATE_DECIMALS, MAX_RATE_ML_PER_H, "rate", "mL/h")

    def floor_volume_ml(self, volume_ml: float) -> float:
        return self.volume_setting(volume_ml).value

    def floor_rate_ml_per_h(self, rate_ml_per_h: float) -> float:
        return self.rate_setting(rate_ml_per_h).value

    def volume_step_ml(self, volume_ml: float) -> float:
        return 10.0**-VOLUME_DECIMALS

    def rate_step_ml_per_h(self, rate_ml_per_h: float) -> float:
        return 10.0**-RATE_DECIMALS

    def wire_volume(self, volume_ml: float | None) -> str:
        if volume_ml is None:
            return "set volume <syringe capacity>"
        return f"set volume {self.volume_setting(volume_ml).text}"

    def wire_rate(self, rate_ml_per_h: float) -> str:
        return f"set rate {self.rate_setting(rate_ml_per_h).text}"


SPEC = FamilySpec(
    model="chemyx-fusion",
    name="Fusion",
    title="Chemyx Fusion 100 / 200 / 4000 / 6000 (RS-232 text commands)",
    pumps=("Fusion 100", "Fusion 200", "Fusion 4000", "Fusion 6000", "Fusion 100-X"),
    protocol="text commands, echo and `>` prompt",
    container="syringe",
    # KB "RS232 Communication": 9600 or 38400 8N1, no flow control; 9600 is the one every
    # model takes (chemios: the 4000/6000 only do 9600)
    line=LineSettings(baud=9600),
    baud_rates=(9600, 38400),
    # 0: no prefix (a single pump); 1, 2: the channel prefix of the dual-channel 4000-X
    addresses=Addresses(first=0, last=2, default=0, reply_digits=None),
    numbers={
        "volume": NumberFormat(max_decimals=VOLUME_DECIMALS),
        "rate": NumberFormat(max_decimals=RATE_DECIMALS),
        "diameter": NumberFormat(max_decimals=DIAMETER_DECIMALS),
    },
    rate_units=("mL/hr",),
    target_volume_unit="ml",
    # Chemyx catalogue (not verified on hardware): 0.0001 uL/min with a 0.5 uL syringe (0.103 mm,
    # the KB's smallest diameter) to 216 mL/min with a 60 mL one; diameters 0.103-40 mm (KB)
    motor=SyringeMotor(
        min_rate_ml_per_h=float(Decimal("0.0000001") * 60),
        min_rate_diameter_mm=0.103,
        max_rate_ml_per_h=216.0 * 60,
        max_rate_diameter_mm=26.59,
        diameter_mm=(0.103, 40.0),
    ),
    accuracy_percent=0.35,
    demo_program="acute-pain.yaml",
    driver="pumpctl.drivers.chemyx:ChemyxFusionDriver",
    emulation="pumpctl.simulator.devices.chemyx:ChemyxFusionEmulation",
    make_quantizer=ChemyxQuantizer.for_container,
    volume_step_ml=10.0**-VOLUME_DECIMALS,
    rate_step_ml_per_h=10.0**-RATE_DECIMALS,
)
