"""One scripted fake `Transport` for the driver tests: exact request bytes out, canned replies in.

Each driver test module subclasses `ScriptedTransport` with its port `name`, the `trailing` bytes
of a following frame in its own protocol (to prove the framer stops at the reply's end) and, for
drivers that name the baud rate in their timeout errors, a `baudrate`.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from pumpctl.drivers.base import FrameLength, PumpError
from pumpctl.drivers.transport import Transport

Step = tuple[bytes, bytes | PumpError]
"""(expected request, reply bytes or the error the exchange raises)."""


class ScriptedTransport(Transport):
    """Asserts every request against the script and answers with the scripted reply, framed by
    the driver's own framer (so a framer that would cut the reply short fails the test)."""

    name = "fake://scripted"
    trailing: ClassVar[bytes]
    """Start of a next frame appended to each reply: the framer must still end at the reply."""

    def __init__(self, *steps: Step) -> None:
        self.script: deque[Step] = deque(steps)
        self.sent: list[bytes] = []
        self.opened = False

    def expect(self, *steps: Step) -> None:
        self.script.extend(steps)

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        self.sent.append(request)
        assert self.script, f"unexpected request {request!r}"
        expected, reply = self.script.popleft()
        assert request == expected
        if isinstance(reply, PumpError):
            raise reply
        assert frame_length(reply + self.trailing) == len(reply)
        for cut in range(1, len(reply)):
            assert frame_length(reply[:cut]) is None, "framer completed a partial reply"
        return reply

    async def send(self, data: bytes) -> None:
        raise AssertionError(f"{self.name}: the driver never sends without a reply")

    def done(self) -> None:
        assert not self.script, f"unused script steps: {list(self.script)}"
