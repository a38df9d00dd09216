"""New Era NE-1000 family (NE-500/501, NE-1000, NE-1002X, NE-1600, NE-4000, NE-8000, Aladdin).

Pure functions build and parse frames (`pumpctl.drivers.newera_codec`, re-exported here; tested
on their own, golden bytes from the manual); `NE1000Driver` only sequences commands through
`PumpDriver._exchange`.

Wire format (NE-1000 user manual, "RS-232 protocol"):
- basic mode: host sends `[address]COMMAND[params]` CR; the pump replies STX `AA` status [data]
  ETX, with a 2-digit address;
- safe mode (`SAF n`, n = 1..255 s link watchdog): both ways STX LEN data CRC_hi CRC_lo ETX, LEN
  counting the bytes after STX (data + 4), CRC-16/XMODEM (poly 0x1021, init 0) over `data`.
Status characters: I infusing, W withdrawing, S stopped, P paused, T timed pause, U waiting for
trigger, X purging; `A?x` alarms replace the status; `?`, `?NA`, `?OOR`, `?COM`, `?IGN` follow it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    DeliveredVolume,
    Direction,
    FrameLength,
    ProtocolError,
    PumpDriver,
    PumpError,
    PumpIdentity,
    PumpState,
    PumpStatus,
    PumpTimeout,
    UnsupportedError,
)
from pumpctl.drivers.newera_codec import (
    MAX_ADDRESS,
    NEReply,
    any_frame_length,
    basic_frame_length,
    check_reply,
    crc16_xmodem,
    encode_basic,
    encode_safe,
    looks_basic,
    parse_diameter,
    parse_dispensed,
    parse_rate_unit,
    parse_reply,
    parse_version,
    safe_frame_length,
    status_for_reply,
)
from pumpctl.drivers.transport import Transport
from pumpctl.families.newera import (
    RATE_TOLERANCE,
    SPEC,
    NEQuantizer,
    RateSetting,
    RateUnit,
    choose_rate_unit,
    encode_rate,
    format_number,
    volume_unit_for_diameter,
)
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import SyringeMotor

__all__ = [
    "RATE_TOLERANCE",
    "NE1000Driver",
    "NEReply",
    "RateSetting",
    "RateUnit",
    "any_frame_length",
    "basic_frame_length",
    "check_reply",
    "choose_rate_unit",
    "crc16_xmodem",
    "encode_basic",
    "encode_rate",
    "encode_safe",
    "format_number",
    "parse_diameter",
    "parse_dispensed",
    "parse_rate_unit",
    "parse_reply",
    "parse_version",
    "safe_frame_length",
    "status_for_reply",
    "volume_unit_for_diameter",
]

# --------------------------------------------------------------------------- numbers
# The number format, rate units and volume units are the family's (`pumpctl.families.newera`,
# which `check` and the plan use too): one owner of "what number is this pump sent".

#: while running the unit is fixed; refuse a rate the fixed unit misses by more than this
RUNNING_RATE_TOLERANCE = 5e-3


# --------------------------------------------------------------------------- capabilities


def _area_mm2(inner_diameter_mm: float) -> float:
    return math.pi * inner_diameter_mm**2 / 4


_MOTOR = SPEC.motor
assert isinstance(_MOTOR, SyringeMotor)
# Rate = plunger speed x bore area: the spec sheet's corner points fix the plunger speed range
MIN_SPEED_MM_PER_H = _MOTOR.min_rate_ml_per_h * 1000 / _area_mm2(_MOTOR.min_rate_diameter_mm)
MAX_SPEED_MM_PER_H = _MOTOR.max_rate_ml_per_h * 1000 / _area_mm2(_MOTOR.max_rate_diameter_mm)
ACCURACY_PERCENT = SPEC.accuracy_percent


# --------------------------------------------------------------------------- driver

_Framing = Literal["basic", "safe", "auto"]
_FRAMERS: dict[str, FrameLength] = {"basic": basic_frame_length, "safe": safe_frame_length}
#: distinct requests a driver keeps encoded (rates and volumes vary; polls do not)
_MAX_CACHED_FRAMES = 64
#: a request as `_send` keeps it: its bytes, the reply's framer and the reply's parser
_Request = tuple[bytes, FrameLength, Callable[[bytes], NEReply]]


class NE1000Driver(PumpDriver):
    """One NE-1000-family pump at `address` (0..99) on a transport.

    State the driver keeps because the pump ties it to other settings: the framing in force
    (basic/safe), the syringe diameter it set (volume units), the rate unit chosen while stopped
    (units cannot change while running) and the last status character seen (every reply carries
    one). `alarm_on_open` holds an alarm the pump reported when the link was opened (typically
    `RESET` after power-up: counters and program lost); it was acknowledged by that reply.
    """

    family = SPEC.model
    #: the manual's factory setting (nesp-lib assumes 9600: pass the pump's actual rate)
    default_baudrate: ClassVar[int] = SPEC.line.baud

    def __init__(
        self, transport: Transport, *, address: int = 0, pump_id: str | None = None
    ) -> None:
        if not 0 <= address <= MAX_ADDRESS:
            raise ValueError(f"NE address must be 0..{MAX_ADDRESS}, got {address}")
        super().__init__(transport, address=address, pump_id=pump_id)
        self.safe_mode = False
        self.link_watchdog_s: int | None = None
        self.alarm_on_open = None
        self._opening = False
        self._diameter_mm: float | None = None
        self._rate_unit: RateUnit | None = None
        self._direction: Direction | None = None
        self._status: str | None = None
        #: requests as sent (bytes, reply framer, reply parser) by everything that shapes them:
        #: a poll sends the same bytes and reads its reply the same way each time
        self._requests: dict[tuple[Any, ...], _Request] = {}

    # -- wire ----------------------------------------------------------------------------------

    async def _send(
        self,
        command: str,
        *,
        query: bool = False,
        send_safe: bool | None = None,
        framing: _Framing | None = None,
        alarms: bool = True,
        errors: bool = True,
    ) -> NEReply:
        """One exchange in the framing in force (or the one given); returns the checked reply."""
        safe = self.safe_mode if send_safe is None else send_safe
        key = (self.address, safe, self.safe_mode, command, framing, alarms, errors)
        request = self._requests.get(key)
        if request is None:
            request = self._request(command, safe, framing, alarms, errors)
            if len(self._requests) < _MAX_CACHED_FRAMES:
                self._requests[key] = request
        frame, framer, parse = request
        return await self._exchange(frame, framer, parse, idempotent=query, command=command)

    def _request(
        self, command: str, safe: bool, framing: _Framing | None, alarms: bool, errors: bool
    ) -> _Request:
        """The encoded request, the reply's framer and its parser, for `_send` to keep."""
        frame = encode_safe(self.address, command) if safe else encode_basic(self.address, command)
        framing = framing or ("safe" if self.safe_mode else "basic")
        framer = _FRAMERS.get(framing, any_frame_length)

        def parse(raw: bytes) -> NEReply:
            is_safe = framing == "safe" or (framing == "auto" and not looks_basic(raw))
            reply = parse_reply(raw, is_safe, address=self.address)
            self._status = None if reply.alarm else reply.status
            if reply.alarm is not None:
                # the probe on open meets the power-up reset of every freshly started pump:
                # open() reports that itself; any other alarm is news
                log = self.log.info if self._opening else self.log.warning
                log("pump.alarm", alarm=reply.alarm.value, command=command)
            return check_reply(reply, command=command, alarms=alarms, errors=errors)

        return frame, framer, parse

    async def open(self) -> None:
        """Open the port and find the pump: basic framing first, then safe (a previous controller
        may have left `SAF n` on; it is kept). A power-up `A?R` is logged, kept in
        `alarm_on_open` and acknowledged."""
        await super().open()
        self._opening = True
        try:
            reply = await self._probe()
            if reply.alarm is not None:
                self.alarm_on_open = reply.alarm
                # a power-up reset on connecting is normal; resume logic asks alarm_on_open
                log = self.log.info if reply.alarm is AlarmReason.RESET else self.log.warning
                log("pump.alarm_on_open", alarm=reply.alarm.value)
                await self._send("", query=True, alarms=False)
        except BaseException:
            await self.transport.close()
            raise
        finally:
            self._opening = False
        self.log.info("pump.open", safe_mode=self.safe_mode, status=self._status)

    async def _probe(self) -> NEReply:
        last: PumpError | None = None
        for safe in (self.safe_mode, not self.safe_mode):
            try:
                reply = await self._send(
                    "", send_safe=safe, framing="auto", alarms=False, query=False
                )
            except (PumpTimeout, ProtocolError) as exc:
                last = exc
                continue
            self.safe_mode = reply.safe
            return reply
        assert last is not None
        raise last

    # -- interface -----------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Rate range for the configured syringe (before `configure_syringe`, the pump's whole
        range, 1 mL to 60 mL syringes); 4-digit rate numbers, so the finest rate step is
        0.001 µL/h; the volume counter shows 3 decimals of µL (<= 14 mm) or mL."""
        d = self._diameter_mm
        min_rate, max_rate = SPEC.rate_range_ml_per_h(inner_diameter_mm=d)
        volume_step = self.quantizer.counter_resolution_ml
        return Capabilities(
            family=self.family,
            can_withdraw=True,
            min_rate_ml_per_h=min_rate,
            max_rate_ml_per_h=max_rate,
            volume_resolution_ml=volume_step,
            rate_resolution_ml_per_h=1e-6,
            accuracy_percent=ACCURACY_PERCENT,
            has_link_watchdog=True,
        )

    @property
    def quantizer(self) -> NEQuantizer:
        """The family's rounding for the diameter set (`DIA`); before one, volumes in mL."""
        return NEQuantizer.for_container(SPEC, self._diameter_mm, None)

    async def identify(self) -> PumpIdentity:
        """`VER` -> e.g. `NE1000V3.928` (model, firmware)."""
        model, firmware = parse_version((await self._send("VER", query=True)).data)
        return PumpIdentity(model=model, firmware=firmware, address=self.address)

    async def configure_syringe(self, inner_diameter_mm: float) -> None:
        """`DIA`; also sets the volume units (<= 14.00 mm µL, else mL)."""
        if not math.isfinite(inner_diameter_mm) or inner_diameter_mm <= 0:
            raise ValueError(f"inner diameter must be > 0 mm, got {inner_diameter_mm}")
        text = format_number(inner_diameter_mm)
        await self._send(f"DIA{text}")
        self._diameter_mm = float(text)

    async def set_rate(
        self, rate_ml_per_h: float, direction: Direction = Direction.INFUSE
    ) -> float:
        """`DIR` (when it changes) then `RAT`; returns the rate sent, mL/h. Stopped: the unit is
        chosen afresh by the family's quantizer (keeping room for the syringe's maximum rate)
        and sent with the number, rounded down. Otherwise the unit in force is kept and only
        the number is sent, rounded down in that unit; a rate it misses by more than 0.5 %
        raises `UnsupportedError` (stop first)."""
        if not math.isfinite(rate_ml_per_h) or rate_ml_per_h <= 0:
            raise ValueError(f"rate must be > 0 mL/h, got {rate_ml_per_h}")
        if direction is not self._direction:
            await self._send("DIRINF" if direction is Direction.INFUSE else "DIRWDR")
            self._direction = direction
        if self._status is None:
            await self.read_status()
        if self._status == "S":
            try:
                setting = self.quantizer.rate_setting(rate_ml_per_h)
            except NotRepresentable as exc:
                raise UnsupportedError(str(exc)) from exc
            await self._send(f"RAT{setting.text}{setting.unit.value}")
            self._rate_unit = setting.unit
            return setting.rate_ml_per_h
        unit = self._rate_unit or await self._query_rate_unit()
        try:
            setting = encode_rate(rate_ml_per_h, unit)
        except ValueError:
            setting = RateSetting(unit, "", 0.0)
        if rate_ml_per_h - setting.rate_ml_per_h > rate_ml_per_h * RUNNING_RATE_TOLERANCE:
            raise UnsupportedError(
                f"{rate_ml_per_h} mL/h cannot be set in {unit.value} while the pump runs "
                "(units cannot change while running): stop first"
            )
        await self._send(f"RAT{setting.text}")
        return setting.rate_ml_per_h

    async def _query_rate_unit(self) -> RateUnit:
        self._rate_unit = parse_rate_unit((await self._send("RAT", query=True)).data)
        return self._rate_unit

    async def set_target_volume(self, volume_ml: float | None) -> float | None:
        """`VOL UL|ML` then `VOL value` (units per the syringe diameter), rounded down by the
        family's quantizer; None -> `VOL0` (continuous). Returns the volume sent, mL."""
        if volume_ml is None:
            await self._send("VOL0")
            return None
        if not math.isfinite(volume_ml) or volume_ml <= 0:
            raise ValueError(f"target volume must be > 0 mL (None = continuous), got {volume_ml}")
        if self._diameter_mm is None:
            self._diameter_mm = parse_diameter((await self._send("DIA", query=True)).data)
        try:
            setting = self.quantizer.volume_setting(volume_ml)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        await self._send(f"VOL{setting.unit}")
        await self._send(f"VOL{setting.text}")
        return setting.volume_ml

    async def start(self) -> None:
        """`RUN`: starts the program, or resumes it from pause (P)."""
        await self._send("RUN")

    async def pause(self) -> None:
        """One `STP` if the pump is moving (it then shows P); no-op when paused or stopped, so a
        repeated pause can never become the second STP that ends the program."""
        status = await self.read_status()
        if status.state in (PumpState.PAUSED, PumpState.STOPPED):
            return
        reply = await self._send("STP")
        if reply.status != "P":
            self.log.warning("pump.pause_unexpected_status", status=reply.status)

    async def stop(self) -> None:
        """`STP` until the status is S: one from paused or stopped, two from running."""
        for _ in range(3):
            reply = await self._send("STP", errors=False)
            if reply.status == "S":
                return
        raise PumpError(f"pump still in status {self._status!r} after 3 STP")

    async def read_status(self) -> PumpStatus:
        """Status query (no command); an alarm is a status here, not an exception."""
        reply = await self._send("", query=True, alarms=False)
        return status_for_reply(reply)

    async def read_delivered(self) -> DeliveredVolume:
        """`DIS` -> infused and withdrawn volume in mL."""
        return parse_dispensed((await self._send("DIS", query=True)).data)

    async def read_poll(self) -> tuple[PumpStatus, DeliveredVolume]:
        """One `DIS` exchange: its reply carries the status character as well as the volumes
        (an alarm reply carries no volumes: the status says alarm and the counters read 0,
        which the supervisor never reaches because it acts on the alarm first)."""
        reply = await self._send("DIS", query=True, alarms=False)
        status = status_for_reply(reply)
        if status.alarm is not None:
            return status, DeliveredVolume(infused_ml=0.0)
        return status, parse_dispensed(reply.data)

    async def clear_counters(self) -> None:
        await self._send("CLDINF")
        await self._send("CLDWDR")

    async def enable_link_watchdog(self, timeout_s: float) -> None:
        """`SAF n` (n = ceil(timeout_s), 1..255) sent as a safe packet; the reply and all further
        traffic are safe-framed. The pump stops with `A?T` after n s without a valid packet."""
        n = math.ceil(timeout_s) if math.isfinite(timeout_s) else 0
        if not 1 <= n <= 255:
            raise ValueError(f"NE link watchdog is 1..255 s, got {timeout_s}")
        reply = await self._send(f"SAF{n}", send_safe=True, framing="auto")
        self.safe_mode = reply.safe
        if not reply.safe:
            raise ProtocolError(f"pump answered SAF{n} in basic framing: safe mode not entered")
        self.link_watchdog_s = n

    async def disable_link_watchdog(self) -> None:
        """`SAF0` as a safe packet; the pump answers in basic framing from then on."""
        reply = await self._send("SAF0", send_safe=True, framing="auto")
        self.safe_mode = reply.safe
        if reply.safe:
            raise ProtocolError("pump answered SAF0 in safe framing: safe mode not left")
        self.link_watchdog_s = None
