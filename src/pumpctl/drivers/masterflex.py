"""Cole-Parmer Masterflex L/S computer-compatible drives (07523-80/-90, 07551-x0, 07575-x0).

A peristaltic drive counts motor revolutions, not millilitres: this driver converts mL and mL/h
through the tubing calibration (mL per revolution) and says how good that conversion is in
`Capabilities`. Pure functions build and parse frames (`masterflex_codec`, re-exported here) and
do the tubing arithmetic (`masterflex_tubing`); `MasterflexDriver` only sequences commands
through `PumpDriver._exchange`.

Wire format (drive manual, "Computer control", command and response table):
- link 4800 baud, 7 data bits, odd parity, 1 stop bit; drives are daisy-chained, pump numbers
  01-89;
- request: STX `P` nn letters [arguments] CR, e.g. STX `P01S+0130.0` CR; STX `P01` CR alone
  assigns/selects the number at startup; ENQ (05h) alone asks who is there;
- set/action commands answer ACK (06h) or NAK (15h); queries answer STX text CR: `S+0432.9`,
  `Cxxxxxxx.xx` (cumulative revolutions), `Exxxxx.xx` (revolutions to go, negative after an
  overshoot), `PnnIxxxxx` (status). A `Pnn` prefix is accepted on every query reply and checked
  against the pump number when present.
"""

from __future__ import annotations

import math
from functools import partial
from typing import ClassVar

