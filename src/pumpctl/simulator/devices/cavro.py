"""Tecan Cavro XCalibur / XLP 6000 and Hamilton PSD/4, PSD/6 emulation: DT and OEM framing.

Its own codec, written from the XCalibur operating manual 733085-B §3 (the XLP 6000 manual
and what the PyPI clients send agree): DT frames `/` address command CR (an LF after the CR
is ignored), answered `/0` status data ETX CR LF; OEM blocks STX address sequence data ETX
checksum, answered STX `0` status data ETX checksum; a pump takes whichever protocol it sees
first and ignores the other until power-up (§3.2). Group and broadcast addresses (`A`...`O`,
`Q`...`]`, `_`) execute on every pump they name and are answered by none (Emulation choice:
"cannot be used to determine status", §3.1). Status byte `01X0EEEE` (Table 3-9); immediate
errors (invalid command 2, operand 3, command while busy 15, bypass 11) come in the answer and
are not kept (§3.6.3, p.3-52); a pump not initialized answers every move with 7, an
overloaded one with 9 until it is initialized again. The command strings' language and those
checks are in `cavro_commands`, the pump's mechanics and liquid in `cavro_pump`. Behaviour the
manual leaves open is marked "Emulation choice".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from pumpctl.families.cavro import MODELS, CavroModel
from pumpctl.simulator.devices.base import BufferedEmulation, PumpSnapshot
from pumpctl.simulator.devices.cavro_commands import CONTROL, REPORTS, immediate_error, tokenize
from pumpctl.simulator.devices.cavro_pump import CavroPump

__all__ = [
    "CavroEmulation",
    "CavroSnapshot",
    "Psd4Emulation",
    "Psd6Emulation",
    "XCaliburEmulation",
    "XCaliburOemEmulation",
    "Xlp6000Emulation",
    "Xlp6000OemEmulation",
    "tokenize",
]

STX, ETX, CR, LF = 0x02, 0x03, 0x0D, 0x0A
MAX_FRAME = 300  # XC §3.3.1: the command buffer holds 255 characters


class CavroSnapshot(PumpSnapshot):
    """The `--state` keys of a Cavro pump: the common ones plus the syringe's and valve's.

    `delivered_ml` is the net liquid pushed out of the output port (air excluded, an occluded
    line included), `rate_ml_per_h` the plunger's speed in mL/h while it moves (else the top
    speed's), `target_ml` always None (the pump has none; the driver counts its strokes)."""

    plunger_steps: int
    valve: str
    stroke_ml: float
    syringe_liquid_ml: float
    reservoir_ml: float
    initialized: bool


