"""A pump family as data: what every layer needs to know about it, written once.

One `FamilySpec` per family (`families/newera.py`, ...) replaces the tables that used to be
scattered over the driver registry, the emulation table, the factory addresses, the default
line settings and the demo programs. The driver reads it to format what it sends, the simulator
to know what the pump accepts, `check --model` for the pump's ranges, the command line for line
settings, addresses and the demo program. Quantization is the one piece of code a spec carries
(`make_quantizer`), because a number format with units tied to the syringe is not a table.

A third-party package registers a whole family under the entry-point group `pumpctl.families`
(see `families.registry`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pumpctl.families.quantize import FixedStepQuantizer, Quantizer

__all__ = [
    "Addresses",
    "Container",
    "FamilySpec",
    "LineSettings",
    "NumberFormat",
    "QuantizerFactory",
    "RotorMotor",
    "SyringeMotor",
    "Variant",
    "VolumeUnits",
]

Parity = Literal["N", "E", "O"]
Container = Literal["syringe", "tubing"]


@dataclass(frozen=True, kw_only=True)
class LineSettings:
    """Serial line settings a pump ships with."""

    baud: int
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: float = 1

    def __post_init__(self) -> None:
        if self.baud <= 0 or self.bytesize not in (5, 6, 7, 8) or self.stopbits not in (1, 1.5, 2):
            raise ValueError(f"impossible line settings {self!r}")

    def __str__(self) -> str:
        stop = f"{self.stopbits:g}"
        return f"{self.baud} {self.bytesize}{self.parity}{stop}"


@dataclass(frozen=True, kw_only=True)
class Addresses:
    """Addresses on one line: the range, the factory setting, how replies write them."""

    first: int = 0
    last: int = 99
    default: int = 0
    #: digits of the address in replies (zero-padded); None: the family's replies carry none
    reply_digits: int | None = 2

    def __post_init__(self) -> None:
        if not self.first <= self.default <= self.last:
            raise ValueError(f"default address {self.default} outside {self.first}..{self.last}")

    def check(self, address: int) -> None:
        """ValueError naming the range when `address` is outside it."""
        if not self.first <= address <= self.last:
            raise ValueError(f"address must be {self.first}..{self.last}, got {address}")


@dataclass(frozen=True, kw_only=True)
class NumberFormat:
    """How the pump writes one kind of number; only the fields that apply are set.

    `max_digits` and `max_decimals`: digits in all and after the point (NE-1000: 4, 3).
    `width`: characters including the point (Harvard pump chain: 5). `significant`: significant
    digits (11 Elite: 6). `integer_digits` with `max_decimals`: a fixed, zero-padded layout
    (Masterflex `V` 5.2, `S` 3.1), `signed` for a leading + or -.
    """

    max_digits: int | None = None
    max_decimals: int | None = None
    width: int | None = None
    significant: int | None = None
    integer_digits: int | None = None
    signed: bool = False


@dataclass(frozen=True, kw_only=True)
class VolumeUnits:
    """Volume units tied to the syringe: at or below `threshold_mm` µL, above mL (NE `DIA`)."""

    threshold_mm: float
    small: str = "UL"
    large: str = "ML"


@dataclass(frozen=True, kw_only=True)
class SyringeMotor:
    """A plunger drive. The rate range scales with bore area from the spec sheet's corner
    points (the slowest rate with the smallest syringe, the fastest with the largest), which fix
    the plunger speed range."""

    min_rate_ml_per_h: float
    min_rate_diameter_mm: float
    max_rate_ml_per_h: float
    max_rate_diameter_mm: float
    #: inner diameters the pump accepts, mm
    diameter_mm: tuple[float, float]

    def rate_range_ml_per_h(self, inner_diameter_mm: float | None) -> tuple[float, float]:
        """(min, max) mL/h with this syringe; None: the whole range over the pump's syringes."""
        low_d = inner_diameter_mm or self.min_rate_diameter_mm
        high_d = inner_diameter_mm or self.max_rate_diameter_mm
        low = self.min_rate_ml_per_h * (low_d / self.min_rate_diameter_mm) ** 2
        high = self.max_rate_ml_per_h * (high_d / self.max_rate_diameter_mm) ** 2
        return low, high


@dataclass(frozen=True, kw_only=True)
class RotorMotor:
    """A peristaltic drive: rate = rpm × 60 × mL per revolution of the tubing."""

    rpm: tuple[float, float]
    #: nominal mL/rev per tubing size (uncalibrated, for the rate range before calibration)
    tubing_ml_per_rev: Mapping[int, float] = field(default_factory=dict, hash=False)

    def rate_range_ml_per_h(self, ml_per_rev: float | None) -> tuple[float, float]:
        """(min, max) mL/h with this tubing; None: over the nominal tubing table."""
        table = self.tubing_ml_per_rev.values()
        low = ml_per_rev or min(table, default=1.0)
        high = ml_per_rev or max(table, default=1.0)
        return self.rpm[0] * 60 * low, self.rpm[1] * 60 * high


