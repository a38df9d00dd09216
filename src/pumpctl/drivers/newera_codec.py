"""New Era NE-1000 family, the codec: frames (basic and safe mode), framers, reply decoding
(the status character, alarms and errors, and each query's data).

Pure functions on bytes and text, tested on their own with golden bytes from the manual; the
driver (`pumpctl.drivers.newera`, which re-exports every name here) only sequences commands.
The wire format is described there.
"""

from __future__ import annotations

import binascii
import functools
import re
from typing import NamedTuple

from pumpctl.drivers.base import (
    AlarmReason,
    CommandRejected,
    DeliveredVolume,
    Direction,
    ProtocolError,
    PumpAlarm,
    PumpState,
    PumpStatus,
)
from pumpctl.families.newera import RateUnit

__all__ = [
    "ALARMS",
    "CR",
    "ERRORS",
    "ETX",
    "MAX_ADDRESS",
    "NUMBER",
    "RATE",
    "STATUS_CHARS",
    "STX",
    "VERSION",
    "NEReply",
    "any_frame_length",
    "basic_frame_length",
    "check_reply",
    "crc16_xmodem",
    "encode_basic",
    "encode_safe",
    "looks_basic",
    "parse_diameter",
    "parse_dispensed",
    "parse_rate_unit",
    "parse_reply",
    "parse_version",
    "safe_frame_length",
    "status_for_reply",
]

STX, ETX, CR = 0x02, 0x03, 0x0D
MAX_ADDRESS = 99
STATUS_CHARS = frozenset("IWSPTUX")
ALARMS: dict[str, AlarmReason] = {
    "R": AlarmReason.RESET,
    "S": AlarmReason.STALL,
    "T": AlarmReason.LINK_TIMEOUT,
    "E": AlarmReason.PROGRAM_ERROR,
    "O": AlarmReason.OUT_OF_RANGE,
}
ERRORS = frozenset({"?", "?NA", "?OOR", "?COM", "?IGN"})
#: a basic reply longer than this without ETX is garbage, not a slow reply
_MAX_BASIC_REPLY = 128

