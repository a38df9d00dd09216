"""NE-1000 emulation: one pump's settings and the model facts behind them (bores, rate
limits, volume units), and the commands that only read or change one pump's settings and
counters (`DIA`, `RAT`, `VOL`, `DIR`, `SAF`, `CLD`, `DIS`, `*RESET`), and what starting and
stopping does to it. Kept apart from the link (`newera`), which frames, addresses, advances
time and alarms.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from pumpctl.simulator.devices.base import PumpSnapshot
from pumpctl.simulator.devices.newera_wire import format_number, parse_number
from pumpctl.simulator.physics import SyringePhysics

__all__ = [
    "DEFAULT_DIAMETER_MM",
    "MISC_SETTINGS",
    "SETTINGS",
    "Pump",
    "PumpError",
    "Run",
    "clear_volume",
    "dispensed",
    "max_rate_ml_per_h",
    "min_rate_ml_per_h",
    "misc_setting",
    "reload_syringe",
    "set_diameter",
    "set_direction",
    "set_rate",
    "set_safe_timeout",
    "set_volume",
    "snapshot_of",
    "syringe_capacity_ml",
]

# --------------------------------------------------------------------------- model facts (data)

VERSION = "NE1000V3.928"
SAFE_INTER_BYTE_GAP_S = 0.5  # a partial safe packet older than this is discarded
SAFE_TIMEOUT_MAX_S = 255
MAX_LINE_BYTES = 256  # a basic line longer than this is junk; dropped
DIAMETER_RANGE_MM = (Decimal("0.1"), Decimal("80.0"))
UL_MAX_DIAMETER_MM = Decimal("14.00")  # at or below: volume units µL, above: mL
# Rate limits follow plunger speed: NE-1000 literature gives 1699 mL/h max with a 60 mL BD
# syringe (26.59 mm) and 0.73 µL/h min with a 1 mL BD syringe (4.699 mm); scaled by bore area.
MAX_RATE_REF = (Decimal("26.59"), Decimal("1699"))  # (mm, mL/h)
MIN_RATE_REF = (Decimal("4.699"), Decimal("0.00073"))  # (mm, mL/h)
RATE_UNITS_ML_PER_H = {
    "UM": Decimal("0.06"),
    "MM": Decimal("60"),
    "UH": Decimal("0.001"),
    "MH": Decimal("1"),
}
VOLUME_UNITS_ML = {"UL": Decimal("0.001"), "ML": Decimal("1")}
VOLUME_UNITS_FLOAT = {k: float(v) for k, v in VOLUME_UNITS_ML.items()}  # DIS, every poll
# BD plastic syringes (inner diameter mm -> nominal capacity mL): DIA picks the loaded syringe.
SYRINGES = (
    (Decimal("4.699"), 1.0),
    (Decimal("8.585"), 3.0),
    (Decimal("11.99"), 5.0),
    (Decimal("14.43"), 10.0),
    (Decimal("19.05"), 20.0),
    (Decimal("21.59"), 30.0),
    (Decimal("26.59"), 60.0),
)
DEFAULT_DIAMETER_MM = Decimal("26.59")
DEFAULT_TRAVEL_MM = 60.0  # capacity of an unlisted bore = area × this travel
# Simple settings kept for completeness (query returns the value, set validates membership).
MISC_SETTINGS: dict[str, tuple[str, frozenset[str]]] = {
    "LN": ("0", frozenset({"0", "1"})),
    "AL": ("1", frozenset({"0", "1"})),
    "PF": ("0", frozenset({"0", "1"})),
    "BP": ("1", frozenset({"0", "1"})),
    "LOC": ("0", frozenset({"0", "1"})),
    "BUZ": ("0", frozenset({"0", "1"})),
    "DIN": ("0", frozenset({"0", "1"})),
    "ROM": ("0", frozenset({"0", "1"})),
    "OUT": ("0", frozenset({"0", "1"})),
    "TRG": ("FT", frozenset({"FT", "FH", "FL", "LE", "ST", "T2"})),
}


def _bore_area(mm: Decimal) -> Decimal:
    return mm * mm


def max_rate_ml_per_h(diameter_mm: Decimal) -> Decimal:
    ref_mm, ref_rate = MAX_RATE_REF
    return ref_rate * _bore_area(diameter_mm) / _bore_area(ref_mm)


def min_rate_ml_per_h(diameter_mm: Decimal) -> Decimal:
    ref_mm, ref_rate = MIN_RATE_REF
    return ref_rate * _bore_area(diameter_mm) / _bore_area(ref_mm)


def syringe_capacity_ml(diameter_mm: Decimal) -> float:
    for bore, capacity in SYRINGES:
        if abs(bore - diameter_mm) <= Decimal("0.3"):
            return capacity
    return float(diameter_mm) ** 2 * 3.141592653589793 / 4.0 * DEFAULT_TRAVEL_MM / 1000.0


# --------------------------------------------------------------------------- one pump


class Run(StrEnum):
    STOPPED = "S"
    PAUSED = "P"
    RUNNING = "run"  # I or W by direction
    PURGING = "X"


class PumpError(Exception):
    """A command error reply (`?NA`, `?OOR`, ...) after the status character."""


@dataclass
class Pump:
    address: int
    physics: SyringePhysics
    diameter_mm: Decimal = DEFAULT_DIAMETER_MM
    rate: Decimal = Decimal(0)
    rate_units: str = "MH"
    volume: Decimal = Decimal(0)
    volume_units: str = "ML"
    infuse: bool = True
    run: Run = Run.STOPPED
    alarm_pending: str | None = "R"  # alarm code not yet acknowledged; power-up reset
    alarm_reason: str | None = "reset"  # latched for the snapshot until the next start
    safe_timeout_s: int = 0
    watchdog_deadline_s: float | None = None
    inf_base_ml: float = 0.0
    wdr_base_ml: float = 0.0
    phase_start_travel_ml: float = 0.0
    misc: dict[str, str] = field(
        default_factory=lambda: {k: v[0] for k, v in MISC_SETTINGS.items()}
    )

    @property
    def safe(self) -> bool:
        return self.safe_timeout_s > 0

    @property
    def status(self) -> str:
        """The status character every reply starts with (a table: on Python 3.11 `Run.X` and
        `.value` are slow lookups through the enum class, and each reply reads this; keyed by
        the run state, then indexed by `infuse`, so no tuple is built and hashed)."""
        return _STATUS[self.run][self.infuse]

    def rate_ml_per_h(self) -> Decimal:
        return self.rate * RATE_UNITS_ML_PER_H[self.rate_units]

    def target_ml(self) -> Decimal:
        return self.volume * VOLUME_UNITS_ML[self.volume_units]

    def travel_ml(self) -> float:
        return self.physics.infused_ml + self.physics.withdrawn_ml

    def reset_program(self) -> None:
        self.rate, self.rate_units = Decimal(0), "MH"
        self.volume, self.infuse = Decimal(0), True
        self.volume_units = "UL" if self.diameter_mm <= UL_MAX_DIAMETER_MM else "ML"
        self.inf_base_ml, self.wdr_base_ml = self.physics.infused_ml, self.physics.withdrawn_ml

    # -- motion: what RUN, PUR and STP do to this pump alone (the link alarms and replies)

    def start(self) -> None:
        """`RUN`: towards the target (the rest of it after a pause), at the programmed rate."""
        if self.run in (Run.RUNNING, Run.PURGING):
            return  # Emulation choice: RUN while running is a no-op that reports the status
        rate = self.rate_ml_per_h()
        if not min_rate_ml_per_h(self.diameter_mm) <= rate <= max_rate_ml_per_h(self.diameter_mm):
            raise PumpError("OOR")
        if self.run is Run.STOPPED:
            self.phase_start_travel_ml = self.travel_ml()
        target = float(self.target_ml())
        limit = None
        if target:
            limit = max(0.0, target - (self.travel_ml() - self.phase_start_travel_ml))
        self.begin(rate, limit_ml=limit, run=Run.RUNNING)

    def begin(self, rate: Decimal, *, limit_ml: float | None, run: Run) -> None:
        if limit_ml == 0.0:
            self.run = Run.STOPPED
            return
        self.physics.start(float(rate), infuse=self.infuse, limit_ml=limit_ml)
        self.run = run
        self.alarm_reason = None

    def stop(self, run: Run) -> None:
        self.physics.stop()
        self.run = run

    def factory_reset(self) -> None:
        """`*RESET` (the motor already stopped): DIA, the program and the simple settings go
        back to the factory's."""
        self.diameter_mm = DEFAULT_DIAMETER_MM
        self.reset_program()
        self.misc = {k: v[0] for k, v in MISC_SETTINGS.items()}


