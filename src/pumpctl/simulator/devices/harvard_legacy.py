"""Harvard Apparatus legacy "pump chain" emulation: Pump 11 / 11 Plus and PHD2000 on one link.

Its own codec, written from the protocol notes (never shares code with the driver). A request is
`[address]COMMAND[value]` + CR (spaces and case ignored); a reply is CR LF, an optional text line
(query answer or error `?`, `NA`, `OOR`) ending CR LF, then address + prompt. Host software reads
replies by byte count, so widths are fixed: a set/action reply is 5 bytes (`\\r\\n00:`), DIA/VOL
17 - 2 = 15 bytes (8-character number), VER 17 bytes (10-character text), RAT a 6-character number
plus ` ul/m`, ` ml/m`, ` ul/h` or ` ml/h`. A PHD2000 does not pad its address and puts an extra CR
before it (`\\r\\n\\r0:`: still 5 bytes at addresses 0-9), answers STP on a running pump with `*`,
and adds DIR/MOD/RFR/TGT/DEL/CLD/AF/PAR/IN/OUT/SAV. Behaviour the notes leave open is decided
here and marked "Emulation choice".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal

from pumpctl.simulator.devices.base import BufferedEmulation, PumpSnapshot
from pumpctl.simulator.physics import StopReason, SyringePhysics

__all__ = ["HarvardLegacyEmulation", "format_field", "format_rate"]

from pumpctl.simulator.devices.harvard_legacy_facts import (
    _DELETE,
    DEFAULT_DIAMETER_MM,
    DIAMETER_DECIMALS,
    DIAMETER_RANGE_MM,
    MAX_LINE_BYTES,
    NO_ARGUMENT,
    PHD_COMMANDS,
    PHD_RATE_UNITS,
    PUMP11_COMMANDS,
    QUERIES,
    QUERY_ONLY,
    RATE_COMMANDS_ML_PER_H,
    RATE_TEXT,
    TWO_LETTER,
    VERSION_PHD2000,
    VERSION_PUMP11,
    _to_decimal,
    format_field,
    format_rate,
    rate_limits_ml_per_h,
    syringe_capacity_ml,
)
from pumpctl.simulator.devices.harvard_legacy_pump import (
    Pump,
    ReplyError,
    Settings,
    State,
    number,
)

_DIGITS = frozenset("0123456789")


# --------------------------------------------------------------------------- the link


class HarvardLegacyEmulation(BufferedEmulation):
    """Pump 11 and PHD2000 pumps on one pump chain. Pure: no threads, no clock, no I/O.

    `addresses` are Pump 11s, `phd_addresses` PHD2000s (an address in both is a PHD2000).
    """

    model = "harvard-legacy"
    counts_commands = True  # every CR-terminated line counts

    def __init__(self, addresses: Iterable[int] = (0,), *, phd_addresses: Iterable[int] = ()):
        plain, phd = list(addresses), list(phd_addresses)
        every = plain + phd
        if not every or len(set(plain)) != len(plain) or len(set(phd)) != len(phd):
            raise ValueError(f"addresses must be distinct and not empty, got {plain}, {phd}")
        if not all(0 <= a <= 99 for a in every):
            raise ValueError(f"addresses must be in 0..99, got {every}")
        super().__init__()
        self._pumps: dict[int, Pump] = {}
        for a in sorted(set(every)):
            cap = syringe_capacity_ml(DEFAULT_DIAMETER_MM)
            physics = SyringePhysics(float(DEFAULT_DIAMETER_MM), cap)
            self._pumps[a] = Pump(a, a in phd, physics)
        self._order = sorted(self._pumps.values(), key=lambda p: p.address)
        self._now_comp = 0.0
        self._line = bytearray()

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
        """Put a syringe on a pump (rig setup); also sets the pump's diameter to match."""
        pump = self._pumps[address]
        self._halt(pump, State.STOPPED)
        pump.s.diameter_mm = Decimal(str(inner_diameter_mm))
        pump.physics.load(inner_diameter_mm, capacity_ml, contents_ml)

    def _receive(self, data: bytes) -> None:
        buf = self._line + data
        start = 0
        while (end := buf.find(b"\r", start)) >= 0:
            self.commands_seen += 1
            self._on_line(bytes(buf[start:end]))
            start = end + 1
        rest = buf[start:]
        self._line = rest if len(rest) <= MAX_LINE_BYTES else bytearray()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        y = seconds - self._now_comp
        end = self._now + y
        self._now_comp = (end - self._now) - y
        dt = max(0.0, end - self._now)
        self._now = end
        for pump in self._order:
            reason = pump.physics.advance(dt)
            if reason is StopReason.LIMIT:  # target volume reached: the run ends, prompt `:`
                pump.state = State.STOPPED
            elif reason is not None:  # stall, empty or full: prompt `*`
                pump.state, pump.alarm_reason = State.STALLED, reason.value

    def snapshot(self) -> dict[int, PumpSnapshot]:
        return {a: self._snapshot(p) for a, p in sorted(self._pumps.items())}

    def set_occlusion(self, address: int, on: bool) -> None:
        self._pumps[address].physics.set_occluded(on)

    def _drop_partial_input(self) -> None:
        self._line.clear()

    def power_cycle(self, address: int) -> None:
        """Emulation choice: a Pump 11 keeps its diameter and loses rate and target; a PHD2000
        comes back with what SAV stored. Counters restart; the pump never resumes by itself."""
        pump = self._pumps[address]
        self._halt(pump, State.STOPPED)
        if pump.phd:
            pump.s = replace(pump.saved)
        else:
            pump.s = Settings(diameter_mm=pump.s.diameter_mm)
        pump.vol_base_travel_ml = pump.run_start_travel_ml = pump.travel_ml()
        pump.alarm_reason = "reset"

    def corrupt_next_checksums(self, n: int) -> None:
        """Pump-chain replies carry no checksum: nothing to corrupt."""

    def set_syringe_remaining_ml(self, address: int, remaining_ml: float) -> None:
        """Leave `remaining_ml` in pump `address`'s syringe; a running pump keeps running."""
        p = self._pumps[address]
        ph = p.physics
        moving, rate, infuse = ph.moving, ph.rate_ml_per_h, ph.infusing
        contents = min(max(0.0, remaining_ml), ph.capacity_ml)
        ph.load(ph.inner_diameter_mm, ph.capacity_ml, contents)
        if moving:
            ph.start(rate, infuse=infuse, limit_ml=self._remaining_target(p))

    # -- output --------------------------------------------------------------------------------

    def _snapshot(self, p: Pump) -> PumpSnapshot:
        moving = p.physics.moving
        rate = p.physics.rate_ml_per_h if moving else float(p.rate_ml_per_h())
        target = p.s.target_ml
        return PumpSnapshot(
            running=p.state is State.RUNNING,
            direction="infuse" if p.s.infuse else "withdraw",
            rate_ml_per_h=round(rate, 9),
            delivered_ml=round(p.physics.pushed_net_ml, 9),
            target_ml=float(target) if target else None,
            alarm=p.alarm_reason,
        )

    def _reply(self, p: Pump, line: str | None) -> bytes:
        """CR LF [line CR LF] address prompt; the PHD2000's address unpadded after an extra CR."""
        tail = f"\r{p.address}{p.prompt}" if p.phd else f"{p.address:02d}{p.prompt}"
        text = "\r\n" + (line + "\r\n" if line is not None else "") + tail
        # Emulation choice: a garble flips bit 6 of the first address digit (`00:` -> `p0:`);
        # the byte count, the CR LF framing and the prompt stay, so only a host that checks the
        # address (or the number) notices.
        data = text.encode("latin-1")
        return self._inject_faults(data, len(data) - len(tail) + (1 if p.phd else 0))

    # -- input ---------------------------------------------------------------------------------

    def _on_line(self, raw: bytes) -> None:
        text = raw.translate(None, _DELETE).upper().decode("latin-1")
        addr: int | None = None
        if text[:1] in _DIGITS:  # ASCII only: `²` is no address (the pump sees a command `²…`)
            n = 2 if text[1:2] in _DIGITS else 1
            addr, text = int(text[:n]), text[n:]
        if addr is None:
            # Emulation choice (clone manuals): a command without address reaches every pump and
            # every pump answers; on a chain of several the replies follow one another in
            # address order (a real chain garbles them). A bare CR stops every pump.
            targets = self._order
            text = text or "STP"
        else:
            pump = self._pumps.get(addr)
            if pump is None:
                return  # unknown address: silence
            targets = [pump]
        if len(targets) == 1:
            self._queue(self._execute(targets[0], text))
        else:
            self._queue(b"".join(self._execute(p, text) for p in targets))

    def _execute(self, p: Pump, text: str) -> bytes:
        if not text:
            return self._reply(p, None)  # address only: the prompt
        name, args = text[:3], text[3:]
        if name not in PHD_COMMANDS and text[:2] in TWO_LETTER:
            name, args = text[:2], text[2:]
        allowed = PHD_COMMANDS if p.phd else PUMP11_COMMANDS
        try:
            if name not in allowed:
                raise ReplyError("?")
            return self._reply(p, self._command(p, name, args))
        except ReplyError as exc:
            return self._reply(p, str(exc))

    # -- commands ------------------------------------------------------------------------------

    def _command(self, p: Pump, name: str, args: str) -> str | None:
        """Run one command; the text line of the reply (None: a set/action reply)."""
        if name in QUERIES:
            if not args:
                return self._query(p, name)
            if name in QUERY_ONLY or not p.phd:  # Pump 11 sets with MMD/ULM..., not DIA/RAT
                raise ReplyError("?")
        elif name not in NO_ARGUMENT and not args:
            raise ReplyError("?")
        if name == "RUN":
            self._run(p)
        elif name == "STP":
            if p.phd and p.state is not State.STOPPED:
                self._halt(p, State.INTERRUPTED)  # PHD2000: `*`, interrupted
            else:
                self._halt(p, State.STOPPED)
        elif name == "REV":
            self._set_direction(p, infuse=not p.s.infuse)
        elif name in ("CLV", "CLD"):
            p.vol_base_travel_ml = p.travel_ml()
        elif name == "CLT":
            self._set_target(p, None)
        elif name in ("MLT", "TGT"):
            self._set_target(p, number(args) * p.volume_unit_ml())
        elif name in ("MMD", "DIA"):
            self._set_diameter(p, args)
        elif name in RATE_COMMANDS_ML_PER_H:
            self._set_rate(p, number(args), name)
        elif name in ("RAT", "RFR"):
            self._set_phd_rate(p, args, refill=name == "RFR")
        elif name == "DIR":
            if args not in ("INF", "REF", "REV"):
                raise ReplyError("OOR")
            self._set_direction(p, infuse=(args == "INF") if args != "REV" else not p.s.infuse)
        elif name == "MOD":
            self._set_mode(p, args)
        elif name in ("AF", "PAR"):
            if not args:
                return p.misc[name]
            if args not in ("ON", "OFF"):
                raise ReplyError("OOR")
            p.misc[name] = args
        elif name == "IN":
            if args not in ("6", "7", "8"):
                raise ReplyError("NA")
            return "OFF"
        elif name == "OUT":
            if args not in ("4ON", "4OFF", "5ON", "5OFF"):
                raise ReplyError("NA")
        elif name == "SAV":
            p.saved = replace(p.s)
        return None

    def _query(self, p: Pump, name: str) -> str:
        if name in ("VOL", "DEL"):
            volume_ml = _to_decimal(max(0.0, p.travel_ml() - p.vol_base_travel_ml))
            return format_field(volume_ml / p.volume_unit_ml())
        if name == "DIA":
            return format_field(p.s.diameter_mm)
        if name == "RAT":
            return format_rate(p.s.rate) + " " + RATE_TEXT[p.phd][p.s.rate_units]
        if name == "RFR":
            s = p.s
            rate, units = (s.rate, s.rate_units) if s.refill is None else (s.refill, s.refill_units)
            return format_rate(rate) + " " + RATE_TEXT[True][units]
        if name in ("TAR", "TGT"):
            return format_field((p.s.target_ml or Decimal(0)) / p.volume_unit_ml())
        if name == "DIR":
            return "INFUSE" if p.s.infuse else "REFILL"
        if name == "MOD":
            return p.s.mode
        return VERSION_PHD2000 if p.phd else VERSION_PUMP11

    def _set_diameter(self, p: Pump, args: str) -> None:
        value = number(args).quantize(
            Decimal(1).scaleb(-DIAMETER_DECIMALS[p.phd]), rounding=ROUND_DOWN
        )
        lo, hi = DIAMETER_RANGE_MM[p.phd]
        if not lo <= value <= hi:
            raise ReplyError("OOR")
        if p.state is State.RUNNING:
            raise ReplyError("NA")
        if value != p.s.diameter_mm:
            # A new bore is a new (full) syringe; as host software warns, it resets the rate.
            capacity = syringe_capacity_ml(value)
            p.physics.load(float(value), capacity, capacity)
            p.s.rate = Decimal(0)
            p.s.refill = None
        p.s.diameter_mm = value

    def _check_rate(self, p: Pump, ml_per_h: Decimal) -> None:
        lo, hi = rate_limits_ml_per_h(p.s.diameter_mm)
        if not lo <= ml_per_h <= hi:
            raise ReplyError("OOR")

    def _set_rate(self, p: Pump, value: Decimal, units: str, *, refill: bool = False) -> None:
        self._check_rate(p, value * RATE_COMMANDS_ML_PER_H[units])
        if refill:
            p.s.refill, p.s.refill_units = value, units
        else:
            p.s.rate, p.s.rate_units = value, units
        if p.state is State.RUNNING:  # a new rate takes effect at once
            p.physics.set_rate(float(p.rate_ml_per_h()))

    def _set_phd_rate(self, p: Pump, args: str, *, refill: bool) -> None:
        units = PHD_RATE_UNITS.get(args[-2:])
        text = args[:-2] if units else args
        if units is None:
            units = p.s.refill_units if refill and p.s.refill is not None else p.s.rate_units
        self._set_rate(p, number(text), units, refill=refill)

    def _set_target(self, p: Pump, value: Decimal | None) -> None:
        if value is not None and p.state is State.RUNNING:
            raise ReplyError("NA")
        p.s.target_ml = value if value else None
        if value is None and p.physics.moving:  # the run goes on without a target
            p.physics.start(p.physics.rate_ml_per_h, infuse=p.s.infuse)

    def _set_mode(self, p: Pump, args: str) -> None:
        modes = {"PMP": "PUMP", "VOL": "VOLUME", "VLM": "VOLUME", "PGM": "PROGRAM"}
        if args not in modes:
            raise ReplyError("OOR")
        if args == "PGM" or p.state is State.RUNNING:
            raise ReplyError("NA")  # Emulation choice: stored programs are not emulated
        p.s.mode = modes[args]

    def _set_direction(self, p: Pump, *, infuse: bool) -> None:
        """REV reverses; a running pump keeps running the other way (Pump 11 host software
        relies on `REV` answering `<` while infusing and `:` while stopped)."""
        if p.state is State.RUNNING:
            rate = p.rate_ml_per_h(infuse=infuse)
            self._check_rate(p, rate)
            p.physics.set_direction(infuse=infuse)
            p.physics.set_rate(float(rate))
        p.s.infuse = infuse

    # -- motion --------------------------------------------------------------------------------

    def _remaining_target(self, p: Pump) -> float | None:
        target = p.s.target_ml
        if not target:
            return None
        return max(0.0, float(target) - (p.travel_ml() - p.run_start_travel_ml))

    def _run(self, p: Pump) -> None:
        if p.state is State.RUNNING:
            if p.phd:
                raise ReplyError("NA")  # PHD2000 host software treats NA as "already running"
            return  # Pump 11: ignored, the prompt says it runs
        rate = p.rate_ml_per_h()
        self._check_rate(p, rate)
        p.vol_base_travel_ml = p.run_start_travel_ml = p.travel_ml()  # a new run
        limit = self._remaining_target(p)
        p.physics.start(float(rate), infuse=p.s.infuse, limit_ml=limit)
        p.state, p.alarm_reason = State.RUNNING, None

    def _halt(self, p: Pump, state: State) -> None:
        p.physics.stop()
        p.state = state
