"""Harvard Apparatus 11 Elite emulation: the model facts (ranges, units, error bodies,
command names), the quantity grammar (`0.5 ml/min`, `m/m`), and one pump's state with what
depends on that pump alone (its target, its halt, its `status` and `crate` texts). Pure data
and text; the link that answers requests is `harvard_elite`, and the KD Scientific Legato
profile (`kds_legato`) builds on both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from enum import Enum

from pumpctl.simulator.devices.base import PumpSnapshot
from pumpctl.simulator.physics import SyringePhysics

__all__ = [
    "BAUD_RATES",
    "COMMANDS",
    "DEFAULT_DIAMETER_MM",
    "DEFAULT_SYRINGE_ML",
    "DIAMETER_RANGE_MM",
    "ERRORS",
    "FORCE_RANGE_PERCENT",
    "LOOKUP",
    "MAX_LINE_BYTES",
    "MAX_RATE_REF_ML_PER_MIN",
    "METRICS",
    "MIN_RATE_REF_ML_PER_MIN",
    "QUANTITY",
    "REFERENCE_DIAMETER_MM",
    "REQUEST",
    "SYRINGE_RANGE_ML",
    "TIME_ALIASES",
    "TIME_UNITS_MIN",
    "VERSION",
    "VOLUME_UNITS_ML",
    "Pump",
    "PumpError",
    "Rate",
    "State",
    "format_quantity",
    "parse_quantity",
    "to_decimal",
]

# --------------------------------------------------------------------------- model facts (data)

VERSION = "11 ELITE I/W Single 3.0.4"
MAX_LINE_BYTES = 256
BAUD_RATES = (9600, 19200, 38400, 57600, 115200)
DIAMETER_RANGE_MM = (Decimal("0.1"), Decimal("33"))
SYRINGE_RANGE_ML = (Decimal("0.0005"), Decimal("60"))
FORCE_RANGE_PERCENT = (1, 100)
# Rate limits follow plunger speed, scaled by bore area from the reference syringe: with the
# default 14.5 mm bore `irate lim` answers the notes' example `1.061 nl/min to 25.023 ml/min`.
REFERENCE_DIAMETER_MM = Decimal("14.5")
MIN_RATE_REF_ML_PER_MIN = Decimal("0.000001061")
MAX_RATE_REF_ML_PER_MIN = Decimal("25.023")
DEFAULT_DIAMETER_MM = REFERENCE_DIAMETER_MM
DEFAULT_SYRINGE_ML = Decimal("10")
VOLUME_UNITS_ML = {"ml": Decimal(1), "ul": Decimal("1e-3"), "nl": Decimal("1e-6"), "pl": Decimal("1e-9")}  # fmt: skip
TIME_UNITS_MIN = {"min": Decimal(1), "hr": Decimal(60), "sec": Decimal(1) / Decimal(60)}
TIME_ALIASES = {"m": "min", "min": "min", "h": "hr", "hr": "hr", "s": "sec", "sec": "sec"}
ERRORS = {
    "command": "Command error",  # not possible now (e.g. a new diameter while running)
    "unknown": "Unknown command",
    "argument": "Argument error",
    "range": "Out of range",
}
COMMANDS = (
    "address", "baud", "civolume", "crate", "ctvolume", "cvolume", "cwvolume", "diameter",
    "force", "irate", "irun", "ivolume", "metrics", "poll", "rrun", "run", "status", "stp",
    "svolume", "tvolume", "ver", "wrate", "wrun", "wvolume",
)  # fmt: skip
LOOKUP = {name: name for name in COMMANDS} | {name[:4]: name for name in COMMANDS}
METRICS = (
    ("Pump type", "Pump 11"),
    ("Pump type string", "11 ELITE I/W Single"),
    ("Min syringe size", "0.1 mm"),
    ("Max syringe size", "33 mm"),
    ("Direction", "Infuse/withdraw"),
    ("Limit switches", "No"),
)
REQUEST = re.compile(r"\s*(?:(\d{1,2}):?)?\s*(\S*)\s*(.*?)\s*", re.S)
QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z/]*)")


def parse_quantity(text: str, *, rate: bool) -> tuple[Decimal, str | None, str | None] | None:
    """`"0.5000000000 m/m"` -> (0.5, "ml", "min"); `"10 m"` -> (10, "ml", None); None if bad.

    Any number of decimals and an exponent are accepted; the unit is optional (the caller then
    keeps the current one). A rate needs `vol/time`, a volume just `vol`.
    """
    m = QUANTITY.fullmatch(text.strip())
    if m is None:
        return None
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:
        return None
    unit = m.group(2).lower()
    if not unit:
        return value, None, None
    vol, _, time = unit.partition("/")
    vol = vol if vol in VOLUME_UNITS_ML else vol + "l" if vol + "l" in VOLUME_UNITS_ML else ""
    if not vol or bool(time) != rate or (rate and time not in TIME_ALIASES):
        return None
    return value, vol, TIME_ALIASES[time] if rate else None


def format_quantity(
    ml: Decimal, per: str = "", *, rounding: str = ROUND_DOWN, decimals: int = 3
) -> str:
    """`ml` in the largest unit that keeps it >= 1, `decimals` decimals at most: `"25.023
    ml/min"`, `"1.061 nl/min"`, `"100 ml"`, `"0 ml"` (`per` = "/min", "/hr", "/sec" or "")."""
    for unit, size in VOLUME_UNITS_ML.items():
        if ml >= size or unit == "pl":
            number = (ml / size).quantize(Decimal(1).scaleb(-decimals), rounding=rounding)
            text = format(number.normalize(), "f") if number else "0"
            return f"{text} {unit if number else 'ml'}{per}"
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- one pump


class State(Enum):
    IDLE = ":"
    RUNNING = "run"  # `>` or `<` by direction
    STALLED = "*"
    TARGET = "T*"


class PumpError(Exception):
    """An error body (one of `ERRORS`)."""


@dataclass
class Rate:
    ml_per_min: Decimal = Decimal(0)
    time: str = "min"  # the time unit the host set it in (queries answer in it)

    def text(self, decimals: int = 3) -> str:
        per = "/" + self.time
        return format_quantity(self.ml_per_min * TIME_UNITS_MIN[self.time], per, decimals=decimals)


@dataclass
class Pump:
    address: int
    physics: SyringePhysics
    diameter_mm: Decimal = DEFAULT_DIAMETER_MM
    syringe_ml: Decimal = DEFAULT_SYRINGE_ML
    irate: Rate = field(default_factory=Rate)
    wrate: Rate = field(default_factory=Rate)
    target_ml: Decimal | None = None
    infuse: bool = True
    force_percent: int = 100
    state: State = State.IDLE
    alarm_reason: str | None = "reset"
    i_base_ml: float = 0.0
    w_base_ml: float = 0.0
    run_started_s: float = 0.0

    @property
    def prompt(self) -> str:
        if self.state is State.RUNNING:
            return ">" if self.infuse else "<"
        return str(self.state.value)

    def rate(self) -> Rate:
        return self.irate if self.infuse else self.wrate

    def snapshot(self) -> PumpSnapshot:
        """The ground truth (what the plunger really did), for tests and `--state`."""
        ph = self.physics
        rate = ph.rate_ml_per_h if ph.moving else float(self.rate().ml_per_min * 60)
        return PumpSnapshot(
            running=self.state is State.RUNNING,
            direction="infuse" if self.infuse else "withdraw",
            rate_ml_per_h=round(rate, 9),
            delivered_ml=round(ph.pushed_net_ml, 9),
            target_ml=float(self.target_ml) if self.target_ml is not None else None,
            alarm=self.alarm_reason,
        )

    def counter_ml(self, *, infuse: bool) -> float:
        if infuse:
            return max(0.0, self.physics.infused_ml - self.i_base_ml)
        return max(0.0, self.physics.withdrawn_ml - self.w_base_ml)

    def travel_left_ml(self) -> float | None:
        """Travel left to the target: targets count against the direction's volume counter."""
        if self.target_ml is None:
            return None
        return max(0.0, float(self.target_ml) - self.counter_ml(infuse=self.infuse))

    def set_target(self, ml: Decimal | None) -> None:
        """A new target (or none): a reached one's `T*` ends, a run goes on towards it."""
        self.target_ml = ml
        if self.state is State.TARGET:
            self.state = State.IDLE
        ph = self.physics
        if ph.moving:  # the run goes on towards the new target (or none)
            ph.start(ph.rate_ml_per_h, infuse=self.infuse, limit_ml=self.travel_left_ml())

    def halt(self, state: State) -> None:
        """The motor stops; `state` says how the prompt shows it (idle, target reached)."""
        self.physics.stop()
        self.state = state

    def status_text(self, now_s: float) -> str:
        """`status` (PHD Ultra): rate fl/s, run time s, volume fl (this direction), then flags."""
        rate_fl_s = round(self.physics.rate_ml_per_h / 3600 * 1e12)
        volume_fl = round(self.counter_ml(infuse=self.infuse) * 1e12)
        seconds = round(now_s - self.run_started_s) if self.state is State.RUNNING else 0
        flags = (
            ("i" if self.infuse else "w")
            + "."
            + ("S" if self.state is State.STALLED else ".")
            + "."
            + ("I" if self.infuse else "W")
            + ("T" if self.state is State.TARGET else ".")
        )
        return f"{rate_fl_s} {seconds} {volume_fl} {flags}"

    def crate_text(self, decimals: int) -> str:
        """`crate`: the PHD Ultra manual's form while the motor turns, `Infusing at 3 ml/min` /
        `Withdrawing at 500 ul/min` (flowchem's Elite11 splits it at " at "; its docstring
        quotes the manual). The manual calls the reply valid only in dynamic situations.
        Emulation choice: idle, a bare `0 ml/min` (flowchem never asks then)."""
        time = self.rate().time
        if not self.physics.moving:
            return format_quantity(Decimal(0), "/" + time, decimals=decimals)
        ml_per_min = to_decimal(self.physics.rate_ml_per_h / 60)
        quantity = format_quantity(ml_per_min * TIME_UNITS_MIN[time], "/" + time, decimals=decimals)
        return f"{'Infusing' if self.physics.infusing else 'Withdrawing'} at {quantity}"


def to_decimal(value: float) -> Decimal:
    d = Decimal(round(value, 12)).quantize(Decimal("1e-12"))
    return d if d > 0 else Decimal(0)