# --------------------------------------------------------------------------- settings

#: status character by run state, then by infusing (False, True): I or W while running, else
#: the state's own
_STATUS = {
    run: ("W", "I") if run is Run.RUNNING else (str(run.value), str(run.value)) for run in Run
}

RATE_ARGS = re.compile(r"([CI]?)([\d.]*)(UM|MM|UH|MH)?")


def set_diameter(p: Pump, args: str) -> str:
    if not args:
        return format_number(p.diameter_mm)
    value = parse_number(args)
    if value is None or not DIAMETER_RANGE_MM[0] <= value <= DIAMETER_RANGE_MM[1]:
        raise PumpError("OOR")
    if p.run is not Run.STOPPED:
        raise PumpError("NA")
    target = p.target_ml()
    p.volume_units = "UL" if value <= UL_MAX_DIAMETER_MM else "ML"
    p.volume = target / VOLUME_UNITS_ML[p.volume_units]
    if value != p.diameter_mm:  # a different bore means a different (full) syringe
        capacity = syringe_capacity_ml(value)
        p.physics.load(float(value), capacity, capacity)
    p.diameter_mm = value
    return ""


def set_rate(p: Pump, args: str) -> str:
    m = RATE_ARGS.fullmatch(args)
    if m is None:
        raise PumpError("OOR")
    number, units = m.group(2), m.group(3)
    if not number and not units:
        return format_number(p.rate) + p.rate_units
    value = parse_number(number) if number else None
    if value is None:
        raise PumpError("OOR")
    units = units or p.rate_units
    if units != p.rate_units and p.run in (Run.RUNNING, Run.PURGING):
        raise PumpError("NA")  # units cannot change while pumping
    ml_per_h = value * RATE_UNITS_ML_PER_H[units]
    lo, hi = min_rate_ml_per_h(p.diameter_mm), max_rate_ml_per_h(p.diameter_mm)
    if not lo <= ml_per_h <= hi:
        raise PumpError("OOR")
    p.rate, p.rate_units = value, units
    if p.run is Run.RUNNING:
        p.physics.set_rate(float(ml_per_h))
    return ""