# --------------------------------------------------------------------------- framing


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM: poly 0x1021, init 0, no reflection (the manual's "CCITT" CRC).

    `binascii.crc_hqx` is exactly this CRC, in C: every safe-mode exchange computes two of them,
    so it sits on the polling hot path. The manual's SAF0 packet pins it in the tests.
    """
    return binascii.crc_hqx(data, 0)


def _payload(address: int | None, command: str) -> bytes:
    """`[address]COMMAND` with spaces and control characters removed, upper-cased, as the pump
    itself normalises input; `address=None` talks to whichever pump listens (one-pump lines)."""
    if address is not None and not 0 <= address <= MAX_ADDRESS:
        raise ValueError(f"NE address must be 0..{MAX_ADDRESS}, got {address}")
    if not command.isascii():
        raise ValueError(f"NE commands are ASCII, got {command!r}")
    text = "".join(ch for ch in command if " " < ch <= "~").upper()
    return (("" if address is None else str(address)) + text).encode("ascii")


def encode_basic(address: int | None, command: str) -> bytes:
    """Basic-mode request: `[address]COMMAND` CR."""
    return _payload(address, command) + bytes([CR])


def encode_safe(address: int | None, command: str) -> bytes:
    """Safe-mode packet: STX, LEN (= data + 4), data, CRC-16/XMODEM big-endian, ETX."""
    data = _payload(address, command)
    if len(data) + 4 > 0xFF:
        raise ValueError(f"safe packet too long: {command!r}")
    return bytes([STX, len(data) + 4]) + data + crc16_xmodem(data).to_bytes(2, "big") + bytes([ETX])


def _garbage_length(buf: bytes) -> int:
    """Bytes before the next STX (or all of them): handed to the parser, which rejects them."""
    nxt = buf.find(STX, 1)
    return nxt if nxt > 0 else len(buf)


def basic_frame_length(buf: bytes) -> int | None:
    """Framer for basic replies: STX ... ETX."""
    if not buf:
        return None
    if buf[0] != STX:
        return _garbage_length(buf)
    end = buf.find(ETX)
    if end >= 0:
        return end + 1
    return len(buf) if len(buf) > _MAX_BASIC_REPLY else None


def safe_frame_length(buf: bytes) -> int | None:
    """Framer for safe replies: STX LEN ... ETX, LEN bytes after STX (LEN itself included)."""
    if not buf:
        return None
    if buf[0] != STX:
        return _garbage_length(buf)
    if len(buf) < 2:
        return None
    if buf[1] < 4:
        return 2
    need = 1 + buf[1]
    return need if len(buf) >= need else None


def looks_basic(buf: bytes) -> bool:
    # A basic reply starts STX + address digit; a safe reply's LEN byte is a digit (48..57) only
    # for 44..53-byte payloads, which no NE reply reaches.
    return len(buf) >= 2 and 0x30 <= buf[1] <= 0x39


def any_frame_length(buf: bytes) -> int | None:
    """Framer that accepts either framing: for probing and for `SAF`, whose reply comes in the
    framing of the mode in force *after* the command."""
    if buf and buf[0] != STX:
        return _garbage_length(buf)
    if len(buf) < 2:
        return None
    return basic_frame_length(buf) if looks_basic(buf) else safe_frame_length(buf)


# --------------------------------------------------------------------------- replies


class NEReply(NamedTuple):
    """One decoded reply. `status` is the prompt character (`A` for an alarm). Immutable; a
    tuple rather than a frozen dataclass because one is built per poll (a third of the cost)."""

    address: int
    status: str
    alarm: AlarmReason | None = None
    error: str | None = None
    data: str = ""
    safe: bool = False
    text: str = ""


def parse_reply(raw: bytes, safe: bool, *, address: int | None = None) -> NEReply:
    """Decode one framed reply; `ProtocolError` on anything malformed (never guessed at).

    With `address`, a reply from another pump is malformed too. Alarms and error codes are decoded
    into the result; `check_reply` turns them into exceptions.

    A pure function of its arguments with an immutable result, so the last few are kept: a
    pump's counters move by a display step every few polls at a low rate, and the replies in
    between are the same bytes (six polls in ten of a 20 mg/h ketamine run). A malformed reply
    raises each time; nothing is kept for it.
    """
    return _decode_reply(bytes(raw), safe, address)


#: replies kept by `parse_reply`: a few per pump for a station of many in one process
_MAX_KEPT_REPLIES = 256


@functools.lru_cache(maxsize=_MAX_KEPT_REPLIES)
def _decode_reply(raw: bytes, safe: bool, address: int | None) -> NEReply:
    if len(raw) < 2 or raw[0] != STX or raw[-1] != ETX:
        raise ProtocolError("reply not framed by STX ... ETX", raw)
    if safe:
        if raw[1] != len(raw) - 1:
            raise ProtocolError(f"safe reply LEN {raw[1]} but {len(raw) - 1} bytes follow STX", raw)
        if len(raw) < 6:
            raise ProtocolError("safe reply too short", raw)
        body = raw[2:-3]
        if crc16_xmodem(body) != raw[-3] << 8 | raw[-2]:  # the CRC, big-endian
            raise ProtocolError("safe reply CRC mismatch", raw)
    else:
        body = raw[1:-1]
    # printable ASCII only (for ASCII text, `isprintable` is exactly 0x20..0x7E)
    if not body.isascii() or not (text := body.decode("ascii")).isprintable():
        raise ProtocolError("reply holds non-printable bytes", raw)
    if len(text) < 3 or not text[:2].isdigit():
        raise ProtocolError("reply lacks a 2-digit address and a status", raw)
    reply_address, status, rest = int(text[:2]), text[2], text[3:]
    if address is not None and reply_address != address:
        raise ProtocolError(f"reply from address {reply_address}, expected {address}", raw)
    if status == "A":
        if len(rest) != 2 or rest[0] != "?" or rest[1] not in ALARMS:
            raise ProtocolError(f"unknown alarm {rest!r}", raw)
        return NEReply(reply_address, status, alarm=ALARMS[rest[1]], safe=safe, text=text)
    if status not in STATUS_CHARS:
        raise ProtocolError(f"unknown status character {status!r}", raw)
    if rest.startswith("?"):
        if rest not in ERRORS:
            raise ProtocolError(f"unknown error reply {rest!r}", raw)
        return NEReply(reply_address, status, error=rest, safe=safe, text=text)
    # positional (address, status, alarm, error, data, safe, text): every poll's reply
    return NEReply(reply_address, status, None, None, rest, safe, text)


def check_reply(
    reply: NEReply, *, command: str = "", alarms: bool = True, errors: bool = True
) -> NEReply:
    """Raise what a reply means: `PumpAlarm` (the command was not executed; the reply
    acknowledged the alarm), `CommandRejected(code)`, or `ProtocolError` for `?COM` in safe mode
    (the request was corrupted in transit: a garbled exchange, never executed)."""
    if reply.error == "?COM" and reply.safe:
        raise ProtocolError(f"pump reports ?COM (request {command!r} corrupted in transit)")
    if alarms and reply.alarm is not None:
        raise PumpAlarm(reply.alarm, f"pump alarm {reply.alarm.value} in reply to {command!r}")
    if errors and reply.error is not None:
        raise CommandRejected(
            f"pump rejected {command!r} with {reply.error}", code=reply.error, command=command
        )
    return reply


NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_DISPENSED = re.compile(rf"I{NUMBER}W{NUMBER}(UL|ML)")
RATE = re.compile(rf"{NUMBER}(UM|MM|UH|MH)")
VERSION = re.compile(r"([A-Z]+\d+(?:X\d*)?)V(\d+\.\d+)")


@functools.lru_cache(maxsize=_MAX_KEPT_REPLIES)
def parse_dispensed(data: str) -> DeliveredVolume:
    """`DIS` reply data `I<infused>W<withdrawn><UL|ML>` -> mL. Kept like `parse_reply`'s
    replies (the volume is frozen): a poll repeats the last poll's text more often than not."""
    m = _DISPENSED.fullmatch(data)
    if m is None:
        raise ProtocolError(f"unexpected DIS reply {data!r}")
    infused, withdrawn, unit = m.groups()
    if unit == "UL":
        return DeliveredVolume(
            infused_ml=float(infused) * 1e-3, withdrawn_ml=float(withdrawn) * 1e-3
        )
    return DeliveredVolume(infused_ml=float(infused), withdrawn_ml=float(withdrawn))


def parse_version(data: str) -> tuple[str, str]:
    """`VER` reply data `NE1000V3.928` -> (model, firmware); another shape is all model."""
    m = VERSION.fullmatch(data)
    return (m[1], m[2]) if m else (data, "")


def parse_rate_unit(data: str) -> RateUnit:
    """`RAT` query reply data (`12.34MH`) -> the rate unit in force."""
    m = RATE.fullmatch(data)
    if m is None:
        raise ProtocolError(f"unexpected RAT reply {data!r}")
    return RateUnit(m[2])


def parse_diameter(data: str) -> float:
    """`DIA` query reply data -> the bore set on the pump, mm (> 0)."""
    if re.fullmatch(NUMBER, data) is None or float(data) <= 0:
        raise ProtocolError(f"unexpected DIA reply {data!r}")
    return float(data)


_STATES: dict[str, tuple[PumpState, Direction | None]] = {
    "I": (PumpState.RUNNING, Direction.INFUSE),
    "W": (PumpState.RUNNING, Direction.WITHDRAW),
    "S": (PumpState.STOPPED, None),
    "P": (PumpState.PAUSED, None),
}


def status_for_reply(reply: NEReply) -> PumpStatus:
    """The pump's state from a reply's status character. Status characters T (timed pause), U
    (trigger wait), X (purge) are states pumpctl does not drive: `OTHER`. `raw` is the reply's
    prompt (address and status character, `00I`), or the whole alarm reply (`00A?S`); a query's
    data (the volumes of `DIS`) is decoded on its own.

    One status per prompt is kept and shared (it is frozen; at most 100 addresses times the
    status characters): every poll's reply starts with one of a few prompts, and building the
    model costs as much as decoding the reply."""
    if reply.alarm is not None:
        return PumpStatus(state=PumpState.ALARM, alarm=reply.alarm, raw=reply.text)
    prompt = reply.text[:3]
    status = _STATUS_BY_PROMPT.get(prompt)
    if status is None:
        state, direction = _STATES.get(reply.status, (PumpState.OTHER, None))
        status = _STATUS_BY_PROMPT[prompt] = PumpStatus(
            state=state, direction=direction, raw=prompt
        )
    return status


_STATUS_BY_PROMPT: dict[str, PumpStatus] = {}