class CavroEmulation(BufferedEmulation):
    """Cavro pumps (address switches 0..E) on one RS-232/RS-485 link. Pure."""

    model: ClassVar[str]
    mechanics: ClassVar[CavroModel]
    firmware: ClassVar[str] = "XCALIBUR V1.04"
    #: the framings it takes. A real pump takes the first it sees (XC §3.2), as this base
    #: does; Emulation choice: each model's emulation speaks the one its name says, so
    #: `pumpctl simulate` and the port probe tell a DT pump from an OEM one
    protocols: ClassVar[tuple[str, ...]] = ("dt", "oem")
    counts_commands = True

    def __init__(self, addresses: Iterable[int] = (0,)) -> None:
        addrs = list(addresses)
        last = self.mechanics.last_address
        if not addrs or len(set(addrs)) != len(addrs) or not all(0 <= a <= last for a in addrs):
            raise ValueError(f"address switches must be distinct, in 0..{last}, got {addrs}")
        super().__init__()
        self._pumps = {a: CavroPump(self.mechanics) for a in addrs}
        self._protocol: dict[int, str] = {}  # the framing each pump took at power-up
        self._last_sequence: dict[int, int] = {}
        self._valve_reads: dict[int, int] = {}
        self._buf = bytearray()
        self._bad_checksums = 0

    # -- Emulation API -----------------------------------------------------------------------

    def pump(self, address: int) -> CavroPump:
        return self._pumps[address]

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        self._now += seconds
        for p in self._pumps.values():
            p.advance_to(self._now)

    def snapshot(self) -> dict[int, PumpSnapshot]:
        out: dict[int, PumpSnapshot] = {}
        for a, p in sorted(self._pumps.items()):
            moving = p.moving_ml_per_h()
            rate = moving or p.speed * p.stroke_ml * 3600 / self.mechanics.pulses_per_stroke
            out[a] = CavroSnapshot(
                running=p.busy,
                direction="infuse",
                rate_ml_per_h=round(rate, 9),
                delivered_ml=round(p.delivered_ml, 9),
                target_ml=None,
                alarm=p.alarm,
                plunger_steps=round(p.position),
                valve=p.valve,
                stroke_ml=p.stroke_ml,
                syringe_liquid_ml=round(p.liquid_ml, 9),
                reservoir_ml=round(p.reservoir_ml, 9),
                initialized=p.initialized,
            )
        return out

    def set_occlusion(self, address: int, on: bool) -> None:
        self._pumps[address].set_occluded(on, self._now)

    def power_cycle(self, address: int) -> None:
        """The motor stops; settings, counters and the position count are lost (`?` reads 0
        until `Z`), the plunger and valve stay where they are; the protocol is free again."""
        p = self._pumps[address]
        p.terminate(self._now)
        p.initialized, p.error, p.position_known, p.alarm = False, 7, False, "reset"
        p.mode, p.speed, p.buffer = 0, 1400, []
        self._protocol.pop(address, None)
        self._last_sequence.pop(address, None)

    def set_ml_per_rev(self, address: int, ml_per_rev: float) -> None:
        """A syringe of this stroke volume (the rig's), filled as far as the plunger is."""
        p = self._pumps[address]
        p.advance_to(self._now)
        p.stroke_ml = ml_per_rev
        p.liquid_ml, p.air_ml = p.position * p.step_ml, 0.0

    def set_reservoir_ml(self, address: int, volume_ml: float) -> None:
        """A new bottle on the reservoir port (an operator's container change)."""
        self._pumps[address].reservoir_ml = max(0.0, volume_ml)

    def set_syringe_remaining_ml(self, address: int, remaining_ml: float) -> None:
        """Leave at most `remaining_ml` of liquid in the syringe, the rest air; it goes on."""
        p = self._pumps[address]
        p.advance_to(self._now)
        total = p.liquid_ml + p.air_ml
        p.liquid_ml = min(max(0.0, remaining_ml), total)
        p.air_ml = total - p.liquid_ml

    def corrupt_next_checksums(self, n: int) -> None:
        """OEM answers: wrong checksum; a DT answer has none, so it is garbled instead."""
        self._bad_checksums = max(0, n)
        if "dt" in self._protocol.values():
            self.garble_next_replies(n)

    def _drop_partial_input(self) -> None:
        self._buf.clear()

    # -- framing -------------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        self._buf += data
        while True:
            slash, stx = self._buf.find(b"/"), self._buf.find(b"\x02")
            if slash < 0 and stx < 0:
                self._buf.clear()
                return
            del self._buf[: slash if stx < 0 or 0 <= slash < stx else stx]
            if self._buf[0] == STX:
                end = self._buf.find(b"\x03")
                if end < 0 or end + 1 >= len(self._buf):
                    break
                frame = bytes(self._buf[: end + 2])
                del self._buf[: end + 2]
                self.commands_seen += 1
                self._on_oem(frame)
            else:
                end = self._buf.find(b"\r")
                if end < 0:
                    break
                frame = bytes(self._buf[1:end])
                del self._buf[: end + 1]
                self.commands_seen += 1
                self._on_dt(frame)
        if len(self._buf) > MAX_FRAME:
            self._buf.clear()

    def _targets(self, byte: int) -> tuple[list[int], bool]:
        """Pumps an address byte names, and whether one of them answers."""
        switch = byte - 0x31
        if switch in self._pumps:
            return [switch], True
        if byte == 0x5F:  # `_`: all
            return list(self._pumps), False
        if 0x41 <= byte <= 0x4F and (byte - 0x41) % 2 == 0:  # dual: A (0+1) ... O (E+F)
            first = byte - 0x41
            return [a for a in self._pumps if first <= a <= first + 1], False
        if 0x51 <= byte <= 0x5D and (byte - 0x51) % 4 == 0:  # quad: Q (0-3) ... ] (C-F)
            first = byte - 0x51
            return [a for a in self._pumps if first <= a <= first + 3], False
        return [], False

    def _on_dt(self, frame: bytes) -> None:
        if not frame or max(frame) > 0x7E:
            return
        targets, answered = self._targets(frame[0])
        text = frame[1:].decode("ascii").rstrip("\n")
        for a in targets:
            if "dt" not in self.protocols or self._protocol.setdefault(a, "dt") != "dt":
                continue  # an OEM pump ignores DT frames until power-up
            status, data = self._process(self._pumps[a], text, a)
            if answered:
                reply = b"/0" + bytes([status]) + data.encode("ascii") + b"\x03\r\n"
                self._queue(self._inject_faults(reply, 2))

    def _on_oem(self, frame: bytes) -> None:
        block, check = frame[:-1], frame[-1]
        x = 0
        for b in block:
            x ^= b
        if x != check or len(block) < 4 or not 0x30 <= block[2] <= 0x3F:
            return  # Emulation choice: a bad block is not answered (the host resends it)
        targets, answered = self._targets(block[1])
        seq, repeat = block[2] & 0x07, bool(block[2] & 0x08)
        text = block[3:-1].decode("ascii", "replace")
        for a in targets:
            if "oem" not in self.protocols or self._protocol.setdefault(a, "oem") != "oem":
                continue
            p = self._pumps[a]
            if repeat and self._last_sequence.get(a) == seq:
                status, data = self._status(p), self._report(p, text, a, repeat=True)
            else:
                status, data = self._process(p, text, a)
            self._last_sequence[a] = seq
            if answered:
                self._queue(self._oem_reply(status, data))

    def _oem_reply(self, status: int, data: str) -> bytes:
        block = bytes([STX, 0x30, status]) + data.encode("ascii") + bytes([ETX])
        x = 0
        for b in block:
            x ^= b
        if self._bad_checksums:
            self._bad_checksums -= 1
            x ^= 0xFF
        return self._inject_faults(block + bytes([x]), 2)

    # -- commands ------------------------------------------------------------------------------

    def _status(self, p: CavroPump, error: int | None = None) -> int:
        code = p.error if error is None else error
        return 0x40 | (0 if p.busy else 0x20) | (code & 0x0F)

    def _process(self, p: CavroPump, text: str, address: int) -> tuple[int, str]:
        """One command string: (status byte, answer data)."""
        p.advance_to(self._now)
        tokens = tokenize(text)
        if tokens is None:
            return self._status(p, 2), ""
        letters = {t[0] for t in tokens}
        if letters & REPORTS:
            if "R" in letters and p.buffer and not p.busy:
                p.run(p.buffer, self._now)
                p.buffer = []
            return self._status(p), self._report(p, text, address)
        if "T" in letters:
            p.terminate(self._now)
            return self._status(p), ""
        error = immediate_error(p, tokens)
        if error:
            return self._status(p, error), ""
        program = [t for t in tokens if t[0] not in CONTROL]
        if p.busy:  # only `V` is taken while moving (§3.5.3: 5..1024 on the fly)
            if program:
                p.set_speed_now(program[-1][1][0], self._now)
            return self._status(p), ""
        if "X" in letters:
            p.run(p.last_program, self._now)
        elif "R" in letters:
            p.run(program or p.buffer, self._now)
            p.buffer = []
        elif program:
            p.buffer = program  # stored until `R` (§3.3.1)
        return self._status(p), ""

    def _report(self, p: CavroPump, text: str, address: int, *, repeat: bool = False) -> str:
        """Answer data of a report command (XC §3.5.8); `Q` has none."""
        head, number = text[:1], text[1:].rstrip("R")
        if head == "?":
            return self._query(p, int(number) if number.isdigit() else 0, address)
        if head == "%":  # counts valve moves since the last `%` or `?18`: only when asked
            return self._query(p, 18, address)
        return {"&": self.firmware, "F": str(int(bool(p.buffer))), "#": "5C3A",
                "*": "255"}.get(head, "")  # fmt: skip

    def _query(self, p: CavroPump, n: int, address: int) -> str:
        if n == 18:
            moved = p.counters["valve"] - self._valve_reads.get(address, 0)
            self._valve_reads[address] = p.counters["valve"]
            return str(moved)
        query = _QUERIES.get(n)  # only the one asked for is worked out (a poll asks `?`, `?6`)
        return "" if query is None else str(query(self, p))


