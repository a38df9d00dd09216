"""Masterflex L/S: the drive's model facts, its wire numbers, and one drive's state.

The link (`masterflex`) parses frames and dispatches commands; what a drive is and keeps (speed,
revolutions to go, mode, local/remote, power-up flags) lives here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

from pumpctl.simulator.devices.base import PumpSnapshot
from pumpctl.simulator.peristaltic import PeristalticPhysics

__all__ = [
    "ACK",
    "CAN",
    "CR",
    "ENQ",
    "FRAME",
    "MAX_FRAME_BYTES",
    "MAX_REVS_HUNDREDTHS",
    "MAX_SPEED_TENTHS",
    "NAK",
    "PUMP_NUMBERS",
    "REMOTE_ONLY",
    "STX",
    "TOKEN",
    "Drive",
    "Mode",
    "Nak",
    "PeristalticSnapshot",
    "format_revs",
    "format_speed",
    "parse_hundredths",
]

# --------------------------------------------------------------------------- model facts (data)

STX, CR, ENQ, ACK, NAK, CAN = 0x02, 0x0D, 0x05, 0x06, 0x15, 0x18
PUMP_NUMBERS = range(1, 90)  # 01-89
#: Widest speed range of the L/S computer-compatible drives (07551/07575 variable speed), rpm.
#: The wire format allows 0.1 rpm resolution; narrower drives would refuse more with NAK.
MAX_SPEED_TENTHS = 6000  # 600.0 rpm
MAX_REVS_HUNDREDTHS = 9999999  # V99999.99
MAX_FRAME_BYTES = 64  # a longer frame is junk: dropped silently
#: Commands that change the drive: refused (NAK) in local mode. Emulation choice: H (halt) is
#: always accepted, so a host can stop a motor whatever the mode; queries always answer.
REMOTE_ONLY = frozenset("SVGZUBO")
FRAME = re.compile(r"P(\d\d)(.*)", re.S)
TOKEN = re.compile(
    r"S(?P<sign>[+-])(?P<speed>\d{1,3}\.\d|\d{1,4})"
    r"|V(?P<revs>\d{1,5}(?:\.\d{1,2})?)"
    r"|U(?P<number>\d\d)"
    r"|(?P<aux>[BO])(?P<bits>[01]{2})"
    r"|G0|Z0|[SGZHCEIKRLA]"
)


def format_speed(tenths_rpm: int, clockwise: bool) -> str:
    """`S` value: sign and rpm with one decimal, three integer digits (`+004.0`, `-600.0`)."""
    return f"{'+' if clockwise else '-'}{tenths_rpm // 10:03d}.{tenths_rpm % 10}"


def format_revs(revs: float) -> str:
    """`C`/`E` value: revolutions to 0.01, five integer digits at least (`00012.34`).

    Truncated (a counter never shows more than was turned); float noise below 1e-9 is ignored.
    Counters past 99999.99 keep every integer digit (600 rpm turns 864000 revolutions a day).
    """
    hundredths = math.floor(round(max(revs, 0.0) * 100.0, 7))
    return f"{hundredths // 100:05d}.{hundredths % 100:02d}"


def parse_hundredths(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


class PeristalticSnapshot(PumpSnapshot):
    """The `--state` keys of a peristaltic drive: the common ones plus the rotor's.

    `speed_rpm` is the set speed (magnitude; `direction` gives the sign), `continuous` is true
    while running continuously (`G0`), `revs_to_go` is what `E` would report. `delivered_ml` is
    the net liquid the rollers pushed (true mL/rev; air and slip excluded), `rate_ml_per_h` the
    set speed times the true mL/rev, `target_ml` the last `V` count times the true mL/rev (None
    when none is set or while running continuously). `alarm` is only ever `reset` (power-up):
    the drive senses neither occlusion nor an empty reservoir.
    """

    speed_rpm: float
    continuous: bool
    revs_to_go: float


# --------------------------------------------------------------------------- one drive


class Mode(Enum):
    IDLE = "idle"
    COUNTED = "counted"  # G: runs `revs_to_go` revolutions, then stops
    CONTINUOUS = "continuous"  # G0: runs until H


class Nak(Exception):
    """The command is refused: the frame answers NAK and its later commands are not run."""


@dataclass
class Drive:
    number: int
    physics: PeristalticPhysics
    speed_tenths: int = 0
    clockwise: bool = True
    revs_to_go: float = 0.0  # when not in a counted run (during one the physics counts down)
    v_set_hundredths: int = 0  # the last V, for the snapshot's target
    mode: Mode = Mode.IDLE
    remote: bool = False  # power-up: local (front panel) until `R` or number assignment
    restarted: bool = True  # power-up flag in `I`, cleared when the host takes control
    startup: bool = True  # no frame seen since power-up: ENQ is answered
    counter_base_revs: float = 0.0  # `Z0` zero point of the physics' turned revolutions
    aux_on_go: str = "00"
    aux_out: str = "00"
    key_pressed: bool = False
    alarm_reason: str | None = "reset"

    def to_go(self) -> float:
        if self.mode is Mode.COUNTED:
            return self.physics.remaining_revs or 0.0
        return self.revs_to_go

    def status_digit(self) -> str:
        """`I` motor digit: 3 running, 2 stopped with revolutions to go, 1 idle."""
        if self.mode is not Mode.IDLE:
            return "3"
        return "2" if self.revs_to_go > 0 else "1"

    def power_up(self) -> None:
        self.physics.stop()
        self.speed_tenths, self.clockwise = 0, True
        self.revs_to_go, self.v_set_hundredths = 0.0, 0
        self.mode = Mode.IDLE
        self.remote, self.restarted, self.startup = False, True, True
        self.counter_base_revs = self.physics.turned_revs
        self.aux_on_go = self.aux_out = "00"
        self.key_pressed = False
        self.alarm_reason = "reset"
