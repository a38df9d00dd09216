"""Endpoints: what connects an emulation to a host.

- `InMemoryTransport` is a driver `Transport` that talks to an emulation in-process and advances it
  on the caller's clock, so a 5-day program runs in seconds on the virtual clock.
- `PtyEndpoint` and `TcpEndpoint` serve an emulation to outside clients in real (or scaled) time:
  a task advances the emulation every few ms and forwards bytes both ways. Neither owns a thread.

An emulation is served by one endpoint at a time; its simulated time is mapped to the clock's
timeline at first use (`emulation time = clock.now() - offset`). Every endpoint applies a
`FaultSchedule` while it advances the emulation, splitting advances at fault times.

The line: the emulation has UART settings (`Emulation.uart_settings()`); a client whose settings
differ (a pty client's termios, the in-memory transport's `baud_rate`) gets what a UART gives at
the wrong baud: garbage (default) or silence, both ways. With `pace=True` the pty and TCP
endpoints deliver bytes no faster than the wire would (start + data + parity + stop bits each).

This module holds the in-memory transport; the real-time endpoints live in `realtime`, the line
(time, faults, wrong baud, pty termios) in `link`, and every name is importable from here too.
"""

from __future__ import annotations

import asyncio

from pumpctl.clock import Clock
from pumpctl.drivers.base import FrameLength, PumpConnectionError, PumpTimeout
from pumpctl.drivers.transport import Transport
from pumpctl.log import get_logger
from pumpctl.simulator.devices.base import Emulation
from pumpctl.simulator.faults import FaultSchedule
from pumpctl.simulator.link import (
    Link,
    Mismatch,
    pty_line_settings,
    set_pty_line_settings,
    wrong_baud,
)
from pumpctl.simulator.realtime import (
    MAX_CLIENT_BACKLOG_BYTES,
    TICK_WALL_S,
    PtyEndpoint,
    TcpEndpoint,
    _Pacer,  # noqa: F401  (the pacing tests reach it here)
)

__all__ = [
    "IN_MEMORY_POLL_S",
    "MAX_CLIENT_BACKLOG_BYTES",
    "TICK_WALL_S",
    "InMemoryTransport",
    "Mismatch",
    "PtyEndpoint",
    "TcpEndpoint",
    "pty_line_settings",
    "set_pty_line_settings",
    "wrong_baud",
]

#: clock seconds between polls while an in-memory reply is incomplete (delay / link faults)
IN_MEMORY_POLL_S = 0.005


class InMemoryTransport(Transport):
    """A `Transport` straight into an emulation, on the caller's clock (virtual or real).

    The emulation is advanced lazily, when the transport is used: after a silence, call `sync()`
    before reading its ground truth (`snapshot()`). `baud_rate` is the client's baud (default:
    the pump's at construction); a `baud` fault that changes the pump's makes replies garbage.
    """

    def __init__(
        self,
        emulation: Emulation,
        clock: Clock,
        name: str = "sim://ne1000",
        *,
        faults: FaultSchedule | None = None,
        baud_rate: int | None = None,
        mismatch: Mismatch = "garbage",
    ) -> None:
        self.name = name
        self.emulation = emulation
        self.clock = clock
        self.faults = faults
        pump_line = emulation.uart_settings()
        self.line = pump_line.model_copy(update={"baud": baud_rate or pump_line.baud})
        self._link = Link(emulation, clock, faults, mismatch)
        self._open = False
        self._lock = asyncio.Lock()  # one exchange at a time on the line, as on a real port
        self.log = get_logger("pumpctl.simulator.transport", port=name)

    @property
    def commands_seen(self) -> int:
        """Host command frames the pump has received (what `@#N` faults count)."""
        return self._link.commands_seen

    def sync(self) -> None:
        """Bring the emulation (and its faults) up to the clock's now."""
        self._link.sync()

    def _sync(self) -> None:
        self._link.sync()

    async def open(self) -> None:
        self._open = True
        self._sync()

    async def close(self) -> None:
        self._open = False

    async def send(self, data: bytes) -> None:
        if not self._open:
            raise PumpConnectionError(f"{self.name} is not open")
        self._sync()
        self._link.feed(data, self.line)

    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        if not self._open:
            raise PumpConnectionError(f"{self.name} is not open")
        lock = self._lock
        if lock._locked or lock._waiters:  # type: ignore[attr-defined]  # (`locked()`, inline)
            async with lock:
                return await self._exchange(request, frame_length, timeout_s)
        # the line is free and nothing below awaits until the reply is known to be late: the
        # usual exchange (the reply is due at once) needs no lock to keep others off the line
        buf = self._request(request)
        n = frame_length(buf) if buf else None
        if n is not None:
            return buf[:n]  # fast path: the reply was due at once
        async with lock:  # free: taken without waiting
            return await self._await_reply(buf, frame_length, timeout_s)

    def _request(self, request: bytes) -> bytes:
        """Bring the pump up to now, drop what it said unasked, send `request`; what it has
        answered at once."""
        link = self._link
        link.sync()
        stale = link.read(self.line)
        if stale:
            self.log.debug("transport.discarded", rx=stale.hex(" "))
        link.feed(request, self.line)
        return link.read(self.line)

    async def _exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        buf = self._request(request)
        if buf:
            n = frame_length(buf)
            if n is not None:
                return buf[:n]  # fast path: the reply was due at once
        return await self._await_reply(buf, frame_length, timeout_s)

    async def _await_reply(self, buf: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        """Poll the pump every few ms of clock time until `buf` holds a whole reply."""
        link = self._link
        clock = self.clock
        deadline = clock.now() + timeout_s
        while clock.now() < deadline:
            await clock.sleep(min(IN_MEMORY_POLL_S, max(0.0, deadline - clock.now())))
            self._sync()
            buf += link.read(self.line)
            if buf:
                n = frame_length(buf)
                if n is not None:
                    return buf[:n]
        raise PumpTimeout(
            f"no complete reply from {self.name} at {self.line.baud} baud within {timeout_s:g} s"
        )
