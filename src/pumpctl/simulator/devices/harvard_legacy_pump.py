"""One pump of the Harvard legacy chain: its state, its settings (and what SAV keeps), and the
reply error a command can end in. The link (`harvard_legacy`) parses lines and dispatches here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from pumpctl.families.harvard_legacy import SPEC as FAMILY
from pumpctl.simulator.devices.harvard_legacy_facts import (
    DEFAULT_DIAMETER_MM,
    RATE_COMMANDS_ML_PER_H,
    parse_number,
)
from pumpctl.simulator.physics import SyringePhysics

__all__ = ["Pump", "ReplyError", "Settings", "State", "number"]


class State(Enum):
    STOPPED = ":"
    RUNNING = "run"  # `>` or `<` by direction
    STALLED = "*"  # stall, empty or full syringe
    INTERRUPTED = "/*"  # PHD2000: stopped by STP (or a bare CR) while running


class ReplyError(Exception):
    """An error reply line: `?` (syntax), `NA` (not applicable now), `OOR` (out of range)."""


@dataclass
class Settings:
    """What a PHD2000 keeps in non-volatile memory after SAV (and restores at power-up)."""

    diameter_mm: Decimal = DEFAULT_DIAMETER_MM
    rate: Decimal = Decimal(0)
    rate_units: str = "MLH"
    refill: Decimal | None = None
    refill_units: str = "MLH"
    target_ml: Decimal | None = None
    infuse: bool = True
    mode: str = "PUMP"


@dataclass
class Pump:
    address: int
    phd: bool
    physics: SyringePhysics
    s: Settings = field(default_factory=Settings)
    saved: Settings = field(default_factory=Settings)
    state: State = State.STOPPED
    alarm_reason: str | None = "reset"  # latched for the snapshot until the next start
    vol_base_travel_ml: float = 0.0  # VOL counts plunger travel since RUN or CLV
    run_start_travel_ml: float = 0.0  # the target counts travel since RUN
    misc: dict[str, str] = field(default_factory=lambda: {"AF": "OFF", "PAR": "ON"})

    @property
    def prompt(self) -> str:
        if self.state is State.RUNNING:
            return ">" if self.s.infuse else "<"
        return "*" if self.state is not State.STOPPED else ":"

    def travel_ml(self) -> float:
        return self.physics.infused_ml + self.physics.withdrawn_ml

    def rate_ml_per_h(self, *, infuse: bool | None = None) -> Decimal:
        """The rate the pump runs at in a direction (a PHD2000 refills at RFR when one is set)."""
        s = self.s
        if not (s.infuse if infuse is None else infuse) and self.phd and s.refill is not None:
            return s.refill * RATE_COMMANDS_ML_PER_H[s.refill_units]
        return s.rate * RATE_COMMANDS_ML_PER_H[s.rate_units]

    def volume_unit_ml(self) -> Decimal:
        """mL per unit of MLT/VOL/TAR, a fact of the family spec: a Pump 11 follows its syringe
        ("by_diameter": µL up to 14.00 mm, as pumpy sends it), a PHD2000 is always in mL (Model
        22 manual). Not verified on hardware."""
        variant = FAMILY.variant("phd2000" if self.phd else "pump11")
        rule = variant.target_volume_unit or FAMILY.target_volume_unit
        if rule == "by_diameter":
            threshold = FAMILY.volume_units.threshold_mm if FAMILY.volume_units else 14.0
            rule = "ul" if self.s.diameter_mm <= Decimal(str(threshold)) else "ml"
        return Decimal("0.001") if rule == "ul" else Decimal(1)


def number(text: str) -> Decimal:
    """A number argument, or the `?` reply."""
    value = parse_number(text)
    if value is None:
        raise ReplyError("?")
    return value
