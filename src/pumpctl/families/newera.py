"""New Era NE-1000 family: its spec, and the quantizer of its number format.

Numbers (NE-1000 user manual, "RS-232 protocol", command table): at most 4 digits plus a point,
at most 3 decimals. `DIA` also sets the volume units: at or below 14.00 mm µL, above mL. `RAT`
takes UM, MM, UH or MH; the unit cannot change while the pump runs, so the unit chosen while it
is stopped keeps room for the syringe's maximum rate (a titration can then go up to it).

Volumes and rates are floored into that format (never more than asked); the diameter, which is
not a dose, is rounded to the nearest (an error of at most 0.02 % of the bore).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal, NamedTuple

from pumpctl.families.numbers import decimal, floor_digits, nearest_digits, plain
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import (
    Addresses,
    FamilySpec,
    LineSettings,
    NumberFormat,
    SyringeMotor,
    VolumeUnits,
)

__all__ = [
    "NUMBER",
    "RATE_TOLERANCE",
    "SPEC",
    "NEQuantizer",
    "RateSetting",
    "RateUnit",
    "VolumeSetting",
    "choose_rate_unit",
    "encode_rate",
    "floor_number",
    "format_number",
    "volume_unit_for_diameter",
]

NUMBER = NumberFormat(max_digits=4, max_decimals=3)
_DIGITS, _DECIMALS = 4, 3
UL_MAX_DIAMETER_MM = 14.0


def format_number(value: float) -> str:
    """`value` in the 4-digit format, to the nearest (ties to even): for the diameter.
    ValueError for negative or non-finite values and for 9999.5 and above."""
    return plain(nearest_digits(decimal(value), _DIGITS, _DECIMALS))


def floor_number(value: float) -> str:
    """`value` in the 4-digit format, rounded DOWN (volumes and rates). ValueError for
    negative or non-finite values and for 10000 and above."""
    return plain(floor_digits(decimal(value), _DIGITS, _DECIMALS))


def volume_unit_for_diameter(inner_diameter_mm: float) -> Literal["UL", "ML"]:
    """Volume units follow the syringe as the pump holds its diameter (manual, `DIA`)."""
    return "UL" if Decimal(format_number(inner_diameter_mm)) <= 14 else "ML"


def _places_at(number: Decimal) -> int:
    """Decimals the 4-digit format holds at this magnitude (`500` -> 1: `500.0`)."""
    return min(_DECIMALS, max(0, _DIGITS - len(str(int(number)))))


class RateUnit(StrEnum):
    """Rate units of `RAT`."""

    UM = "UM"  # µL/min
    MM = "MM"  # mL/min
    UH = "UH"  # µL/h
    MH = "MH"  # mL/h

    @property
    def size_ml_per_h(self) -> Decimal:
        """One of this unit in mL/h, exactly."""
        return {"UM": Decimal("0.06"), "MM": Decimal(60), "UH": Decimal("0.001"), "MH": Decimal(1)}[
            self.value
        ]

    @property
    def per_ml_per_h(self) -> float:
        """This unit's amount per mL/h."""
        return float(1 / self.size_ml_per_h)


class RateSetting(NamedTuple):
    unit: RateUnit
    text: str  # the number as sent
    rate_ml_per_h: float  # what the pump will actually run


class VolumeSetting(NamedTuple):
    unit: Literal["UL", "ML"]
    text: str
    volume_ml: float


#: preference among equally precise units: the usual clinical unit first
_UNIT_ORDER = (RateUnit.MH, RateUnit.UH, RateUnit.UM, RateUnit.MM)
#: units within this relative distance of the best count as equally precise
RATE_TOLERANCE = 5e-4


def encode_rate(rate_ml_per_h: float, unit: RateUnit) -> RateSetting:
    """`rate_ml_per_h` in `unit`, floored into the format (possibly to 0); ValueError when it
    does not fit."""
    q = floor_digits(decimal(rate_ml_per_h) / unit.size_ml_per_h, _DIGITS, _DECIMALS)
    return RateSetting(unit, plain(q), float(q * unit.size_ml_per_h))


