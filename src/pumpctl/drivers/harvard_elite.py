"""Harvard Apparatus 11 Elite / PHD Ultra / Pump 33 DDS "text" protocol.

Module-level pure functions build and parse frames; `HarvardEliteDriver` only sequences commands
through the Harvard base (`harvard_common.HarvardDriver._send`, shared with the other family).

Wire format (PHD Ultra / 11 Elite user manuals, "Command set"; reply shape as existing host
software parses it):
- request `[address:]command[ args]` CR; the colon only for a non-zero address (`12:irate`);
  units as text (`ml/hr`, `ul/min`, short forms `m/m`, `u/h`; volumes `ml`, `ul`, `nl`, `pl`);
- reply: LF, then one line `aa<prompt><body>` CR LF (2-digit address); an empty body for set
  and action commands; errors are bodies (`Command error`, `Unknown command`, `Argument error`,
  `Out of range`);
- prompts `:` idle, `>` infusing, `<` withdrawing, `*` stalled, `T*` target reached.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    DeliveredVolume,
    Direction,
    ProtocolError,
    PumpAlarm,
    PumpIdentity,
    PumpState,
    PumpStatus,
    UnsupportedError,
)
from pumpctl.drivers.harvard_common import HarvardDriver, check_address
from pumpctl.drivers.transport import Transport
from pumpctl.families.harvard_elite import SPEC, EliteQuantizer, floor_text
from pumpctl.families.quantize import NotRepresentable

__all__ = [
    "ERRORS",
    "EliteReply",
    "HarvardEliteDriver",
    "elite_frame_length",
    "encode_command",
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


def _format(value: float) -> str:
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


# --------------------------------------------------------------------------- capabilities

# 11 Elite catalogue range (nominal): 1.28 pL/min to 88.28 mL/min over its syringes; replaced by
# the pump's own `irate lim` once a syringe is configured.
NOMINAL_MIN_RATE_ML_PER_H = 1.28e-9 * 60
NOMINAL_MAX_RATE_ML_PER_H = 88.28 * 60
ACCURACY_PERCENT = SPEC.accuracy_percent
#: common syringe capacities, mL (`svolume` is raised to one of these to hold a target)
STANDARD_SYRINGES_ML = (1.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0, 60.0, 100.0, 140.0)
#: volume counters and targets are exact to well below this (ivolume prints >= 4 digits)
VOLUME_RESOLUTION_ML = 0.001


# --------------------------------------------------------------------------- driver


class HarvardEliteDriver(HarvardDriver[EliteReply]):
    """One 11 Elite / PHD Ultra at `address` (0..99).

    Semantics the supervisor relies on:
    - A poll (`read_poll`) is one `ivolume` exchange: status from its prompt, infused volume
      from its body. `read_status` and `read_delivered` are each an `ivolume` exchange of their
      own. `wvolume` is read only once the driver has withdrawn (or seen `<`) since the last
      `clear_counters` (`cvolume`).
    - Pause is native: `stp` keeps the counters and the target (`tvolume` counts the infused
      volume since `cvolume`), `irun` resumes. While paused `read_status` says PAUSED.
    - `T*` (target reached) reads as STOPPED; `*` (stall) as ALARM/STALL.
    - `configure_syringe` reads `irate lim` into the capabilities' rate range.
    - `can_withdraw` follows `ver` (`I/W` models).
    - The pump refuses a target above `svolume`; `set_target_volume` raises `svolume` to a
      standard size when needed (see `_ensure_syringe_holds`), `configure_syringe_volume` sets
      it exactly.
    """

    family = SPEC.model
    default_baudrate: ClassVar[int] = SPEC.line.baud
    default_stopbits: ClassVar[float] = SPEC.line.stopbits
    #: `stp` is done unless the motor still runs (`>` or `<`)
    stop_command: ClassVar[str] = "stp"
    stopped_prompts: ClassVar[frozenset[str]] = frozenset({":", "*", "T*"})
    line_hint: ClassVar[str] = "11 Elite usual 115200"

    def __init__(
        self, transport: Transport, *, address: int = 0, pump_id: str | None = None
    ) -> None:
        super().__init__(transport, address=address, pump_id=pump_id)
        self.rate_limits_ml_per_h: tuple[float, float] | None = None
        #: the pump's `svolume`, mL (None until read or set)
        self.syringe_volume_ml: float | None = None
        self._can_withdraw = False
        self._direction = Direction.INFUSE
        self._withdrawn = False

    # -- wire ----------------------------------------------------------------------------------

    _encode = staticmethod(encode_command)
    _framer = staticmethod(elite_frame_length)
    _decode = staticmethod(parse_reply)

    @staticmethod
    def _payload(reply: EliteReply) -> str:
        return reply.body

    def _note(self, reply: EliteReply) -> None:
        super()._note(reply)
        if reply.prompt == "<":
            self._withdrawn = True

    def _open_details(self) -> dict[str, Any]:
        return {"prompt": self.prompt}

    # -- interface -----------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        low, high = self.rate_limits_ml_per_h or (
            NOMINAL_MIN_RATE_ML_PER_H,
            NOMINAL_MAX_RATE_ML_PER_H,
        )
        return Capabilities(
            family=self.family,
            can_withdraw=self._can_withdraw,
            min_rate_ml_per_h=low,
            max_rate_ml_per_h=high,
            volume_resolution_ml=VOLUME_RESOLUTION_ML,
            rate_resolution_ml_per_h=1e-6,
            accuracy_percent=ACCURACY_PERCENT,
            has_link_watchdog=False,
            sets_syringe_volume=True,
        )

    @property
    def quantizer(self) -> EliteQuantizer:
        """The family's rounding: 6 significant digits, the same for every syringe."""
        return EliteQuantizer()

    async def identify(self) -> PumpIdentity:
        """`ver` -> e.g. `11 ELITE I/W Single 3.0.4`; `I/W` means the pump can withdraw."""
        reply = await self._send("ver", query=True)
        model, firmware = parse_version(reply.body)
        self._can_withdraw = "I/W" in model.upper()
        return PumpIdentity(model=model, firmware=firmware, address=self.address)

    async def configure_syringe(self, inner_diameter_mm: float) -> None:
        """`diameter d` (mm), then `irate lim` for the rate range this syringe allows."""
        if not math.isfinite(inner_diameter_mm) or inner_diameter_mm <= 0:
            raise ValueError(f"inner diameter must be > 0 mm, got {inner_diameter_mm}")
        await self._send(f"diameter {_format(inner_diameter_mm)}")
        reply = await self._send("irate lim", query=True, expect=parse_rate_limits)
        self.rate_limits_ml_per_h = parse_rate_limits(reply.body)

    async def configure_syringe_volume(self, capacity_ml: float) -> None:
        """`svolume`: the syringe's capacity; the pump refuses targets above it."""
        if not math.isfinite(capacity_ml) or capacity_ml <= 0:
            raise ValueError(f"syringe volume must be > 0 mL, got {capacity_ml}")
        await self._send(f"svolume {format_volume(capacity_ml)}")
        self.syringe_volume_ml = capacity_ml

    async def set_rate(
        self, rate_ml_per_h: float, direction: Direction = Direction.INFUSE
    ) -> float:
        """`irate` / `wrate` with text units, rounded down; allowed while running. `start()`
        runs this way. Returns the rate sent, mL/h."""
        if not math.isfinite(rate_ml_per_h) or rate_ml_per_h <= 0:
            raise ValueError(f"rate must be > 0 mL/h, got {rate_ml_per_h}")
        if direction is Direction.WITHDRAW and not self._can_withdraw:
            raise UnsupportedError("this pump is infuse-only (ver lacks I/W)")
        try:
            setting = self.quantizer.rate_setting(rate_ml_per_h)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        word = "irate" if direction is Direction.INFUSE else "wrate"
        await self._send(f"{word} {setting.text}")
        self._direction = direction
        return setting.value_ml

    async def read_set_rate(self, direction: Direction = Direction.INFUSE) -> float:
        """`irate` / `wrate` query: the rate set, mL/h."""
        word = "irate" if direction is Direction.INFUSE else "wrate"
        return parse_rate((await self._send(word, query=True, expect=parse_rate)).body)

    async def read_rate(self) -> float:
        """`crate`: the rate the motor runs now, mL/h. While moving the manual's reply names the
        direction (`Infusing at 3 ml/min`, `Withdrawing at 0.5 ml/min`); idle, a bare rate."""

        def parse(body: str) -> float:
            return parse_rate(body.partition(" at ")[2] if " at " in body else body)

        return parse((await self._send("crate", query=True, expect=parse)).body)

    async def set_target_volume(self, volume_ml: float | None) -> float | None:
        """`tvolume v ml` (counted on the infused volume since `cvolume`), rounded down;
        None -> `ctvolume`. Returns the target sent, mL."""
        if volume_ml is None:
            await self._send("ctvolume")
            return None
        if not math.isfinite(volume_ml) or volume_ml <= 0:
            raise ValueError(f"target volume must be > 0 mL (None = continuous), got {volume_ml}")
        try:
            setting = self.quantizer.volume_setting(volume_ml)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        await self._ensure_syringe_holds(setting.value_ml)
        await self._send(f"tvolume {setting.text}")
        return setting.value_ml

    async def _ensure_syringe_holds(self, volume_ml: float) -> None:
        """The pump refuses a target above its syringe volume (`svolume`), which `diameter`
        does not set. Unless `configure_syringe_volume` gave the capacity, raise `svolume` to
        the smallest standard syringe size that holds the target (the plan has already checked
        it fits the real syringe)."""
        if self.syringe_volume_ml is None:
            reply = await self._send("svolume", query=True, expect=parse_volume)
            self.syringe_volume_ml = parse_volume(reply.body)
        if volume_ml <= self.syringe_volume_ml * (1 + 1e-9):
            return
        size = next((s for s in STANDARD_SYRINGES_ML if s >= volume_ml), volume_ml)
        await self.configure_syringe_volume(size)

    async def start(self) -> None:
        """`irun` (or `wrun` after a withdraw rate); resumes after `pause()`. A `*` reply is a
        stall (`PumpAlarm`); `T*` means the target is already reached (stays stopped)."""
        withdraw = self._direction is Direction.WITHDRAW
        reply = await self._send("wrun" if withdraw else "irun")
        if withdraw:
            self._withdrawn = True
        if reply.prompt == "*":
            raise PumpAlarm(AlarmReason.STALL, "pump stalled on run")
        self.paused = False

    async def read_status(self) -> PumpStatus:
        """`ivolume` query; status from its prompt (a stall is a status here)."""
        return self._status(await self._send("ivolume", query=True, expect=parse_volume))

    async def read_delivered(self) -> DeliveredVolume:
        """`ivolume` and, after any withdrawal, `wvolume`."""
        reply = await self._send("ivolume", query=True, expect=parse_volume)
        return await self._delivered(reply)

    async def read_poll(self) -> tuple[PumpStatus, DeliveredVolume]:
        """One `ivolume` exchange: status from its prompt, infused volume from its body (plus
        `wvolume` once the pump has withdrawn)."""
        reply = await self._send("ivolume", query=True, expect=parse_volume)
        return self._status(reply), await self._delivered(reply)

    def _status(self, reply: EliteReply) -> PumpStatus:
        return status_for_prompt(reply.prompt, paused=self.paused, raw=reply.raw)

    async def _delivered(self, ivolume: EliteReply) -> DeliveredVolume:
        withdrawn_ml = 0.0
        if self._withdrawn:
            reply = await self._send("wvolume", query=True, expect=parse_volume)
            withdrawn_ml = parse_volume(reply.body)
        return DeliveredVolume(infused_ml=parse_volume(ivolume.body), withdrawn_ml=withdrawn_ml)

    async def clear_counters(self) -> None:
        """`cvolume`: infused and withdrawn volumes to zero."""
        await self._send("cvolume")
        self._withdrawn = self.prompt == "<"
        self.paused = False
