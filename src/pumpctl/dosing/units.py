"""Parsing dose quantities with pint into canonical floats (mg, kg, mL, mL/h, s).

Programs and libraries are written the way clinicians write ("0.35 mg/kg", "10 mcg/kg/min",
"0.2 mg/kg/hr", "26.7 mm", "2 d"). pint does the arithmetic; this module only decides which
*kind* of quantity a field expects and converts it, once, to the canonical unit of that kind.

A kind is matched on the numerator and denominator separately, not on the reduced dimension:
pint reduces mg/kg to "dimensionless", which would let a bare number or "ppm" pass as a dose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pint

__all__ = [
    "DoseRate",
    "Kind",
    "QuantityError",
    "RateKind",
    "format_unit",
    "parse",
    "parse_dose_rate",
    "ureg",
]

#: the one registry of the process (pint quantities from different registries do not mix)
ureg: Any = pint.UnitRegistry()

_MASS = ureg.Quantity("1 mg").dimensionality
_VOLUME = ureg.Quantity("1 mL").dimensionality
_LENGTH = ureg.Quantity("1 mm").dimensionality
_TIME = ureg.Quantity("1 s").dimensionality
_NONE = ureg.Quantity("1").dimensionality


class QuantityError(ValueError):
    """A quantity that does not parse or has the wrong kind; names field, value and expectation."""

    def __init__(self, field: str, value: object, expected: str, detail: str = "") -> None:
        self.field = field
        self.value = value
        self.expected = expected
        msg = f"{field}: {value!r} is not {expected}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


@dataclass(frozen=True)
class _KindSpec:
    numerator: Any
    denominator: Any
    canonical: str
    expected: str


class Kind(StrEnum):
    """What a field holds; the value says the canonical unit."""

    MASS = "mg"
    WEIGHT = "kg"
    VOLUME = "mL"
    LENGTH = "mm"
    TIME = "s"
    CONCENTRATION = "mg/mL"
    DOSE_PER_WEIGHT = "mg/kg"
    DOSE_RATE_PER_WEIGHT = "mg/kg/h"
    DOSE_RATE = "mg/h"
    VOLUME_RATE = "mL/h"
    DOSE_RATE_PER_WEIGHT_PER_MIN = "mg/kg/min"


_SPECS: dict[Kind, _KindSpec] = {
    Kind.MASS: _KindSpec(_MASS, _NONE, "mg", "a mass such as '25 mg'"),
    Kind.WEIGHT: _KindSpec(_MASS, _NONE, "kg", "a body weight such as '70 kg'"),
    Kind.VOLUME: _KindSpec(_VOLUME, _NONE, "mL", "a volume such as '56 mL'"),
    Kind.LENGTH: _KindSpec(_LENGTH, _NONE, "mm", "a length such as '26.7 mm'"),
    Kind.TIME: _KindSpec(_TIME, _NONE, "s", "a duration such as '10 min', '4 h' or '2 d'"),
    Kind.CONCENTRATION: _KindSpec(_MASS, _VOLUME, "mg/mL", "a concentration such as '1 mg/mL'"),
    Kind.DOSE_PER_WEIGHT: _KindSpec(
        _MASS, _MASS, "mg/kg", "a dose per body weight such as '0.35 mg/kg' or '500 mcg/kg'"
    ),
    Kind.DOSE_RATE_PER_WEIGHT: _KindSpec(
        _MASS,
        _MASS * _TIME,
        "mg/kg/h",
        "a dose rate per body weight such as '0.2 mg/kg/h' or '10 mcg/kg/min'",
    ),
    Kind.DOSE_RATE_PER_WEIGHT_PER_MIN: _KindSpec(
        _MASS, _MASS * _TIME, "mg/kg/min", "a dose rate per body weight such as '0.5 mg/kg/min'"
    ),
    Kind.DOSE_RATE: _KindSpec(_MASS, _TIME, "mg/h", "a dose rate such as '20 mg/h'"),
    Kind.VOLUME_RATE: _KindSpec(_VOLUME, _TIME, "mL/h", "a volumetric rate such as '14 mL/h'"),
}

#: ISMP: write "mcg", never "µg" (misread as "mg"); pint's long names mapped to short symbols
_SYMBOLS = {
    "microgram": "mcg",
    "milligram": "mg",
    "gram": "g",
    "kilogram": "kg",
    "milliliter": "mL",
    "liter": "L",
    "hour": "h",
    "minute": "min",
    "second": "s",
    "day": "d",
}


def _to_quantity(text: object, field: str, expected: str) -> Any:
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError(field, text, expected, "write a number and a unit")
    if isinstance(text, int | float):
        raise QuantityError(field, text, expected, "a unit is required")
    try:
        q = ureg.Quantity(text.strip())
    except (pint.errors.PintError, ValueError, AttributeError, TypeError, SyntaxError) as exc:
        raise QuantityError(field, text, expected, f"cannot parse: {exc}") from exc
    if not isinstance(q, pint.Quantity) or not q.units._units:
        raise QuantityError(field, text, expected, "a unit is required")
    if not math.isfinite(float(q.magnitude)):
        raise QuantityError(field, text, expected, "not a finite number")
    return q


def _split_dims(q: Any) -> tuple[Any, Any]:
    num = ureg.Quantity(1)
    den = ureg.Quantity(1)
    for name, exp in q.units._units.items():
        unit = ureg.Quantity(1, name)
        if exp > 0:
            num = num * unit**exp
        else:
            den = den * unit ** (-exp)
    return num.dimensionality, den.dimensionality


def _matches(q: Any, kind: Kind) -> bool:
    spec = _SPECS[kind]
    return _split_dims(q) == (spec.numerator, spec.denominator)


def parse(text: object, kind: Kind, field: str) -> float:
    """Parse `text` as `kind` and return it in the kind's canonical unit (`kind.value`)."""
    spec = _SPECS[kind]
    q = _to_quantity(text, field, spec.expected)
    if not _matches(q, kind):
        raise QuantityError(field, text, spec.expected, f"got {format_unit(q)}")
    return float(q.to(spec.canonical).magnitude)


