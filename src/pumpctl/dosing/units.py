"""Parsing dose quantities into canonical floats (mg, kg, mL, mL/h, s).

Programs and libraries are written the way clinicians write ("0.35 mg/kg", "10 mcg/kg/min",
"0.2 mg/kg/hr", "26.7 mm", "2 d"). A quantity is a number and a unit and nothing else: a strict
grammar (`QUANTITY_GRAMMAR`) checks the text first, so the units library (pint) never evaluates
an expression (`10**400 mL`, `1/0 mL`, nested brackets) and a typo cannot become arithmetic
(`1,5 mL` is not 15 mL). pint then only converts a finite number between units from an
allow-list. Each kind has a sanity range; NaN, infinity and absurd magnitudes are refused.

A kind is matched on the numerator and denominator separately, not on the reduced dimension:
pint reduces mg/kg to "dimensionless", which would let a bare number or "ppm" pass as a dose.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

import pint

__all__ = [
    "QUANTITY_GRAMMAR",
    "UNIT_SPELLINGS",
    "DoseRate",
    "Kind",
    "QuantityError",
    "RateKind",
    "format_unit",
    "parse",
    "parse_dose_rate",
    "plain_number",
    "ureg",
]

#: the one registry of the process (pint quantities from different registries do not mix)
ureg: Any = pint.UnitRegistry()

_MASS = ureg.Quantity("1 mg").dimensionality
_VOLUME = ureg.Quantity("1 mL").dimensionality
_LENGTH = ureg.Quantity("1 mm").dimensionality
_TIME = ureg.Quantity("1 s").dimensionality
_NONE = ureg.Quantity("1").dimensionality

#: every unit spelling a quantity may use, mapped to the pint unit it means. Pounds are refused
#: on purpose (kg/lb mix-ups are a classic weight-based dosing error); so is a bare "l" (reads
#: as 1) and "cc".
UNIT_SPELLINGS: dict[str, str] = {
    **dict.fromkeys(("mg",), "milligram"),
    **dict.fromkeys(("mcg", "µg", "μg", "ug"), "microgram"),
    **dict.fromkeys(("g",), "gram"),
    **dict.fromkeys(("kg",), "kilogram"),
    **dict.fromkeys(("mL", "ml"), "milliliter"),
    **dict.fromkeys(("uL", "ul", "µL", "µl", "μL", "μl"), "microliter"),
    **dict.fromkeys(("L",), "liter"),
    **dict.fromkeys(("mm",), "millimeter"),
    **dict.fromkeys(("s", "sec", "second", "seconds"), "second"),
    **dict.fromkeys(("min", "minute", "minutes"), "minute"),
    **dict.fromkeys(("h", "hr", "hour", "hours"), "hour"),
    **dict.fromkeys(("d", "day", "days"), "day"),
}

_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?"
_ATOM = r"[A-Za-zµμ]+"
#: a quantity: optional sign, decimal number (ASCII digits, optional exponent), optional space,
#: a unit of one to three allow-listed spellings joined by "/"
QUANTITY_GRAMMAR = re.compile(rf"\s*(?P<number>{_NUMBER}) ?(?P<unit>{_ATOM}(?:/{_ATOM}){{0,2}})\s*")
_MAX_TEXT = 64  # characters; the longest sane quantity ("0.000123 mcg/kg/min") is far shorter
#: magnitudes below this (other than 0) are typing errors, not doses, in any canonical unit
_MIN_NONZERO = 1e-9


class QuantityError(ValueError):
    """A quantity that does not parse or has the wrong kind; names field, value and expectation.

    `reason` is the message without the field, for callers that name the field themselves
    (pydantic's location is the full dotted path)."""

    def __init__(
        self, field: str, value: object, expected: str, detail: str = "", *, shown: str = ""
    ) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        self.reason = f"{shown or repr(value)} is not {expected}" + (
            f" ({detail})" if detail else ""
        )
        super().__init__(f"{field}: {self.reason}")


@dataclass(frozen=True)
class _KindSpec:
    numerator: Any
    denominator: Any
    canonical: str
    expected: str
    units: str  # the accepted spellings, for the error message
    max_value: float  # sanity ceiling in the canonical unit


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
    #: a predicted (plasma or effect-site) concentration: µg/mL = mg/L, as PK models report it
    PLASMA_CONCENTRATION = "ug/mL"


_MASSES = "mg, mcg (µg) or g"
_TIMES = "s, min, h or d"
_SPECS: dict[Kind, _KindSpec] = {
    Kind.MASS: _KindSpec(_MASS, _NONE, "mg", "a mass such as '25 mg'", _MASSES, 1e6),
    Kind.WEIGHT: _KindSpec(_MASS, _NONE, "kg", "a body weight such as '70 kg'", "kg or g", 2000.0),
    Kind.VOLUME: _KindSpec(
        _VOLUME, _NONE, "mL", "a volume such as '56 mL'", "mL, uL (µL) or L", 1e5
    ),
    # generous ceilings: a pump's own ranges (check --model) name the physical limits better
    Kind.LENGTH: _KindSpec(_LENGTH, _NONE, "mm", "a length such as '26.7 mm'", "mm", 1e4),
    Kind.TIME: _KindSpec(
        _TIME, _NONE, "s", "a duration such as '10 min', '4 h' or '2 d'", _TIMES, 366 * 86400.0
    ),
    Kind.CONCENTRATION: _KindSpec(
        _MASS, _VOLUME, "mg/mL", "a concentration such as '1 mg/mL'", "mg/mL or mcg/mL", 1000.0
    ),
    Kind.PLASMA_CONCENTRATION: _KindSpec(
        _MASS,
        _VOLUME,
        "ug/mL",
        "a plasma concentration such as '0.3 ug/mL'",
        "ug/mL (mcg/mL, µg/mL) or mg/L",
        1000.0,
    ),
    Kind.DOSE_PER_WEIGHT: _KindSpec(
        _MASS,
        _MASS,
        "mg/kg",
        "a dose per body weight such as '0.35 mg/kg' or '500 mcg/kg'",
        "mg/kg or mcg/kg",
        1000.0,
    ),
    Kind.DOSE_RATE_PER_WEIGHT: _KindSpec(
        _MASS,
        _MASS * _TIME,
        "mg/kg/h",
        "a dose rate per body weight such as '0.2 mg/kg/h' or '10 mcg/kg/min'",
        "mg/kg/h, mg/kg/min, mcg/kg/h or mcg/kg/min",
        1e5,
    ),
    Kind.DOSE_RATE_PER_WEIGHT_PER_MIN: _KindSpec(
        _MASS,
        _MASS * _TIME,
        "mg/kg/min",
        "a dose rate per body weight such as '0.5 mg/kg/min'",
        "mg/kg/min, mg/kg/h or mcg/kg/min",
        1e4,
    ),
    Kind.DOSE_RATE: _KindSpec(
        _MASS, _TIME, "mg/h", "a dose rate such as '20 mg/h'", "mg/h, mg/min or mcg/min", 1e6
    ),
    Kind.VOLUME_RATE: _KindSpec(
        _VOLUME, _TIME, "mL/h", "a volumetric rate such as '14 mL/h'", "mL/h or mL/min", 1e5
    ),
}

#: ISMP: write "mcg", never "µg" (misread as "mg"); pint's long names mapped to short symbols
_SYMBOLS = {
    "microgram": "mcg",
    "milligram": "mg",
    "gram": "g",
    "kilogram": "kg",
    "milliliter": "mL",
    "microliter": "uL",
    "liter": "L",
    "millimeter": "mm",
    "hour": "h",
    "minute": "min",
    "second": "s",
    "day": "d",
}


def _shown(text: str) -> str:
    """`text` as quoted in a message: long inputs are cut, so an error stays one short line."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _grammar_error(text: str, field: str, spec: _KindSpec) -> QuantityError:
    """Why `text` is not a quantity, in the terms of the grammar (never pint's)."""
    units = f"units: {spec.units}"
    m = re.fullmatch(rf"\s*{_NUMBER} ?(?P<unit>{_ATOM}(?:/{_ATOM})*)\s*", text)
    unknown = [a for a in m["unit"].split("/") if a not in UNIT_SPELLINGS] if m else []
    if unknown:
        detail = f"unknown unit {unknown[0]!r}; {units}"
    elif m is not None:
        detail = f"a unit has at most three parts (mg/kg/h); {units}"
    elif re.fullmatch(rf"\s*{_NUMBER}\s*", text):
        detail = f"a unit is required; {units}"
    elif re.match(r"\s*[+-]?(nan|inf)", text, re.IGNORECASE):
        detail = "not a finite number"
    elif re.match(r"\s*[+-]?[0-9]+,[0-9]", text):
        detail = f"use a decimal point, not a comma; {units}"
    else:
        detail = f"write a number and a unit, nothing else; {units}"
    return QuantityError(field, text, spec.expected, detail, shown=_shown(text))


def _to_quantity(text: object, field: str, spec: _KindSpec) -> Any:
    """`text` checked against the grammar and the allow-list, then handed to pint."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError(
            field, text, spec.expected, f"write a number and a unit; units: {spec.units}"
        )
    if isinstance(text, int | float):
        raise QuantityError(field, text, spec.expected, f"a unit is required; units: {spec.units}")
    if len(text) > _MAX_TEXT:
        raise QuantityError(
            field, text, spec.expected, f"longer than {_MAX_TEXT} characters", shown=_shown(text)
        )
    m = QUANTITY_GRAMMAR.fullmatch(text)
    if m is None or any(a not in UNIT_SPELLINGS for a in m["unit"].split("/")):
        raise _grammar_error(text, field, spec)
    magnitude = float(m["number"])
    unit = "/".join(UNIT_SPELLINGS[a] for a in m["unit"].split("/"))
    return ureg.Quantity(magnitude, unit)


def plain_number(value: object, field: str, expected: str) -> float:
    """A number without a unit (a calibration such as mL per revolution): a YAML number, or
    text in the quantity grammar's number form (YAML 1.1 reads `6e-05` as text). Booleans,
    NaN, infinity and anything else are refused naming the field."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(field, value, expected, "write a plain number")
    if isinstance(value, str):
        if not re.fullmatch(rf"\s*{_NUMBER}\s*", value):
            raise QuantityError(field, value, expected, "write a plain number", shown=_shown(value))
        value = float(value)
    number = float(value)
    if not math.isfinite(number):
        raise QuantityError(field, value, expected, "not a finite number")
    return number


def _check_range(q: Any, text: object, field: str, spec: _KindSpec) -> float:
    """The canonical value, refused when not finite or outside the kind's sanity range."""
    value = float(q.to(spec.canonical).magnitude)
    if not math.isfinite(value) or abs(value) > spec.max_value or 0 < abs(value) < _MIN_NONZERO:
        raise QuantityError(
            field,
            text,
            spec.expected,
            f"out of range: allowed {_MIN_NONZERO:g} to {spec.max_value:g} {spec.canonical}",
        )
    return value


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
    if type(text) is str:
        try:
            return _parse_text(text, kind)
        except QuantityError:
            pass  # refused: said again below, naming the field
    return _parse(text, kind, field)


@lru_cache(maxsize=4096)
def _parse_text(text: str, kind: Kind) -> float:
    """Programs and libraries repeat the same few hundred quantities, and pint takes about
    0.2 ms to parse one; a refusal is not kept (it names its field)."""
    return _parse(text, kind, "")


def _parse(text: object, kind: Kind, field: str) -> float:
    spec = _SPECS[kind]
    q = _to_quantity(text, field, spec)
    if not _matches(q, kind):
        raise QuantityError(field, text, spec.expected, f"got {format_unit(q)}; use {spec.units}")
    return _check_range(q, text, field, spec)


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
    specs = [_SPECS[_RATE_KINDS[k]] for k in allowed]
    names = [k.value for k in allowed]
    expected = "a rate in " + (
        f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
    )
    units = "; ".join(s.units for s in specs)
    q = _to_quantity(text, field, replace(specs[0], expected=expected, units=units))
    for rate_kind, spec in zip(allowed, specs, strict=True):
        if _matches(q, _RATE_KINDS[rate_kind]):
            return DoseRate(
                kind=rate_kind,
                canonical=_check_range(q, text, field, replace(spec, expected=expected)),
                value=float(q.magnitude),
                unit=format_unit(q),
            )
    raise QuantityError(field, text, expected, f"got {format_unit(q)}; use {units}")
