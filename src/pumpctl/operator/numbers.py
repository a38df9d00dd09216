"""Numbers as people read them in tables and lines."""

from __future__ import annotations

__all__ = ["signed"]


def signed(value: float, decimals: int = 3) -> str:
    """`+0.250`, `-1.000`: a difference with its sign. A value that rounds to zero at this
    precision is `+0.000`, never `-0.000` (float noise is not a shortfall)."""
    rounded = round(value, decimals)
    return f"{rounded if rounded != 0 else 0.0:+.{decimals}f}"
