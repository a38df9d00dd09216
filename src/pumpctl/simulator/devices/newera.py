"""New Era NE-1000 family emulation: its own codec, written from the RS-232 protocol notes.

Never shares code with the driver: the two must agree only on the wire. One link carries one or
more pumps (addresses 0-99). Basic mode is `[addr]CMD[params]\\r` -> `STX addr status data ETX`;
safe mode frames both directions as `STX LEN data CRC16-XMODEM ETX`. Safe packets are accepted at
any time; each reply is framed in the mode in force after its command. Behaviour the notes leave
open is decided here and documented next to the code (look for "Emulation choice").
"""

from __future__ import annotations

import binascii
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from enum import StrEnum

from pumpctl.simulator.devices.base import BufferedEmulation, PumpSnapshot
from pumpctl.simulator.physics import StopReason, SyringePhysics

__all__ = ["NE1000Emulation", "format_number"]

# --------------------------------------------------------------------------- model facts (data)

VERSION = "NE1000V3.928"
STX, ETX, CR = 0x02, 0x03, 0x0D
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
_VOLUME_UNITS_FLOAT = {k: float(v) for k, v in VOLUME_UNITS_ML.items()}  # DIS, every poll
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
# Longest names first: the parser matches a prefix (`RAT C 5 MH` arrives as `RATC5MH`).
COMMANDS = tuple(
    [
        "*RESET",
        "*ADR",
        "DIA",
        "RAT",
        "VOL",
        "DIR",
        "RUN",
        "PUR",
        "STP",
        "DIS",
        "CLD",
        "PHN",
        "FUN",
        "SAF",
        "VER",
        "TRG",
        "DIN",
        "ROM",
        "LOC",
        "OUT",
        "BUZ",
        "LN",
        "AL",
        "PF",
        "BP",
        "IN",
    ]
)
_NUMBER = re.compile(r"(\d*)(?:\.(\d*))?")
_RATE_ARGS = re.compile(r"([CI]?)([\d.]*)(UM|MM|UH|MH)?")
_BURST_SPLIT = re.compile(r"\*(?=\d|$)")
_ADDRESS = re.compile(r"(\d{1,2})?(.*)", re.S)


def format_number(value: Decimal | float) -> str:
    """Pump number format: 4 significant digits, always a decimal point, at most 3 decimals.

    `14.5 -> "14.50"`, `3000 -> "3000."`, `0.5 -> "0.500"`. Counters are truncated (the pump never
    reports more than it moved); values of 10000 and above keep every integer digit.
    """
    if isinstance(value, float) and 0.0 <= value < _FAST_FLOAT_MAX:
        if value:
            return _format_float(value)
        if math.copysign(1.0, value) > 0:  # 0.0 (-0.0 keeps its sign below)
            return "0.000"
    d = value if isinstance(value, Decimal) else Decimal(round(value, 9)).quantize(_NANO)
    d = max(d, Decimal(0))
    decimals = 0 if d >= 1000 else 1 if d >= 100 else 2 if d >= 10 else 3
    text = format(d.quantize(_STEPS[decimals], rounding=ROUND_DOWN), "f")
    return text if decimals else text + "."


_NANO = Decimal("1e-9")
_STEPS = {n: Decimal(1).scaleb(-n) for n in range(4)}
#: floats below this take `_format_float`: far from the Decimal context's 28-digit precision
_FAST_FLOAT_MAX = 1e15