def set_volume(p: Pump, args: str) -> str:
    if not args:
        return format_number(p.volume) + p.volume_units
    if p.run in (Run.RUNNING, Run.PURGING):
        raise PumpError("NA")
    if args in VOLUME_UNITS_ML:
        ml = p.target_ml()
        p.volume_units = args
        p.volume = ml / VOLUME_UNITS_ML[args]
        return ""
    value = parse_number(args)
    if value is None:
        raise PumpError("OOR")
    p.volume = value
    return ""


def set_direction(p: Pump, args: str) -> str:
    if not args:
        return "INF" if p.infuse else "WDR"
    if args not in ("INF", "WDR", "REV"):
        raise PumpError("NA" if args == "STK" else "OOR")  # no TTL direction input here
    if p.run is Run.PURGING or (p.run is Run.RUNNING and p.volume != 0):
        raise PumpError("NA")  # while pumping only with a continuous (VOL 0) program
    p.infuse = (args == "INF") if args != "REV" else not p.infuse
    if p.run is Run.RUNNING:
        p.physics.set_direction(infuse=p.infuse)
    return ""


def misc_setting(p: Pump, name: str, args: str) -> str:
    """A simple setting kept for completeness: queried, or set to one of its values."""
    if not args:
        return p.misc[name]
    if args not in MISC_SETTINGS[name][1]:
        raise PumpError("OOR")
    p.misc[name] = args
    return ""


