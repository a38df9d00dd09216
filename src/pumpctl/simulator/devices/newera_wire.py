"""NE-1000 emulation: its side of the wire. Numbers as the pump prints and reads them, the
safe-mode CRC frame, and the line grammar (addresses, `*` bursts, command prefixes).

Written from the RS-232 protocol notes, apart from the driver's codec (the two must agree only
on the wire). Pure and cached where a host repeats itself: a poll line is parsed once.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from binascii import crc_hqx
from decimal import ROUND_DOWN, Decimal, InvalidOperation

__all__ = [
    "ADDRESS",
    "ADDRESS_TEXT",
    "COMMANDS",
    "CR",
    "ETX",
    "STX",
    "crc16_xmodem",
    "format_number",
    "frame_safe",
    "framed_reply",
    "normalise",
    "packet_address",
    "parse_line",
    "parse_number",
    "parse_packet",
]

STX, ETX, CR = 0x02, 0x03, 0x0D

# Longest names first: the parser matches a prefix (`RAT C 5 MH` arrives as `RATC5MH`).
COMMANDS = tuple(
    [
        "*RESET",
        "*ADR",
        "DIA",
        "RAT",
        "VOL",
        "DIR",
        "RUN",
        "PUR",
        "STP",
        "DIS",
        "CLD",
        "PHN",
        "FUN",
        "SAF",
        "VER",
        "TRG",
        "DIN",
        "ROM",
        "LOC",
        "OUT",
        "BUZ",
        "LN",
        "AL",
        "PF",
        "BP",
        "IN",
    ]
)
_NUMBER = re.compile(r"(\d*)(?:\.(\d*))?")
_BURST_SPLIT = re.compile(r"\*(?=\d|$)")
ADDRESS = re.compile(r"(\d{1,2})?(.*)", re.S)
#: a pump's address as every reply starts with it: `ADDRESS_TEXT[7] == "07"` (an f-string's
#: `:02d` costs a poll more than the lookup)
ADDRESS_TEXT = tuple(f"{a:02d}" for a in range(100))


def format_number(value: Decimal | float) -> str:
    """Pump number format: 4 significant digits, always a decimal point, at most 3 decimals.

    `14.5 -> "14.50"`, `3000 -> "3000."`, `0.5 -> "0.500"`. Counters are truncated (the pump never
    reports more than it moved); values of 10000 and above keep every integer digit.
    """
    if isinstance(value, float) and 0.0 <= value < _FAST_FLOAT_MAX:
        if value:
            return _format_float(value)
        if math.copysign(1.0, value) > 0:  # 0.0 (-0.0 keeps its sign below)
            return "0.000"
    d = value if isinstance(value, Decimal) else Decimal(round(value, 9)).quantize(_NANO)
    d = max(d, Decimal(0))
    decimals = 0 if d >= 1000 else 1 if d >= 100 else 2 if d >= 10 else 3
    text = format(d.quantize(_STEPS[decimals], rounding=ROUND_DOWN), "f")
    return text if decimals else text + "."


_NANO = Decimal("1e-9")
_STEPS = {n: Decimal(1).scaleb(-n) for n in range(4)}
#: floats below this take `_format_float`: far from the Decimal context's 28-digit precision
_FAST_FLOAT_MAX = 1e15


def _format_float(value: float) -> str:
    """`format_number` of a float in (0, `_FAST_FLOAT_MAX`), in integers: the counters of
    every poll.

    The same steps exactly: round to 9 decimals (as `round` does), then the exact binary value
    of that float to a whole number of nanolitres, half to even (`Decimal.quantize`), then
    truncated to the decimals shown (`ROUND_DOWN`). The decimals come from tables: formatting
    `frac:03d` costs more than the rest of the function.
    """
    nano = _nanos(value)
    if nano < 10_000_000_000:  # below 10: three decimals (`//` and `%`: no divmod call)
        shown = nano // 1_000_000
        return str(shown // 1000) + _POINT_3[shown % 1000]
    if nano < 100_000_000_000:
        shown = nano // 10_000_000
        return str(shown // 100) + _POINT_2[shown % 100]
    if nano < 1_000_000_000_000:
        shown = nano // 100_000_000
        return str(shown // 10) + _POINT_1[shown % 10]
    return f"{nano // 1_000_000_000}."


def _nanos(value: float) -> int:
    """`round(value, 9)` as a whole number of nanolitres: its exact value, half to even.

    Fast path, for products below `_NANOS_FAST_MAX` = 2**44 nL (values below 17592.19 <
    2**15), with neither rounding. Let k be the exact value of `value` times 10**9, rounded half
    to even. (1) The exact path gives k: `round(value, 9)` is the double nearest k / 10**9
    (CPython rounds in decimal, correctly, half to even, and converts back), below 2**15 within
    half an ulp, 2**-39, of it; its exact value times 10**9 is within 10**9 * 2**-39 < 0.002
    of k, so rounds to k. (2) The product y = value * 1e9 in floats (1e9 is exact) is off the
    real product by at most half its ulp, 2**-10 < 0.001; when y is within 0.498 of the
    integer `round(y)`, the real product is within 0.499 < 0.5 of it, so that integer is k.
    Only products within 0.002 of a half nanolitre take the exact path; `test_sim_newera`
    compares both with the Decimal rule, near half nanolitres too.
    """
    y = value * 1e9
    if y < _NANOS_FAST_MAX:
        nano = round(y)
        if abs(y - nano) < 0.498:
            return nano
    num, den = round(value, 9).as_integer_ratio()
    nano, rest = divmod(num * 1_000_000_000, den)
    if 2 * rest > den or (2 * rest == den and nano & 1):
        nano += 1
    return nano


#: products below this take `_nanos`' fast path (see its proof)
_NANOS_FAST_MAX = 2.0**44
#: the decimals shown, by their count: `_POINT_3[8] == ".008"`
_POINT_3 = tuple(f".{i:03d}" for i in range(1000))
_POINT_2 = tuple(f".{i:02d}" for i in range(100))
_POINT_1 = tuple(f".{i}" for i in range(10))


def parse_number(text: str) -> Decimal | None:
    """At most 4 digits and one point, at most 3 digits after it; None if not that."""
    m = _NUMBER.fullmatch(text)
    if m is None or not text or text == ".":
        return None
    whole, frac = m.group(1), m.group(2) or ""
    if len(whole.lstrip("0")) + len(frac) > 4 or len(frac) > 3:
        return None
    try:
        return Decimal(text if whole else "0" + text)
    except InvalidOperation:
        return None


def crc16_xmodem(data: bytes) -> int:
    """CRC-16, polynomial 0x1021, initial value 0, no reflection (the notes' "CCITT")."""
    return crc_hqx(data, 0)


def frame_safe(data: bytes) -> bytes:
    """STX LEN data CRC ETX: a header and a packed CRC + ETX around `data` (every reply)."""
    n = len(data)
    head = _SAFE_HEADS[n] if n <= _MAX_SAFE_DATA else bytes((STX, n + 4))  # ValueError past it
    return head + data + _CRC_ETX(crc16_xmodem(data), ETX)


@functools.lru_cache(maxsize=256)
def framed_reply(address: int, body: str, safe: bool) -> bytes:
    """A reply as the pump sends it: address, `body`, framed for the mode (`frame_safe`, or STX
    ... ETX). Kept, as `parse_packet` keeps packets: a poll's reply repeats the last one until
    a counter moves a display step, every few polls at a low rate."""
    data = (ADDRESS_TEXT[address] + body).encode("latin-1")
    return frame_safe(data) if safe else b"\x02" + data + b"\x03"


#: data bytes a safe packet can carry (LEN, one byte, counts them + 4)
_MAX_SAFE_DATA = 0xFF - 4
#: STX LEN of a packet by the length of its data: `_SAFE_HEADS[3] == b"\x02\x07"`
_SAFE_HEADS = tuple(bytes((STX, n + 4)) for n in range(_MAX_SAFE_DATA + 1))
#: the CRC (big-endian) and ETX that end a packet, packed in one call
_CRC_ETX = struct.Struct(">HB").pack


def normalise(text: str) -> str:
    """The pump drops spaces and control characters and upper-cases before parsing."""
    return text.translate(_DROPPED).upper()


#: what `normalise` drops: space, the control characters below it, and DEL
_DROPPED = dict.fromkeys([*range(0x21), 0x7F])
_COMMAND_LENGTHS = sorted({len(c) for c in COMMANDS}, reverse=True)
_COMMAND_SET = frozenset(COMMANDS)


def _split_command(text: str) -> tuple[str | None, str]:
    """The command `text` starts with (the longest name that fits, so `RATC5MH` is RAT and
    `*RESET` is not `*R...`) and its arguments; (None, "") for no known command."""
    for n in _COMMAND_LENGTHS:
        if text[:n] in _COMMAND_SET and len(text) >= n:
            return text[:n], text[n:]
    return None, ""


_Part = tuple[int | None, str, str | None, str]
_PARSED: dict[str, tuple[_Part, ...]] = {}
#: distinct lines whose parse is kept (a host polls with the same few lines for days)
_MAX_PARSED = 1024


def parse_line(raw: str) -> tuple[_Part, ...]:
    """One received line or packet text, as the pump parses it: normalised, split at `*` burst
    separators, each part as (address or None, the text after it, command, arguments).
    Pure, so kept per distinct line."""
    parts = _PARSED.get(raw)
    if parts is not None:
        return parts
    text = normalise(raw)
    found = []
    for part in _BURST_SPLIT.split(text) if "*" in text else [text]:
        if part or text == "":
            m = ADDRESS.match(part)
            assert m is not None
            digits, rest = m.group(1), m.group(2)
            found.append((int(digits) if digits else None, rest, *_split_command(rest)))
    parts = tuple(found)
    if len(_PARSED) < _MAX_PARSED:
        _PARSED[raw] = parts
    return parts


#: valid safe packets, whole, with their parse (as many as `_PARSED` keeps)
_PACKETS: dict[bytes, tuple[_Part, ...]] = {}


def parse_packet(pkt: bytes) -> tuple[_Part, ...] | None:
    """A whole safe packet (STX LEN data CRC ETX) parsed as `parse_line` parses its data; None
    when its ETX or CRC is wrong. A valid packet is kept as it is (a host polls with the same
    few): its CRC is checked once."""
    parts = _PACKETS.get(pkt)
    if parts is not None:
        return parts
    data = pkt[2:-3]
    if pkt[-1] != ETX or int.from_bytes(pkt[-3:-1], "big") != crc16_xmodem(data):
        return None
    parts = parse_line(data.decode("latin-1"))
    if len(_PACKETS) < _MAX_PARSED:
        _PACKETS[pkt] = parts
    return parts


def packet_address(data: bytes) -> int | None:
    """The address a packet's data starts with (None: none), read even when its CRC is wrong."""
    m = ADDRESS.match(normalise(data.decode("latin-1")))
    return int(m.group(1)) if m and m.group(1) else None