from pumpctl.drivers.base import (
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
from pumpctl.drivers.masterflex_codec import (
    ENQ,
    MAX_PUMP,
    MIN_PUMP,
    DriveStatus,
    MFReply,
    encode_command,
    format_revolutions,
    format_speed,
    frame_length,
    ml_per_rev_from_calibration,
    parse_ack,
    parse_cumulative,
    parse_reply,
    parse_speed,
    parse_status,
    parse_to_go,
    parse_value,
)
from pumpctl.drivers.masterflex_tubing import (
    CALIBRATED_ACCURACY_PERCENT,
    DEFAULT_MAX_RPM,
    DEFAULT_MIN_RPM,
    NOMINAL_ACCURACY_PERCENT,
    CounterSplit,
    nominal_ml_per_rev,
    speed_for_rate,
    tubing_capabilities,
    tubing_quantizer,
)
from pumpctl.drivers.transport import Transport
from pumpctl.families.masterflex import NOMINAL_ML_PER_REV, REV_STEP, SPEC, MasterflexQuantizer
from pumpctl.families.quantize import NotRepresentable

__all__ = [
    "CALIBRATED_ACCURACY_PERCENT",
    "NOMINAL_ACCURACY_PERCENT",
    "NOMINAL_ML_PER_REV",
    "DriveStatus",
    "MFReply",
    "MasterflexDriver",
    "encode_command",
    "format_revolutions",
    "format_speed",
    "frame_length",
    "ml_per_rev_from_calibration",
    "parse_ack",
    "parse_cumulative",
    "parse_reply",
    "parse_speed",
    "parse_status",
    "parse_to_go",
    "parse_value",
]

# --------------------------------------------------------------------------- driver


class MasterflexDriver(PumpDriver):
    """One Masterflex L/S drive, pump number `address` (1..89), on a transport.

    State kept because the drive only knows revolutions: the calibration (`ml_per_rev`, and
    whether it was measured), the direction in force and the counter split per direction (one
    cumulative counter `C` counts both ways), the target in revolutions, and the revolutions
    still to go when paused (resume re-sends `V` with them, so it does not matter whether the
    drive's `G` restarts the preset or continues the remainder).
    """

    family = SPEC.model
    default_baudrate: ClassVar[int] = SPEC.line.baud
    default_address: ClassVar[int] = SPEC.addresses.default  # pump numbers run 01-89
    default_bytesize: ClassVar[int] = SPEC.line.bytesize
    default_parity: ClassVar[str] = SPEC.line.parity
    default_stopbits: ClassVar[float] = SPEC.line.stopbits

    def __init__(
        self,
        transport: Transport,
        *,
        address: int = 1,
        pump_id: str | None = None,
        min_rpm: float = DEFAULT_MIN_RPM,
        max_rpm: float = DEFAULT_MAX_RPM,
        infuse_clockwise: bool = True,
    ) -> None:
        if not MIN_PUMP <= address <= MAX_PUMP:
            raise ValueError(
                f"Masterflex pump number must be {MIN_PUMP}..{MAX_PUMP}, got {address}"
            )
        if not 0 < min_rpm < max_rpm:
            raise ValueError(f"need 0 < min_rpm < max_rpm, got {min_rpm}, {max_rpm}")
        super().__init__(transport, address=address, pump_id=pump_id)
        self.min_rpm = min_rpm
        self.max_rpm = max_rpm
        self.infuse_clockwise = infuse_clockwise
        self.ml_per_rev: float | None = None
        self.calibrated = False
        self.rate_ml_per_h_sent: float | None = None
        self._direction: Direction | None = None
        self._counter = CounterSplit()
        self._target_rev: float | None = None
        self._paused_to_go: float | None = None
        self._paused = False
        #: revolutions the last `V` preset and no `G`/`H`/`Z` has consumed since
        self._armed_rev: float | None = None
        self._calibration_rev: float | None = None

    # -- wire ----------------------------------------------------------------------------------

    async def _command(self, letters: str, *, allow_nak: bool = False) -> bool:
        """A set/action command; True on ACK, False on NAK when allowed (else `CommandRejected`)."""
        frame = encode_command(self.address, letters)
        parse = partial(parse_ack, address=self.address, command=letters)
        ok = await self._exchange(frame, frame_length, parse, idempotent=False, command=letters)
        if not ok and not allow_nak:
            raise CommandRejected(
                f"pump rejected {letters!r} with NAK", code="NAK", command=letters
            )
        return ok

    async def _query(self, letter: str) -> str:
        """A query; returns the reply's value after its letter (which must match)."""
        frame = encode_command(self.address, letter)
        parse = partial(parse_value, address=self.address, letter=letter)
        return await self._exchange(frame, frame_length, parse, idempotent=True, command=letter)

    async def _drive_status(self) -> DriveStatus:
        return parse_status(await self._query("I"))

    async def _cumulative_rev(self) -> float:
        return parse_cumulative(await self._query("C"))

    async def open(self) -> None:
        """ENQ (first contact), `STX Pnn CR` (assign/select the number), `I` when the ENQ reply
        did not name this pump (ENQ is unreliable after startup), then `R` (remote control)."""
        await super().open()
        try:
            found = await self._enquire()
            try:
                await self._command("", allow_nak=True)
            except (PumpTimeout, ProtocolError) as exc:
                self.log.warning("pump.assign_unanswered", error=str(exc))
            if not found:
                await self._drive_status()
            await self._command("R")
        except BaseException:
            await self.transport.close()
            raise
        self.log.info("pump.open", enq=found)

    async def _enquire(self) -> bool:
        try:
            reply: MFReply = await self._exchange(
                bytes([ENQ]), frame_length, parse_reply, idempotent=False, command="ENQ"
            )
        except (PumpTimeout, ProtocolError) as exc:
            self.log.warning("pump.enq_unreliable", error=str(exc))
            return False
        if reply.kind == "data" and reply.address == self.address:
            return True
        self.log.warning("pump.enq_inconclusive", reply=reply.text or reply.kind)
        return False

    async def close(self) -> None:
        """`L` (front panel back to the operator), best effort, then close the port."""
        try:
            await self._command("L", allow_nak=True)
        except PumpError as exc:
            self.log.warning("pump.local_failed", error=str(exc))
        await super().close()

    # -- calibration ---------------------------------------------------------------------------

    def _require_calibration(self) -> float:
        if self.ml_per_rev is None:
            raise UnsupportedError("no tubing calibration: call configure_tubing first")
        return self.ml_per_rev

    async def configure_tubing(self, ml_per_rev: float, *, calibrated: bool = True) -> None:
        """Set mL per revolution (no wire traffic: the drive counts revolutions only). A plan's
        `ContainerSpec.ml_per_rev` is the operator's measured value: `calibrated=True`."""
        if not math.isfinite(ml_per_rev) or ml_per_rev <= 0:
            raise ValueError(f"mL per revolution must be > 0, got {ml_per_rev}")
        self.ml_per_rev = ml_per_rev
        self.calibrated = calibrated
        self.log.info("pump.tubing", ml_per_rev=ml_per_rev, calibrated=calibrated)

    async def configure_tubing_size(self, size: int) -> None:
        """The nominal mL/rev of an L/S tubing size (uncalibrated: `NOMINAL_ACCURACY_PERCENT`)."""
        await self.configure_tubing(nominal_ml_per_rev(size), calibrated=False)

    async def calibrate(self, *, revolutions: float, measured_ml: float) -> float:
        """Store mL/rev measured over `revolutions` (e.g. the volume weighed after a
        `start_calibration_run`); returns it. Logs the deviation from the previous value."""
        ml_per_rev = ml_per_rev_from_calibration(revolutions, measured_ml)
        previous = self.ml_per_rev
        await self.configure_tubing(ml_per_rev)
        if previous is not None:
            self.log.info("pump.calibrated", deviation_percent=(ml_per_rev / previous - 1) * 100)
        return ml_per_rev

    async def start_calibration_run(self, revolutions: float, rpm: float) -> None:
        """Step 1 of two: zero the counters (`Z0`), run `revolutions` at `rpm` (infuse
        direction) into a vessel to be weighed; then `finish_calibration(measured_ml)`."""
        if not self.min_rpm <= rpm <= self.max_rpm:
            raise UnsupportedError(f"{rpm} rpm outside {self.min_rpm}..{self.max_rpm} rpm")
        await self.clear_counters()
        await self._command(f"S{format_speed(rpm if self.infuse_clockwise else -rpm)}")
        self._direction = Direction.INFUSE
        await self._command(f"V{format_revolutions(revolutions)}")
        await self._command("G")
        self._armed_rev = None
        self._calibration_rev = revolutions

    async def finish_calibration(self, measured_ml: float) -> float:
        """Step 2: the revolutions the drive counted (`C`, not the ones asked for) -> mL/rev."""
        if self._calibration_rev is None:
            raise PumpError("no calibration run started")
        if (await self._drive_status()).running:
            raise PumpError("calibration run still running: wait for it to finish")
        counted = await self._cumulative_rev()
        self._calibration_rev = None
        return await self.calibrate(revolutions=counted, measured_ml=measured_ml)

    # -- interface -----------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """This drive's rpm range through its calibration (`tubing_capabilities`)."""
        return tubing_capabilities(
            self.family, self.ml_per_rev, self.calibrated, self.min_rpm, self.max_rpm
        )

    @property
    def quantizer(self) -> MasterflexQuantizer:
        """The family's rounding for the calibration in force (`tubing_quantizer`)."""
        return tubing_quantizer(self.ml_per_rev)

    async def identify(self) -> PumpIdentity:
        """`I` (the protocol has no model or firmware query): proves the drive answers."""
        await self._drive_status()
        return PumpIdentity(model="Masterflex L/S", address=self.address)

    async def configure_syringe(self, inner_diameter_mm: float) -> None:
        raise UnsupportedError("a peristaltic drive has no syringe: use configure_tubing")

    async def set_rate(
        self, rate_ml_per_h: float, direction: Direction = Direction.INFUSE
    ) -> float:
        """`S±rpm` (rpm = rate / 60 / mL per rev, rounded down to 0.1 rpm; + = clockwise =
        infuse by default); allowed while running. A direction change first banks the
        revolutions counted so far (`C`) to the old direction. Returns the rate sent, mL/h."""
        if not math.isfinite(rate_ml_per_h) or rate_ml_per_h <= 0:
            raise ValueError(f"rate must be > 0 mL/h, got {rate_ml_per_h}")
        ml_per_rev = self._require_calibration()
        speed = speed_for_rate(rate_ml_per_h, ml_per_rev, self.min_rpm, self.max_rpm)
        if self._direction is not None and direction is not self._direction:
            self._counter.bank(self._direction, await self._cumulative_rev())
        clockwise = (direction is Direction.INFUSE) == self.infuse_clockwise
        text = f"{'+' if clockwise else '-'}{speed.rpm_text}"
        await self._command(f"S{text}")
        self._direction = direction
        self.rate_ml_per_h_sent = speed.rate_ml_per_h
        self.log.info("pump.rate", rpm=text, rate_ml_per_h=self.rate_ml_per_h_sent)
        return speed.rate_ml_per_h

    async def set_target_volume(self, volume_ml: float | None) -> float | None:
        """`V` revolutions (volume / mL per rev, rounded down to 0.01 rev); None = run
        continuously (`G0` at start, nothing sent now). Returns the volume sent, mL."""
        if volume_ml is None:
            self._target_rev = None
            return None
        if not math.isfinite(volume_ml) or volume_ml <= 0:
            raise ValueError(f"target volume must be > 0 mL (None = continuous), got {volume_ml}")
        self._require_calibration()
        try:
            setting = self.quantizer.revolutions(volume_ml)
        except NotRepresentable as exc:
            raise UnsupportedError(str(exc)) from exc
        await self._command(f"V{setting.text}")
        self._target_rev = self._armed_rev = setting.revolutions
        self._paused = False
        return setting.volume_ml

    async def start(self) -> None:
        """Target: `G`, after `V` unless that exact preset is still armed (a resume re-sends what
        was left at pause, a restart after `stop()` the whole target). Continuous: `G0`;
        drives answer it with NAK although the motor runs, so a NAK is checked against `I`."""
        if self._target_rev is None:
            self._armed_rev = None
            if not await self._command("G0", allow_nak=True):
                if not (await self._drive_status()).running:
                    raise CommandRejected("pump rejected G0 with NAK", code="NAK", command="G0")
                self.log.info("pump.g0_nak_but_running")
        else:
            revolutions = self._paused_to_go if self._paused else self._target_rev
            if revolutions is not None and revolutions >= REV_STEP:
                text = format_revolutions(revolutions)
                if float(text) != self._armed_rev:
                    await self._command(f"V{text}")
                self._armed_rev = None
                await self._command("G")
        self._paused = False
        self._paused_to_go = None

    async def pause(self) -> None:
        """`H` if the motor runs, keeping what is left to go (`E`) for `start()`; no-op when
        stopped. `H` alone leaves revolutions-to-go on the drive; `stop()` zeroes them."""
        if not (await self._drive_status()).running:
            return
        await self._command("H")
        self._paused = True
        self._armed_rev = None
        if self._target_rev is not None:
            self._paused_to_go = max(0.0, parse_to_go(await self._query("E")))

    async def stop(self) -> None:
        """`H` then `Z` (zero revolutions to go): the program ends. Idempotent; a NAK is only an
        error if `I` then shows the motor still running."""
        halted = await self._command("H", allow_nak=True)
        zeroed = await self._command("Z", allow_nak=True)
        self._paused = False
        self._armed_rev = None
        self._paused_to_go = None
        if not (halted and zeroed) and (await self._drive_status()).running:
            raise PumpError("pump NAKed H/Z and still runs")

    async def read_status(self) -> PumpStatus:
        """`I`: running (with the direction in force), paused (halted by `pause()`), stopped; a
        drive in local mode is `OTHER` (its front panel, not this controller, is in charge)."""
        status = await self._drive_status()
        raw = f"I{status.raw}"
        if not status.remote:
            return PumpStatus(state=PumpState.OTHER, raw=raw)
        if status.running:
            return PumpStatus(state=PumpState.RUNNING, direction=self._direction, raw=raw)
        state = PumpState.PAUSED if self._paused else PumpState.STOPPED
        return PumpStatus(state=state, raw=raw)

    async def read_delivered(self) -> DeliveredVolume:
        """`C` cumulative revolutions x mL per rev, split by the direction they ran in."""
        ml_per_rev = self._require_calibration()
        counted = await self._cumulative_rev()
        return self._counter.delivered(counted, self._direction or Direction.INFUSE, ml_per_rev)

    async def clear_counters(self) -> None:
        """`Z0`: zero the cumulative revolutions."""
        await self._command("Z0")
        self._counter = CounterSplit()