@dataclass(frozen=True, kw_only=True)
class Variant:
    """A pump within a family that answers differently on the same protocol (PHD2000 on the
    Harvard chain). The first variant of a family is its default."""

    name: str
    pumps: tuple[str, ...]
    #: replies write the address zero-padded to `Addresses.reply_digits`
    address_padded: bool = True
    #: extra CR in replies (observed by host software on the PHD2000)
    extra_cr: bool = False
    #: inner diameters it accepts, mm, and decimals it keeps of one
    diameter_mm: tuple[float, float] | None = None
    diameter_decimals: int | None = None
    #: `VER` answer, as host software reads it
    version: str = ""
    #: unit of the target volume command where it differs from the family's (None: the same)
    target_volume_unit: Literal["ml", "ul", "by_diameter"] | None = None


QuantizerFactory = Callable[["FamilySpec", float | None, float | None], Quantizer]
"""(spec, inner_diameter_mm, ml_per_rev) -> the family's quantizer for that container."""


@dataclass(frozen=True, kw_only=True)
class FamilySpec:
    """One pump family. Everything but `make_quantizer` is plain data."""

    #: the model name on the command line (`--model`, `pumpctl simulate MODEL`)
    model: str
    #: short display name, in messages ("the NE-1000 with a 2.67 mm syringe")
    name: str
    title: str
    pumps: tuple[str, ...]
    #: one line on the protocol, for `pumpctl models` and the README
    protocol: str
    container: Container
    line: LineSettings
    #: baud rates the pump can be set to (its menu)
    baud_rates: tuple[int, ...] = ()
    addresses: Addresses = field(default_factory=Addresses)
    variants: tuple[Variant, ...] = ()
    #: what -> number format on the wire ("volume", "rate", "diameter", "revolutions", ...)
    numbers: Mapping[str, NumberFormat] = field(default_factory=dict, hash=False)
    volume_units: VolumeUnits | None = None
    #: rate unit words or suffixes the pump accepts, most usual first
    rate_units: tuple[str, ...] = ()
    #: unit of the target volume command: "ml", "ul", or "by_diameter" (per `volume_units`)
    target_volume_unit: Literal["ml", "ul", "by_diameter"] = "ml"
    #: characters of reply fields where the manual or host software fixes them
    reply_widths: Mapping[str, int] = field(default_factory=dict, hash=False)
    motor: SyringeMotor | RotorMotor
    #: stated volumetric accuracy, ± %
    accuracy_percent: float
    #: accuracy without a calibration (peristaltic: nominal tubing table), ± %
    nominal_accuracy_percent: float | None = None
    #: link watchdog timeout range, s (NE safe mode); None: no watchdog
    link_watchdog_s: tuple[int, int] | None = None
    #: example program `pumpctl demo --model MODEL` runs (`pumpctl.dosing.program.example_path`)
    demo_program: str = "acute-pain.yaml"
    #: "module:Class" of the driver and of the emulation (None: no emulation)
    driver: str
    emulation: str | None = None
    #: the family's quantizer; None: `FixedStepQuantizer` with the steps below
    make_quantizer: QuantizerFactory | None = field(default=None, compare=False, repr=False)
    volume_step_ml: float = 0.001
    rate_step_ml_per_h: float = 0.001

    def __post_init__(self) -> None:
        for what, path in (("driver", self.driver), ("emulation", self.emulation)):
            if path is not None and (":" not in path or path.startswith(":")):
                raise ValueError(f"{self.model}: {what} must be 'module:Class', got {path!r}")
        if not self.model or self.model != self.model.strip().lower():
            raise ValueError(f"model names are lower-case words, got {self.model!r}")
        if not (math.isfinite(self.accuracy_percent) and self.accuracy_percent > 0):
            raise ValueError(f"{self.model}: accuracy_percent must be > 0")
        syringe = isinstance(self.motor, SyringeMotor)
        if syringe != (self.container == "syringe"):
            raise ValueError(f"{self.model}: a {self.container} pump needs the matching motor")

    @property
    def has_link_watchdog(self) -> bool:
        return self.link_watchdog_s is not None

    def variant(self, name: str) -> Variant:
        """The variant called `name`; ValueError naming the family's variants."""
        for v in self.variants:
            if v.name == name:
                return v
        names = ", ".join(v.name for v in self.variants) or "none"
        raise ValueError(f"{self.model} has no variant {name!r}; variants: {names}")

    def rate_range_ml_per_h(
        self, *, inner_diameter_mm: float | None = None, ml_per_rev: float | None = None
    ) -> tuple[float, float]:
        """(min, max) rate in mL/h the motor can run with this container."""
        if isinstance(self.motor, SyringeMotor):
            return self.motor.rate_range_ml_per_h(inner_diameter_mm)
        return self.motor.rate_range_ml_per_h(ml_per_rev)

    def quantizer(
        self, *, inner_diameter_mm: float | None = None, ml_per_rev: float | None = None
    ) -> Quantizer:
        """The rounding rules of this family for one container (see `families.quantize`)."""
        if self.make_quantizer is None:
            return FixedStepQuantizer(self.volume_step_ml, self.rate_step_ml_per_h)
        return self.make_quantizer(self, inner_diameter_mm, ml_per_rev)

    def describe_container(
        self, *, inner_diameter_mm: float | None = None, ml_per_rev: float | None = None
    ) -> str:
        """`the NE-1000 with a 2.67 mm syringe`, for messages that name a range."""
        if inner_diameter_mm is not None:
            return f"the {self.name} with a {inner_diameter_mm:g} mm syringe"
        if ml_per_rev is not None:
            return f"the {self.name} with {ml_per_rev:g} mL/rev tubing"
        return f"the {self.name}"
