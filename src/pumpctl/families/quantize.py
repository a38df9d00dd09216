"""Quantization: the one owner of "what number will this pump actually be sent".

A pump accepts a volume or a rate only in its own number format (NE-1000: 4 digits and a point,
units that follow the syringe; Masterflex: hundredths of a revolution and tenths of an rpm; ...).
The compiled plan, `pumpctl check`, the driver and resume must all agree on that number, so each
family provides one `Quantizer` for a configured container and every layer asks it.

Direction is part of the contract: a volume or rate is only ever rounded DOWN, so a pump is never
sent more than the plan says (a shorter loading dose or a lower rate can only under-dose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["FixedStepQuantizer", "NotRepresentable", "Quantizer", "WireQuantizer", "floor_to"]


class NotRepresentable(ValueError):
    """The pump has no value at or below the request that is > 0 (or the request is above its
    largest value). Carries the pump's step so a refusal can name it."""

    def __init__(
        self,
        what: str,
        value: float,
        unit: str,
        step: float,
        detail: str = "",
        *,
        largest: float | None = None,
    ) -> None:
        self.what = what
        self.value = value
        self.unit = unit
        self.step = step
        #: the largest value the pump takes, when the request is above it (None: below a step)
        self.largest = largest
        super().__init__(
            detail
            or f"{what} {value:g} {unit} cannot be expressed on this pump (step {step:g} {unit})"
        )


@runtime_checkable
class Quantizer(Protocol):
    """Rounding rules of one pump family for one configured container (syringe or tubing)."""

    def floor_volume_ml(self, volume_ml: float) -> float:
        """The largest target volume the pump accepts that is <= `volume_ml`, in mL.

        Raises `NotRepresentable` when no such value is > 0 or `volume_ml` is above the largest
        target the pump accepts."""
        ...

    def floor_rate_ml_per_h(self, rate_ml_per_h: float) -> float:
        """The largest rate the pump can be set to that is <= `rate_ml_per_h`, in mL/h.

        Raises `NotRepresentable` when no such value is > 0 or the rate is above the format's
        largest value. Range limits of the motor are the pump's capabilities, not quantization."""
        ...

    def volume_step_ml(self, volume_ml: float) -> float:
        """The pump's volume step near `volume_ml` (its counter's resolution there), mL."""
        ...

    def rate_step_ml_per_h(self, rate_ml_per_h: float) -> float:
        """The pump's rate step near `rate_ml_per_h`, mL/h."""
        ...


@runtime_checkable
class WireQuantizer(Quantizer, Protocol):
    """A quantizer that can also say which commands its driver sends (`pumpctl check` shows
    them: what it prints is what the pump is sent)."""

    def wire_volume(self, volume_ml: float | None) -> str:
        """The target-volume command(s) for `volume_ml` (None: a continuous run)."""
        ...

    def wire_rate(self, rate_ml_per_h: float) -> str:
        """The rate command for `rate_ml_per_h` (with the pump stopped)."""
        ...


def floor_to(value: float, step: float) -> float:
    """Round down to a multiple of `step`; within 1e-6 step of the next multiple counts as on it.

    The tolerance absorbs float noise (0.35 × 70 = 24.499999999999996) and is a millionth of the
    step, so it can never round a dose up by anything a pump could deliver.
    """
    n = math.floor(value / step + 1e-6)
    decimals = max(0, -math.floor(math.log10(step))) + 3
    return round(n * step, decimals)


@dataclass(frozen=True)
class FixedStepQuantizer:
    """Fixed steps (default 1 µL and 1 µL/h): the plan's rules when no pump is named yet."""

    volume_ml: float = 0.001
    rate_ml_per_h: float = 0.001

    def floor_volume_ml(self, volume_ml: float) -> float:
        v = floor_to(volume_ml, self.volume_ml)
        if v <= 0:
            raise NotRepresentable("volume", volume_ml, "mL", self.volume_ml)
        return v

    def floor_rate_ml_per_h(self, rate_ml_per_h: float) -> float:
        r = floor_to(rate_ml_per_h, self.rate_ml_per_h)
        if r <= 0:
            raise NotRepresentable("rate", rate_ml_per_h, "mL/h", self.rate_ml_per_h)
        return r

    def volume_step_ml(self, volume_ml: float) -> float:
        return self.volume_ml

    def rate_step_ml_per_h(self, rate_ml_per_h: float) -> float:
        return self.rate_ml_per_h
