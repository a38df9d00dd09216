"""Chemyx Fusion text-command emulation.

Its own codec, written from the Chemyx knowledge base (command names, `set units` codes, the
diameter range, the start/pause/stop texts) and from what host software and a terminal
transcript of a real pump show of the reply shape (the KB gives none). A request is
`[channel ]command[ args]` ended by CR (an LF after it is ignored; an LF alone is not a
terminator, KB); a reply is the echo, CR, the body lines each ending CR LF, then `>`. Behaviour
the sources leave open is decided here and marked "Emulation choice".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from enum import IntEnum

from pumpctl.families.chemyx import SPEC
from pumpctl.families.spec import SyringeMotor
from pumpctl.simulator.devices.base import BufferedEmulation, PumpSnapshot
from pumpctl.simulator.physics import StopReason, SyringePhysics

__all__ = ["ChemyxFusionEmulation"]

MAX_LINE_BYTES = 256
INVALID = "Invalid Command!"
#: `set units` codes (KB): volume unit in mL, time unit in hours
UNITS = {0: (1.0, 1 / 60), 1: (1.0, 1.0), 2: (1e-3, 1 / 60), 3: (1e-3, 1.0)}
#: plunger travel a Fusion can push, mm: the largest volume it accepts is the bore area times it
#: (Emulation choice: the KB gives no travel; 120 mm holds a 60 mL syringe's stroke)
TRAVEL_MM = 120.0
DEFAULT_DIAMETER_MM, DEFAULT_SYRINGE_ML = 26.7, 60.0
assert isinstance(SPEC.motor, SyringeMotor)
_MOTOR: SyringeMotor = SPEC.motor
_HELP = (
    "help       -Show Help Information",
    "start      -Pump Run",
    "stop       -Pump Stop",
    "pause      -Pump Pause",
    "set diameter [x.x]        -Pump Set Diameter",
    "set rate [x.x]            -Pump Set Rate",
    "set volume [x.x]          -Pump Set Volume (+infuse,-withdraws)",
    "dispensed volume          -Pump Return volume Dispensed",
)


class _Status(IntEnum):
    STOPPED = 0
    RUNNING = 1
    PAUSED = 2
    DELAYED = 3
    STALLED = 4


@dataclass
class _Pump:
    physics: SyringePhysics
    units: int = 1
    diameter_mm: float = DEFAULT_DIAMETER_MM
    rate: Decimal = Decimal(0)  # current units
    volume: Decimal = Decimal(0)  # current volume unit, signed (negative: withdraw)
    delay: Decimal = Decimal(0)
    status: _Status = _Status.STOPPED
    alarm: str | None = "reset"
    run_base_ml: float = 0.0  # plunger travel when the current run started
    run_started_s: float = 0.0
    run_elapsed_s: float = 0.0

    @property
    def ml_per_unit(self) -> float:
        return UNITS[self.units][0]

    def rate_ml_per_h(self) -> float:
        volume_ml, hours = UNITS[self.units]
        return float(self.rate) * volume_ml / hours

    def volume_ml(self) -> float:
        return float(self.volume) * self.ml_per_unit

    def run_ml(self) -> float:
        """Volume moved in the current run (either direction), mL."""
        travel = self.physics.infused_ml + self.physics.withdrawn_ml
        return max(0.0, travel - self.run_base_ml)

    def limits_ml_per_h(self) -> tuple[float, float]:
        return _MOTOR.rate_range_ml_per_h(self.diameter_mm)

    def max_volume_ml(self) -> float:
        return math.pi * self.diameter_mm**2 / 4 * TRAVEL_MM / 1000


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _fixed(value: float | Decimal, places: int) -> str:
    """Truncated to `places` decimals (a counter never shows more than moved); a billionth of a
    unit of float noise below a digit counts as that digit."""
    q = (Decimal(str(value)) + Decimal("1e-9")).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_FLOOR
    )
    return f"{q:.{places}f}"


class ChemyxFusionEmulation(BufferedEmulation):
    """A single Fusion (address 0) or the two channels of a dual-channel one (1, 2)."""

    model = SPEC.model
    counts_commands = True

    def __init__(self, addresses: Iterable[int] = (0,)) -> None:
        addrs = sorted(addresses)
        if addrs not in ([0], [1], [1, 2]):
            raise ValueError(f"a Fusion is address 0 (one pump) or 1 and 2 (channels), got {addrs}")
        super().__init__()
        self._pumps = {
            a: _Pump(SyringePhysics(DEFAULT_DIAMETER_MM, DEFAULT_SYRINGE_ML)) for a in addrs
        }
        self._line = bytearray()
        self._echo = True

    # -- Emulation API -----------------------------------------------------------------------

    def physics(self, address: int) -> SyringePhysics:
        return self._pumps[address].physics

    def load_syringe(
        self, address: int, inner_diameter_mm: float, capacity_ml: float, contents_ml: float
    ) -> None:
        p = self._pumps[address]
        p.physics.load(inner_diameter_mm, capacity_ml, contents_ml)
        p.diameter_mm = inner_diameter_mm
        if p.status in (_Status.RUNNING, _Status.PAUSED):
            p.status = _Status.STOPPED

    def set_syringe_remaining_ml(self, address: int, remaining_ml: float) -> None:
        p = self._pumps[address]
        ph = p.physics
        moving, rate, infuse = ph.moving, ph.rate_ml_per_h, ph.infusing
        left = self._left_ml(p) if moving else None
        ph.load(ph.inner_diameter_mm, ph.capacity_ml, min(max(0.0, remaining_ml), ph.capacity_ml))
        if moving:
            ph.start(rate, infuse=infuse, limit_ml=left)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        self._now += seconds
        for p in self._pumps.values():
            reason = p.physics.advance(seconds)
            if reason is StopReason.LIMIT:
                self._end_run(p, _Status.STOPPED)
            elif reason is not None:
                # Emulation choice: end of travel and an occlusion both stall the motor (4)
                self._end_run(p, _Status.STALLED)
                p.alarm = reason.value

    def snapshot(self) -> dict[int, PumpSnapshot]:
        out = {}
        for a, p in self._pumps.items():
            ph = p.physics
            volume = p.volume_ml()
            out[a] = PumpSnapshot(
                running=p.status is _Status.RUNNING,
                direction="withdraw" if volume < 0 else "infuse",
                rate_ml_per_h=round(ph.rate_ml_per_h if ph.moving else p.rate_ml_per_h(), 9),
                delivered_ml=round(ph.pushed_net_ml, 9),
                target_ml=round(abs(volume), 9) if volume else None,
                alarm=p.alarm,
            )
        return out

    def set_occlusion(self, address: int, on: bool) -> None:
        self._pumps[address].physics.set_occluded(on)

    def power_cycle(self, address: int) -> None:
        """Emulation choice: units, diameter, rate and volume are kept (the pump's menu keeps
        them); the motor stops and the run's dispensed volume and time are lost."""
        p = self._pumps[address]
        self._end_run(p, _Status.STOPPED)
        p.run_base_ml = p.physics.infused_ml + p.physics.withdrawn_ml
        p.run_elapsed_s = 0.0
        p.alarm = "reset"

    def corrupt_next_checksums(self, n: int) -> None:
        """Text replies carry no checksum: nothing to corrupt."""

    def _drop_partial_input(self) -> None:
        self._line.clear()

    # -- bytes ---------------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        for b in data:
            if b == 0x0D:
                line = self._line.decode("latin-1")
                self._line.clear()
                self.commands_seen += 1
                self._on_line(line)
            elif b == 0x0A and not self._line:
                continue  # the LF of a CR LF (KB: an LF alone ends nothing)
            elif len(self._line) < MAX_LINE_BYTES:
                self._line.append(b)

    def _on_line(self, line: str) -> None:
        if not line.strip():
            return  # Emulation choice: an empty line is not answered
        words = line.rstrip(" ").split(" ")
        targets = list(self._pumps.values())
        if words[0] in ("1", "2", "3") and len(words) > 1:
            chosen = int(words[0])
            words = words[1:]
            if chosen in self._pumps:
                targets = [self._pumps[chosen]]
            elif chosen == 1 and 0 in self._pumps:
                targets = [self._pumps[0]]  # Emulation choice: `1 ` addresses a single pump
            elif chosen != 3:
                targets = []
        body = [INVALID]
        if targets and "" not in words:  # a leading or doubled space is refused (transcript)
            for p in targets:  # no prefix on two channels: both do it, the first answers
                body = self._command(p, [w.lower() if w.isascii() else w for w in words])
        echo = line.rstrip(" ") if self._echo else ""
        text = echo + "\r" + "".join(f"{b}\r\n" for b in body) + ">"
        data = text.encode("latin-1", "replace")
        # Emulation choice: a garble flips bit 6 of the first body byte; the framing stays
        self._queue(self._inject_faults(data, min(len(echo) + 1, len(data) - 1)))

    # -- commands ------------------------------------------------------------------------------

    def _command(self, p: _Pump, words: list[str]) -> list[str]:
        name = " ".join(words[:3])
        if words[0] == "set" and len(words) == 3:
            return self._set(p, words[1], words[2])
        if name in ("pump status", "status"):
            return [str(int(p.status))]
        if name == "dispensed volume":
            return [f"dispensed volume = {_fixed(p.run_ml() / p.ml_per_unit, 4)}"]
        if name == "elapsed time":
            return [f"elapsed time = {_fixed(self._elapsed_s(p) / 60, 5)}"]
        if words[:3] == ["read", "limit", "parameter"] and len(words) <= 4:
            return [self._limits(p)]
        if words == ["view", "parameter"]:
            return self._view(p)
        if words in (["echo", "on"], ["echo", "off"]):
            self._echo = words[1] == "on"
            return [f"echo {words[1]}"]
        if words == ["help"]:
            return list(_HELP)
        if words[0] in ("start", "pause", "stop", "restart") and len(words) <= 2:
            return self._motor(p, words[0], words[1:])
        return [INVALID]

    def _set(self, p: _Pump, what: str, arg: str) -> list[str]:
        values = [_number(v) for v in arg.split(",")]
        if not values or any(v is None for v in values):
            return [INVALID]
        first = values[0]
        assert first is not None
        if what in ("units", "unit"):
            if first not in (0, 1, 2, 3) or len(values) != 1:
                return [INVALID]
            if p.status in (_Status.RUNNING, _Status.PAUSED):
                return [f"units = {p.units}"]  # Emulation choice: not while a run is on
            p.units = int(first)
            return [f"units = {p.units}"]
        if what == "diameter":
            low, high = _MOTOR.diameter_mm
            if low <= first <= high and p.status is _Status.STOPPED and len(values) == 1:
                p.diameter_mm = float(round(first, 3))
                p.physics.load(p.diameter_mm, p.physics.capacity_ml, p.physics.contents_ml)
            return [f"diameter = {p.diameter_mm:.3f}"]
        if what == "rate":
            return [f"rate = {self._set_rate(p, first)}"]
        if what == "volume":
            return [f"volume = {self._set_volume(p, first)}"]
        if what == "delay":
            p.delay = max(Decimal(0), first)  # Emulation choice: kept, but runs start at once
            return [f"delay = {p.delay:.6f}"]
        return [INVALID]

    def _set_rate(self, p: _Pump, value: Decimal) -> str:
        """KB: a value outside the limits is clamped; the reply shows what was taken.
        Emulation choice: one step only (basic mode); a new rate takes effect at once."""
        volume_ml, hours = UNITS[p.units]
        low, high = (Decimal(repr(x * hours / volume_ml)) for x in p.limits_ml_per_h())
        p.rate = min(max(value, low), high)
        if p.status is _Status.RUNNING:
            p.physics.set_rate(p.rate_ml_per_h())
        return f"{p.rate:.6f}"

    def _set_volume(self, p: _Pump, value: Decimal) -> str:
        if p.status is _Status.STOPPED:
            top = Decimal(repr(p.max_volume_ml() / p.ml_per_unit))
            p.volume = max(min(value, top), -top)
        return f"{p.volume:.6f}"  # Emulation choice: kept as it was during a run

    def _limits(self, p: _Pump) -> str:
        volume_ml, hours = UNITS[p.units]
        low, high = p.limits_ml_per_h()
        per_unit = hours / volume_ml
        top = p.max_volume_ml() / volume_ml
        return (
            f"{_fixed(high * per_unit, 4)} {max(low * per_unit, 1e-4):.4f} "
            f"{_fixed(top, 4)} {max(top * 1e-6, 1e-4):.4f}"
        )

    def _view(self, p: _Pump) -> list[str]:
        return [
            f"unit = {p.units}",
            f"dia = {p.diameter_mm:.3f}",
            f"rate = {p.rate:.6f}",
            f"volume = {p.volume:.6f}",
            f"delay = {p.delay:.6f}",
        ]

    def _motor(self, p: _Pump, word: str, args: list[str]) -> list[str]:
        if args and args not in (["0"], ["1"]):
            return [INVALID]
        if word == "start":
            return self._start(p)
        if word == "pause":
            if p.status is _Status.RUNNING:
                p.physics.stop()
                p.run_elapsed_s += self._now - p.run_started_s
                p.status = _Status.PAUSED
            return ["Pump pause!"]
        self._end_run(p, _Status.STOPPED)
        return ["Pump restart!" if word == "restart" else "Pump stop!"]

    def _start(self, p: _Pump) -> list[str]:
        if p.status is _Status.RUNNING:
            return ["Pump start running..."]
        rate, volume = p.rate_ml_per_h(), p.volume_ml()
        if rate <= 0 or volume == 0:
            return [INVALID]  # Emulation choice: nothing to run
        if p.status is not _Status.PAUSED:  # a new run: its counters start again
            p.run_base_ml = p.physics.infused_ml + p.physics.withdrawn_ml
            p.run_elapsed_s = 0.0
        left = abs(volume) - p.run_ml()
        if left <= 1e-12:
            p.status = _Status.STOPPED
            return ["Pump start running..."]
        p.physics.start(rate, infuse=volume > 0, limit_ml=left)
        p.status, p.alarm, p.run_started_s = _Status.RUNNING, None, self._now
        return ["Pump start running..."]

    def _left_ml(self, p: _Pump) -> float:
        return max(0.0, abs(p.volume_ml()) - p.run_ml())

    def _elapsed_s(self, p: _Pump) -> float:
        running = self._now - p.run_started_s if p.status is _Status.RUNNING else 0.0
        return p.run_elapsed_s + running

    def _end_run(self, p: _Pump, status: _Status) -> None:
        if p.status is _Status.RUNNING:
            p.run_elapsed_s += self._now - p.run_started_s
        p.physics.stop()
        p.status = status