#: report command `?n` (XC §3.5.8) -> its value, but `?18`, which counts (see `_query`)
_QUERIES: dict[int, Callable[[CavroEmulation, CavroPump], object]] = {
    0: lambda e, p: p.reported_position(), 1: lambda e, p: p.settings["v"],
    2: lambda e, p: p.speed, 3: lambda e, p: p.settings["c"],
    4: lambda e, p: p.reported_position(), 6: lambda e, p: p.valve,
    10: lambda e, p: int(bool(p.buffer)), 12: lambda e, p: p.settings["K"],
    13: lambda e, p: 0, 14: lambda e, p: 0, 15: lambda e, p: p.counters["init"],
    16: lambda e, p: p.counters["plunger"], 17: lambda e, p: p.counters["valve"],
    20: lambda e, p: "5C3A", 22: lambda e, p: 255, 23: lambda e, p: e.firmware,
    24: lambda e, p: p.settings["k"], 25: lambda e, p: p.settings["L"],
    28: lambda e, p: p.mode, 29: lambda e, p: int(p.busy),
    76: lambda e, p: f"{e.firmware}, {p.valve_ports or 3}-port valve",
}  # fmt: skip


# Emulation choice: the firmware texts (`&`); the manuals show none verbatim.


class XCaliburEmulation(CavroEmulation):
    model = "tecan-xcalibur"
    mechanics = MODELS[model][0]
    firmware = "XCALIBUR V1.04"
    protocols = ("dt",)


class XCaliburOemEmulation(XCaliburEmulation):
    model = "tecan-xcalibur-oem"
    protocols = ("oem",)


class Xlp6000Emulation(CavroEmulation):
    model = "tecan-xlp6000"
    mechanics = MODELS[model][0]
    firmware = "XLP6000 V1.8"
    protocols = ("dt",)


class Xlp6000OemEmulation(Xlp6000Emulation):
    model = "tecan-xlp6000-oem"
    protocols = ("oem",)


class Psd4Emulation(CavroEmulation):
    model = "hamilton-psd4"
    mechanics = MODELS[model][0]
    firmware = "PSD/4 V2.6"
    protocols = ("dt",)


class Psd6Emulation(CavroEmulation):
    model = "hamilton-psd6"
    mechanics = MODELS[model][0]
    firmware = "PSD/6 V2.6"
    protocols = ("dt",)
