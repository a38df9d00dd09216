"""The line between a host and an emulation: simulated time kept in step with a clock, faults
applied on the way, and what a UART at the wrong baud makes of the bytes (`Link`), plus the
termios of a pty client. Shared by every endpoint (`endpoints`, `realtime`).
"""

from __future__ import annotations

import random
import termios
from typing import Literal

from pumpctl.clock import Clock
from pumpctl.simulator.devices.base import Emulation, LineSettings
from pumpctl.simulator.faults import FaultSchedule

__all__ = [
    "Link",
    "Mismatch",
    "mismatched",
    "pty_line_settings",
    "set_pty_line_settings",
    "wrong_baud",
]

Mismatch = Literal["garbage", "silence"]
#: bytes a wrong-baud garble never produces, so garbage never frames as a command or a reply
#: (STX, ETX, LF, CR). Emulation choice: a real UART can, rarely, produce them too.
_FRAMING_BYTES = frozenset({0x02, 0x03, 0x0A, 0x0D})
_GARBAGE_ALPHABET = bytes(b for b in range(256) if b not in _FRAMING_BYTES)
_STANDARD_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
_SPEED_CODES = {getattr(termios, f"B{b}"): b for b in _STANDARD_BAUDS if hasattr(termios, f"B{b}")}
_CSIZE_BITS = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}


def wrong_baud(
    data: bytes, sender: LineSettings, receiver: LineSettings, rng: random.Random
) -> bytes:
    """What a UART set to `receiver` makes of `data` sent with `sender` settings.

    A receiver at another baud samples bits at the wrong instants: each start bit it sees begins
    a byte of the wrong bits, so about `len(data) × receiver/sender baud` bytes arrive (at least
    one), none of them the ones sent (framing errors included). Modelled as that many random
    bytes, never a framing byte (STX/ETX/CR/LF).
    """
    if not data:
        return b""
    count = max(1, round(len(data) * receiver.baud / sender.baud))
    return bytes(rng.choice(_GARBAGE_ALPHABET) for _ in range(count))


def mismatched(pump: LineSettings, client: LineSettings | None) -> bool:
    """The bauds differ. Only the baud: a Linux pty forces 8 data bits and no parity whatever
    the client sets (so neither is visible), and stop bits do not matter (a receiver expecting
    one takes a second as idle line; one expecting two mostly gets them from the gaps)."""
    return client is not None and client.baud != pump.baud


def pty_line_settings(fd: int) -> LineSettings | None:
    """The line settings a pty's client set (termios of the slave, as seen on either side);
    None when the speed is not a standard baud. A Linux pty keeps baud and stop bits but always
    reports 8 data bits and no parity."""
    attrs = termios.tcgetattr(fd)
    cflag, ispeed = attrs[2], attrs[4]
    baud = _SPEED_CODES.get(ispeed)
    if baud is None:
        return None
    parity = "N" if not cflag & termios.PARENB else ("O" if cflag & termios.PARODD else "E")
    return LineSettings(
        baud=baud,
        data_bits=_CSIZE_BITS.get(cflag & termios.CSIZE, 8),
        parity=parity,
        stop_bits=2 if cflag & termios.CSTOPB else 1,
    )


def set_pty_line_settings(fd: int, line: LineSettings) -> None:
    """Put `line` on a tty (raw mode is kept): a client that never sets anything matches."""
    attrs = termios.tcgetattr(fd)
    cflag = attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB)
    cflag |= {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}[line.data_bits]
    if line.parity != "N":
        cflag |= termios.PARENB | (termios.PARODD if line.parity == "O" else 0)
    if line.stop_bits == 2:
        cflag |= termios.CSTOPB
    attrs[2] = cflag
    code = getattr(termios, f"B{line.baud}", None)
    if code is not None:
        attrs[4] = attrs[5] = code
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class Link:
    """One emulation on a clock: keeps its simulated time in step (splitting advances at fault
    times), applies the fault schedule, counts commands and models the client's UART."""

    def __init__(
        self,
        emulation: Emulation,
        clock: Clock,
        faults: FaultSchedule | None,
        mismatch: Mismatch = "garbage",
    ) -> None:
        self.emulation = emulation
        self.clock = clock
        self.faults = faults
        self.mismatch = mismatch
        self.rng = faults.rng if faults is not None else random.Random(0)
        self._offset: float | None = None
        self._lines_fed = 0  # CR-terminated lines, for families that do not count commands
        self._count_lines = not type(emulation).counts_commands
        # the last (pump's `uart`, client) line settings compared, and whether their bauds
        # differ: both are frozen, and `uart` only changes with the pump's (a `baud` fault)
        self._compared: tuple[LineSettings | None, LineSettings | None, bool] | None = None
        if faults is not None:
            faults.check(emulation)

    @property
    def commands_seen(self) -> int:
        emulation = self.emulation
        return emulation.commands_seen if type(emulation).counts_commands else self._lines_fed

    def sync(self) -> None:
        """Advance the emulation to the clock's now, starting and ending faults on the way."""
        emulation, faults = self.emulation, self.faults
        now = self.clock.now()
        offset = self._offset
        if offset is None:
            offset = self._offset = now - emulation.now_s
        if faults is not None:
            self._sync_faults(faults, now - offset)
            return
        # no faults (every exchange of a plain run): one advance, `now_s` read once
        target, current = now - offset, emulation.now_s
        if target > current:
            emulation.advance(target - current)

    def _sync_faults(self, faults: FaultSchedule, target: float) -> None:
        """`sync` with a fault schedule: advances split at each fault's time."""
        emulation = self.emulation
        faults.apply_due(emulation, emulation.now_s, self.commands_seen)
        while True:
            due = faults.next_due_s()
            step_to = target if due is None or due > target else due
            if step_to > emulation.now_s:
                emulation.advance(step_to - emulation.now_s)
            if due is None or due > target:
                return
            faults.apply_due(emulation, due, self.commands_seen)

    def _mismatched(self, client: LineSettings | None) -> bool:
        """`mismatched(pump, client)`, compared again only when either changes (each exchange
        asks twice, and a pydantic field read is slow). The pump's settings are a function of
        its `uart` (None: the factory ones, fixed), so the object in `uart` stands for them."""
        uart = self.emulation.uart
        compared = self._compared
        if compared is None or compared[0] is not uart or compared[1] is not client:
            pump = self.emulation.uart_settings()
            compared = self._compared = (uart, client, mismatched(pump, client))
        return compared[2]

    def feed(self, data: bytes, client: LineSettings | None) -> None:
        emulation = self.emulation
        if self._mismatched(client):
            if self.mismatch == "silence":
                return
            assert client is not None
            data = wrong_baud(data, client, emulation.uart_settings(), self.rng)
        if self._count_lines:
            self._lines_fed += data.count(b"\r")
        emulation.feed(data)

    def read(self, client: LineSettings | None) -> bytes:
        data = self.emulation.read()
        if not data:
            return data
        if not self._mismatched(client):
            return data
        if self.mismatch == "silence":
            return b""
        assert client is not None
        return wrong_baud(data, self.emulation.uart_settings(), client, self.rng)
