"""Pump commands as the supervisor sends them: journaled first, pump errors mapped to alarms.

One wrapper for every command so that SR29 (journaled before it is sent) and the mapping of a
pump's refusal or alarm to an `Alarm` cannot be forgotten at a call site. A command whose reply
was lost raises `PumpTimeout` to the caller (its outcome is unknown, SR21) unless it is
idempotent, in which case silence is a lost link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pumpctl.clock import Clock
from pumpctl.drivers.base import CommandRejected, PumpAlarm, PumpError, PumpTimeout
from pumpctl.infusion.events import CommandEvent, ReplyEvent
from pumpctl.infusion.ledger import Alarm
from pumpctl.infusion.recorder import RunRecorder

__all__ = ["PumpCommands"]

T = TypeVar("T")


class PumpCommands:
    def __init__(self, recorder: RunRecorder, clock: Clock) -> None:
        self.recorder = recorder
        self.clock = clock
        #: clock time of the last reply of any kind (silence is measured from it, SR17)
        self.last_reply_s = clock.now()

    async def call(
        self,
        what: str,
        action: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = False,
        **fields: Any,
    ) -> T:
        """Journal `what` (with `fields`), run `action`, journal the reply summary."""
        write = self.recorder.write
        write(CommandEvent(command=what, **fields))
        try:
            result = await action()
        except PumpTimeout:
            write(ReplyEvent(command=what, outcome="unknown"))
            if idempotent:
                raise Alarm("communication_lost", f"no reply to {what}") from None
            raise
        except PumpAlarm as exc:
            write(ReplyEvent(command=what, outcome="alarm", reason=exc.reason.value))
            raise Alarm(exc.reason.value, f"pump alarm in reply to {what}") from exc
        except CommandRejected as exc:
            write(ReplyEvent(command=what, outcome="rejected", code=exc.code))
            raise Alarm("command_rejected", f"{what}: {exc}") from exc
        except PumpError as exc:
            write(ReplyEvent(command=what, outcome="error", error=str(exc)))
            raise Alarm("pump_error", f"{what}: {exc}") from exc
        self.last_reply_s = self.clock.now()
        sent = result if isinstance(result, float) else None
        write(ReplyEvent(command=what, outcome="ok", sent=sent))
        return result
