"""Harvard legacy family (Pump 11, PHD 2000, ...), the codec: request frames, the reply framer
and decoder, number formats and what a prompt says of the pump's state. Pure functions, tested
on their own; the driver (`pumpctl.drivers.harvard_legacy`, which re-exports every public name
here) only sequences commands. The wire format is described there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from pumpctl.drivers.base import (
    AlarmReason,
    Direction,
    ProtocolError,
    PumpState,
    PumpStatus,
)
from pumpctl.drivers.harvard_common import check_address
from pumpctl.families.harvard_legacy import NUMBER_WIDTH, LegacyQuantizer, RateUnit

__all__ = [
    "ERRORS",
    "PROMPTS",
    "LegacyReply",
    "encode_command",
    "format_number",
    "legacy_frame_length",
    "parse_number",
    "parse_rate",
    "parse_reply",
    "parse_version",
    "status_for_prompt",
    "target_step_ml",
]

CR, LF = 0x0D, 0x0A
PROMPTS = frozenset(":><*/^")
ERRORS = frozenset({"?", "NA", "OOR"})
#: a reply longer than this without `address + prompt` is garbage, not a slow reply: the framer
#: hands that much to the parser (which rejects it); the rest is stale at the next exchange
_MAX_REPLY = 160
_END = re.compile(rb"(?:^|(?<=[\r\n]))(\d{1,2})([:><*/^])")
_REPLY = re.compile(r"([\r\n]+)(?:([^\r\n]*)([\r\n]+))?(\d{1,2})([:><*/^])")
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"

# --------------------------------------------------------------------------- framing


def encode_command(address: int, command: str) -> bytes:
    """`NNCOMMAND[value]` CR with a 2-digit address (0..99 on one chain)."""
    check_address(address)
    if not command.isascii() or any(not " " <= ch <= "~" for ch in command):
        raise ValueError(f"Harvard commands are printable ASCII, got {command!r}")
    return f"{address:02d}{command}".encode("ascii") + bytes([CR])


def legacy_frame_length(buf: bytes) -> int | None:
    """Framer: a reply ends at the first `address + prompt` that starts a line (after CR or LF),
    so the PHD2000's unpadded address and extra CR frame like the Pump 11's replies."""
    m = _END.search(buf)
    if m is not None and m.end() <= _MAX_REPLY:
        return m.end()
    return _MAX_REPLY + 1 if len(buf) > _MAX_REPLY else None


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class LegacyReply:
    """One decoded reply. `padded` is False for a 1-digit address (PHD2000 style)."""

    address: int
    prompt: str
    text: str = ""
    error: str | None = None
    padded: bool = True
    raw: str = ""


def parse_reply(raw: bytes, *, address: int | None = None) -> LegacyReply:
    """Decode one framed reply; `ProtocolError` on anything malformed (never guessed at).

    With `address`, a reply from another pump is malformed too. Error texts are decoded into
    `error`; the driver turns them into `CommandRejected`.
    """
    if not all(0x20 <= b <= 0x7E or b in (CR, LF) for b in raw):
        raise ProtocolError("reply holds non-printable bytes", raw)
    m = _REPLY.fullmatch(raw.decode("ascii"))
    if m is None:
        raise ProtocolError("reply is not CR LF [text CR LF] address prompt", raw)
    text, digits, prompt = m[2] or "", m[4], m[5]
    reply_address = int(digits)
    if address is not None and reply_address != address:
        raise ProtocolError(f"reply from address {reply_address}, expected {address}", raw)
    padded = len(digits) == 2
    if text.strip() in ERRORS:
        return LegacyReply(reply_address, prompt, error=text.strip(), padded=padded, raw=m[0])
    return LegacyReply(reply_address, prompt, text=text, padded=padded, raw=m[0])


def _finite(value: float, text: str) -> float:
    if not math.isfinite(value):
        raise ProtocolError(f"number out of range in {text!r}")
    return value


def parse_number(text: str, *, what: str = "reply") -> float:
    """A DIA/VOL field: right-justified number (8 characters on a Pump 11)."""
    m = re.fullmatch(rf"\s*{_NUMBER}\s*", text)
    if m is None:
        raise ProtocolError(f"unexpected {what} {text!r}")
    return _finite(float(m[1]), text)


def parse_version(text: str) -> tuple[str, str]:
    """`PUMP11V2.0` -> ("PUMP11", "2.0"); text without a version -> (text, "")."""
    m = re.fullmatch(r"\s*(.*?)\s*V(\d+(?:\.\d+)*)\s*", text)
    if m is None or not m[1]:
        return text.strip(), ""
    return m[1], m[2]


# --------------------------------------------------------------------------- numbers


def format_number(value: float, width: int = NUMBER_WIDTH) -> str:
    """`value` in at most `width` characters (point included), as many decimals as fit, rounded
    to nearest (ties to even), trailing zeros dropped: 1.23456 -> "1.235", 12.345 -> "12.34",
    99999 -> "99999". For the syringe diameter (`MMD`), which is not a dose; volumes and rates
    are rounded down by the family's quantizer. ValueError for negative, non-finite or too
    large values."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"Harvard numbers are finite and >= 0, got {value}")
    if value >= 10.0**width:
        raise ValueError(f"{value} does not fit {width} characters")
    exact = Decimal(repr(float(value)))
    for decimals in range(width - 2, -1, -1):
        text = format(exact.quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_EVEN), "f")
        if len(text) <= width:
            return text.rstrip("0").rstrip(".") if "." in text else text
    raise ValueError(f"{value} does not fit {width} characters")


def target_step_ml(volume_ml: float) -> float:
    """Step of a 5-character mL value around `volume_ml`: 0.001 below 10, 0.01 below 100, ...,
    1 from 1000 up (the family quantizer's, for mL targets)."""
    return LegacyQuantizer().volume_step_ml(volume_ml)


_UNITS_BY_TEXT = {u.reply_text: u for u in RateUnit}


def parse_rate(text: str) -> float:
    """RAT reply text `  7.000 ml/h` -> mL/h."""
    m = re.fullmatch(rf"\s*{_NUMBER}\s*([umUM][lL]/[mhMH])\s*", text)
    if m is None:
        raise ProtocolError(f"unexpected RAT reply {text!r}")
    return _finite(float(m[1]), text) / _UNITS_BY_TEXT[m[2].lower()].per_ml_per_h


# --------------------------------------------------------------------------- status


def status_for_prompt(
    prompt: str, *, stopped_by_host: bool = False, paused: bool = False, raw: str = ""
) -> PumpStatus:
    """Prompt -> status. `*` is a stall unless the host's own STP produced it (PHD2000);
    `:` is PAUSED while the driver holds an emulated pause."""
    idle = PumpState.PAUSED if paused else PumpState.STOPPED
    if prompt == ">":
        return PumpStatus(state=PumpState.RUNNING, direction=Direction.INFUSE, raw=raw)
    if prompt == "<":
        return PumpStatus(state=PumpState.RUNNING, direction=Direction.WITHDRAW, raw=raw)
    if prompt == ":" or (prompt == "*" and stopped_by_host):
        return PumpStatus(state=idle, raw=raw)
    if prompt == "*":
        return PumpStatus(state=PumpState.ALARM, alarm=AlarmReason.STALL, raw=raw)
    if prompt == "/":
        return PumpStatus(state=PumpState.PAUSED, raw=raw)
    return PumpStatus(state=PumpState.OTHER, raw=raw)  # `^` trigger wait
