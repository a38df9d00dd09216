"""Harvard Apparatus 11 Elite / PHD Ultra / Pump 33 DDS "text" protocol.

Pure functions build and parse frames (`harvard_elite_codec`, re-exported here);
`HarvardEliteDriver` only sequences commands through the Harvard base
(`harvard_common.HarvardDriver._send`, shared with the other family).

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
from typing import Any, ClassVar

from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    DeliveredVolume,
    Direction,
    PumpAlarm,
    PumpIdentity,
    PumpStatus,
    UnsupportedError,
)
from pumpctl.drivers.harvard_common import HarvardDriver
from pumpctl.drivers.harvard_elite_codec import (
    ERRORS,
    EliteReply,
    elite_frame_length,
    encode_command,
    format_diameter,
    format_rate,
    format_volume,
    parse_rate,
    parse_rate_limits,
    parse_reply,
    parse_version,
    parse_volume,
    status_for_prompt,
)
from pumpctl.drivers.transport import Transport
from pumpctl.families.harvard_elite import SPEC, EliteQuantizer
from pumpctl.families.quantize import NotRepresentable

__all__ = [
    "ERRORS",
    "EliteReply",
    "HarvardEliteDriver",
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
        await self._send(f"diameter {format_diameter(inner_diameter_mm)}")
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
