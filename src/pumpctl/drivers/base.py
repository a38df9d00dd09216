"""The one async pump interface, its data types and its error hierarchy.

Drivers speak one manufacturer's protocol; the supervisor speaks only this interface. All methods
are in pump units (mL, mL/h, mm, s). A driver never decides dosing; the supervisor never formats
bytes. All wire traffic goes through `PumpDriver._exchange`, which owns the reply timeout, retries
of idempotent queries, the audit log of every exchange, and mapping transport failures to typed
errors, so each family only writes pure frame builders and parsers.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from pumpctl.families.quantize import FixedStepQuantizer, Quantizer
from pumpctl.log import debug_enabled, get_logger

if TYPE_CHECKING:
    from pumpctl.drivers.transport import Transport

__all__ = [
    "AlarmReason",
    "Capabilities",
    "CommandRejected",
    "DeliveredVolume",
    "Direction",
    "FrameLength",
    "ProtocolError",
    "PumpAlarm",
    "PumpConnectionError",
    "PumpDriver",
    "PumpError",
    "PumpIdentity",
    "PumpState",
    "PumpStatus",
    "PumpTimeout",
    "UnsupportedError",
]


# --------------------------------------------------------------------------- errors


class PumpError(Exception):
    """Root of every error a driver or transport raises."""


class PumpConnectionError(PumpError):
    """The port could not be opened, or broke while in use."""


class PumpTimeout(PumpError, TimeoutError):
    """No complete reply within the timeout (silence is a fault, SR17)."""


class ProtocolError(PumpError):
    """A reply that cannot be parsed; never acted on (SR20). Keeps the raw bytes."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(f"{message} (raw={raw!r})" if raw else message)
        self.raw = raw


