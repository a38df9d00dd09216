"""Chemyx Fusion 100 / 200 / 4000 / 6000 (and -X) RS-232 text commands.

Module-level pure functions build and parse frames; `ChemyxFusionDriver` only sequences them.

Wire format (Chemyx knowledge base "RS232 Communication" and "Serial (RS232) Commands"; the
reply shape is what existing host software and a terminal transcript of a real pump show, not
the KB, which gives none):
- request: lower-case words, `[channel ]command[ args]` CR; the channel prefix (`1 `, `2 `) only
  on a dual-channel pump;
- reply: the echo of the command, CR, then body lines each ending CR LF, then the prompt `>`;
  a refused command's body is `Invalid Command!`;
- a `set` echoes the value the pump took (`rate = 7.000000`): a different number means the pump
  clamped it to its limits;
- `pump status`: 0 stopped, 1 running, 2 paused, 3 start delay, 4 stalled.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    CommandRejected,
    DeliveredVolume,
    Direction,
    ProtocolError,
    PumpDriver,
    PumpIdentity,
    PumpState,
    PumpStatus,
    PumpTimeout,
    UnsupportedError,
)
from pumpctl.drivers.transport import Transport
from pumpctl.families.chemyx import DIAMETER_DECIMALS, SPEC, ChemyxQuantizer
from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import SyringeMotor

__all__ = [
    "ChemyxFusionDriver",
    "ChemyxReply",
    "chemyx_frame_length",
    "encode_command",
    "parse_assignment",
    "parse_limits",
    "parse_reply",
    "status_for_code",
]

CR = 0x0D
PROMPT = 0x3E  # ">"
INVALID = "Invalid Command!"
#: `set units 1`: rates in mL/hr, volumes in mL (KB: 0 mL/min, 1 mL/hr, 2 uL/min, 3 uL/hr)
UNITS_ML_PER_H = 1
#: a reply longer than this without its prompt is garbage, not a slow reply
_MAX_REPLY = 512
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
assert isinstance(SPEC.motor, SyringeMotor)
_DIAMETER_MM = SPEC.motor.diameter_mm
_STATES = {
    0: PumpState.STOPPED,
    1: PumpState.RUNNING,
    2: PumpState.PAUSED,
    3: PumpState.OTHER,  # waiting out a start delay (`set delay`), which pumpctl never sets
}


def encode_command(address: int, command: str) -> bytes:
    """`command` CR; a channel prefix `N ` for address 1 or 2 (dual-channel pumps)."""
    SPEC.addresses.check(address)
    if not command.isascii() or any(not " " <= ch <= "~" for ch in command):
        raise ValueError(f"Chemyx commands are printable ASCII, got {command!r}")
    prefix = f"{address} " if address else ""
    return (prefix + command).encode("ascii") + bytes([CR])


def chemyx_frame_length(buf: bytes) -> int | None:
    """Framer: the echo ends at its CR; the reply at the first `>` after it."""
    echo_end = buf.find(b"\r")
    if echo_end >= 0:
        prompt = buf.find(b">", echo_end)
        if 0 <= prompt < _MAX_REPLY:
            return prompt + 1
    return _MAX_REPLY + 1 if len(buf) > _MAX_REPLY else None


@dataclass(frozen=True)
class ChemyxReply:
    echo: str
    lines: tuple[str, ...]

    @property
    def body(self) -> str:
        return self.lines[0] if self.lines else ""


def parse_reply(raw: bytes, *, command: str) -> ChemyxReply:
    """Echo CR, body lines, `>`; the echo must be the command (SR20: anything else is not
    acted on). `Invalid Command!` raises `CommandRejected`."""
    if not all(0x20 <= b <= 0x7E or b in (CR, 0x0A) for b in raw):
        raise ProtocolError("reply holds non-printable bytes", raw)
    text = raw.decode("ascii")
    echo, sep, rest = text.partition("\r")
    if not sep or not rest.endswith(">"):
        raise ProtocolError("reply is not echo CR body '>'", raw)
    if echo.strip() != command.strip():
        raise ProtocolError(f"echo {echo!r} is not the command {command!r}", raw)
    lines = tuple(s for s in (part.strip("\r\n ") for part in rest[:-1].split("\n")) if s)
    if INVALID in lines:
        raise CommandRejected(f"pump refused {command!r}: {INVALID}", code=INVALID, command=command)
    return ChemyxReply(echo, lines)


def parse_assignment(body: str, name: str) -> list[float]:
    """`rate = 7.000000` (or `rate = 1.0,2.0`) -> [7.0]; ProtocolError otherwise."""
    key, sep, value = body.partition("=")
    if not sep or key.strip() != name:
        raise ProtocolError(f"expected '{name} = ...', got {body!r}")
    numbers = [v.strip() for v in value.split(",")]
    if not numbers or not all(_NUMBER.fullmatch(v) for v in numbers):
        raise ProtocolError(f"unexpected {name} value {body!r}")
    values = [float(v) for v in numbers]
    if not all(math.isfinite(v) for v in values):
        raise ProtocolError(f"{name} out of range in {body!r}")
    return values


def parse_limits(body: str) -> tuple[float, float, float, float]:
    """`read limit parameter`: `max_rate min_rate max_volume min_volume` (current units)."""
    parts = body.split()
    if len(parts) != 4 or not all(_NUMBER.fullmatch(p) for p in parts):
        raise ProtocolError(f"unexpected limits {body!r}")
    max_rate, min_rate, max_volume, min_volume = (float(p) for p in parts)
    if not 0 <= min_rate <= max_rate or not 0 <= min_volume <= max_volume or max_rate <= 0:
        raise ProtocolError(f"limits out of order {body!r}")
    return max_rate, min_rate, max_volume, min_volume


def status_for_code(code: str, direction: Direction) -> PumpStatus:
    """`pump status` digit -> status; 4 (stalled) is an alarm."""
    if len(code) != 1 or code not in "01234":
        raise ProtocolError(f"unexpected pump status {code!r}")
    value = int(code)
    if value == 4:
        return PumpStatus(state=PumpState.ALARM, alarm=AlarmReason.STALL, raw=code)
    state = _STATES[value]
    return PumpStatus(
        state=state, direction=direction if state is PumpState.RUNNING else None, raw=code
    )


class ChemyxFusionDriver(PumpDriver):
    """One Fusion pump (or one channel of a dual-channel pump, address 1 or 2).

    Semantics the supervisor relies on:
    - The pump's `dispensed volume` counts one run: it restarts at 0 on a `start` from stopped
      and goes on after a `start` that resumes a `pause` (emulation choice, not in the KB).
      `clear_counters` therefore sends `stop` (ends any paused run) and reads 0 until the
      next `start`.
    - `set_target_volume` is `set volume` (negative to withdraw): the pump stops by itself
      there. A continuous run (None) is the configured syringe's capacity.
    - A `set` whose echo differs from the value sent was clamped by the pump: `CommandRejected`.
    - Pause is native (`pause`, resumed by `start`); `stop` ends the run.
    """

    family = SPEC.model
    default_baudrate: ClassVar[int] = SPEC.line.baud
    reply_timeout_s = 1.0

    def __init__(
        self, transport: Transport, *, address: int = 0, pump_id: str | None = None
    ) -> None:
        SPEC.addresses.check(address)
        super().__init__(transport, address=address, pump_id=pump_id)
        self.limits: tuple[float, float, float, float] | None = None
        self.syringe_volume_ml: float | None = None
        self._units_set = False
        self._direction = Direction.INFUSE
        self._cleared = False

    # -- wire ----------------------------------------------------------------------------------

    async def _send(self, command: str, *, query: bool = False) -> ChemyxReply:
        def parse(raw: bytes) -> ChemyxReply:
            return parse_reply(raw, command=command)

        return await self._exchange(
            encode_command(self.address, command),
            chemyx_frame_length,
            parse,
            idempotent=query,
            command=command,
        )

    async def _set(self, name: str, text: str, value: float, *, command: str = "") -> None:
        """`set NAME TEXT`; the echoed value must be the one sent (else it was clamped)."""
        reply = await self._send(command or f"set {name} {text}")
        echoed = parse_assignment(reply.body, name)[0]
        if not math.isclose(echoed, value, rel_tol=1e-9, abs_tol=1e-9):
            raise CommandRejected(
                f"pump took {name} {echoed:g}, not {value:g} (outside its limits)",
                code="clamped",
                command=f"set {name} {text}",
            )

    async def _ensure_units(self) -> None:
        if not self._units_set:
            await self._set("units", str(UNITS_ML_PER_H), UNITS_ML_PER_H)
            self._units_set = True

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the port and ask `pump status` (what Chemyx's own examples send first)."""
        await super().open()
        try:
            await self.read_status()
        except ProtocolError:
            await self.transport.close()
            raise  # something answered, not (yet) as a Fusion: a probe asks again
        except PumpTimeout as exc:
            await self.transport.close()
            raise PumpTimeout(
                f"no valid reply from a Chemyx pump on {self.transport.name} (9600 or 38400 "
                f"8N1, no flow control): check the pump's baud rate ({exc})"
            ) from exc

    # -- interface -----------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        if self.limits is not None:
            high, low = self.limits[0], self.limits[1]
        else:
            low, high = SPEC.rate_range_ml_per_h()
        return Capabilities(
            family=self.family,
            can_withdraw=True,
            min_rate_ml_per_h=low,
            max_rate_ml_per_h=high,
            volume_resolution_ml=1e-4,  # `dispensed volume` prints 4 decimals of mL
            rate_resolution_ml_per_h=SPEC.rate_step_ml_per_h,
            accuracy_percent=SPEC.accuracy_percent,
            sets_syringe_volume=True,
        )

    @property
    def quantizer(self) -> ChemyxQuantizer:
        return ChemyxQuantizer()

    async def identify(self) -> PumpIdentity:
        """The KB names no version query: `pump status` proves a Fusion answers."""
        await self._send("pump status", query=True)
        return PumpIdentity(model="Chemyx Fusion", address=self.address)

    async def configure_syringe(self, inner_diameter_mm: float) -> None:
        """`set units 1`, `set diameter d` (3 decimals, to the nearest: not a dose), then
        `read limit parameter` for this syringe's rate range."""
        low, high = _DIAMETER_MM
        if not math.isfinite(inner_diameter_mm) or not low <= inner_diameter_mm <= high:
            raise ValueError(f"inner diameter must be {low}..{high} mm, got {inner_diameter_mm}")
        await self._ensure_units()
        value = round(inner_diameter_mm, DIAMETER_DECIMALS)
        await self._set("diameter", f"{value:.{DIAMETER_DECIMALS}f}", value)
        reply = await self._send("read limit parameter", query=True)
        self.limits = parse_limits(reply.body)

    async def configure_syringe_volume(self, capacity_ml: float) -> None:
        """The pump does not know the syringe's size; kept for a continuous run's volume."""
        if not math.isfinite(capacity_ml) or capacity_ml <= 0:
            raise ValueError(f"syringe volume must be > 0 mL, got {capacity_ml}")
        self.syringe_volume_ml = capacity_ml

    async def set_rate(
        self, rate_ml_per_h: float, direction: Direction = Direction.INFUSE
    ) -> float:
        """`set rate r` in mL/hr, rounded down; the direction is the sign of the next volume."""
        if not math.isfinite(rate_ml_per_h) or rate_ml_per_h <= 0:
            raise ValueError(f"rate must be > 0 mL/h, got {rate_ml_per_h}")
        try:
            setting = self.quantizer.rate_setting(rate_ml_per_h)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        await self._ensure_units()
        await self._set("rate", setting.text, setting.value)
        self._direction = direction
        return setting.value

    async def set_target_volume(self, volume_ml: float | None) -> float | None:
        """`set volume v` (mL, negative to withdraw), rounded down. None: the syringe's
        capacity (the pump has no open-ended run). Returns the volume sent, None for None."""
        if volume_ml is None:
            if self.syringe_volume_ml is None:
                raise UnsupportedError("a Fusion needs a volume: configure the syringe volume")
            await self._send_volume(self.syringe_volume_ml)
            return None
        if not math.isfinite(volume_ml) or volume_ml <= 0:
            raise ValueError(f"target volume must be > 0 mL (None = continuous), got {volume_ml}")
        return await self._send_volume(volume_ml)

    async def _send_volume(self, volume_ml: float) -> float:
        try:
            setting = self.quantizer.volume_setting(volume_ml)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        await self._ensure_units()
        sign = "-" if self._direction is Direction.WITHDRAW else ""
        value = -setting.value if sign else setting.value
        await self._set("volume", sign + setting.text, value)
        return setting.value

    async def start(self) -> None:
        """`start` (basic mode): a new run from stopped, the same run after `pause`."""
        await self._send("start")
        self._cleared = False

    async def pause(self) -> None:
        """`pause` while running (resumable with `start`); a no-op otherwise."""
        if (await self.read_status()).state is PumpState.RUNNING:
            await self._send("pause")

    async def stop(self) -> None:
        """`stop` (idempotent: the pump answers it in any state)."""
        await self._send("stop")

    async def read_status(self) -> PumpStatus:
        reply = await self._send("pump status", query=True)
        return status_for_code(reply.body, self._direction)

    async def read_delivered(self) -> DeliveredVolume:
        """`dispensed volume` (mL with `set units 1`), 0 between `clear_counters` and `start`."""
        if self._cleared:
            return DeliveredVolume(infused_ml=0.0)
        reply = await self._send("dispensed volume", query=True)
        ml = abs(parse_assignment(reply.body, "dispensed volume")[0])
        if self._direction is Direction.WITHDRAW:
            return DeliveredVolume(infused_ml=0.0, withdrawn_ml=ml)
        return DeliveredVolume(infused_ml=ml)

    async def clear_counters(self) -> None:
        """`stop` ends any paused run, so the next `start` counts from 0 (see the class)."""
        await self._send("stop")
        self._cleared = True
