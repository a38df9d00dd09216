"""Harvard Apparatus legacy "pump chain" protocol: Pump 11 / 11 Plus and PHD2000 (Model 22/33/44
and the KDS / Cole-Parmer clones speak the same command set).

Module-level pure functions build and parse frames; `HarvardLegacyDriver` only sequences commands
through the Harvard base (`harvard_common.HarvardDriver._send`, shared with the other family).

Wire format (pump manuals, "RS-232 / pump chain"; reply widths as existing host software reads
them by byte count, not hardware-verified):
- request `NNCOMMAND[value]` CR, the address zero-padded to two digits (both models accept it),
  numbers at most 5 characters including the point;
- set/action reply: CR LF, address, prompt (5 bytes on a Pump 11: `\\r\\n00:`);
- query reply: CR LF, text, CR LF, address, prompt (VOL/DIA: 8-character right-justified number,
  15 bytes; VER: `\\r\\nPUMP11V2.0\\r\\n00:`, 17 bytes; RAT: 6-character number + ` ul/m` etc.);
- errors replace the text: `?` syntax, `NA` not applicable now, `OOR` out of range;
- prompts `:` stopped, `>` infusing, `<` refilling, `*` stalled (PHD2000: also the answer to STP
  on a running pump), PHD2000 `/` paused, `^` waiting for a trigger.
The PHD2000 does not pad the address and adds an extra CR: the framer ends a reply at the first
`address + prompt` that starts a line, and the parser accepts any run of CR/LF as a line break.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, ClassVar

from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    DeliveredVolume,
    Direction,
    ProtocolError,
    PumpAlarm,
    PumpError,
    PumpIdentity,
    PumpState,
    PumpStatus,
    UnsupportedError,
)
from pumpctl.drivers.harvard_common import HarvardDriver, check_address
from pumpctl.drivers.transport import Transport
from pumpctl.families.harvard_legacy import (
    NUMBER_WIDTH,
    RATE_TOLERANCE,
    SPEC,
    LegacyQuantizer,
    RateSetting,
    RateUnit,
    TargetSetting,
    choose_rate_unit,
)
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import SyringeMotor

__all__ = [
    "ERRORS",
    "RATE_TOLERANCE",
    "HarvardLegacyDriver",
    "LegacyReply",
    "RateSetting",
    "RateUnit",
    "choose_rate_unit",
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


# --------------------------------------------------------------------------- capabilities


def _area_mm2(inner_diameter_mm: float) -> float:
    return math.pi * inner_diameter_mm**2 / 4


_MOTOR = SPEC.motor
assert isinstance(_MOTOR, SyringeMotor)
# Rate = plunger speed x bore area: the catalogue's corner points fix the plunger speed range
MIN_SPEED_MM_PER_H = _MOTOR.min_rate_ml_per_h * 1000 / _area_mm2(_MOTOR.min_rate_diameter_mm)
MAX_SPEED_MM_PER_H = _MOTOR.max_rate_ml_per_h * 1000 / _area_mm2(_MOTOR.max_rate_diameter_mm)
ACCURACY_PERCENT = SPEC.accuracy_percent
#: instance volume resolution: the MLT step for targets below 100 mL (see `target_step_ml`)
VOLUME_RESOLUTION_ML = 0.01


# --------------------------------------------------------------------------- driver


def _vol(text: str) -> float:
    return parse_number(text, what="VOL reply")


class HarvardLegacyDriver(HarvardDriver[LegacyReply]):
    """One Pump 11 / PHD2000 at `address` (0..99) on a pump chain.

    Serial line: 9600 baud, 8 data bits, no parity, 2 stop bits (as common host software opens
    it; the pump's baud rate is a keypad setting).

    Semantics the supervisor relies on:
    - A poll (`read_poll`) is one `VOL` exchange: status from its prompt, volume from its text.
      `read_status` and `read_delivered` are each one `VOL` exchange of their own.
    - Delivered volume: `VOL` is per run (RUN resets it), so the driver folds each run's volume
      into `carried_ml` before every RUN (and clears VOL with `CLV`); `read_delivered` returns
      `carried_ml + VOL` = volume since the last `clear_counters` (`CLV`, carried 0).
    - Target: `MLT` (in the family's `target_volume_unit`; `VOL` reads in the same unit) counts
      per run, so on every RUN after volume was carried the driver re-sends the remaining target
      (total - carried). Targets are rounded down to 5 characters by the family's quantizer;
      less than its smallest step remaining counts as reached.
    - Pause is emulated (the protocol has none): `pause()` = STP; `start()` resumes with the
      remaining target; while paused `read_status` says PAUSED.
    - Infusion only (`can_withdraw=False`): a Pump 11 can only toggle direction (REV) and cannot
      report it while stopped. A PHD2000 gets `DIR INF`; a Pump 11 that starts refilling is
      reversed at once (REV) as host software does.
    """

    family = SPEC.model
    default_baudrate: ClassVar[int] = SPEC.line.baud
    default_stopbits: ClassVar[float] = SPEC.line.stopbits
    #: `STP` leaves `:`, or `*` on a running PHD2000 (not a stall there)
    stop_command: ClassVar[str] = "STP"
    stopped_prompts: ClassVar[frozenset[str]] = frozenset(":*")
    line_hint: ClassVar[str] = "pump default 9600 8N2"
    rejected_message: ClassVar[str] = "pump rejected {command!r} with {error}"

    def __init__(
        self, transport: Transport, *, address: int = 0, pump_id: str | None = None
    ) -> None:
        super().__init__(transport, address=address, pump_id=pump_id)
        #: "pump11", "phd2000" or None (not yet known): from VER and the address padding
        self.variant: str | None = None
        self.carried_ml = 0.0
        self._stopped_by_host = False
        self._target_ml: float | None = None
        self._diameter_mm: float | None = None
        self._direction_set = False

    # -- wire ----------------------------------------------------------------------------------

    _encode = staticmethod(encode_command)
    _framer = staticmethod(legacy_frame_length)
    _decode = staticmethod(parse_reply)

    @staticmethod
    def _payload(reply: LegacyReply) -> str:
        return reply.text

    def _note(self, reply: LegacyReply) -> None:
        super()._note(reply)
        if reply.prompt != "*":
            self._stopped_by_host = False
        if not reply.padded and self.address < 10 and self.variant != "phd2000":
            self.variant = "phd2000"
            self.log.info("pump.variant", variant="phd2000", why="unpadded address")

    def _note_stopped(self, prompt: str) -> None:
        super()._note_stopped(prompt)
        self._stopped_by_host = prompt == "*"

    def _open_details(self) -> dict[str, Any]:
        return {"variant": self.variant}

    # -- interface -----------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        low, high = SPEC.rate_range_ml_per_h(inner_diameter_mm=self._diameter_mm)
        return Capabilities(
            family=self.family,
            can_withdraw=False,
            min_rate_ml_per_h=low,
            max_rate_ml_per_h=high,
            volume_resolution_ml=VOLUME_RESOLUTION_ML,
            rate_resolution_ml_per_h=1e-6,  # 0.001 µL/h in ULH
            accuracy_percent=ACCURACY_PERCENT,
            has_link_watchdog=False,
        )

    @property
    def quantizer(self) -> LegacyQuantizer:
        """The family's rounding (5-character numbers, `MLT` in `target_volume_unit`)."""
        return LegacyQuantizer.for_container(SPEC, self._diameter_mm, None, variant=self.variant)

    async def identify(self) -> PumpIdentity:
        """`VER` -> e.g. `PUMP11V2.0` (model, firmware); `PHD` in the text marks a PHD2000."""
        reply = await self._send("VER", query=True)
        model, firmware = parse_version(reply.text)
        if "PHD" in model.upper():
            self.variant = "phd2000"
        elif self.variant is None:
            self.variant = "pump11"
        return PumpIdentity(model=model, firmware=firmware, address=self.address)

    async def configure_syringe(self, inner_diameter_mm: float) -> None:
        """`MMD` (mm, 5 characters)."""
        if not math.isfinite(inner_diameter_mm) or inner_diameter_mm <= 0:
            raise ValueError(f"inner diameter must be > 0 mm, got {inner_diameter_mm}")
        text = format_number(inner_diameter_mm)
        await self._send(f"MMD{text}")
        self._diameter_mm = float(text)

    async def set_rate(
        self, rate_ml_per_h: float, direction: Direction = Direction.INFUSE
    ) -> float:
        """`MLH|ULH|ULM|MLM value` in the most precise unit, rounded down (the family's
        `choose_rate_unit`); allowed while running. A PHD2000 gets `DIR INF` once first.
        Returns the rate sent, mL/h."""
        if direction is not Direction.INFUSE:
            raise UnsupportedError("harvard-legacy driver infuses only (direction is a toggle)")
        if not math.isfinite(rate_ml_per_h) or rate_ml_per_h <= 0:
            raise ValueError(f"rate must be > 0 mL/h, got {rate_ml_per_h}")
        try:
            setting = self.quantizer.rate_setting(rate_ml_per_h)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        if self.variant == "phd2000" and not self._direction_set:
            await self._send("DIR INF")
            self._direction_set = True
        await self._send(setting.command)
        return setting.rate_ml_per_h

    async def read_rate(self) -> float:
        """`RAT` -> the rate in force, mL/h."""
        return parse_rate((await self._send("RAT", query=True, expect=parse_rate)).text)

    async def set_target_volume(self, volume_ml: float | None) -> float | None:
        """Target volume since the last `clear_counters`: `MLT` with what remains of it in this
        run, rounded down; None -> `CLT`. Returns the target sent (carried volume included),
        mL."""
        if volume_ml is None:
            await self._send("CLT")
            self._target_ml = None
            return None
        if not math.isfinite(volume_ml) or volume_ml <= 0:
            raise ValueError(f"target volume must be > 0 mL (None = continuous), got {volume_ml}")
        if self.carried_ml <= 0:
            sent = self._target(volume_ml)
            await self._send(f"MLT{sent.text}")
            self._target_ml = sent.volume_ml
            return sent.volume_ml
        self._target_ml = volume_ml
        remaining = self._remaining()
        if remaining is None:  # reached already: nothing to send, the pump stays stopped
            return min(volume_ml, self.carried_ml)
        await self._send(f"MLT{remaining.text}")
        self._target_ml = self.carried_ml + remaining.volume_ml
        return self._target_ml

    def _target(self, volume_ml: float) -> TargetSetting:
        try:
            return self.quantizer.target_setting(volume_ml)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc

    def _remaining(self) -> TargetSetting | None:
        """What remains of the target this run, as sent; None when less than the smallest
        step remains (the target counts as reached)."""
        if self._target_ml is None or self._target_ml <= self.carried_ml:
            return None
        try:
            return self.quantizer.target_setting(self._target_ml - self.carried_ml)
        except NotRepresentable:
            return None

    async def start(self) -> None:
        """Start or resume: `VOL` (fold this run's volume into `carried_ml`), `CLV` if it was not
        zero, `MLT` remaining when volume is carried, `RUN`. No-op when already running, and when
        the target has been reached (the pump stays stopped and the next poll sees it)."""
        reply = await self._send("VOL", query=True, expect=_vol)
        if reply.prompt in "><":
            self.log.info("pump.start_already_running", prompt=reply.prompt)
            return
        volume_ml = self._volume_ml(reply.text)
        if volume_ml > 0:
            await self._send("CLV")
            self.carried_ml += volume_ml
        if self._target_ml is not None and self.carried_ml > 0:
            remaining = self._remaining()
            if remaining is None:
                self.paused = False
                self.log.info("pump.target_already_reached", carried_ml=self.carried_ml)
                return
            await self._send(f"MLT{remaining.text}")
        reply = await self._send("RUN")
        if reply.prompt == "<":
            self.log.warning("pump.reversing_refill", why="pump was set to refill")
            reply = await self._send("REV")
            if reply.prompt != ">":
                await self._send("STP", errors=False)
                raise PumpError(f"pump did not turn to infuse after REV (prompt {reply.prompt!r})")
        if reply.prompt == "*":
            raise PumpAlarm(AlarmReason.STALL, "pump stalled on RUN")
        self.paused = False

    async def read_status(self) -> PumpStatus:
        """`VOL` query; status from its prompt (a stall is a status here, not an exception)."""
        return self._status(await self._send("VOL", query=True, expect=_vol))

    async def read_delivered(self) -> DeliveredVolume:
        """`carried_ml` + `VOL` (mL)."""
        return self._delivered(await self._send("VOL", query=True, expect=_vol))

    async def read_poll(self) -> tuple[PumpStatus, DeliveredVolume]:
        """One `VOL` exchange: status from its prompt, volume from its text."""
        reply = await self._send("VOL", query=True, expect=_vol)
        return self._status(reply), self._delivered(reply)

    def _status(self, reply: LegacyReply) -> PumpStatus:
        return status_for_prompt(
            reply.prompt, stopped_by_host=self._stopped_by_host, paused=self.paused, raw=reply.raw
        )

    def _volume_ml(self, text: str) -> float:
        """A `VOL` reply in mL (it counts in the `MLT` unit)."""
        return _vol(text) * float(self.quantizer.target_unit_ml)

    def _delivered(self, reply: LegacyReply) -> DeliveredVolume:
        return DeliveredVolume(infused_ml=self.carried_ml + self._volume_ml(reply.text))

    async def clear_counters(self) -> None:
        """`CLV`; the carried volume and an emulated pause end with it."""
        await self._send("CLV")
        self.carried_ml = 0.0
        self.paused = False