def clear_volume(p: Pump, args: str) -> str:
    """`CLD INF` / `CLD WDR`: the dispensed counter starts again from here."""
    if args == "INF":
        p.inf_base_ml = p.physics.infused_ml
    elif args == "WDR":
        p.wdr_base_ml = p.physics.withdrawn_ml
    else:
        raise PumpError("OOR")
    return ""


def dispensed(p: Pump) -> str:
    """`DIS`: the counters since `CLD`, in the volume units, as the pump prints them."""
    units = p.volume_units
    unit = VOLUME_UNITS_FLOAT[units]
    infused_ml, withdrawn_ml = p.physics.travel_counters_ml()
    inf = (infused_ml - p.inf_base_ml) / unit
    wdr = (withdrawn_ml - p.wdr_base_ml) / unit
    return f"I{format_number(inf)}W{format_number(wdr)}{units}"


def set_safe_timeout(p: Pump, args: str, *, now_s: float, safe: bool) -> str:
    """`SAF n`: the link watchdog's timeout, s (0: basic mode); `safe` says whether the packet
    that carried it was a valid safe one."""
    if not args:
        return str(p.safe_timeout_s)
    if not (args.isascii() and args.isdigit()) or int(args) > SAFE_TIMEOUT_MAX_S:
        raise PumpError("OOR")
    p.safe_timeout_s = int(args)
    # The watchdog arms at the first valid safe packet: this one, if it was one.
    p.watchdog_deadline_s = now_s + p.safe_timeout_s if safe and p.safe_timeout_s else None
    return ""


SETTINGS: dict[str, Callable[[Pump, str], str]] = {
    "DIA": set_diameter,
    "RAT": set_rate,
    "VOL": set_volume,
    "DIR": set_direction,
}


def reload_syringe(pump: Pump, remaining_ml: float) -> None:
    """The same syringe holding `remaining_ml` (capped at capacity); a running program keeps
    running toward the same target (the caller moves the physics, so an empty barrel alarms)."""
    physics = pump.physics
    contents = min(max(0.0, remaining_ml), physics.capacity_ml)
    run = pump.run
    physics.load(physics.inner_diameter_mm, physics.capacity_ml, contents)  # stops motion
    if run is Run.RUNNING:
        target = float(pump.target_ml())
        done = pump.travel_ml() - pump.phase_start_travel_ml
        limit = max(0.0, target - done) if target else None
        physics.start(float(pump.rate_ml_per_h()), infuse=pump.infuse, limit_ml=limit)
    elif run is Run.PURGING:
        physics.start(float(max_rate_ml_per_h(pump.diameter_mm)), infuse=pump.infuse)


def snapshot_of(p: Pump) -> PumpSnapshot:
    """The ground truth of one pump (what the plunger really did), for tests and `--state`."""
    moving = p.physics.moving
    rate = p.physics.rate_ml_per_h if moving else float(p.rate_ml_per_h())
    target = p.target_ml()
    return PumpSnapshot(
        running=p.run in (Run.RUNNING, Run.PURGING),
        direction="infuse" if p.infuse else "withdraw",
        rate_ml_per_h=round(rate, 9),
        delivered_ml=round(p.physics.pushed_net_ml, 9),
        target_ml=float(target) if target else None,
        alarm=p.alarm_reason,
    )
