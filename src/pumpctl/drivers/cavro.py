"""Tecan Cavro XCalibur / XLP 6000 and Hamilton PSD/4, PSD/6 syringe pumps with a valve.

One driver for the family, DT or OEM framing by model (`drivers.cavro_codec`), and the
dispense-and-refill bookkeeping of `drivers.cavro_cycles`. What the supervisor sees is one
pump with a counter and a target, like every other family:

- `configure_tubing(S)`: the syringe's stroke volume S mL (the program's `tubing.ml_per_rev`),
  and fine positioning `N1`, so a volume is S / `steps_per_stroke` exact; a pump that needs
  initializing (error 7 after power-up) gets `Z` (XC §3.4.2) at the head of its first string;
- `set_target_volume(v)` and `start()` run as many strings as the target needs, each one
  dispensing through the output port and refilling from the reservoir port; the driver sends
  the next string from a poll once `Q` reports the last one done;
- `read_delivered()` counts what went out of the output port (never the refills);
- `pause()` / `stop()`: `T` (terminate, §3.3.1) and the plunger's position books what the
  interrupted string delivered; `start()` resumes with a new string;
- a pump that lost power reports error 7: its counter is lost (0), as on every family;
- a string whose answer is lost is assumed executed (SR21) until the plunger-move counter
  `?16` says it never started; OEM resends the block with the repeat bit, which the pump
  acknowledges without executing it twice (§3.2.1 Scenarios 1 and 2).

Initialization homes the plunger, and the manual does not say through which port the syringe's
contents go (the emulation returns them to the reservoir): initialize with an empty syringe or
with the output line disconnected.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    CommandRejected,
    DeliveredVolume,
    Direction,
    ProtocolError,
    PumpDriver,
    PumpError,
    PumpIdentity,
    PumpState,
    PumpStatus,
    PumpTimeout,
    UnsupportedError,
)
from pumpctl.drivers.cavro_codec import (
    IMMEDIATE_ERRORS,
    CavroReply,
    alarm_reason,
    check_reply,
    dt_frame_length,
    encode_dt,
    encode_oem,
    oem_frame_length,
    parse_count,
    parse_dt,
    parse_oem,
)
from pumpctl.drivers.cavro_cycles import (
    CycleBooks,
    PumpString,
    ValvePorts,
    cycle_capabilities,
    init_command,
)
from pumpctl.drivers.transport import Transport
from pumpctl.families.cavro import MODELS, CavroModel, CavroQuantizer, Protocol, other_model
from pumpctl.families.quantize import NotRepresentable

__all__ = [
    "CavroDriver",
    "Psd4Driver",
    "Psd6Driver",
    "ValvePorts",
    "XCaliburDriver",
    "XCaliburOemDriver",
    "Xlp6000Driver",
    "Xlp6000OemDriver",
]

#: the stroke volume assumed before `configure_tubing` (a 1 mL syringe)
DEFAULT_STROKE_ML = 1.0
#: XC §3.5.3: `V` may change while the plunger moves only up to this
ON_THE_FLY_MAX_SPEED = 1024
#: a target this close below a whole increment is that increment (callers round to 1e-9 mL)
TARGET_SLACK_ML = 1e-9
#: OEM: resends of a block (repeat bit set) after a lost or garbled answer
OEM_RESENDS = 3


class CavroDriver(PumpDriver):
    """One Cavro-command-set pump at address switch 0..E (see the module)."""

    family: ClassVar[str]
    mechanics: ClassVar[CavroModel]
    protocol: ClassVar[Protocol]
    default_baudrate: ClassVar[int] = 9600

    def __init__(
        self, transport: Transport, *, address: int = 0, pump_id: str | None = None
    ) -> None:
        if not 0 <= address <= self.mechanics.last_address:
            raise ValueError(f"Cavro address switch must be 0..E (0..14), got {address}")
        super().__init__(transport, address=address, pump_id=pump_id)
        self.ports = ValvePorts()
        self.stroke_ml = DEFAULT_STROKE_ML
        self.books = CycleBooks(full_steps=self.mechanics.steps_per_stroke)
        self.firmware = ""
        self._speed: int | None = None
        self._started = False
        self._paused = False
        self._initialized = False
        self._needs_init = False
        self._sequence = 0

    # -- wire ----------------------------------------------------------------------------------

    async def _raw(self, command: str, *, query: bool) -> CavroReply:
        if self.protocol == "dt":
            frame = encode_dt(self.address, command)
            return await self._exchange(
                frame, dt_frame_length, parse_dt, idempotent=query, command=command
            )
        self._sequence = self._sequence % 7 + 1
        frame = encode_oem(self.address, self._sequence, command)
        last: PumpError | None = None
        for _ in range(1 + OEM_RESENDS):
            try:
                return await self._exchange(
                    frame, oem_frame_length, parse_oem, idempotent=False, command=command
                )
            except (PumpTimeout, ProtocolError) as exc:
                last = exc
                frame = encode_oem(self.address, self._sequence, command, repeat=True)
        assert last is not None
        raise last

    async def _command(self, command: str) -> CavroReply:
        """A command string; the pump's immediate refusals and alarms raise."""
        return check_reply(await self._raw(command, query=False), command)

    async def _report(self, command: str) -> str:
        return (await self._raw(command, query=True)).data

    async def _report_int(self, command: str) -> int:
        return parse_count(await self._report(command), command)

    # -- interface -----------------------------------------------------------------------------

    @property
    def quantizer(self) -> CavroQuantizer:
        return CavroQuantizer(self.mechanics, self.stroke_ml)

    @property
    def capabilities(self) -> Capabilities:
        return cycle_capabilities(self.family, self.quantizer)

    async def open(self) -> None:
        """Open the port and identify the pump (`&`); silence names the line settings."""
        await super().open()
        try:
            await self.identify()
        except PumpTimeout as exc:
            await self.transport.close()
            raise PumpTimeout(
                f"no Cavro-protocol ({self.protocol.upper()}) pump at address switch "
                f"{self.address} on {self.transport.name} (9600 8N1 unless set with U47): {exc}"
            ) from exc
        except BaseException:
            await self.transport.close()
            raise

    async def identify(self) -> PumpIdentity:
        """`&`: firmware part number and version (XC §3.5.8). A text that names another model
        of the family (and not this one) is refused: the pump on the line is not this model."""
        self.firmware = (await self._report("&")).strip()
        other = other_model(self.firmware, self.family)
        if other is not None:
            raise ProtocolError(f"the pump says {self.firmware!r}: a {other}, not a {self.family}")
        return PumpIdentity(
            model=MODELS[self.family][2].name, firmware=self.firmware, address=self.address
        )

    async def configure_syringe(self, inner_diameter_mm: float) -> None:
        raise UnsupportedError(
            f"{self.family}: give the syringe's stroke volume (tubing.ml_per_rev), not a bore"
        )

    async def configure_tubing(self, ml_per_rev: float) -> None:
        """The syringe's stroke volume, mL, and fine positioning (`N1`). A pump that must be
        initialized (error 7, 1, 9 or 10) is, at the head of its first string."""
        if not math.isfinite(ml_per_rev) or ml_per_rev <= 0:
            raise ValueError(f"syringe stroke volume must be > 0 mL, got {ml_per_rev}")
        self.stroke_ml = ml_per_rev
        status = await self._raw("Q", query=True)
        reply = await self._raw("N1R", query=False)  # its answer still carries error 7
        if reply.error in IMMEDIATE_ERRORS:
            raise CommandRejected(f"pump refused 'N1R': {reply.error_text}", "N1", "N1R")
        self._needs_init = status.error in (1, 7, 9, 10)
        self._initialized = not self._needs_init
        self.books = CycleBooks(full_steps=self.mechanics.steps_per_stroke)

    def set_valve_ports(self, ports: ValvePorts) -> None:
        """Which valve ports are the reservoir and the output (prime and dosing use them)."""
        self.ports = ports

    async def set_rate(
        self, rate_ml_per_h: float, direction: Direction = Direction.INFUSE
    ) -> float:
        """The cycle's average rate as an integer top speed `V`, rounded down; a dispense in
        flight changes speed at once where the pump allows it (`V` <= 1024 on the fly)."""
        if direction is not Direction.INFUSE:
            raise UnsupportedError("pumpctl dispenses through the output port only")
        try:
            setting = self.quantizer.rate_setting(rate_ml_per_h)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        self._speed = setting.speed
        running = self.books.running
        if running is not None and running.dispense_steps and setting.speed <= ON_THE_FLY_MAX_SPEED:
            await self._command(f"V{setting.speed}R")
        return setting.value_ml_per_h

    async def set_target_volume(self, volume_ml: float | None) -> float | None:
        """Increments to dispense in this leg (any number of syringes); None: until stopped."""
        if volume_ml is None:
            self.books.target_steps = None
            return None
        try:
            # the supervisor rounds a leg's target to 1e-9 mL: that much below a whole
            # increment is that increment
            setting = self.quantizer.volume_setting(volume_ml, slack_ml=TARGET_SLACK_ML)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        self.books.target_steps = setting.steps
        return setting.value_ml

    async def start(self) -> None:
        """Start (or resume) the leg: the first string goes out now if the pump is ready."""
        if self._speed is None:
            raise CommandRejected("no rate set", "rate", "start")
        self._started, self._paused = True, False
        await self._poll()

    async def pause(self) -> None:
        await self._terminate()
        self._paused = self._started

    async def stop(self) -> None:
        """`T`, then the interrupted string's share is booked; idempotent."""
        await self._terminate()
        self._started = self._paused = False

    async def _terminate(self) -> None:
        await self._raw("T", query=False)  # any state: errors in its answer are not a refusal
        if self.books.running is not None:
            self.books.running.terminated = True
            position, valve, q = await self._read()
            if not q.error:
                self.books.finish((position, valve == self.ports.output_report, q.ready))

    async def read_status(self) -> PumpStatus:
        return (await self._poll())[0]

    async def read_delivered(self) -> DeliveredVolume:
        return (await self._poll())[1]

    async def read_poll(self) -> tuple[PumpStatus, DeliveredVolume]:
        return await self._poll()

    async def clear_counters(self) -> None:
        self.books.clear()

    # -- the cycles ----------------------------------------------------------------------------

    async def _read(self) -> tuple[int, str, CavroReply]:
        """`?`, `?6`, `Q`, in that order (see `drivers.cavro_cycles`)."""
        position = await self._report_int("?")
        valve = (await self._report("?6")).strip()
        return position, valve, await self._raw("Q", query=True)

    def _ml(self, steps: int) -> float:
        return steps * self.quantizer.step_ml

    async def _poll(self) -> tuple[PumpStatus, DeliveredVolume]:
        position, valve, q = await self._read()
        if q.error == 7 and not self._initialized:
            # never initialized by this driver: idle, and its first string initializes it
            q = CavroReply(q.status & 0xF0, q.data)
        if q.error:
            return self._alarm(q), DeliveredVolume(infused_ml=self._ml(self.books.delivered_steps(
                (position, valve == self.ports.output_report, q.ready))))  # fmt: skip
        running = self.books.running
        if running is not None and running.unconfirmed:
            await self._confirm(running, q.ready)
        reading = (position, valve == self.ports.output_report, q.ready)
        if self.books.running is not None and q.ready:
            self.books.finish(reading)
        delivered = DeliveredVolume(infused_ml=self._ml(self.books.delivered_steps(reading)))
        if self._started and not self._paused and self.books.running is None and q.ready:
            await self._next(position, valve)
        if self._paused:
            return PumpStatus(state=PumpState.PAUSED, raw=chr(q.status)), delivered
        if self._started:
            refilling = self.books.refilling(q.ready, valve == self.ports.reservoir_report)
            status = PumpStatus(
                state=PumpState.RUNNING, direction=Direction.INFUSE, raw=chr(q.status),
                refilling=refilling,
            )  # fmt: skip
            return status, delivered
        return PumpStatus(state=PumpState.STOPPED, raw=chr(q.status)), delivered

    def _alarm(self, q: CavroReply) -> PumpStatus:
        reason = alarm_reason(q.error)
        self.books.abort(power_lost=reason is AlarmReason.RESET and self._initialized)
        self._started = False
        return PumpStatus(
            state=PumpState.ALARM, alarm=reason, raw=f"{chr(q.status)} {q.error_text}"
        )

    async def _next(self, position: int, valve: str) -> None:
        assert self._speed is not None  # `start()` needs a rate
        init = init_command(self.stroke_ml) if self._needs_init else ""
        string = self.books.plan_string(
            position,
            valve == self.ports.output_report,
            speed=self._speed,
            refill_speed=self.mechanics.refill_speed,
            ports=self.ports,
            init=init,
        )
        if string is None:
            self._started = False  # the leg's target is reached: stopped by itself
            return
        string.moves_before = await self._report_int("?16")
        self.books.running = string
        fill, m = string.fill_steps, string.refill_steps
        if fill or m:
            self.log.info(
                "pump.refill", fill_ml=self._ml(fill), refill_ml=self._ml(m),
                dispense_ml=self._ml(string.dispense_steps), initialize=bool(init),
            )  # fmt: skip
        if init:
            self._needs_init, self._initialized = False, True
        try:
            await self._command(string.text)
        except (PumpTimeout, ProtocolError) as exc:
            string.unconfirmed = True  # SR21: assume it runs; the next poll checks `?16`
            self.log.warning("pump.string_unconfirmed", command=string.text, error=str(exc))
        except PumpError:
            self.books.running = None
            raise

    async def _confirm(self, running: PumpString, ready: bool) -> None:
        """A string whose answer was lost: it ran if the plunger-move counter moved."""
        moved = await self._report_int("?16") != running.moves_before
        if moved or not ready:
            running.unconfirmed = False
        else:
            self.books.running = None  # it never started: it is sent again
            if running.initializes:
                self._needs_init, self._initialized = True, False


class XCaliburDriver(CavroDriver):
    family = "tecan-xcalibur"
    mechanics, protocol = MODELS[family][:2]


class XCaliburOemDriver(CavroDriver):
    family = "tecan-xcalibur-oem"
    mechanics, protocol = MODELS[family][:2]


class Xlp6000Driver(CavroDriver):
    family = "tecan-xlp6000"
    mechanics, protocol = MODELS[family][:2]


class Xlp6000OemDriver(CavroDriver):
    family = "tecan-xlp6000-oem"
    mechanics, protocol = MODELS[family][:2]


class Psd4Driver(CavroDriver):
    family = "hamilton-psd4"
    mechanics, protocol = MODELS[family][:2]


class Psd6Driver(CavroDriver):
    family = "hamilton-psd6"
    mechanics, protocol = MODELS[family][:2]
