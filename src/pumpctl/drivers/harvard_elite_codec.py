"""Harvard 11 Elite / PHD Ultra family, the codec: request frames, the reply framer and decoder,
quantities with text units, and what a prompt says of the pump's state. Pure functions, tested on
their own; the driver (`pumpctl.drivers.harvard_elite`, which re-exports every public name here)
only sequences commands. The wire format is described there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from pumpctl.drivers.base import AlarmReason, Direction, ProtocolError, PumpState, PumpStatus
from pumpctl.drivers.harvard_common import check_address
from pumpctl.families.harvard_elite import floor_text

__all__ = [
    "ERRORS",
    "EliteReply",
    "elite_frame_length",
    "encode_command",
    "format_diameter",
    "format_rate",
    "format_volume",
    "parse_rate",
    "parse_rate_limits",
    "parse_reply",
    "parse_version",
    "parse_volume",
    "status_for_prompt",
]

CR, LF = 0x0D, 0x0A
ERRORS = frozenset({"Command error", "Unknown command", "Argument error", "Out of range"})
#: a reply longer than this without a complete prompt line is garbage, not a slow reply: the
#: framer hands that much to the parser (which rejects it)
_MAX_REPLY = 256
_LINE = re.compile(rb"\n\d\d(?:T\*|[:><*])[^\r\n]*\r?\n")
_REPLY = re.compile(r"\r?\n(\d\d)(T\*|[:><*])([^\r\n]*?)\r?\n")
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
#: mL per volume unit (long and short forms)
_VOLUME_ML = {"l": 1e3, "ml": 1.0, "ul": 1e-3, "nl": 1e-6, "pl": 1e-9}
_VOLUME_ML |= {"m": 1.0, "u": 1e-3, "n": 1e-6, "p": 1e-9}
#: per hour, per time unit
_PER_H = {"hr": 1.0, "h": 1.0, "min": 60.0, "m": 60.0, "sec": 3600.0, "s": 3600.0}
_RATE = re.compile(rf"\s*{_NUMBER}\s*([a-z]+)/([a-z]+)\s*", re.IGNORECASE)
_VOLUME = re.compile(rf"\s*{_NUMBER}\s*([a-z]+)\s*", re.IGNORECASE)

# --------------------------------------------------------------------------- framing


def encode_command(address: int, command: str) -> bytes:
    """`command` CR at address 0, `NN:command` CR elsewhere (PHD Ultra manual form)."""
    check_address(address)
    if not command.isascii() or any(not " " <= ch <= "~" for ch in command):
        raise ValueError(f"Harvard commands are printable ASCII, got {command!r}")
    prefix = f"{address}:" if address else ""
    return (prefix + command).encode("ascii") + bytes([CR])


def elite_frame_length(buf: bytes) -> int | None:
    """Framer: a reply ends with its first complete `LF aa<prompt>body CR LF` line."""
    m = _LINE.search(buf)
    if m is not None and m.end() <= _MAX_REPLY:
        return m.end()
    return _MAX_REPLY + 1 if len(buf) > _MAX_REPLY else None


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class EliteReply:
    address: int
    prompt: str  # ":", ">", "<", "*" or "T*"
    body: str = ""
    error: str | None = None
    raw: str = ""


def parse_reply(raw: bytes, *, address: int | None = None) -> EliteReply:
    """Decode one framed reply; `ProtocolError` on anything malformed (never guessed at)."""
    if not all(0x20 <= b <= 0x7E or b in (CR, LF) for b in raw):
        raise ProtocolError("reply holds non-printable bytes", raw)
    m = _REPLY.fullmatch(raw.decode("ascii"))
    if m is None:
        raise ProtocolError("reply is not LF aa<prompt>body CR LF", raw)
    reply_address, prompt, body = int(m[1]), m[2], m[3].strip()
    if address is not None and reply_address != address:
        raise ProtocolError(f"reply from address {reply_address}, expected {address}", raw)
    if body in ERRORS:
        return EliteReply(reply_address, prompt, error=body, raw=m[0].strip())
    return EliteReply(reply_address, prompt, body=body, raw=m[0].strip())


def _finite(value: float, text: str) -> float:
    if not math.isfinite(value):
        raise ProtocolError(f"number out of range in {text!r}")
    return value


def parse_rate(text: str) -> float:
    """`5 ml/hr`, `1.061 nl/min`, `3 m/m` -> mL/h."""
    m = _RATE.fullmatch(text)
    if m is None or m[2].lower() not in _VOLUME_ML or m[3].lower() not in _PER_H:
        raise ProtocolError(f"unexpected rate {text!r}")
    return _finite(float(m[1]), text) * _VOLUME_ML[m[2].lower()] * _PER_H[m[3].lower()]


def parse_rate_limits(text: str) -> tuple[float, float]:
    """`irate lim` body `<min> to <max>` -> (min, max) mL/h."""
    low, sep, high = text.partition(" to ")
    if not sep:
        raise ProtocolError(f"unexpected rate limits {text!r}")
    limits = parse_rate(low), parse_rate(high)
    if not 0 < limits[0] <= limits[1]:
        raise ProtocolError(f"rate limits out of order {text!r}")
    return limits


def parse_volume(text: str) -> float:
    """`12.345 ml`, `250 ul` -> mL."""
    m = _VOLUME.fullmatch(text)
    if m is None or m[2].lower() not in _VOLUME_ML:
        raise ProtocolError(f"unexpected volume {text!r}")
    return _finite(float(m[1]), text) * _VOLUME_ML[m[2].lower()]


def parse_version(text: str) -> tuple[str, str]:
    """`11 ELITE I/W Single 3.0.4` -> ("11 ELITE I/W Single", "3.0.4")."""
    m = re.fullmatch(r"\s*(.*?)\s+[vV]?(\d+(?:\.\d+)+)\s*", text)
    if m is None or not m[1]:
        return text.strip(), ""
    return m[1], m[2]


def status_for_prompt(prompt: str, *, paused: bool = False, raw: str = "") -> PumpStatus:
    """`T*` (target reached) is stopped; `:` is PAUSED after the driver's own pause."""
    if prompt == ">":
        return PumpStatus(state=PumpState.RUNNING, direction=Direction.INFUSE, raw=raw)
    if prompt == "<":
        return PumpStatus(state=PumpState.RUNNING, direction=Direction.WITHDRAW, raw=raw)
    if prompt == "*":
        return PumpStatus(state=PumpState.ALARM, alarm=AlarmReason.STALL, raw=raw)
    if prompt == ":" and paused:
        return PumpStatus(state=PumpState.PAUSED, raw=raw)
    if prompt in (":", "T*"):
        return PumpStatus(state=PumpState.STOPPED, raw=raw)
    raise ProtocolError(f"unknown prompt {prompt!r}")


# --------------------------------------------------------------------------- numbers

_SIGNIFICANT = 6


def format_diameter(value: float) -> str:
    """Up to 6 significant digits, to the nearest, plain notation, no trailing zeros: for the
    diameter, which is not a dose (volumes and rates are rounded down, `format_rate`)."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"value must be finite and > 0, got {value}")
    exact = Decimal(repr(float(value)))
    rounded = round(exact, _SIGNIFICANT - 1 - exact.adjusted())
    text = format(rounded, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_rate(rate_ml_per_h: float) -> str:
    """`7 ml/hr`; below 1 mL/h in `ul/hr` so 6 significant digits keep their precision; rounded
    down (the family's quantizer). ValueError for values <= 0 or not finite."""
    return floor_text(rate_ml_per_h, "ml/hr", "ul/hr").text


def format_volume(volume_ml: float) -> str:
    """`28 ml`; below 1 mL in `ul`; rounded down (the family's quantizer)."""
    return floor_text(volume_ml, "ml", "ul").text