def _fits(rate_ml_per_h: float, unit: RateUnit) -> bool:
    try:
        encode_rate(rate_ml_per_h, unit)
    except ValueError:
        return False
    return True


def _choose_once(rate_ml_per_h: float, max_rate_ml_per_h: float | None) -> RateSetting:
    options: list[tuple[bool, float, int, RateSetting]] = []
    for order, unit in enumerate(_UNIT_ORDER):
        try:
            setting = encode_rate(rate_ml_per_h, unit)
        except ValueError:
            continue
        if setting.rate_ml_per_h <= 0:
            continue
        covers = max_rate_ml_per_h is None or _fits(max_rate_ml_per_h, unit)
        options.append((not covers, rate_ml_per_h - setting.rate_ml_per_h, order, setting))
    if not options:
        raise ValueError(f"{rate_ml_per_h} mL/h cannot be expressed in any NE rate unit")
    tolerance = max(min(o[1] for o in options), rate_ml_per_h * RATE_TOLERANCE) * (1 + 1e-9)
    return min(o for o in options if o[1] <= tolerance)[3]


def choose_rate_unit(
    rate_ml_per_h: float, *, max_rate_ml_per_h: float | None = None
) -> RateSetting:
    """The setting the pump is sent for `rate_ml_per_h` while stopped: the unit expressing it
    most precisely, rounded down. Units within `RATE_TOLERANCE` (0.05 %) of the best are equally
    good; among them one that can also express `max_rate_ml_per_h` wins (units cannot change
    while running), then the closest, then the order MH, UH, UM, MM.

    The result is a fixed point: choosing again for the rate it returns gives the same setting,
    so a plan quantized with it is sent exactly. ValueError when no unit holds the rate."""
    if not rate_ml_per_h > 0 or rate_ml_per_h == float("inf"):
        raise ValueError(f"rate must be > 0 mL/h, got {rate_ml_per_h}")
    setting = _choose_once(rate_ml_per_h, max_rate_ml_per_h)
    for _ in range(8):  # each round can only lower the rate; two rounds suffice in practice
        again = _choose_once(setting.rate_ml_per_h, max_rate_ml_per_h)
        if again.rate_ml_per_h == setting.rate_ml_per_h:
            return again
        setting = again
    return setting


