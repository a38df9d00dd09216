"""Masterflex L/S computer-compatible drive emulation: its own codec, from the protocol notes.

Never shares code with the driver: the two agree only on the wire. One link (its line settings are
the family spec's: 4800 7O1) carries one or more drives ("satellites") numbered 01-89.

Host -> drive: `STX P nn <commands> CR`, e.g. `\\x02P01S+100.0G\\r`; `STX P nn CR` alone assigns
(selects) the number and takes the drive under computer control. ENQ (05h) is answered, CAN (18h)
discards the partial line, bytes outside a frame are ignored, and the eighth bit of every byte is
dropped (a 7-bit UART). Drive -> host: ACK (06h) or NAK (15h) for set/action commands; queries
answer `STX P nn <letter><value> CR`, ENQ answers `STX P nn CR`.

Behaviour the notes leave open is decided here and marked "Emulation choice". Public test logs
taken on real drives (a Python library's hardware test suite) informed some of them: `S` answers
`S+004.0`, the status digit sequence 1 (idle) / 2 (revolutions set) / 3 (running), `A0`, `K0`, U90
refused, and `G0` answering NAK although the motor runs.

An occluded line or a dry reservoir changes nothing on the wire: the drive senses neither, its
rotor turns on and `C` keeps counting. Only the ground truth (snapshot, `physics()`) shows that
no liquid moves; a host must detect it by other means (pressure sensor, balance, bubble sensor).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pumpctl.simulator.devices.base import BufferedEmulation, PumpSnapshot
from pumpctl.simulator.devices.masterflex_drive import (
    ACK,
    CAN,
    CR,
    ENQ,
    FRAME,
    MAX_FRAME_BYTES,
    MAX_SPEED_TENTHS,
    NAK,
    PUMP_NUMBERS,
    REMOTE_ONLY,
    STX,
    TOKEN,
    Drive,
    Mode,
    Nak,
    PeristalticSnapshot,
    format_revs,
    format_speed,
    parse_hundredths,
)
from pumpctl.simulator.peristaltic import DEFAULT_RIPPLE, DEFAULT_ROLLERS, PeristalticPhysics

__all__ = ["MasterflexEmulation", "PeristalticSnapshot", "format_revs", "format_speed"]

# --------------------------------------------------------------------------- the link


class MasterflexEmulation(BufferedEmulation):
    """Masterflex L/S drives daisy-chained on one link. Pure: no threads, no clock, no I/O.

    `ml_per_rev` is the TRUE tubing displacement of every drive (a host's nominal value may
    differ: that is what its calibration must discover); `set_ml_per_rev` changes one drive's.
    `address_in_replies=False` answers queries `STX <letter><value> CR` instead, as some
    hardware logs show (`I` and ENQ replies keep `Pnn` either way).
    """

    model = "masterflex-ls"
    counts_commands = True  # every STX..CR frame and every ENQ counts

    def __init__(
        self,
        addresses: Iterable[int] = (1,),
        *,
        ml_per_rev: float = 0.8,
        rollers: int = DEFAULT_ROLLERS,
        ripple: float = DEFAULT_RIPPLE,
        address_in_replies: bool = True,
        max_outbound_bytes: int = 4096,
    ) -> None:
        numbers = list(addresses)
        if not numbers or len(set(numbers)) != len(numbers):
            raise ValueError(f"pump numbers must be distinct and at least one, got {numbers}")
        if not all(n in PUMP_NUMBERS for n in numbers):
            raise ValueError(f"Masterflex pump numbers must be in 1..89, got {numbers}")
        super().__init__(max_outbound_bytes=max_outbound_bytes)
        self._drives: dict[int, Drive] = {}
        for n in numbers:
            physics = PeristalticPhysics(ml_per_rev, rollers=rollers, ripple=ripple)
            self._drives[n] = Drive(n, physics)
        self._chain = list(numbers)  # chain order of the satellites (ENQ: first one answers)
        self.address_in_replies = address_in_replies
        self._now_comp = 0.0
        self._frame: bytearray | None = None
        self._after_enq = False  # the partial frame began with ENQ, not STX

    # -- Emulation API -----------------------------------------------------------------------

    @property
    def addresses(self) -> list[int]:
        return sorted(self._drives)

    def physics(self, address: int) -> PeristalticPhysics:
        """The pump head on drive `address` (ground truth; tests and rigs read it)."""
        return self._drives[address].physics

    def set_ml_per_rev(self, address: int, ml_per_rev: float) -> None:
        """Fit other tubing on drive `address` (its true displacement, mL per revolution)."""
        self._drives[address].physics.set_ml_per_rev(ml_per_rev)

    def set_reservoir_ml(self, address: int, ml: float | None) -> None:
        """Liquid left upstream of drive `address` (None: endless); dry means it pumps air."""
        self._drives[address].physics.set_reservoir_ml(ml)

    def press_key(self, address: int) -> None:
        """Someone pressed a front-panel key (reported once by the next `K`)."""
        self._drives[address].key_pressed = True

    def _receive(self, data: bytes) -> None:
        for raw in data:
            b = raw & 0x7F  # 7 data bits: the eighth is parity on a real line
            if b == STX:
                self._frame, self._after_enq = bytearray(), False
            elif b == CAN:
                self._frame = None
            elif b == ENQ:
                self.commands_seen += 1
                self._on_enq()
                self._frame, self._after_enq = bytearray(), True
            elif self._frame is None:
                continue  # outside a frame (stray CR, ACK/NAK echoes, noise): ignored
            elif b == CR:
                body, self._frame = self._frame.decode("ascii"), None
                self.commands_seen += 1
                if not self._after_enq:
                    self._on_frame(body)
                elif FRAME.fullmatch(body) and len(body) == 3:
                    self._on_frame(body)  # `ENQ Pnn CR`: the number assignment, see `_on_enq`
            elif len(self._frame) < MAX_FRAME_BYTES:
                self._frame.append(b)
            else:
                self._frame = None  # overlong: junk, dropped until the next STX

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        y = seconds - self._now_comp
        end = self._now + y
        self._now_comp = (end - self._now) - y
        dt = end - self._now
        self._now = end
        for drive in self._drives.values():
            if drive.physics.advance(dt):  # revolutions to go reached: the run ends
                drive.mode, drive.revs_to_go = Mode.IDLE, 0.0

    def snapshot(self) -> dict[int, PumpSnapshot]:
        return {n: self._snapshot(d) for n, d in sorted(self._drives.items())}

    def set_occlusion(self, address: int, on: bool) -> None:
        """The motor keeps turning and the drive reports nothing: it has no pressure sensing."""
        self._drives[address].physics.set_occluded(on)

    def _drop_partial_input(self) -> None:
        self._frame = None

    def power_cycle(self, address: int) -> None:
        """Motor stops; speed, revolutions to go and counters are lost; back in local mode.

        Emulation choice: the pump number is kept (the host need not re-assign it, though it
        must send `R` again before the drive accepts motor commands).
        """
        self._drives[address].power_up()

    def corrupt_next_checksums(self, n: int) -> None:
        """Masterflex replies carry no checksum: nothing to corrupt."""

    def set_syringe_remaining_ml(self, address: int, remaining_ml: float) -> None:
        """The reservoir feeding drive `address` holds `remaining_ml`; at 0 the rotor turns on,
        pumping air, and the drive reports nothing (it senses no liquid)."""
        self.set_reservoir_ml(address, max(0.0, remaining_ml))

    # -- state ---------------------------------------------------------------------------------

    def _snapshot(self, d: Drive) -> PeristalticSnapshot:
        ml_per_rev = d.physics.ml_per_rev
        speed_rpm = d.speed_tenths / 10
        target = d.v_set_hundredths / 100 * ml_per_rev
        continuous = d.mode is Mode.CONTINUOUS
        return PeristalticSnapshot(
            running=d.mode is not Mode.IDLE,
            direction="infuse" if d.clockwise else "withdraw",
            rate_ml_per_h=round(speed_rpm * ml_per_rev * 60.0, 9),
            delivered_ml=round(d.physics.pumped_ml, 9),
            target_ml=round(target, 9) if target and not continuous else None,
            alarm=d.alarm_reason,
            speed_rpm=speed_rpm,
            continuous=continuous,
            revs_to_go=round(d.to_go(), 9),
        )

    # -- output --------------------------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        # Emulation choice: a garble flips bit 6 of the first byte after STX (of ACK/NAK
        # themselves): framing stays, content is wrong (ACK reads 'F', NAK 'U', `P01` reads
        # `\x1001`).
        self._queue(self._inject_faults(data, 1 if len(data) > 1 else 0))

    def _text(self, d: Drive, body: str, *, numbered: bool) -> None:
        prefix = f"P{d.number:02d}" if numbered else ""
        self._emit(b"\x02" + (prefix + body).encode("ascii") + b"\r")

    # -- input ---------------------------------------------------------------------------------

    def _on_enq(self) -> None:
        """Emulation choice for "ENQ after startup unreliable": only a drive that has seen no
        frame since power-up answers (the first such in chain order); later ENQs go unanswered,
        so a host must fall back to `I`.

        Emulation choice: `Pnn CR` right after an ENQ is taken as the number assignment (as
        `STX Pnn CR`), so it puts the drive under computer control. pylabrobot's Masterflex
        backend (docstring: "tested on: 07551-20") starts with exactly `ENQ`, `ENQ P02 CR` and
        then sends motion commands, never `R`; a drive left in local mode would refuse them.
        Anything else after an ENQ is ignored, as bytes outside a frame are."""
        for n in self._chain_order():
            d = self._drives[n]
            if d.startup:
                self._text(d, "", numbered=True)
                return

    def _chain_order(self) -> list[int]:
        return [n for n in self._chain if n in self._drives]

    def _on_frame(self, body: str) -> None:
        m = FRAME.fullmatch(body)
        d = self._drives.get(int(m.group(1))) if m else None
        if m is None or d is None:
            return  # not a frame for any satellite on this link: nobody answers
        d.startup = False
        rest = m.group(2)
        if not rest:  # number assignment: the drive is now under computer control
            d.remote, d.restarted = True, False
            self._emit(bytes((ACK,)))
            return
        tokens: list[re.Match[str]] = []
        pos = 0
        while pos < len(rest):
            t = TOKEN.match(rest, pos)
            if t is None:
                self._emit(bytes((NAK,)))  # syntax error: nothing in the frame is run
                return
            tokens.append(t)
            pos = t.end()
        queried = False
        for t in tokens:
            try:
                answer = self._command(d, t)
            except Nak:
                self._emit(bytes((NAK,)))
                return
            if answer is not None:
                queried = True
                self._text(d, answer, numbered=self.address_in_replies or answer[0] == "I")
        if not queried:
            self._emit(bytes((ACK,)))

    # -- commands ------------------------------------------------------------------------------

    def _command(self, d: Drive, t: re.Match[str]) -> str | None:
        """Run one command; returns a query's reply body, None for set/action (ACK)."""
        text = t.group(0)
        letter = text[0]
        if letter in REMOTE_ONLY and text != "S" and not d.remote:
            raise Nak
        if letter == "S":
            if t.group("sign") is None:
                return "S" + format_speed(d.speed_tenths, d.clockwise)
            self._set_speed(d, t.group("speed"), clockwise=t.group("sign") == "+")
        elif letter == "V":
            if d.mode is not Mode.IDLE:
                raise Nak  # Emulation choice: the count is set while stopped only
            d.v_set_hundredths = parse_hundredths(t.group("revs"))
            d.revs_to_go = d.v_set_hundredths / 100
        elif text == "G0":
            self._go_continuous(d)
        elif letter == "G":
            self._go(d)
        elif letter == "H":
            self._halt(d)
        elif text == "Z0":
            d.counter_base_revs = d.physics.turned_revs
        elif letter == "Z":
            if d.mode is Mode.COUNTED:
                self._halt(d)  # nothing left to go: the counted run ends
            d.revs_to_go = 0.0
        elif letter == "C":
            return "C" + format_revs(d.physics.turned_revs - d.counter_base_revs)
        elif letter == "E":
            return "E" + format_revs(d.to_go())
        elif letter == "I":
            remote, ccw = int(d.remote), int(not d.clockwise)
            return f"I{remote}{ccw}{int(d.restarted)}{d.status_digit()}"
        elif letter == "K":
            pressed, d.key_pressed = d.key_pressed, False
            return f"K{int(pressed)}"
        elif letter == "A":
            return "A0"  # no auxiliary inputs wired in the emulation
        elif letter == "R":
            d.remote, d.restarted = True, False
        elif letter == "L":
            d.remote = False
        elif letter == "U":
            self._renumber(d, int(t.group("number")))
        elif t.group("aux") == "B":
            d.aux_on_go = t.group("bits")
        elif t.group("aux") == "O":
            d.aux_out = t.group("bits")
        return None

    def _set_speed(self, d: Drive, text: str, *, clockwise: bool) -> None:
        whole, _, frac = text.partition(".")
        tenths = int(whole) * 10 + int(frac or "0")
        if tenths > MAX_SPEED_TENTHS:
            raise Nak
        d.speed_tenths, d.clockwise = tenths, clockwise
        if d.mode is Mode.IDLE:
            return
        if tenths == 0:
            self._halt(d)  # Emulation choice: speed 0 while running halts, as H would
            return
        d.physics.set_speed(tenths / 10)
        if d.physics.clockwise != clockwise:
            d.physics.set_direction(clockwise=clockwise)

    def _go(self, d: Drive) -> None:
        if d.mode is not Mode.IDLE or d.speed_tenths == 0 or d.revs_to_go <= 0:
            raise Nak  # already running, no speed, or nothing to go
        d.physics.start(d.speed_tenths / 10, clockwise=d.clockwise, revs=d.revs_to_go)
        d.mode, d.alarm_reason = Mode.COUNTED, None
        d.aux_out = d.aux_on_go

    def _go_continuous(self, d: Drive) -> None:
        """Emulation choice for the documented oddity: `G0` always answers NAK, yet (in remote
        mode, with a speed set) the motor runs continuously; a host checks `I` to know."""
        if d.speed_tenths > 0 and d.mode is not Mode.CONTINUOUS:
            if d.mode is Mode.COUNTED:
                d.revs_to_go = d.to_go()  # the interrupted count is kept for a later G
            d.physics.start(d.speed_tenths / 10, clockwise=d.clockwise)
            d.mode, d.alarm_reason = Mode.CONTINUOUS, None
            d.aux_out = d.aux_on_go
        raise Nak

    def _halt(self, d: Drive) -> None:
        """H: motor off; a counted run keeps its revolutions to go (G resumes them)."""
        if d.mode is Mode.COUNTED:
            d.revs_to_go = d.to_go()
        d.physics.stop()
        d.mode = Mode.IDLE

    def _renumber(self, d: Drive, number: int) -> None:
        if number not in PUMP_NUMBERS or (number != d.number and number in self._drives):
            raise Nak
        del self._drives[d.number]
        self._chain = [number if n == d.number else n for n in self._chain]
        d.number = number
        self._drives[number] = d