def format_unit(q: Any) -> str:
    """Compact clinical spelling of a quantity's unit: 'mg/kg/h', 'mcg/kg/min', 'mL/h'."""
    num = [_SYMBOLS.get(n, n) for n, e in q.units._units.items() if e > 0]
    den = [_SYMBOLS.get(n, n) for n, e in q.units._units.items() if e < 0]
    # weight before time in the denominator, as clinicians write it
    den.sort(key=lambda s: 0 if s in ("kg", "g", "mg", "mcg") else 1)
    return "/".join(["·".join(num) or "1", *den])


class RateKind(StrEnum):
    """How an infusion rate is expressed; decides the conversion to mL/h (dosing.md §1)."""

    PER_WEIGHT = "mg/kg/h"
    ABSOLUTE = "mg/h"
    VOLUMETRIC = "mL/h"


@dataclass(frozen=True)
class DoseRate:
    """A rate as written (`value` in `unit`, for display) and canonical (`canonical` in kind)."""

    kind: RateKind
    canonical: float
    value: float
    unit: str

    def to_ml_per_h(self, *, weight_kg: float, concentration_mg_per_ml: float) -> float:
        """rate_ml_per_h = dose_mg_per_kg_per_h × weight_kg / concentration_mg_per_ml."""
        if self.kind is RateKind.PER_WEIGHT:
            return self.canonical * weight_kg / concentration_mg_per_ml
        if self.kind is RateKind.ABSOLUTE:
            return self.canonical / concentration_mg_per_ml
        return self.canonical

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


_RATE_KINDS = {
    RateKind.PER_WEIGHT: Kind.DOSE_RATE_PER_WEIGHT,
    RateKind.ABSOLUTE: Kind.DOSE_RATE,
    RateKind.VOLUMETRIC: Kind.VOLUME_RATE,
}


def parse_dose_rate(
    text: object, field: str, *, allowed: tuple[RateKind, ...] = tuple(RateKind)
) -> DoseRate:
    """Parse a rate in any of the `allowed` kinds (mg/kg/h, mg/h, mL/h and their spellings)."""
    expected = " or ".join(f"a rate in {k.value}" for k in allowed)
    q = _to_quantity(text, field, expected)
    for rate_kind in allowed:
        kind = _RATE_KINDS[rate_kind]
        if _matches(q, kind):
            return DoseRate(
                kind=rate_kind,
                canonical=float(q.to(kind.value).magnitude),
                value=float(q.magnitude),
                unit=format_unit(q),
            )
    raise QuantityError(field, text, expected, f"got {format_unit(q)}")