class CommandRejected(PumpError):
    """The pump understood the frame and refused the command (e.g. NE `?OOR`)."""

    def __init__(self, message: str, code: str, command: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.command = command


class AlarmReason(StrEnum):
    STALL = "stall"  # occlusion / motor stall
    EMPTY = "empty"  # syringe or reservoir empty / end of travel
    RESET = "reset"  # power loss or reset: counters and program lost (SR28)
    LINK_TIMEOUT = "link_timeout"  # pump's own watchdog fired (NE safe mode A?T)
    PROGRAM_ERROR = "program_error"
    OUT_OF_RANGE = "out_of_range"
    OTHER = "other"


class PumpAlarm(PumpError):
    """The pump reports an alarm; the command that got this reply was not executed."""

    def __init__(self, reason: AlarmReason, message: str = "") -> None:
        super().__init__(message or f"pump alarm: {reason.value}")
        self.reason = reason


class UnsupportedError(PumpError):
    """This model cannot do that (see `Capabilities`)."""


# --------------------------------------------------------------------------- data


class Direction(StrEnum):
    INFUSE = "infuse"
    WITHDRAW = "withdraw"


class PumpState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"  # moving in `direction`
    PAUSED = "paused"  # stopped mid-program, resumable (NE first STP)
    ALARM = "alarm"
    OTHER = "other"  # a vendor state pumpctl does not drive (purge, trigger wait, ...)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PumpStatus(_Frozen):
    state: PumpState
    direction: Direction | None = None
    alarm: AlarmReason | None = None
    raw: str = Field(default="", description="vendor status text, for the audit log")
    refilling: bool = Field(
        default=False,
        description="a syringe pump with a valve is drawing from its reservoir port: it runs "
        "but delivers nothing until the refill ends (Cavro dispense-and-refill cycles)",
    )

    @property
    def running(self) -> bool:
        return self.state is PumpState.RUNNING


class DeliveredVolume(_Frozen):
    """The pump's own resettable counters since the last `clear_counters`."""

    infused_ml: float
    withdrawn_ml: float = 0.0

    @property
    def net_ml(self) -> float:
        return self.infused_ml - self.withdrawn_ml


class PumpIdentity(_Frozen):
    model: str
    firmware: str = ""
    address: int = 0


class Capabilities(_Frozen):
    """What a model can do, so the supervisor can plan without trying and failing.

    Only what differs between pumps and is read before acting: every driver sets rates and
    targets, starts, pauses and stops (those are abstract), and what container a family takes
    is its spec's (`pumpctl.families`)."""

    family: str
    can_withdraw: bool
    min_rate_ml_per_h: float = Field(ge=0)
    max_rate_ml_per_h: float = Field(gt=0)
    volume_resolution_ml: float = Field(gt=0, description="smallest volume step the pump counts")
    rate_resolution_ml_per_h: float = Field(gt=0)
    accuracy_percent: float = Field(gt=0, description="stated volumetric accuracy, ± %")
    #: `enable_link_watchdog` works: the pump stops by itself when the controller goes silent
    has_link_watchdog: bool = False
    #: `configure_syringe_volume` works and the driver needs it: the syringe's capacity (the
    #: Harvard Elite refuses targets above its `svolume`), so the supervisor sets it
    sets_syringe_volume: bool = False


# --------------------------------------------------------------------------- driver

R = TypeVar("R")

FrameLength = Callable[[bytes], int | None]
"""Given the bytes received so far, the length of the first complete reply, or None if more are
needed. A framer that sees garbage returns a length covering it, and the parser raises."""


class PumpDriver(ABC):
    """Async interface to one pump at one address on a transport.

    Drivers are async context managers: `close()` closes the port, `stop()` stops the motor.
    """

    family: ClassVar[str]
    #: the address a pump of this family answers to out of the box
    default_address: ClassVar[int] = 0
    #: factory line settings, for a driver without a family spec (a spec's `line` wins)
    default_baudrate: ClassVar[int] = 19200
    default_bytesize: ClassVar[int] = 8
    default_parity: ClassVar[str] = "N"
    default_stopbits: ClassVar[float] = 1
    #: reply timeout for one exchange, seconds of wire time
    reply_timeout_s: float = 1.0
    #: extra attempts for idempotent queries after a timeout or garbled reply
    query_retries: int = 2
    #: an alarm the pump reported when the link was opened, acknowledged by that reply
    #: (typically the power-up reset, SR28); None when it reported none or the family cannot
    #: tell. Resume reads it: a reset pump has lost its counters.
    alarm_on_open: AlarmReason | None = None

    _ids = itertools.count()

    def __init__(
        self,
        transport: Transport,
        *,
        address: int = 0,
        pump_id: str | None = None,
    ) -> None:
        self.transport = transport
        self.address = address
        self.pump_id = pump_id or f"{self.family}-{address}"
        self.log = get_logger("pumpctl.driver", pump_id=self.pump_id, port=transport.name)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        await self.transport.open()

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the interface -----------------------------------------------------------------------

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def quantizer(self) -> Quantizer:
        """What this pump is actually sent for the configured container: the family's
        quantizer (`pumpctl.families`), which `set_rate` and `set_target_volume` floor with.
        This default, for drivers without one, is fixed steps of the capabilities'
        resolutions."""
        caps = self.capabilities
        return FixedStepQuantizer(caps.volume_resolution_ml, caps.rate_resolution_ml_per_h)

    @abstractmethod
    async def identify(self) -> PumpIdentity: ...

    @abstractmethod
    async def configure_syringe(self, inner_diameter_mm: float) -> None:
        """Set the syringe inner diameter; volume units follow where the pump ties them."""

    async def configure_tubing(self, ml_per_rev: float) -> None:
        """Set the tubing calibration (peristaltic pumps only)."""
        raise UnsupportedError(f"{self.family} has no tubing calibration")

    async def configure_syringe_volume(self, capacity_ml: float) -> None:
        """Tell the pump the syringe's capacity, mL (where `capabilities.sets_syringe_volume`)."""
        raise UnsupportedError(f"{self.family} does not take a syringe volume")

    @abstractmethod
    async def set_rate(
        self, rate_ml_per_h: float, direction: Direction = Direction.INFUSE
    ) -> float:
        """Set the pumping rate; allowed while running (titration). Returns the rate actually
        sent, mL/h: the request rounded DOWN by `quantizer` (exactly the request when the
        quantizer leaves it unchanged, never above it)."""

    @abstractmethod
    async def set_target_volume(self, volume_ml: float | None) -> float | None:
        """Volume after which the pump stops by itself; None = run until stopped. Returns the
        target actually sent, mL (rounded DOWN by `quantizer`, never above the request), or
        None for a continuous run."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def pause(self) -> None:
        """Stop the motor keeping the program resumable (start() resumes)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the motor and end the program (idempotent: safe to send repeatedly)."""

    @abstractmethod
    async def read_status(self) -> PumpStatus: ...

    @abstractmethod
    async def read_delivered(self) -> DeliveredVolume: ...

    @abstractmethod
    async def clear_counters(self) -> None: ...

    async def read_poll(self) -> tuple[PumpStatus, DeliveredVolume]:
        """Status and counters for one supervisor poll, in as few exchanges as the protocol
        allows (families whose volume reply also carries the status override this)."""
        return await self.read_status(), await self.read_delivered()

    async def enable_link_watchdog(self, timeout_s: float) -> None:
        """Make the pump stop by itself when the controller goes silent (SR19)."""
        raise UnsupportedError(f"{self.family} has no link watchdog")

    async def disable_link_watchdog(self) -> None:
        raise UnsupportedError(f"{self.family} has no link watchdog")

    # -- the one path to the wire ------------------------------------------------------------

    async def _exchange(
        self,
        frame: bytes,
        frame_length: FrameLength,
        parse: Callable[[bytes], R],
        *,
        idempotent: bool,
        command: str = "",
        timeout_s: float | None = None,
    ) -> R:
        """Send `frame`, return `parse(reply)`. Logs both; retries only idempotent queries.

        A garbled reply (`parse` raises `ProtocolError`) is never acted on (SR20): a query is
        retried, a command is not. A command whose reply is lost is not re-sent: the caller gets
        `PumpTimeout` and must re-read the pump's state before sending anything else (SR21).
        `PumpAlarm` and `CommandRejected` from `parse` propagate at once.
        """
        timeout = self.reply_timeout_s if timeout_s is None else timeout_s
        attempts = 1 + (self.query_retries if idempotent else 0)
        last: PumpError | None = None
        for attempt in range(1, attempts + 1):
            try:
                reply = await self.transport.exchange(frame, frame_length, timeout)
            except PumpTimeout as exc:
                last = exc
                self.log.warning(
                    "pump.no_reply", command=command, tx=frame.hex(" "), attempt=attempt
                )
                continue
            if debug_enabled(self.log):  # every poll: no hex dumps for a log that drops them
                self.log.debug(
                    "pump.exchange",
                    command=command,
                    tx=frame.hex(" "),
                    rx=reply.hex(" "),
                    rx_text=reply.decode("latin-1"),
                )
            try:
                return parse(reply)
            except ProtocolError as exc:
                last = exc
                self.log.warning("pump.bad_reply", command=command, error=str(exc), attempt=attempt)
                if not idempotent:
                    raise
        assert last is not None
        raise last
