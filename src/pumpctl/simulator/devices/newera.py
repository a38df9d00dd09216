"""New Era NE-1000 family emulation: its own codec, written from the RS-232 protocol notes.

Never shares code with the driver: the two must agree only on the wire. One link carries one or
more pumps (addresses 0-99). Basic mode is `[addr]CMD[params]\\r` -> `STX addr status data ETX`;
safe mode frames both directions as `STX LEN data CRC16-XMODEM ETX`. Safe packets are accepted at
any time; each reply is framed in the mode in force after its command. Behaviour the notes leave
open is decided here and documented next to the code (look for "Emulation choice").
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pumpctl.simulator.devices.base import BufferedEmulation, PumpSnapshot
from pumpctl.simulator.devices.newera_pump import (
    DEFAULT_DIAMETER_MM,
    MAX_LINE_BYTES,
    MISC_SETTINGS,
    SAFE_INTER_BYTE_GAP_S,
    SETTINGS,
    VERSION,
    Pump,
    PumpError,
    Run,
    clear_volume,
    dispensed,
    max_rate_ml_per_h,
    misc_setting,
    reload_syringe,
    set_safe_timeout,
    snapshot_of,
    syringe_capacity_ml,
)
from pumpctl.simulator.devices.newera_wire import (
    ADDRESS_TEXT,
    CR,
    STX,
    format_number,
    frame_safe,
    framed_reply,
    packet_address,
    parse_line,
    parse_packet,
)
from pumpctl.simulator.physics import StopReason, SyringePhysics

# format_number and frame_safe: re-exported for the tests and third-party conformance suites
__all__ = ["NE1000Emulation", "format_number", "frame_safe"]

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
        self._pumps: dict[int, Pump] = {}
        for a in addrs:
            physics = SyringePhysics(
                float(DEFAULT_DIAMETER_MM), syringe_capacity_ml(DEFAULT_DIAMETER_MM)
            )
            pump = Pump(a, physics, safe_timeout_s=safe_mode_timeout_s)
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
        pump.stop(Run.STOPPED)
        pump.diameter_mm = Decimal(str(inner_diameter_mm))
        pump.physics.load(inner_diameter_mm, capacity_ml, contents_ml)

    def _receive(self, data: bytes) -> None:
        """Bytes as the pump's UART hands them over, one at a time in effect: a safe packet
        starts at STX and ends after LEN bytes, a basic line ends at CR, an STX drops a partly
        received line. Whole packets and runs of line bytes are taken in one piece (the
        outcome is the byte-by-byte one); only a packet split across reads goes byte by byte."""
        now, n = self._now, len(data)
        if self._packet is not None:
            if now - self._last_byte_s > SAFE_INTER_BYTE_GAP_S * self.wire_time_scale:
                self._packet = None
        elif n > 4 and data[0] == STX and data[1] == n - 1:  # one whole packet: every poll
            self._last_byte_s = now
            self._line.clear()
            self.commands_seen += 1
            self._on_packet(bytes(data))
            return
        self._last_byte_s = now
        i = 0
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
        while (due := self._watchdog_due(end)) is not None:
            self._move(max(0.0, due - self._now))
            self._now = due
            for pump in self._pumps.values():
                if pump.watchdog_deadline_s is not None and pump.watchdog_deadline_s <= due:
                    pump.watchdog_deadline_s = None  # fires once; re-armed by the next packet
                    self._alarm(pump, "T", "link_timeout")
        self._move(max(0.0, end - self._now))
        self._now = end

    def _watchdog_due(self, end: float) -> float | None:
        """The earliest link-watchdog deadline by `end`, if one falls by then."""
        due = None
        for pump in self._pumps.values():
            deadline = pump.watchdog_deadline_s
            if deadline is not None and deadline <= end and (due is None or deadline < due):
                due = deadline
        return due

    def snapshot(self) -> dict[int, PumpSnapshot]:
        return {a: snapshot_of(p) for a, p in sorted(self._pumps.items())}

    def set_occlusion(self, address: int, on: bool) -> None:
        self._pumps[address].physics.set_occluded(on)

    def _drop_partial_input(self) -> None:
        self._line.clear()
        self._packet = None

    def power_cycle(self, address: int) -> None:
        """Counters and program are lost; DIA, address and SAF (non-volatile) are kept."""
        pump = self._pumps[address]
        pump.stop(Run.STOPPED)
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
        reload_syringe(self._pumps[address], remaining_ml)
        self._move(0.0)  # an empty barrel under an infusing plunger alarms now

    # -- time ----------------------------------------------------------------------------------

    def _move(self, dt: float) -> None:
        for pump in self._pumps.values():
            reason = pump.physics.advance(dt)
            if reason is None:
                continue
            if reason is StopReason.LIMIT:  # target volume reached: program ends
                pump.run = Run.STOPPED
            else:
                self._alarm(pump, "S", reason.value)  # empty, full or stall: all A?S

    # -- output --------------------------------------------------------------------------------

    def _reply(self, pump: Pump, body: str) -> None:
        safe = pump.safe
        framed = framed_reply(pump.address, body, safe)
        if self._bad_crc and safe:
            self._bad_crc -= 1
            framed = framed[:-2] + bytes((framed[-2] ^ 0xFF,)) + framed[-1:]  # CRC low byte
        # Emulation choice: a garble flips bit 6 of the first address digit; framing (and LEN)
        # stay intact, so a safe-mode host sees a CRC error and a basic-mode host a bad address.
        self._queue_reply(framed, 2 if safe else 1)

    def _auto_alarm(self, pump: Pump) -> None:
        """Safe mode announces alarms unsolicited, but never while a reply is outstanding.

        Emulation choice: an alarm that falls while the host awaits a reply is not announced;
        it stays pending and the host's next command reports (and acknowledges) it.
        """
        if not pump.safe or not self._link_up or pump.alarm_pending is None:
            return
        if self._reply_pending():
            return
        data = f"{ADDRESS_TEXT[pump.address]}A?{pump.alarm_pending}".encode("latin-1")
        self._queue(frame_safe(data), reply=False)

    # -- input ---------------------------------------------------------------------------------

    def _on_packet(self, pkt: bytes) -> None:
        parts = parse_packet(pkt)
        if parts is None:  # wrong CRC or ETX: ?COM from the pump it seems to address
            addr = packet_address(pkt[2:-3])
            if addr is None and len(self._pumps) == 1:
                addr = next(iter(self._pumps))  # no address: the only pump
            if addr in self._pumps:
                pump = self._pumps[addr]
                self._reply(pump, pump.status + "?COM")
            return
        for address, rest, name, args in parts:
            self._dispatch(address, rest, name, args, safe=True)

    def _on_text(self, raw: str, *, safe: bool) -> None:
        for address, rest, name, args in parse_line(raw):
            self._dispatch(address, rest, name, args, safe=safe)

    def _dispatch(
        self, address: int | None, rest: str, name: str | None, args: str, *, safe: bool
    ) -> None:
        if address is None or rest.startswith("*"):  # *system commands: whatever the address
            targets = tuple(self._pumps.values())  # a copy: *ADR re-keys `_pumps`
        else:
            pump = self._pumps.get(address)
            if pump is None:
                return
            targets = (pump,)
        several = len(targets) > 1
        for pump in targets:
            if not safe and pump.safe:
                continue  # Emulation choice: in safe mode, basic lines are ignored
            if safe and pump.safe_timeout_s:
                pump.watchdog_deadline_s = self._now + pump.safe_timeout_s
            body = self._command(pump, rest, name, args, safe=safe, several=several)
            self._reply(pump, body)

    # -- commands ------------------------------------------------------------------------------

    def _command(
        self, p: Pump, text: str, name: str | None, args: str, *, safe: bool, several: bool
    ) -> str:
        """`text` split by `_split_command` into the command `name` and its `args`."""
        if name is None and text:
            return p.status + "?"
        if p.alarm_pending is not None:  # report = acknowledge; the command is not executed
            code, p.alarm_pending = p.alarm_pending, None
            return "A?" + code
        try:
            data = self._execute(p, name or "", args, safe=safe, several=several)
        except PumpError as exc:
            return p.status + "?" + str(exc)
        return p.status + data

    def _execute(self, p: Pump, name: str, args: str, *, safe: bool, several: bool) -> str:
        if name == "DIS":  # the poll, first
            return dispensed(p)
        if name == "":
            return ""
        if name == "VER":
            return VERSION
        setting = SETTINGS.get(name)
        if setting is not None:  # DIA, RAT, VOL, DIR
            return setting(p, args)
        if name == "RUN":
            if args not in ("", "1"):
                raise PumpError("OOR")  # Emulation choice: a single-phase program only
            p.start()
            return ""
        if name == "PUR":
            if p.run in (Run.RUNNING, Run.PURGING):
                raise PumpError("NA")
            p.begin(max_rate_ml_per_h(p.diameter_mm), limit_ml=None, run=Run.PURGING)
            return ""
        if name == "STP":
            paused = p.run is Run.RUNNING
            p.stop(Run.PAUSED if paused else Run.STOPPED)
            return ""
        if name == "CLD":
            return clear_volume(p, args)
        if name == "SAF":
            return set_safe_timeout(p, args, now_s=self._now, safe=safe)
        if name == "*ADR":
            return self._adr(p, args, several=several)
        if name == "*RESET":
            p.stop(Run.STOPPED)
            p.factory_reset()
            return ""
        if name in MISC_SETTINGS:
            return misc_setting(p, name, args)
        if name == "IN":
            return "0"
        raise PumpError("NA")  # PHN/FUN: multi-phase programs are not emulated

    def _adr(self, p: Pump, args: str, *, several: bool) -> str:
        if not args:
            return str(p.address)
        if not (args.isascii() and args.isdigit()) or int(args) > 99:
            raise PumpError("NA" if args in ("DUAL", "RECP", "ALTR") else "OOR")
        new = int(args)
        if several or (new != p.address and new in self._pumps):
            raise PumpError("NA")  # would give two pumps one address
        del self._pumps[p.address]
        p.address = new
        self._pumps[new] = p
        return ""

    # -- alarms (starting and stopping one pump: `Pump.start`, `Pump.stop`) -------------------

    def _alarm(self, p: Pump, code: str, reason: str) -> None:
        """A pump in alarm keeps its first alarm until it is cleared: the code until the host
        has it reported (acknowledged), the ground-truth reason until the pump next starts
        (power loss aside, which forgets everything). So a link watchdog that fires after a
        stall neither hides the unreported `A?S` nor turns the stall into `link_timeout`."""
        p.stop(Run.STOPPED)
        if p.alarm_reason is None:
            p.alarm_reason = reason
        if p.alarm_pending is None:
            p.alarm_pending = code
            self._auto_alarm(p)  # announced once; an alarm already pending is not repeated