@dataclass(frozen=True)
class NEQuantizer:
    """NE-1000 rounding for one syringe (None: not configured yet; volumes then count in mL,
    the coarser of the two units)."""

    inner_diameter_mm: float | None = None
    max_rate_ml_per_h: float | None = None

    @classmethod
    def for_container(
        cls, spec: FamilySpec, inner_diameter_mm: float | None, ml_per_rev: float | None
    ) -> NEQuantizer:
        high = spec.rate_range_ml_per_h(inner_diameter_mm=inner_diameter_mm)[1]
        return cls(inner_diameter_mm, high)

    @property
    def volume_unit(self) -> Literal["UL", "ML"]:
        d = self.inner_diameter_mm
        return "ML" if d is None else volume_unit_for_diameter(d)

    @property
    def counter_resolution_ml(self) -> float:
        """Step of the pump's own counter (`DIS`, 3 decimals of µL or mL), mL."""
        return float(self._volume_size) * 1e-3

    @property
    def _volume_size(self) -> Decimal:
        return Decimal("0.001") if self.volume_unit == "UL" else Decimal(1)

    def volume_setting(self, volume_ml: float) -> VolumeSetting:
        """`VOL` number and unit for `volume_ml`, rounded down; `NotRepresentable` if none."""
        unit, size = self.volume_unit, self._volume_size
        smallest = float(size) * 1e-3
        try:
            q = floor_digits(decimal(volume_ml) / size, _DIGITS, _DECIMALS)
        except ValueError as exc:
            raise NotRepresentable(
                "volume",
                volume_ml,
                "mL",
                smallest,
                f"{volume_ml:g} mL is above the largest NE target {9999 * float(size):g} mL "
                f"(9999 {unit} with this syringe)",
                largest=9999 * float(size),
            ) from exc
        if q <= 0:
            raise NotRepresentable("volume", volume_ml, "mL", smallest)
        return VolumeSetting(unit, plain(q), float(q * size))

    def floor_volume_ml(self, volume_ml: float) -> float:
        return self.volume_setting(volume_ml).volume_ml

    def rate_setting(self, rate_ml_per_h: float) -> RateSetting:
        """`RAT` number and unit while stopped (`choose_rate_unit`); `NotRepresentable`."""
        try:
            return choose_rate_unit(rate_ml_per_h, max_rate_ml_per_h=self.max_rate_ml_per_h)
        except ValueError as exc:
            raise NotRepresentable("rate", rate_ml_per_h, "mL/h", 1e-6, str(exc)) from exc

    def floor_rate_ml_per_h(self, rate_ml_per_h: float) -> float:
        return self.rate_setting(rate_ml_per_h).rate_ml_per_h

    def volume_step_ml(self, volume_ml: float) -> float:
        try:
            text = self.volume_setting(volume_ml).text
        except NotRepresentable:
            text = "0"
        return float(self._volume_size) * 10.0 ** -_places_at(Decimal(text))

    def rate_step_ml_per_h(self, rate_ml_per_h: float) -> float:
        try:
            setting = self.rate_setting(rate_ml_per_h)
        except NotRepresentable:
            return 1e-6
        return float(setting.unit.size_ml_per_h) * 10.0 ** -_places_at(Decimal(setting.text))

    def wire_volume(self, volume_ml: float | None) -> str:
        """The commands the driver sends for this target (`VOLML`, `VOL12.47`)."""
        if volume_ml is None:
            return "VOL0"
        s = self.volume_setting(volume_ml)
        return f"VOL{s.unit} VOL{s.text}"

    def wire_rate(self, rate_ml_per_h: float) -> str:
        s = self.rate_setting(rate_ml_per_h)
        return f"RAT{s.text}{s.unit.value}"


SPEC = FamilySpec(
    model="ne1000",
    name="NE-1000",
    title="New Era NE-1000 family",
    pumps=("NE-1000", "NE-500", "NE-501", "NE-1002X", "NE-1600", "NE-4000", "NE-8000", "Aladdin"),
    protocol="basic and safe mode (CRC-16/XMODEM, link watchdog)",
    container="syringe",
    # the manual's factory setting; nesp-lib's Port defaults to 9600
    line=LineSettings(baud=19200),
    baud_rates=(300, 1200, 2400, 9600, 19200),
    addresses=Addresses(first=0, last=99, default=0, reply_digits=2),
    numbers={"volume": NUMBER, "rate": NUMBER, "diameter": NUMBER},
    volume_units=VolumeUnits(threshold_mm=UL_MAX_DIAMETER_MM),
    rate_units=tuple(u.value for u in _UNIT_ORDER),
    target_volume_unit="by_diameter",
    # spec sheet corner points: 0.73 µL/h with a B-D 1 mL syringe (4.699 mm), 1699 mL/h with a
    # B-D 60 mL syringe (26.59 mm); diameters as the project's emulation accepts them
    motor=SyringeMotor(
        min_rate_ml_per_h=0.00073,
        min_rate_diameter_mm=4.699,
        max_rate_ml_per_h=1699.0,
        max_rate_diameter_mm=26.59,
        diameter_mm=(0.1, 80.0),
    ),
    accuracy_percent=1.0,
    link_watchdog_s=(1, 255),
    demo_program="acute-pain.yaml",
    driver="pumpctl.drivers.newera:NE1000Driver",
    emulation="pumpctl.simulator.devices.newera:NE1000Emulation",
    make_quantizer=NEQuantizer.for_container,
)
