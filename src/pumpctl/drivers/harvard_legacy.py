"""Harvard Apparatus legacy "pump chain" protocol: Pump 11 / 11 Plus and PHD2000 (Model 22/33/44
and the KDS / Cole-Parmer clones speak the same command set).

Pure functions build and parse frames (`harvard_legacy_codec`, re-exported here);
`HarvardLegacyDriver` only sequences commands through the Harvard base
(`harvard_common.HarvardDriver._send`, shared with the other family).

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
from typing import Any, ClassVar

from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    DeliveredVolume,
    Direction,
    PumpAlarm,
    PumpError,
    PumpIdentity,
    PumpStatus,
    UnsupportedError,
)
from pumpctl.drivers.harvard_common import HarvardDriver
from pumpctl.drivers.harvard_legacy_codec import (
    ERRORS,
    LegacyReply,
    encode_command,
    format_number,
    legacy_frame_length,
    parse_number,
    parse_rate,
    parse_reply,
    parse_version,
    status_for_prompt,
    target_step_ml,
)
from pumpctl.drivers.transport import Transport
from pumpctl.families.harvard_legacy import (
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
