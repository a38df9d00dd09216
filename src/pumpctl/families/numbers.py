"""Decimal helpers the family quantizers share: round DOWN into a pump's number format.

Every pump writes numbers in its own format (4 digits and a point, 5 characters, 6 significant
digits, fixed decimals). These helpers floor a value into such a format exactly, in decimal
arithmetic, so a value the format can hold comes out unchanged and one it cannot comes out at
the largest representable value below it.

The floor forgives float noise: a value within a millionth of a step below a representable
number counts as that number (0.35 × 70 = 24.499999999999996 is 24.5). A millionth of a step is
far below anything a pump can deliver, so this never rounds a dose up in practice.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

__all__ = [
    "TOLERANCE",
    "decimal",
    "floor_digits",
    "floor_places",
    "floor_significant",
    "floor_width",
    "nearest_digits",
    "plain",
]

#: fraction of a step by which a value may fall short of a representable number and still be it
TOLERANCE = Decimal("0.000001")


def decimal(value: float) -> Decimal:
    """The float as the decimal it prints as (`repr`), not its binary expansion; finite, >= 0."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"pump numbers are finite and >= 0, got {value}")
    return Decimal(repr(float(value)))


def floor_places(value: Decimal, places: int) -> Decimal:
    """`value` rounded down to `places` decimals (negative: tens, hundreds), with `TOLERANCE`."""
    scaled = value.scaleb(places) + TOLERANCE
    return scaled.to_integral_value(rounding=ROUND_FLOOR).scaleb(-places)


def plain(number: Decimal) -> str:
    """Fixed-point text without trailing zeros: `12.470` -> `12.47`, `10.00` -> `10`."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _below(value: Decimal, bound: Decimal) -> None:
    if value >= bound:
        raise ValueError(f"{value:g} does not fit the number format (below {bound:g})")


def floor_digits(value: Decimal, max_digits: int, max_decimals: int) -> Decimal:
    """Largest number <= `value` with at most `max_digits` digits of which at most
    `max_decimals` after the point (NE-1000: 4 and 3). ValueError when `value` is too large."""
    _below(value, Decimal(10) ** max_digits)
    for places in range(max_decimals, -1, -1):
        q = floor_places(value, places)
        if q < Decimal(10) ** (max_digits - places):
            return q
    raise ValueError(f"{plain(value)} does not fit {max_digits} digits")


def nearest_digits(value: Decimal, max_digits: int, max_decimals: int) -> Decimal:
    """Like `floor_digits`, to the nearest (ties to even): for settings that are not a dose,
    such as a syringe diameter."""
    _below(value, Decimal(10) ** max_digits)
    for places in range(max_decimals, -1, -1):
        q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        if q < Decimal(10) ** (max_digits - places):
            return q
    raise ValueError(f"{plain(value)} does not fit {max_digits} digits")


def floor_width(value: Decimal, width: int) -> Decimal:
    """Largest number <= `value` written in at most `width` characters, point included, with
    as many decimals as fit (Harvard pump chain: 5). ValueError when `value` is too large."""
    _below(value, Decimal(10) ** width)
    for places in range(width - 2, -1, -1):
        q = floor_places(value, places)
        if len(format(q, "f")) <= width:
            return q
    raise ValueError(f"{plain(value)} does not fit {width} characters")


def floor_significant(value: Decimal, digits: int) -> Decimal:
    """Largest number <= `value` with at most `digits` significant digits (11 Elite: 6)."""
    if value == 0:
        return value
    return floor_places(value, digits - 1 - value.adjusted())
