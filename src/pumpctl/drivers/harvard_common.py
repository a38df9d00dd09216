"""The driver skeleton both Harvard protocols share (legacy pump chain and 11 Elite text).

The two families differ in every byte (framing, numbers, units), so each keeps its own codec;
what they share is how a driver uses it: one `_send` per command that decodes the reply, notes its
prompt and turns an error text into `CommandRejected`; an `open()` that identifies the pump and
names address, port and baud rate when nothing sensible answers; an idempotent `stop()` that
repeats the stop command until the prompt shows a stopped motor; and `pause()` as "stop if
running" on top of it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pumpctl.drivers.base import (
    CommandRejected,
    ProtocolError,
    PumpDriver,
    PumpError,
    PumpIdentity,
    PumpState,
    PumpTimeout,
)

if TYPE_CHECKING:
    from pumpctl.drivers.transport import Transport

__all__ = ["MAX_ADDRESS", "HarvardDriver", "HarvardReply", "check_address"]

#: addresses on one chain / RS-485 bus, both families
MAX_ADDRESS = 99
#: `stop()` gives up after this many stop commands that leave the motor running
STOP_ATTEMPTS = 3


def check_address(address: int) -> None:
    if not 0 <= address <= MAX_ADDRESS:
        raise ValueError(f"Harvard address must be 0..{MAX_ADDRESS}, got {address}")


class HarvardReply(Protocol):
    """What the shared driver reads of a family's decoded reply."""

    @property
    def prompt(self) -> str: ...

    @property
    def error(self) -> str | None: ...


ReplyT = TypeVar("ReplyT", bound=HarvardReply)


class HarvardDriver(PumpDriver, Generic[ReplyT]):
    """Base of the Harvard drivers. A family supplies its codec through `_encode`, `_framer`,
    `_decode` and `_payload`, and says which `stop_command` it sends, which `stopped_prompts`
    end `stop()`, and the serial settings to suggest when the pump does not answer."""

    default_bytesize: ClassVar[int] = 8
    default_parity: ClassVar[str] = "N"
    #: the stop command; repeated by `stop()` (the pump answers it in any state)
    stop_command: ClassVar[str]
    #: prompts that show a stopped motor in a reply to `stop_command`
    stopped_prompts: ClassVar[frozenset[str]]
    #: usual serial settings, named in the error when `open()` gets no valid reply
    line_hint: ClassVar[str]
    #: `CommandRejected` message, formatted with `command` (repr) and `error`
    rejected_message: ClassVar[str] = "pump rejected {command!r}: {error}"

    def __init__(
        self, transport: Transport, *, address: int = 0, pump_id: str | None = None
    ) -> None:
        check_address(address)
        super().__init__(transport, address=address, pump_id=pump_id)
        self.identity: PumpIdentity | None = None
        #: prompt of the last reply (None before the first)
        self.prompt: str | None = None
        #: the driver stopped a running pump with `pause()`; a run prompt ends it
        self.paused = False

    # -- the family's codec --------------------------------------------------------------------

    @staticmethod
    @abstractmethod
    def _encode(address: int, command: str) -> bytes:
        """The request frame for `command` at `address` (the family's `encode_command`)."""

    @staticmethod
    @abstractmethod
    def _framer(buf: bytes) -> int | None:
        """The family's `FrameLength`."""

    @staticmethod
    @abstractmethod
    def _decode(raw: bytes, *, address: int | None = None) -> ReplyT:
        """One framed reply, from `address` if given; `ProtocolError` otherwise (the family's
        `parse_reply`)."""

    @staticmethod
    @abstractmethod
    def _payload(reply: ReplyT) -> str:
        """The reply's text (a query's answer), which `expect` validates."""

    # -- wire ----------------------------------------------------------------------------------

    async def _send(
        self,
        command: str,
        *,
        query: bool = False,
        errors: bool = True,
        expect: Callable[[str], object] | None = None,
    ) -> ReplyT:
        """One exchange; the reply's prompt updates the driver's view of the pump. `expect`
        validates the reply text inside the exchange, so a garbled query is retried."""

        def parse(raw: bytes) -> ReplyT:
            reply = self._decode(raw, address=self.address)
            if expect is not None and reply.error is None:
                expect(self._payload(reply))
            return reply

        reply = await self._exchange(
            self._encode(self.address, command),
            self._framer,
            parse,
            idempotent=query,
            command=command,
        )
        self._note(reply)
        if errors and reply.error is not None:
            raise CommandRejected(
                self.rejected_message.format(command=command, error=reply.error),
                code=reply.error,
                command=command,
            )
        return reply

    def _note(self, reply: ReplyT) -> None:
        """Every reply's prompt: the last one seen, and a running motor ends a pause."""
        self.prompt = reply.prompt
        if reply.prompt in "><":
            self.paused = False

    def _note_stopped(self, prompt: str) -> None:
        """`stop()` succeeded with this prompt."""
        self.paused = False

    def _open_details(self) -> dict[str, Any]:
        """Extra fields for the `pump.open` log line."""
        return {}

    # -- lifecycle and the shared commands -----------------------------------------------------

    async def open(self) -> None:
        """Open the port and identify the pump. No reply (or only garbage) is reported as a
        `PumpTimeout` naming the port, baud rate and address."""
        await super().open()
        try:
            self.identity = await self.identify()
        except (PumpTimeout, ProtocolError) as exc:
            await self.transport.close()
            baud = self.transport.baudrate
            at = "" if baud is None else f" at {baud} baud"
            raise PumpTimeout(
                f"no valid reply from Harvard pump {self.address} on {self.transport.name}{at} "
                f"({self.line_hint}): check the pump's address and baud rate ({exc})"
            ) from exc
        except BaseException:
            await self.transport.close()
            raise
        self.log.info("pump.open", model=self.identity.model, **self._open_details())

    async def pause(self) -> None:
        """Stop when running (the family decides what `start()` then resumes); no-op otherwise."""
        status = await self.read_status()
        if status.state is not PumpState.RUNNING:
            return
        await self.stop()
        self.paused = True

    async def stop(self) -> None:
        """`stop_command` until the prompt shows a stopped motor; idempotent (an error reply on
        a stopped pump is fine). Ends a pause."""
        for _ in range(STOP_ATTEMPTS):
            reply = await self._send(self.stop_command, errors=False)
            if reply.prompt in self.stopped_prompts:
                self._note_stopped(reply.prompt)
                return
        raise PumpError(
            f"pump still shows prompt {self.prompt!r} after {STOP_ATTEMPTS} {self.stop_command}"
        )
