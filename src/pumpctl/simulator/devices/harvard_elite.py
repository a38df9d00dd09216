"""Harvard Apparatus 11 Elite / PHD Ultra "text" protocol emulation.

Its own codec, written from the protocol notes (never shares code with the driver). A request is
`[address[:]]command[ args]` + CR (LF also ends a line; the LF of a CR LF is not a second line):
lower-case words that may be shortened to their first 4 letters, quantities with text units
(`ml/min`, `ul/hr`, short `m/m`, `u/h`; `ml`, `ul`, short `m`, `u`). A reply is produced at once:
LF, then one line per body line, each `aa<prompt>body` + CR LF (`aa` = 2-digit address; prompt
`:` idle, `>` infusing, `<` withdrawing, `*` stalled, `T*` target reached). A bare line is
answered with the prompt line, which host software uses to discover the address. Behaviour the
notes leave open is decided here and marked "Emulation choice".
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import ClassVar

from pumpctl.simulator.devices.base import BufferedEmulation, PumpSnapshot
from pumpctl.simulator.devices.harvard_elite_pump import (
    BAUD_RATES,
    COMMANDS,
    DEFAULT_DIAMETER_MM,
    DEFAULT_SYRINGE_ML,
    DIAMETER_RANGE_MM,
    ERRORS,
    FORCE_RANGE_PERCENT,
    LOOKUP,
    MAX_LINE_BYTES,
    MAX_RATE_REF_ML_PER_MIN,
    METRICS,
    MIN_RATE_REF_ML_PER_MIN,
    QUANTITY,
    REFERENCE_DIAMETER_MM,
    REQUEST,
    SYRINGE_RANGE_ML,
    TIME_UNITS_MIN,
    VERSION,
    VOLUME_UNITS_ML,
    Pump,
    PumpError,
    State,
    format_quantity,
    parse_quantity,
    to_decimal,
)
from pumpctl.simulator.physics import StopReason, SyringePhysics

# format_quantity and parse_quantity: re-exported (the tests read the grammar from here)
__all__ = ["HarvardEliteEmulation", "format_quantity", "parse_quantity"]

# --------------------------------------------------------------------------- the link


class HarvardEliteEmulation(BufferedEmulation):
    """11 Elite pumps (infuse/withdraw) on one link. Pure: no threads, no clock, no I/O.

    A profile of the same firmware family (KD Scientific Legato) subclasses it and changes
    the data below and the reply layout (`_reply`, `_error_lines`)."""

    model = "harvard-elite"
    counts_commands = True  # every line (CR, LF or CR LF) counts
    #: the family's data: commands, `ver` text, number decimals, the motor's reference point
    commands: ClassVar[tuple[str, ...]] = COMMANDS
    version: ClassVar[str] = VERSION
    quantity_decimals: ClassVar[int] = 3
    reference_diameter_mm: ClassVar[Decimal] = REFERENCE_DIAMETER_MM
    min_rate_ref_ml_per_min: ClassVar[Decimal] = MIN_RATE_REF_ML_PER_MIN
    max_rate_ref_ml_per_min: ClassVar[Decimal] = MAX_RATE_REF_ML_PER_MIN
    default_diameter_mm: ClassVar[Decimal] = DEFAULT_DIAMETER_MM
    default_syringe_ml: ClassVar[Decimal] = DEFAULT_SYRINGE_ML

    def __init__(self, addresses: Iterable[int] = (0,)) -> None:
        addrs = list(addresses)
        if not addrs or len(set(addrs)) != len(addrs) or not all(0 <= a <= 99 for a in addrs):
            raise ValueError(f"addresses must be distinct, in 0..99, got {addrs}")
        super().__init__()
        self._pumps: dict[int, Pump] = {}
        for a in addrs:
            d, cap = self.default_diameter_mm, self.default_syringe_ml
            physics = SyringePhysics(float(d), float(cap))
            self._pumps[a] = Pump(a, physics, diameter_mm=d, syringe_ml=cap)
        self._now_comp = 0.0
        self._line = bytearray()
        self._after_cr = False

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
        """Put a syringe on a pump (rig setup); sets `diameter` and `svolume` to match."""
        p = self._pumps[address]
        p.halt(State.IDLE)
        p.diameter_mm, p.syringe_ml = Decimal(str(inner_diameter_mm)), Decimal(str(capacity_ml))
        p.physics.load(inner_diameter_mm, capacity_ml, contents_ml)

    def _receive(self, data: bytes) -> None:
        for b in data:
            if b == 0x0D or b == 0x0A:
                if b == 0x0A and self._after_cr:  # the LF of a CR LF
                    self._after_cr = False
                    continue
                self._after_cr = b == 0x0D
                line = self._line.decode("latin-1")
                self._line.clear()
                self.commands_seen += 1
                self._on_line(line)
                continue
            self._after_cr = False
            if len(self._line) < MAX_LINE_BYTES:
                self._line.append(b)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        y = seconds - self._now_comp
        end = self._now + y
        self._now_comp = (end - self._now) - y
        dt = max(0.0, end - self._now)
        self._now = end
        for p in self._pumps.values():
            reason = p.physics.advance(dt)
            if reason is StopReason.LIMIT:
                p.state = State.TARGET
            elif reason is not None:
                p.state, p.alarm_reason = State.STALLED, reason.value

    def snapshot(self) -> dict[int, PumpSnapshot]:
        return {a: p.snapshot() for a, p in sorted(self._pumps.items())}

    def set_occlusion(self, address: int, on: bool) -> None:
        self._pumps[address].physics.set_occluded(on)

    def _drop_partial_input(self) -> None:
        self._line.clear()

    def power_cycle(self, address: int) -> None:
        """Emulation choice: syringe, rates, force and address are non-volatile; the motor stops,
        the volume counters and the target are lost, and the pump never resumes by itself."""
        p = self._pumps[address]
        p.halt(State.IDLE)
        p.target_ml = None
        p.i_base_ml, p.w_base_ml = p.physics.infused_ml, p.physics.withdrawn_ml
        p.alarm_reason = "reset"

    def corrupt_next_checksums(self, n: int) -> None:
        """Text replies carry no checksum: nothing to corrupt."""

    def set_syringe_remaining_ml(self, address: int, remaining_ml: float) -> None:
        """Leave `remaining_ml` in pump `address`'s syringe; a running pump keeps running."""
        p = self._pumps[address]
        ph = p.physics
        moving, rate = ph.moving, ph.rate_ml_per_h
        ph.load(ph.inner_diameter_mm, ph.capacity_ml, min(max(0.0, remaining_ml), ph.capacity_ml))
        if moving:
            ph.start(rate, infuse=p.infuse, limit_ml=p.travel_left_ml())

    # -- output --------------------------------------------------------------------------------

    def _reply(self, p: Pump, lines: list[str]) -> bytes:
        """One whole reply, queued at once: it never has a gap a host would take for its end."""
        head = f"{p.address:02d}{p.prompt}"
        data = ("\n" + "".join(f"{head}{line}\r\n" for line in lines)).encode("latin-1")
        # Emulation choice: a garble flips bit 6 of the first address digit (`00:` -> `p0:`);
        # the line structure stays, so a host notices only by checking the address.
        return self._inject_faults(data, 1)

    # -- input ---------------------------------------------------------------------------------

    def _on_line(self, line: str) -> None:
        m = REQUEST.fullmatch(line)
        if m is None:
            return
        addr_text, word, args = m.group(1), m.group(2), m.group(3)
        if addr_text is None and not word:
            # A bare line: every pump answers with its prompt line (address discovery).
            # Emulation choice: on a chain of several the lines follow in address order.
            self._queue(b"".join(self._reply(p, [""]) for _, p in sorted(self._pumps.items())))
            return
        # Emulation choice (PHD Ultra manual: the address precedes only a non-zero address): a
        # command without address is for pump 0.
        pump = self._pumps.get(int(addr_text) if addr_text else 0)
        if pump is None:
            return  # unknown address: silence
        if not word:
            self._queue(self._reply(pump, [""]))
            return
        name = self._lookup(word.lower())
        try:
            if name is None:
                raise PumpError(ERRORS["unknown"])
            lines = self._command(pump, name, args.lower().split())
        except PumpError as exc:
            lines = self._error_lines(str(exc), word, args)
        self._queue(self._reply(pump, lines))

    def _lookup(self, word: str) -> str | None:
        """The command a word names: whole, its first 4 letters, or a longer prefix."""
        name = LOOKUP.get(word) if self.commands is COMMANDS else None
        if name is None:
            name = next((c for c in self.commands if word in (c, c[:4])), None)
        if name is None and len(word) >= 4:
            name = next((c for c in self.commands if c.startswith(word)), None)
        return name

    def _error_lines(self, error: str, word: str, args: str) -> list[str]:
        """The body of an error reply (11 Elite: the error text alone)."""
        return [error]

    def _quantity(self, ml: Decimal, per: str = "", *, rounding: str = ROUND_DOWN) -> str:
        return format_quantity(ml, per, rounding=rounding, decimals=self.quantity_decimals)

    def _rate_limits(self, diameter_mm: Decimal) -> tuple[Decimal, Decimal]:
        """Rate limits follow plunger speed: the reference limits scaled by bore area."""
        ref = self.reference_diameter_mm
        scale = diameter_mm * diameter_mm / (ref * ref)
        return self.min_rate_ref_ml_per_min * scale, self.max_rate_ref_ml_per_min * scale

    # -- commands ------------------------------------------------------------------------------

    def _command(self, p: Pump, name: str, args: list[str]) -> list[str]:
        """Run one command; the body lines of the reply ([""]: the prompt line alone)."""
        if name in ("irun", "wrun", "run", "rrun", "stp"):
            if args:
                raise PumpError(ERRORS["argument"])
            if name == "stp":
                p.halt(State.IDLE)
            else:
                infuse = {"irun": True, "wrun": False, "run": p.infuse}.get(name, not p.infuse)
                self._run(p, infuse=infuse)
            return [""]
        if name in ("irate", "wrate"):
            return self._rate(p, args, infuse=name == "irate")
        if name in ("ivolume", "wvolume", "crate", "ver", "metrics", "status"):
            if args:
                raise PumpError(ERRORS["argument"])
            return self._query(p, name)
        if name in ("civolume", "cwvolume", "cvolume", "ctvolume"):
            if args:
                raise PumpError(ERRORS["argument"])
            if name != "cwvolume" and name != "ctvolume":
                p.i_base_ml = p.physics.infused_ml
            if name != "civolume" and name != "ctvolume":
                p.w_base_ml = p.physics.withdrawn_ml
            if name == "ctvolume":
                p.set_target(None)
            return [""]
        if name == "tvolume":
            if not args:
                if p.target_ml is None:
                    return ["Target volume not set"]
                return [self._quantity(p.target_ml)]
            p.set_target(self._volume(args, limit=p.syringe_ml))
            return [""]
        if name in ("diameter", "svolume"):
            return self._syringe(p, name, args)
        return self._setting(p, name, args)

    def _query(self, p: Pump, name: str) -> list[str]:
        if name in ("ivolume", "wvolume"):
            return [self._quantity(to_decimal(p.counter_ml(infuse=name == "ivolume")))]
        if name == "crate":
            return [p.crate_text(self.quantity_decimals)]
        if name == "ver":
            return [self.version]
        if name == "metrics":
            return [f"{label:<19}{value}" for label, value in METRICS] + [""]
        return [p.status_text(self._now)]  # status (PHD Ultra)

    def _rate(self, p: Pump, args: list[str], *, infuse: bool) -> list[str]:
        rate = p.irate if infuse else p.wrate
        lo, hi = self._rate_limits(p.diameter_mm)
        if not args:
            return [rate.text(self.quantity_decimals)]
        if args == ["lim"]:
            low = self._quantity(lo, "/min", rounding=ROUND_CEILING)
            return [f"{low} to {self._quantity(hi, '/min')}"]
        if args in (["max"], ["min"]):
            value, time = (hi if args == ["max"] else lo), rate.time
        else:
            parsed = parse_quantity(" ".join(args), rate=True)
            if parsed is None or parsed[1] is None or parsed[2] is None:
                raise PumpError(ERRORS["argument"])
            number, vol, time = parsed[0], parsed[1], parsed[2]
            value = number * VOLUME_UNITS_ML[vol] / TIME_UNITS_MIN[time]
            if not lo <= value <= hi:
                raise PumpError(ERRORS["range"])
        rate.ml_per_min, rate.time = value, time
        if p.state is State.RUNNING and p.infuse == infuse:  # a new rate takes effect at once
            p.physics.set_rate(float(value * 60))
        return [""]

    def _volume(self, args: list[str], *, limit: Decimal) -> Decimal:
        parsed = parse_quantity(" ".join(args), rate=False)
        if parsed is None or parsed[1] is None:
            raise PumpError(ERRORS["argument"])
        ml = parsed[0] * VOLUME_UNITS_ML[parsed[1]]
        if not 0 < ml <= limit:
            raise PumpError(ERRORS["argument"])  # as host software expects for a target too large
        return ml

    def _syringe(self, p: Pump, name: str, args: list[str]) -> list[str]:
        if not args:
            if name == "diameter":
                return [f"{p.diameter_mm:.4f} mm"]
            return [self._quantity(p.syringe_ml)]
        if name == "diameter":
            m = QUANTITY.fullmatch(" ".join(args))
            if m is None or m.group(2).lower() not in ("", "mm"):
                raise PumpError(ERRORS["argument"])
            value = Decimal(m.group(1))
            if not DIAMETER_RANGE_MM[0] <= value <= DIAMETER_RANGE_MM[1]:
                raise PumpError(ERRORS["range"])
        else:
            value = self._volume(args, limit=SYRINGE_RANGE_ML[1])
            if value < SYRINGE_RANGE_ML[0]:
                raise PumpError(ERRORS["range"])
        if p.state is State.RUNNING:
            raise PumpError(ERRORS["command"])
        if name == "diameter":
            p.diameter_mm = value
        else:
            p.syringe_ml = value
            if p.target_ml is not None and p.target_ml > value:
                p.target_ml = None
        # a new syringe is loaded, full
        p.physics.load(float(p.diameter_mm), float(p.syringe_ml), float(p.syringe_ml))
        return [""]

    def _setting(self, p: Pump, name: str, args: list[str]) -> list[str]:
        """force, address, baud, poll."""
        if name == "poll":
            if args and args != ["off"]:
                raise PumpError(ERRORS["argument"])  # Emulation choice: poll mode not emulated
            return ["off"] if not args else [""]
        current = {"force": p.force_percent, "address": p.address, "baud": self._baud()}[name]
        if not args:
            return [f"{current}%" if name == "force" else str(current)]
        if len(args) != 1 or not (args[0].isascii() and args[0].isdigit()):  # `²` is no digit
            raise PumpError(ERRORS["argument"])
        value = int(args[0])
        if name == "force":
            if not FORCE_RANGE_PERCENT[0] <= value <= FORCE_RANGE_PERCENT[1]:
                raise PumpError(ERRORS["range"])
            p.force_percent = value
        elif name == "baud":
            if value not in BAUD_RATES:
                raise PumpError(ERRORS["range"])
            # The reply still goes out at the old baud; the line changes after it.
            self.set_baud_rate(value)
        else:
            if value > 99:
                raise PumpError(ERRORS["range"])
            if value != p.address and value in self._pumps:
                raise PumpError(ERRORS["command"])  # two pumps would share an address
            del self._pumps[p.address]
            p.address = value  # the reply comes from the new address
            self._pumps[value] = p
        return [""]

    def _baud(self) -> int:
        return self.uart_settings().baud

    # -- motion --------------------------------------------------------------------------------

    def _run(self, p: Pump, *, infuse: bool) -> None:
        if p.state is State.RUNNING and infuse == p.infuse:
            return  # already running that way: the prompt says so
        rate = p.irate if infuse else p.wrate
        lo, hi = self._rate_limits(p.diameter_mm)
        if not lo <= rate.ml_per_min <= hi:
            raise PumpError(ERRORS["range"])  # no rate set (or one the new syringe cannot do)
        p.infuse = infuse
        limit = p.travel_left_ml()
        if limit == 0.0:
            p.halt(State.TARGET)  # target already reached by the counter
            return
        p.physics.start(float(rate.ml_per_min * 60), infuse=infuse, limit_ml=limit)
        p.state, p.alarm_reason, p.run_started_s = State.RUNNING, None, self._now
