"""Endpoints: what connects an emulation to a host.

- `InMemoryTransport` is a driver `Transport` that talks to an emulation in-process and advances it
  on the caller's clock, so a 5-day program runs in seconds on the virtual clock.
- `PtyEndpoint` and `TcpEndpoint` serve an emulation to outside clients in real (or scaled) time:
  a task advances the emulation every few ms and forwards bytes both ways. Neither owns a thread.

An emulation is served by one endpoint at a time; its simulated time is mapped to the clock's
timeline at first use (`emulation time = clock.now() - offset`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import termios
import tty

from pumpctl.clock import Clock
from pumpctl.drivers.base import FrameLength, PumpConnectionError, PumpTimeout
from pumpctl.drivers.transport import Transport
from pumpctl.log import get_logger
from pumpctl.simulator.devices.base import Emulation

__all__ = ["InMemoryTransport", "PtyEndpoint", "TcpEndpoint"]

#: clock seconds between polls while an in-memory reply is incomplete (delay / link faults)
IN_MEMORY_POLL_S = 0.005
#: wall seconds between ticks of the real-time endpoints
TICK_WALL_S = 0.002
#: a client further behind than this many unread bytes loses new output
MAX_CLIENT_BACKLOG_BYTES = 65536


class _Sync:
    """Keeps an emulation's simulated time in step with a clock."""

    def __init__(self, emulation: Emulation, clock: Clock) -> None:
        self.emulation = emulation
        self.clock = clock
        self._offset: float | None = None

    def __call__(self) -> None:
        now = self.clock.now()
        if self._offset is None:
            self._offset = now - self.emulation.now_s
        dt = now - self._offset - self.emulation.now_s
        if dt > 0:
            self.emulation.advance(dt)


class InMemoryTransport(Transport):
    """A `Transport` straight into an emulation, on the caller's clock (virtual or real)."""

    def __init__(self, emulation: Emulation, clock: Clock, name: str = "sim://ne1000") -> None:
        self.name = name
        self.emulation = emulation
        self.clock = clock
        self._sync = _Sync(emulation, clock)
        self._open = False
        self._lock = asyncio.Lock()  # one exchange at a time on the line, as on a real port
        self.log = get_logger("pumpctl.simulator.transport", port=name)

    async def open(self) -> None:
        self._open = True
        self._sync()

    async def close(self) -> None:
        self._open = False

    async def send(self, data: bytes) -> None:
        if not self._open:
            raise PumpConnectionError(f"{self.name} is not open")
        self._sync()
        self.emulation.feed(data)

    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        if not self._open:
            raise PumpConnectionError(f"{self.name} is not open")
        async with self._lock:
            return await self._exchange(request, frame_length, timeout_s)

    async def _exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        emulation = self.emulation
        self._sync()
        stale = emulation.read()
        if stale:
            self.log.debug("transport.discarded", rx=stale.hex(" "))
        emulation.feed(request)
        buf = emulation.read()
        if buf:
            n = frame_length(buf)
            if n is not None:
                return buf[:n]  # fast path: the reply was due at once
        clock = self.clock
        deadline = clock.now() + timeout_s
        while clock.now() < deadline:
            await clock.sleep(min(IN_MEMORY_POLL_S, max(0.0, deadline - clock.now())))
            self._sync()
            buf += emulation.read()
            if buf:
                n = frame_length(buf)
                if n is not None:
                    return buf[:n]
        raise PumpTimeout(f"no complete reply from {self.name} within {timeout_s} s")


class _RealTimeEndpoint:
    """Shared part of the pty and TCP endpoints: the tick task and output forwarding."""

    def __init__(self, emulation: Emulation, clock: Clock, tick_wall_s: float) -> None:
        self.emulation = emulation
        self.clock = clock
        emulation.wire_time_scale = clock.time_scale
        self._sync = _Sync(emulation, clock)
        self._tick_clock_s = tick_wall_s * clock.time_scale
        self._task: asyncio.Task[None] | None = None
        self.log = get_logger("pumpctl.simulator.endpoint", model=emulation.model)

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _on_input(self, data: bytes) -> None:
        self._sync()
        self.emulation.feed(data)
        self._flush()

    def _flush(self) -> None:
        out = self.emulation.read()
        if out:
            self._write(out)

    async def _tick(self) -> None:
        while True:
            self._sync()
            self._flush()
            await self.clock.sleep(self._tick_clock_s)

    def _start_ticking(self) -> None:
        self._sync()
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _stop_ticking(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class PtyEndpoint(_RealTimeEndpoint):
    """Serve an emulation on a pseudo-terminal: a new one (`path=None`) or an existing device.

    A created pty keeps its own slave descriptor open, so clients may close and reopen the slave
    path as often as they like (a real serial port behaves the same).
    """

    def __init__(
        self,
        emulation: Emulation,
        clock: Clock,
        *,
        path: str | None = None,
        tick_wall_s: float = TICK_WALL_S,
    ) -> None:
        super().__init__(emulation, clock, tick_wall_s)
        self._given_path = path
        self.path = path or ""
        self._fd = -1
        self._slave_fd = -1

    async def start(self) -> str:
        """Open (or create) the pty, start serving, return the path clients open."""
        if self._given_path is None:
            self._fd, self._slave_fd = os.openpty()
            tty.setraw(self._slave_fd, termios.TCSANOW)
            self.path = os.ttyname(self._slave_fd)
        else:
            try:
                self._fd = os.open(self._given_path, os.O_RDWR | os.O_NOCTTY)
            except OSError as exc:
                raise PumpConnectionError(f"cannot open {self._given_path}: {exc}") from exc
            if os.isatty(self._fd):
                tty.setraw(self._fd, termios.TCSANOW)
        os.set_blocking(self._fd, False)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        self._start_ticking()
        return self.path

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: no client has the other side open right now
                raise
            data = b""
        if data:
            self._on_input(data)
        elif self._given_path is not None:
            # Peer gone on an existing device: stop polling a descriptor that stays readable.
            asyncio.get_running_loop().remove_reader(self._fd)
            self.log.warning("pty.peer_closed", path=self.path)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._fd, data)
        except (BlockingIOError, OSError) as exc:
            self.log.warning("pty.output_dropped", path=self.path, bytes=len(data), error=str(exc))

    async def stop(self) -> None:
        await self._stop_ticking()
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._slave_fd >= 0:
            os.close(self._slave_fd)
            self._slave_fd = -1


class TcpEndpoint(_RealTimeEndpoint):
    """Serve an emulation on TCP; every client shares the one simulated serial line."""

    def __init__(
        self,
        emulation: Emulation,
        clock: Clock,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tick_wall_s: float = TICK_WALL_S,
    ) -> None:
        super().__init__(emulation, clock, tick_wall_s)
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound (host, port) (port 0 picks a free one)."""
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.host, self.port = str(host), int(port)
        self._start_ticking()
        return self.host, self.port

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while data := await reader.read(4096):
                self._on_input(data)
        except ConnectionError:
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def _write(self, data: bytes) -> None:
        for writer in list(self._clients):
            if writer.transport.get_write_buffer_size() > MAX_CLIENT_BACKLOG_BYTES:
                continue  # a client that never reads loses output, not the simulator
            writer.write(data)

    async def stop(self) -> None:
        await self._stop_ticking()
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            await self._server.wait_closed()
            self._server = None
