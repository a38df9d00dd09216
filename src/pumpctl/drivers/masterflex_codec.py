"""Masterflex L/S family, the codec: request frames, the reply framer and decoder, number
formats and the status word. Pure functions, tested on their own; the driver
(`pumpctl.drivers.masterflex`, which re-exports every public name here) only sequences commands.
The wire format is described there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pumpctl.drivers.base import ProtocolError
from pumpctl.families.masterflex import REV_STEP
from pumpctl.families.numbers import floor_places

__all__ = [
    "ACK",
    "CR",
    "ENQ",
    "MAX_PUMP",
    "MIN_PUMP",
    "NAK",
    "STX",
    "DriveStatus",
    "MFReply",
    "encode_command",
    "format_revolutions",
    "format_speed",
    "frame_length",
    "ml_per_rev_from_calibration",
    "parse_ack",
    "parse_cumulative",
    "parse_reply",
    "parse_speed",
    "parse_status",
    "parse_to_go",
    "parse_value",
]

STX, CR, ENQ, ACK, NAK = 0x02, 0x0D, 0x05, 0x06, 0x15
MIN_PUMP, MAX_PUMP = 1, 89
#: a reply longer than this without CR is garbage, not a slow reply
_MAX_REPLY = 64

# --------------------------------------------------------------------------- framing


def encode_command(address: int, letters: str = "") -> bytes:
    """STX `P` nn letters CR; `letters=""` is the startup number assignment."""
    if not MIN_PUMP <= address <= MAX_PUMP:
        raise ValueError(f"Masterflex pump number must be {MIN_PUMP}..{MAX_PUMP}, got {address}")
    if not all(" " < ch <= "~" for ch in letters):
        raise ValueError(f"Masterflex commands are printable ASCII, got {letters!r}")
    return b"\x02" + f"P{address:02d}{letters}".encode("ascii") + b"\r"


def frame_length(buf: bytes) -> int | None:
    """Framer: one ACK or NAK byte, or STX ... CR. Anything else up to the next frame start is
    handed on as one (garbage) reply, which the parser rejects."""
    if not buf:
        return None
    if buf[0] in (ACK, NAK):
        return 1
    if buf[0] != STX:
        starts = [i for i in (buf.find(b, 1) for b in (STX, ACK, NAK)) if i > 0]
        return min(starts) if starts else len(buf)
    end = buf.find(CR)
    if end >= 0:
        return end + 1
    return len(buf) if len(buf) > _MAX_REPLY else None


@dataclass(frozen=True)
class MFReply:
    """One decoded reply: `kind` ack/nak/data; for data, the optional `Pnn` and the text."""

    kind: Literal["ack", "nak", "data"]
    address: int | None = None
    letter: str = ""
    value: str = ""
    text: str = ""


_DATA = re.compile(r"(?:P(\d\d))?([A-Z]?)(.*)")


def parse_reply(raw: bytes, *, address: int | None = None) -> MFReply:
    """Decode one framed reply; `ProtocolError` on anything malformed (never guessed at). With
    `address`, a reply carrying another pump number is malformed too."""
    if raw == bytes([ACK]):
        return MFReply("ack")
    if raw == bytes([NAK]):
        return MFReply("nak")
    if len(raw) < 2 or raw[0] != STX or raw[-1] != CR:
        raise ProtocolError("reply is neither ACK, NAK nor STX ... CR", raw)
    body = raw[1:-1]
    if not all(0x20 <= b <= 0x7E for b in body):
        raise ProtocolError("reply holds non-printable bytes", raw)
    text = body.decode("ascii")
    m = _DATA.fullmatch(text)
    if m is None or (not m[1] and not m[2]):
        raise ProtocolError("reply lacks a pump number and a letter", raw)
    number = int(m[1]) if m[1] else None
    if number is not None and address is not None and number != address:
        raise ProtocolError(f"reply from pump {number}, expected {address}", raw)
    return MFReply("data", address=number, letter=m[2], value=m[3], text=text)


def parse_ack(raw: bytes, *, address: int, command: str) -> bool:
    """The reply to set/action `command`: True for ACK, False for NAK; data (or another pump's
    number) is a `ProtocolError`, so a garbled answer is never taken for an acknowledgement."""
    reply = parse_reply(raw, address=address)
    if reply.kind == "data":
        raise ProtocolError(f"data reply to command {command!r}", raw)
    return reply.kind == "ack"


def parse_value(raw: bytes, *, address: int, letter: str) -> str:
    """The reply to query `letter`: its value after the letter, which must match (an ACK, a
    NAK or another letter is a `ProtocolError`, so the query is retried)."""
    reply = parse_reply(raw, address=address)
    if reply.kind != "data" or reply.letter != letter:
        raise ProtocolError(f"unexpected reply to query {letter!r}", raw)
    return reply.value


# --------------------------------------------------------------------------- numbers


def _floor(value: float, places: int) -> Decimal:
    return floor_places(Decimal(repr(float(value))), places)


def format_speed(rpm: float) -> str:
    """`S` argument in the manual's `S±nnn.n` form: sign (+ clockwise, - counter-clockwise),
    3 digits, 1 decimal, the magnitude rounded DOWN to 0.1 rpm: `+130.0`. (`S±nnnn` is the
    integer form; 0.1 rpm resolution needs this one, and a 7-character `+0130.0` is refused by
    the drive.)"""
    if not math.isfinite(rpm) or abs(rpm) >= 1000:
        raise ValueError(f"speed must be finite and below 1000 rpm, got {rpm}")
    q = _floor(abs(rpm), 1)
    return f"{'-' if rpm < 0 and q else '+'}{q:05.1f}"


def format_revolutions(revolutions: float) -> str:
    """`V` argument: 5 digits, 2 decimals (`00012.34`), rounded DOWN to 0.01 rev."""
    if not math.isfinite(revolutions) or revolutions < 0:
        raise ValueError(f"revolutions must be finite and >= 0, got {revolutions}")
    q = _floor(revolutions, 2)
    if q > Decimal("99999.99"):
        raise ValueError(f"{revolutions} revolutions exceed the V maximum 99999.99")
    return f"{q:08.2f}"


_SPEED = re.compile(r"[+-]\d{1,4}(?:\.\d)?")
_CUMULATIVE = re.compile(r"\d{1,7}(?:\.\d{1,2})?")
_TO_GO = re.compile(r"-?\d{1,5}(?:\.\d{1,2})?")


def _number(pattern: re.Pattern[str], value: str, what: str) -> float:
    text = value.strip(" ")
    if pattern.fullmatch(text) is None:
        raise ProtocolError(f"unexpected {what} value {value!r}")
    return float(text)


def parse_speed(value: str) -> float:
    """`S` reply value `+0432.9` -> signed rpm (+ clockwise)."""
    return _number(_SPEED, value, "speed")


def parse_cumulative(value: str) -> float:
    """`C` reply value `Cxxxxxxx.xx` -> cumulative revolutions since `Z0` (max 9,999,999.99)."""
    return _number(_CUMULATIVE, value, "cumulative revolutions")


def parse_to_go(value: str) -> float:
    """`E` reply value -> revolutions to go; negative when the drive overshot."""
    return _number(_TO_GO, value, "revolutions to go")


@dataclass(frozen=True)
class DriveStatus:
    """`I` status digits. The public manual shows the shape (STX Pnn I digits CR) but not what
    each digit means, and reports differ on their number (4 or 5). Every reading we found agrees
    on two digits, the only ones acted on: the 1st = control mode (0 local, 1 remote) and the 4th
    = motor (1 stopped, 2 stopped with revolutions preset, 3 running); the others are kept in
    `raw`. Anything else is a `ProtocolError`, never a guess. Not verified on hardware."""

    remote: bool
    motor: int
    raw: str

    @property
    def running(self) -> bool:
        return self.motor == 3


_STATUS = re.compile(r"([01])\d\d([123])\d?")


def parse_status(value: str) -> DriveStatus:
    m = _STATUS.fullmatch(value)
    if m is None:
        raise ProtocolError(f"unexpected I status {value!r} (expected 4 or 5 digits)")
    return DriveStatus(remote=m[1] == "1", motor=int(m[2]), raw=value)


def ml_per_rev_from_calibration(revolutions: float, measured_ml: float) -> float:
    """Calibration maths: the volume collected (weighed) over a counted number of revolutions."""
    if not math.isfinite(revolutions) or revolutions < REV_STEP:
        raise ValueError(f"calibration needs at least {REV_STEP} revolutions, got {revolutions}")
    if not math.isfinite(measured_ml) or measured_ml <= 0:
        raise ValueError(f"measured volume must be > 0 mL, got {measured_ml}")
    return measured_ml / revolutions