def _format_float(value: float) -> str:
    """`format_number` of a float in (0, `_FAST_FLOAT_MAX`), in integers: the counters of
    every poll.

    The same steps exactly: round to 9 decimals (as `round` does), then the exact binary value
    of that float to a whole number of nanolitres, half to even (`Decimal.quantize`), then
    truncated to the decimals shown (`ROUND_DOWN`).
    """
    num, den = round(value, 9).as_integer_ratio()
    nano, rest = divmod(num * 1_000_000_000, den)
    if 2 * rest > den or (2 * rest == den and nano & 1):
        nano += 1
    if nano >= 1_000_000_000_000:
        return f"{nano // 1_000_000_000}."
    decimals = 1 if nano >= 100_000_000_000 else 2 if nano >= 10_000_000_000 else 3
    shown = nano // 10 ** (9 - decimals)
    whole, frac = divmod(shown, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"


def parse_number(text: str) -> Decimal | None:
    """At most 4 digits and one point, at most 3 digits after it; None if not that."""
    m = _NUMBER.fullmatch(text)
    if m is None or not text or text == ".":
        return None
    whole, frac = m.group(1), m.group(2) or ""
    if len(whole.lstrip("0")) + len(frac) > 4 or len(frac) > 3:
        return None
    try:
        return Decimal(text if whole else "0" + text)
    except InvalidOperation:
        return None


def crc16_xmodem(data: bytes) -> int:
    """CRC-16, polynomial 0x1021, initial value 0, no reflection (the notes' "CCITT")."""
    return binascii.crc_hqx(data, 0)


def frame_safe(data: bytes) -> bytes:
    return bytes((STX, len(data) + 4)) + data + crc16_xmodem(data).to_bytes(2, "big") + b"\x03"


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


class _Run(StrEnum):
    STOPPED = "S"
    PAUSED = "P"
    RUNNING = "run"  # I or W by direction
    PURGING = "X"


class _Error(Exception):
    """A command error reply (`?NA`, `?OOR`, ...) after the status character."""


@dataclass
class _Pump:
    address: int
    physics: SyringePhysics
    diameter_mm: Decimal = DEFAULT_DIAMETER_MM
    rate: Decimal = Decimal(0)
    rate_units: str = "MH"
    volume: Decimal = Decimal(0)
    volume_units: str = "ML"
    infuse: bool = True
    run: _Run = _Run.STOPPED
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
        if self.run is _Run.RUNNING:
            return "I" if self.infuse else "W"
        return str(self.run.value)

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


# --------------------------------------------------------------------------- the link


class NE1000Emulation(BufferedEmulation):
    """NE-1000 pumps sharing one serial link. Pure: no threads, no clock, no I/O."""

    model = "ne1000"
    counts_commands = True

    def __init__(
        self,
        addresses: Iterable[int] = (0,),
        *,
        safe_mode_timeout_s: int = 0,
        max_outbound_bytes: int = 4096,
    ) -> None:
        addrs = list(addresses)
        if not addrs or len(set(addrs)) != len(addrs) or not all(0 <= a <= 99 for a in addrs):
            raise ValueError(f"addresses must be distinct, in 0..99, got {addrs}")
        super().__init__(max_outbound_bytes=max_outbound_bytes)
        self._pumps: dict[int, _Pump] = {}
        for a in addrs:
            physics = SyringePhysics(
                float(DEFAULT_DIAMETER_MM), syringe_capacity_ml(DEFAULT_DIAMETER_MM)
            )
            pump = _Pump(a, physics, safe_timeout_s=safe_mode_timeout_s)
            pump.reset_program()
            self._pumps[a] = pump
        self._now_comp = 0.0
        self._line = bytearray()
        self._packet: bytearray | None = None
        self._last_byte_s = 0.0
        self._bad_crc = 0
        for pump in self._pumps.values():
            self._auto_alarm(pump)

    # -- Emulation API -----------------------------------------------------------------------

    @property
    def addresses(self) -> list[int]:
        return sorted(self._pumps)

    def physics(self, address: int) -> SyringePhysics:
        """The syringe on pump `address` (ground truth; tests and rigs read it)."""
        return self._pumps[address].physics

    def load_syringe(
        self, address: int, inner_diameter_mm: float, capacity_ml: float, contents_ml: float
    ) -> None:
        """Put a syringe on a pump (rig setup); also sets the pump's DIA to match."""
        pump = self._pumps[address]
        self._stop(pump, _Run.STOPPED)
        pump.diameter_mm = Decimal(str(inner_diameter_mm))
        pump.physics.load(inner_diameter_mm, capacity_ml, contents_ml)

    def _receive(self, data: bytes) -> None:
        """Bytes as the pump's UART hands them over, one at a time in effect: a safe packet
        starts at STX and ends after LEN bytes, a basic line ends at CR, an STX drops a partly
        received line. Whole packets and runs of line bytes are taken in one piece (the
        outcome is the byte-by-byte one); only a packet split across reads goes byte by byte."""
        gap_s = SAFE_INTER_BYTE_GAP_S * self.wire_time_scale
        if self._packet is not None and self._now - self._last_byte_s > gap_s:
            self._packet = None
        self._last_byte_s = self._now
        i, n = 0, len(data)
        line = self._line
        while i < n:
            pkt = self._packet
            if pkt is not None:
                b = data[i]
                i += 1
                pkt.append(b)
                if len(pkt) == 2 and b < 4:
                    self._packet = None  # a LEN below 4 cannot frame anything
                elif len(pkt) >= 2 and len(pkt) == 1 + pkt[1]:
                    self._packet = None
                    self.commands_seen += 1
                    self._on_packet(bytes(pkt))
                continue
            if data[i] == STX:
                line.clear()
                end = i + 1 + data[i + 1] if i + 1 < n and data[i + 1] >= 4 else n + 1
                if end <= n:  # the whole packet is here
                    self.commands_seen += 1
                    self._on_packet(bytes(data[i:end]))
                    i = end
                else:
                    self._packet = bytearray((STX,))
                    i += 1
                continue
            stop = data.find(CR, i)  # the line's bytes run to the next CR or STX
            stop = n if stop < 0 else stop
            stx = data.find(STX, i, stop)
            stop = stx if stx >= 0 else stop
            room = MAX_LINE_BYTES - len(line)
            if room > 0:
                line += data[i : min(stop, i + room)]
            i = stop
            if stop < n and data[stop] == CR:
                i += 1
                text = line.decode("latin-1")
                line.clear()
                self.commands_seen += 1
                self._on_text(text, safe=False)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        y = seconds - self._now_comp
        end = self._now + y
        self._now_comp = (end - self._now) - y
        while True:
            deadlines = [
                p.watchdog_deadline_s
                for p in self._pumps.values()
                if p.watchdog_deadline_s is not None and p.watchdog_deadline_s <= end
            ]
            step_to = min(deadlines) if deadlines else end
            self._move(max(0.0, step_to - self._now))
            self._now = step_to
            for pump in self._pumps.values():
                if pump.watchdog_deadline_s is not None and pump.watchdog_deadline_s <= step_to:
                    pump.watchdog_deadline_s = None  # fires once; re-armed by the next packet
                    self._alarm(pump, "T", "link_timeout")
            if not deadlines:
                self._now = end
                return

    def snapshot(self) -> dict[int, PumpSnapshot]:
        return {a: self._snapshot(p) for a, p in sorted(self._pumps.items())}

    def set_occlusion(self, address: int, on: bool) -> None:
        self._pumps[address].physics.set_occluded(on)

    def _drop_partial_input(self) -> None:
        self._line.clear()
        self._packet = None

    def power_cycle(self, address: int) -> None:
        """Counters and program are lost; DIA, address and SAF (non-volatile) are kept."""
        pump = self._pumps[address]
        self._stop(pump, _Run.STOPPED)
        pump.reset_program()
        pump.watchdog_deadline_s = None
        pump.alarm_pending, pump.alarm_reason = "R", "reset"
        self._auto_alarm(pump)

    def corrupt_next_checksums(self, n: int) -> None:
        """Only safe-mode replies carry a CRC: the next `n` of them get a wrong one."""
        self._bad_crc = max(0, n)

    def set_syringe_remaining_ml(self, address: int, remaining_ml: float) -> None:
        """Swap in the same syringe holding `remaining_ml` (capped at capacity); a running
        program keeps running toward the same target, so an empty barrel stalls it at once."""
        pump = self._pumps[address]
        physics = pump.physics
        contents = min(max(0.0, remaining_ml), physics.capacity_ml)
        run = pump.run
        physics.load(physics.inner_diameter_mm, physics.capacity_ml, contents)  # stops motion
        if run is _Run.RUNNING:
            target = float(pump.target_ml())
            done = pump.travel_ml() - pump.phase_start_travel_ml
            limit = max(0.0, target - done) if target else None
            physics.start(float(pump.rate_ml_per_h()), infuse=pump.infuse, limit_ml=limit)
        elif run is _Run.PURGING:
            physics.start(float(max_rate_ml_per_h(pump.diameter_mm)), infuse=pump.infuse)
        self._move(0.0)  # an empty barrel under an infusing plunger alarms now

    # -- time ----------------------------------------------------------------------------------

    def _move(self, dt: float) -> None:
        for pump in self._pumps.values():
            reason = pump.physics.advance(dt)
            if reason is None:
                continue
            if reason is StopReason.LIMIT:  # target volume reached: program ends
                pump.run = _Run.STOPPED
            else:
                self._alarm(pump, "S", reason.value)  # empty, full or stall: all A?S

    def _snapshot(self, p: _Pump) -> PumpSnapshot:
        moving = p.physics.moving
        rate = p.physics.rate_ml_per_h if moving else float(p.rate_ml_per_h())
        target = p.target_ml()
        return PumpSnapshot(
            running=p.run in (_Run.RUNNING, _Run.PURGING),
            direction="infuse" if p.infuse else "withdraw",
            rate_ml_per_h=round(rate, 9),
            delivered_ml=round(p.physics.pushed_net_ml, 9),
            target_ml=float(target) if target else None,
            alarm=p.alarm_reason,
        )

    # -- output --------------------------------------------------------------------------------

    def _reply(self, pump: _Pump, body: str) -> None:
        data = f"{pump.address:02d}{body}".encode("latin-1")
        framed = frame_safe(data) if pump.safe else b"\x02" + data + b"\x03"
        if self._bad_crc and pump.safe:
            self._bad_crc -= 1
            framed = framed[:-2] + bytes((framed[-2] ^ 0xFF,)) + framed[-1:]  # CRC low byte
        # Emulation choice: a garble flips bit 6 of the first address digit; framing (and LEN)
        # stay intact, so a safe-mode host sees a CRC error and a basic-mode host a bad address.
        self._queue(self._inject_faults(framed, 2 if pump.safe else 1))

    def _auto_alarm(self, pump: _Pump) -> None:
        """Safe mode announces alarms unsolicited, but never while a reply is outstanding.

        Emulation choice: an alarm that falls while the host awaits a reply is not announced;
        it stays pending and the host's next command reports (and acknowledges) it.
        """
        if not pump.safe or not self._link_up or pump.alarm_pending is None:
            return
        if self._reply_pending():
            return
        data = f"{pump.address:02d}A?{pump.alarm_pending}".encode("latin-1")
        self._queue(frame_safe(data), reply=False)

    # -- input ---------------------------------------------------------------------------------

    def _on_packet(self, pkt: bytes) -> None:
        data = pkt[2:-3]
        ok = pkt[-1] == ETX and int.from_bytes(pkt[-3:-1], "big") == crc16_xmodem(data)
        if not ok:
            text = _normalise(data.decode("latin-1"))
            m = _ADDRESS.match(text)
            addr = int(m.group(1)) if m and m.group(1) else None
            targets = [self._pumps[addr]] if addr in self._pumps else []
            if addr is None and len(self._pumps) == 1:
                targets = list(self._pumps.values())
            for pump in targets:
                self._reply(pump, pump.status + "?COM")
            return
        self._on_text(data.decode("latin-1"), safe=True)

    def _on_text(self, raw: str, *, safe: bool) -> None:
        for address, rest, name, args in _parse_line(raw):
            self._dispatch(address, rest, name, args, safe=safe)

    def _dispatch(
        self, address: int | None, rest: str, name: str | None, args: str, *, safe: bool
    ) -> None:
        if address is None or rest.startswith("*"):  # *system commands: whatever the address
            targets = list(self._pumps.values())
        else:
            pump = self._pumps.get(address)
            targets = [pump] if pump is not None else []
        for pump in targets:
            if not safe and pump.safe:
                continue  # Emulation choice: in safe mode, basic lines are ignored
            if safe and pump.safe_timeout_s:
                pump.watchdog_deadline_s = self._now + pump.safe_timeout_s
            body = self._command(pump, rest, name, args, safe=safe, several=len(targets) > 1)
            self._reply(pump, body)

    # -- commands ------------------------------------------------------------------------------

    def _command(
        self, p: _Pump, text: str, name: str | None, args: str, *, safe: bool, several: bool
    ) -> str:
        """`text` split by `_split_command` into the command `name` and its `args`."""
        if name is None and text:
            return p.status + "?"
        if p.alarm_pending is not None:  # report = acknowledge; the command is not executed
            code, p.alarm_pending = p.alarm_pending, None
            return "A?" + code
        try:
            data = self._execute(p, name or "", args, safe=safe, several=several)
        except _Error as exc:
            return p.status + "?" + str(exc)
        return p.status + data

    def _execute(self, p: _Pump, name: str, args: str, *, safe: bool, several: bool) -> str:
        moving = p.run in (_Run.RUNNING, _Run.PURGING)
        if name == "":
            return ""
        if name == "VER":
            return VERSION
        if name == "DIS":
            unit = _VOLUME_UNITS_FLOAT[p.volume_units]
            inf = (p.physics.infused_ml - p.inf_base_ml) / unit
            wdr = (p.physics.withdrawn_ml - p.wdr_base_ml) / unit
            return f"I{format_number(inf)}W{format_number(wdr)}{p.volume_units}"
        if name == "DIA":
            return self._dia(p, args)
        if name == "RAT":
            return self._rat(p, args)
        if name == "VOL":
            return self._vol(p, args)
        if name == "DIR":
            return self._dir(p, args)
        if name == "RUN":
            if args not in ("", "1"):
                raise _Error("OOR")  # Emulation choice: a single-phase program only
            self._start(p)
            return ""
        if name == "PUR":
            if moving:
                raise _Error("NA")
            self._begin(p, max_rate_ml_per_h(p.diameter_mm), limit_ml=None, run=_Run.PURGING)
            return ""
        if name == "STP":
            paused = p.run is _Run.RUNNING
            self._stop(p, _Run.PAUSED if paused else _Run.STOPPED)
            return ""
        if name == "CLD":
            if args == "INF":
                p.inf_base_ml = p.physics.infused_ml
            elif args == "WDR":
                p.wdr_base_ml = p.physics.withdrawn_ml
            else:
                raise _Error("OOR")
            return ""
        if name == "SAF":
            return self._saf(p, args, safe=safe)
        if name == "*ADR":
            return self._adr(p, args, several=several)
        if name == "*RESET":
            self._stop(p, _Run.STOPPED)
            p.diameter_mm = DEFAULT_DIAMETER_MM
            p.reset_program()
            p.misc = {k: v[0] for k, v in MISC_SETTINGS.items()}
            return ""
        if name in MISC_SETTINGS:
            if not args:
                return p.misc[name]
            if args not in MISC_SETTINGS[name][1]:
                raise _Error("OOR")
            p.misc[name] = args
            return ""
        if name == "IN":
            return "0"
        raise _Error("NA")  # PHN/FUN: multi-phase programs are not emulated

    def _dia(self, p: _Pump, args: str) -> str:
        if not args:
            return format_number(p.diameter_mm)
        value = parse_number(args)
        if value is None or not DIAMETER_RANGE_MM[0] <= value <= DIAMETER_RANGE_MM[1]:
            raise _Error("OOR")
        if p.run is not _Run.STOPPED:
            raise _Error("NA")
        target = p.target_ml()
        p.volume_units = "UL" if value <= UL_MAX_DIAMETER_MM else "ML"
        p.volume = target / VOLUME_UNITS_ML[p.volume_units]
        if value != p.diameter_mm:  # a different bore means a different (full) syringe
            capacity = syringe_capacity_ml(value)
            p.physics.load(float(value), capacity, capacity)
        p.diameter_mm = value
        return ""

    def _rat(self, p: _Pump, args: str) -> str:
        m = _RATE_ARGS.fullmatch(args)
        if m is None:
            raise _Error("OOR")
        number, units = m.group(2), m.group(3)
        if not number and not units:
            return format_number(p.rate) + p.rate_units
        value = parse_number(number) if number else None
        if value is None:
            raise _Error("OOR")
        units = units or p.rate_units
        if units != p.rate_units and p.run in (_Run.RUNNING, _Run.PURGING):
            raise _Error("NA")  # units cannot change while pumping
        ml_per_h = value * RATE_UNITS_ML_PER_H[units]
        lo, hi = min_rate_ml_per_h(p.diameter_mm), max_rate_ml_per_h(p.diameter_mm)
        if not lo <= ml_per_h <= hi:
            raise _Error("OOR")
        p.rate, p.rate_units = value, units
        if p.run is _Run.RUNNING:
            p.physics.set_rate(float(ml_per_h))
        return ""

    def _vol(self, p: _Pump, args: str) -> str:
        if not args:
            return format_number(p.volume) + p.volume_units
        if p.run in (_Run.RUNNING, _Run.PURGING):
            raise _Error("NA")
        if args in VOLUME_UNITS_ML:
            ml = p.target_ml()
            p.volume_units = args
            p.volume = ml / VOLUME_UNITS_ML[args]
            return ""
        value = parse_number(args)
        if value is None:
            raise _Error("OOR")
        p.volume = value
        return ""

    def _dir(self, p: _Pump, args: str) -> str:
        if not args:
            return "INF" if p.infuse else "WDR"
        if args not in ("INF", "WDR", "REV"):
            raise _Error("NA" if args == "STK" else "OOR")  # no TTL direction input here
        if p.run is _Run.PURGING or (p.run is _Run.RUNNING and p.volume != 0):
            raise _Error("NA")  # while pumping only with a continuous (VOL 0) program
        p.infuse = (args == "INF") if args != "REV" else not p.infuse
        if p.run is _Run.RUNNING:
            p.physics.set_direction(infuse=p.infuse)
        return ""

    def _saf(self, p: _Pump, args: str, *, safe: bool) -> str:
        if not args:
            return str(p.safe_timeout_s)
        if not (args.isascii() and args.isdigit()) or int(args) > SAFE_TIMEOUT_MAX_S:
            raise _Error("OOR")
        p.safe_timeout_s = int(args)
        # The watchdog arms at the first valid safe packet: this one, if it was one.
        p.watchdog_deadline_s = self._now + p.safe_timeout_s if safe and p.safe_timeout_s else None
        return ""

    def _adr(self, p: _Pump, args: str, *, several: bool) -> str:
        if not args:
            return str(p.address)
        if not (args.isascii() and args.isdigit()) or int(args) > 99:
            raise _Error("NA" if args in ("DUAL", "RECP", "ALTR") else "OOR")
        new = int(args)
        if several or (new != p.address and new in self._pumps):
            raise _Error("NA")  # would give two pumps one address
        del self._pumps[p.address]
        p.address = new
        self._pumps[new] = p
        return ""

    # -- motion --------------------------------------------------------------------------------

    def _start(self, p: _Pump) -> None:
        if p.run in (_Run.RUNNING, _Run.PURGING):
            return  # Emulation choice: RUN while running is a no-op that reports the status
        rate = p.rate_ml_per_h()
        if not min_rate_ml_per_h(p.diameter_mm) <= rate <= max_rate_ml_per_h(p.diameter_mm):
            raise _Error("OOR")
        if p.run is _Run.STOPPED:
            p.phase_start_travel_ml = p.travel_ml()
        target = float(p.target_ml())
        limit = None
        if target:
            limit = max(0.0, target - (p.travel_ml() - p.phase_start_travel_ml))
        self._begin(p, rate, limit_ml=limit, run=_Run.RUNNING)

    def _begin(self, p: _Pump, rate: Decimal, *, limit_ml: float | None, run: _Run) -> None:
        if limit_ml == 0.0:
            p.run = _Run.STOPPED
            return
        p.physics.start(float(rate), infuse=p.infuse, limit_ml=limit_ml)
        p.run = run
        p.alarm_reason = None

    def _stop(self, p: _Pump, run: _Run) -> None:
        p.physics.stop()
        p.run = run

    def _alarm(self, p: _Pump, code: str, reason: str) -> None:
        """A pump in alarm keeps its first alarm until it is cleared: the code until the host
        has it reported (acknowledged), the ground-truth reason until the pump next starts
        (power loss aside, which forgets everything). So a link watchdog that fires after a
        stall neither hides the unreported `A?S` nor turns the stall into `link_timeout`."""
        self._stop(p, _Run.STOPPED)
        if p.alarm_reason is None:
            p.alarm_reason = reason
        if p.alarm_pending is None:
            p.alarm_pending = code
            self._auto_alarm(p)  # announced once; an alarm already pending is not repeated


def _normalise(text: str) -> str:
    """The pump drops spaces and control characters and upper-cases before parsing."""
    return text.translate(_DROPPED).upper()


#: what `_normalise` drops: space, the control characters below it, and DEL
_DROPPED = dict.fromkeys([*range(0x21), 0x7F])
_COMMAND_LENGTHS = sorted({len(c) for c in COMMANDS}, reverse=True)
_COMMAND_SET = frozenset(COMMANDS)


def _split_command(text: str) -> tuple[str | None, str]:
    """The command `text` starts with (the longest name that fits, so `RATC5MH` is RAT and
    `*RESET` is not `*R...`) and its arguments; (None, "") for no known command."""
    for n in _COMMAND_LENGTHS:
        if text[:n] in _COMMAND_SET and len(text) >= n:
            return text[:n], text[n:]
    return None, ""


_Part = tuple[int | None, str, str | None, str]
_PARSED: dict[str, tuple[_Part, ...]] = {}
#: distinct lines whose parse is kept (a host polls with the same few lines for days)
_MAX_PARSED = 1024


def _parse_line(raw: str) -> tuple[_Part, ...]:
    """One received line or packet text, as the pump parses it: normalised, split at `*` burst
    separators, each part as (address or None, the text after it, command, arguments).
    Pure, so kept per distinct line."""
    parts = _PARSED.get(raw)
    if parts is not None:
        return parts
    text = _normalise(raw)
    found = []
    for part in _BURST_SPLIT.split(text) if "*" in text else [text]:
        if part or text == "":
            m = _ADDRESS.match(part)
            assert m is not None
            digits, rest = m.group(1), m.group(2)
            found.append((int(digits) if digits else None, rest, *_split_command(rest)))
    parts = tuple(found)
    if len(_PARSED) < _MAX_PARSED:
        _PARSED[raw] = parts
    return parts
