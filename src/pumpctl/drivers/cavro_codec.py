"""The Cavro command set's two framings, DT and OEM, as pure functions (driver side).

XCalibur operating manual 733085-B §3.2 (the XLP 6000 manual 734237-C and the Hamilton PSD
clients agree):
- DT: `/` address command-string CR; answer `/0` status [data] ETX CR LF;
- OEM: STX address sequence command-string ETX checksum; answer STX `0` status [data] ETX
  checksum. The checksum XORs every byte from STX to ETX. The sequence byte is `0011 R S2 S1
  S0`: a resend of the same block sets R and keeps the sequence number, and a pump that has
  executed that block answers it again without executing it twice (Scenarios 1 and 2);
- address: the switch position 0..E is the character `1`..`?` (Table 3-1);
- status byte `01X0EEEE` (Table 3-9): X = 1 ready, EEEE the error code. Only `Q`'s ready bit
  reports motion (§3.6); the error bits are valid in every answer, and `check_reply` says what
  they mean (a refusal at once, or an alarm).
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpctl.drivers.base import AlarmReason, CommandRejected, ProtocolError, PumpAlarm

__all__ = [
    "ERRORS",
    "IMMEDIATE_ERRORS",
    "CavroReply",
    "address_byte",
    "alarm_reason",
    "check_reply",
    "checksum",
    "dt_frame_length",
    "encode_dt",
    "encode_oem",
    "oem_frame_length",
    "parse_count",
    "parse_dt",
    "parse_oem",
]

STX, ETX, CR, LF = 0x02, 0x03, 0x0D, 0x0A
MASTER = 0x30  # the host's address, `0`, in every answer
#: longest answer without its end before the framer hands it over as garbage
_MAX_REPLY = 256
#: XC §3.6.2 Table 3-10 (codes 8, 12-14 are Centris-only; unused elsewhere)
ERRORS = {
    0: "no error",
    1: "initialization error",
    2: "invalid command",
    3: "invalid operand",
    4: "invalid command sequence",
    6: "EEPROM failure",
    7: "device not initialized",
    9: "plunger overload",
    10: "valve overload",
    11: "plunger move not allowed (valve in bypass)",
    15: "command overflow (sent while busy)",
}
#: errors a pump answers a string with at once, refusing it (XC §3.6.3): not kept, no alarm
IMMEDIATE_ERRORS = frozenset({2, 3, 4, 11, 15})
_ALARMS = {1: AlarmReason.OTHER, 7: AlarmReason.RESET, 9: AlarmReason.STALL}


def address_byte(address: int, last: int = 14) -> int:
    """Switch position 0..`last` -> `1`..`?` (0x31 + n)."""
    if not 0 <= address <= last:
        raise ValueError(f"Cavro address switch must be 0..{last}, got {address}")
    return 0x31 + address


def _check_command(command: str) -> bytes:
    data = command.encode("ascii", "replace")
    if not command.isascii() or any(not 0x20 < b < 0x7F for b in data):
        raise ValueError(f"Cavro commands are printable ASCII without spaces, got {command!r}")
    return data


def encode_dt(address: int, command: str, *, last: int = 14) -> bytes:
    """`/1ZR` CR: `/`, the address character, the command string, CR."""
    return b"/" + bytes([address_byte(address, last)]) + _check_command(command) + b"\r"


def checksum(block: bytes) -> int:
    """XOR of every byte given (STX ... ETX of a block)."""
    value = 0
    for b in block:
        value ^= b
    return value


def encode_oem(
    address: int, sequence: int, command: str, *, repeat: bool = False, last: int = 14
) -> bytes:
    """STX, address, sequence byte `0x30 | R<<3 | seq` (seq 1..7), command, ETX, checksum."""
    if not 1 <= sequence <= 7:
        raise ValueError(f"OEM sequence numbers are 1..7, got {sequence}")
    seq = 0x30 | (0x08 if repeat else 0) | sequence
    block = bytes([STX, address_byte(address, last), seq]) + _check_command(command) + b"\x03"
    return block + bytes([checksum(block)])


def dt_frame_length(buf: bytes) -> int | None:
    """A DT answer ends with ETX CR LF."""
    end = buf.find(b"\x03\r\n")
    if 0 <= end < _MAX_REPLY:
        return end + 3
    return _MAX_REPLY + 1 if len(buf) > _MAX_REPLY else None


def oem_frame_length(buf: bytes) -> int | None:
    """An OEM answer is STX ... ETX and one checksum byte; bytes before STX are ignored."""
    start = buf.find(bytes([STX]))
    if start >= 0:
        end = buf.find(bytes([ETX]), start)
        if end >= 0 and end + 1 < len(buf):
            return end + 2 if end + 2 <= _MAX_REPLY else _MAX_REPLY + 1
    return _MAX_REPLY + 1 if len(buf) > _MAX_REPLY else None


@dataclass(frozen=True)
class CavroReply:
    status: int
    data: str

    @property
    def ready(self) -> bool:
        return bool(self.status & 0x20)

    @property
    def error(self) -> int:
        return self.status & 0x0F

    @property
    def error_text(self) -> str:
        return ERRORS.get(self.error, f"error {self.error}")


def _reply(status: int, data: bytes, raw: bytes) -> CavroReply:
    if status & 0xD0 != 0x40:  # bits 7-6 must be 01 and bit 4 0 (Table 3-9)
        raise ProtocolError(f"invalid status byte {status:#04x}", raw)
    if not all(0x20 <= b <= 0x7E for b in data):
        raise ProtocolError("answer data is not printable ASCII", raw)
    return CavroReply(status, data.decode("ascii"))


def parse_dt(raw: bytes) -> CavroReply:
    """`/0` status data ETX CR LF; bytes before `/0` (a line-sync 0xFF) are ignored."""
    start = raw.find(b"/0")
    if start < 0 or not raw.endswith(b"\x03\r\n") or len(raw) < start + 6:
        raise ProtocolError("answer is not /0 status data ETX CR LF", raw)
    return _reply(raw[start + 2], raw[start + 3 : -3], raw)


def parse_oem(raw: bytes) -> CavroReply:
    """STX `0` status data ETX checksum, the checksum checked (SR20: never acted on else)."""
    start = raw.find(bytes([STX]))
    if start < 0 or len(raw) < start + 5 or raw[-2] != ETX or raw[start + 1] != MASTER:
        raise ProtocolError("answer is not STX 0 status data ETX checksum", raw)
    block = raw[start:-1]
    if checksum(block) != raw[-1]:
        raise ProtocolError(f"checksum {raw[-1]:#04x}, expected {checksum(block):#04x}", raw)
    return _reply(raw[start + 2], raw[start + 3 : -2], raw)


def alarm_reason(code: int) -> AlarmReason:
    """What a kept error (not one of `IMMEDIATE_ERRORS`) means to the supervisor."""
    return _ALARMS.get(code, AlarmReason.OTHER)


def check_reply(reply: CavroReply, command: str) -> CavroReply:
    """The answer to a command string, or what its error bits mean: `CommandRejected` for an
    immediate refusal, `PumpAlarm` for any other error."""
    code = reply.error
    if code in IMMEDIATE_ERRORS:
        raise CommandRejected(f"pump refused {command!r}: {reply.error_text}", str(code), command)
    if code:
        raise PumpAlarm(alarm_reason(code), reply.error_text)
    return reply


def parse_count(text: str, command: str) -> int:
    """A report's answer data that must be a whole number (`?`, `?16`)."""
    if not text.isascii() or not text.isdigit():
        raise ProtocolError(f"expected a number in answer to {command!r}, got {text!r}")
    return int(text)
