"""Real-time endpoints: `PtyEndpoint` and `TcpEndpoint` serve an emulation to outside clients
in real (or scaled) time; a task advances the emulation every few ms and forwards bytes both
ways, paced at the pump's baud with `pace=True`. Neither owns a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import termios
import time
import tty

from pumpctl.clock import Clock
from pumpctl.drivers.base import PumpConnectionError
from pumpctl.log import get_logger
from pumpctl.simulator.devices.base import Emulation, LineSettings
from pumpctl.simulator.faults import FaultSchedule
from pumpctl.simulator.link import Link, Mismatch, pty_line_settings, set_pty_line_settings
from pumpctl.simulator.wake import Waker

__all__ = ["MAX_CLIENT_BACKLOG_BYTES", "TICK_WALL_S", "PtyEndpoint", "TcpEndpoint"]

#: wall seconds between ticks of the real-time endpoints
TICK_WALL_S = 0.002
#: a client further behind than this many unread bytes loses new output
MAX_CLIENT_BACKLOG_BYTES = 65536


class _Pacer:
    """Releases queued bytes no faster than one per `byte_s` wall seconds (a UART's wire)."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._busy_until_w = -math.inf

    @property
    def released_w(self) -> float:
        """When the last byte released so far finished arriving (wall seconds)."""
        return self._busy_until_w

    def push(self, data: bytes, start_w: float) -> None:
        """Queue `data`; on an idle line its first byte starts at `start_w`."""
        if not self._pending and self._busy_until_w < start_w:
            self._busy_until_w = start_w
        self._pending += data

    def last_due_w(self, byte_s: float) -> float:
        """When the last queued byte will have arrived (wall seconds)."""
        return self._busy_until_w + len(self._pending) * byte_s

    def pop(self, now_w: float, byte_s: float) -> bytes:
        """Bytes whose last bit has arrived by `now_w`."""
        if not self._pending:
            return b""
        n = min(len(self._pending), int((now_w - self._busy_until_w) / byte_s + 1e-9))
        if n <= 0:
            return b""
        out = bytes(self._pending[:n])
        del self._pending[:n]
        self._busy_until_w += n * byte_s
        return out


class _RealTimeEndpoint:
    """Shared part of the pty and TCP endpoints: the tick task and output forwarding."""

    def __init__(
        self,
        emulation: Emulation,
        clock: Clock,
        tick_wall_s: float,
        faults: FaultSchedule | None,
        pace: bool,
        mismatch: Mismatch,
    ) -> None:
        self.emulation = emulation
        self.clock = clock
        self.faults = faults
        emulation.wire_time_scale = clock.time_scale
        self._link = Link(emulation, clock, faults, mismatch)
        self._tick_clock_s = tick_wall_s * clock.time_scale
        self._task: asyncio.Task[None] | None = None
        self.pace = pace and math.isfinite(clock.time_scale)
        self._pace_in = _Pacer()
        self._pace_out = _Pacer()
        self._waker: Waker | None = None
        self.log = get_logger("pumpctl.simulator.endpoint", model=emulation.model)

    @property
    def commands_seen(self) -> int:
        return self._link.commands_seen

    def _sync(self) -> None:
        self._link.sync()

    def _client_line(self) -> LineSettings | None:
        """The client's line settings where the endpoint can see them (None: assume a match)."""
        return None

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _wall_now(self) -> float:
        return self.clock.now() / self.clock.time_scale

    def _byte_s(self) -> float:
        return 1.0 / self.emulation.uart_settings().bytes_per_s

    def _on_input(self, data: bytes) -> None:
        self._sync()
        if self.pace:
            self._pace_in.push(data, self._wall_now())
            self._wake_at(self._pace_in.last_due_w(self._byte_s()))
        else:
            self._link.feed(data, self._client_line())
        self._flush()

    def _flush(self) -> None:
        client = self._client_line()
        if not self.pace:
            out = self._link.read(client)
            if out:
                self._write(out)
            return
        now_w, byte_s = self._wall_now(), self._byte_s()
        arrived = self._pace_in.pop(now_w, byte_s)
        if arrived:
            self._link.feed(arrived, client)
        reply = self._link.read(client)
        if reply:
            # A pump starts answering when the last byte it heard has arrived, not when this
            # flush noticed: a tick late here would be a tick lost on every exchange.
            start_w = self._pace_in.released_w if arrived else now_w
            self._pace_out.push(reply, start_w)
            self._wake_at(self._pace_out.last_due_w(byte_s))
        out = self._pace_out.pop(now_w, byte_s)
        if out:
            self._write(out)

    def _wake_at(self, due_w: float) -> None:
        """Flush again when the byte due at `due_w` has arrived, not at the next tick: the last
        byte of a frame is what a client waits for. A microsecond more covers the float sum of
        byte times, so the byte is surely due when the flush looks."""
        if self._waker is not None:
            self._waker.at(time.monotonic() + (due_w - self._wall_now()) + 1e-6)

    def _catch_up(self) -> None:
        """Bring the emulation to now and move what is due both ways: each tick, each wake."""
        self._sync()
        self._flush()

    async def _tick(self) -> None:
        while True:
            self._catch_up()
            await self.clock.sleep(self._tick_clock_s)

    def _start_ticking(self) -> None:
        self._sync()
        if self.pace:
            self._waker = Waker(self._catch_up)
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _stop_ticking(self) -> None:
        if self._waker is not None:
            self._waker.close()
            self._waker = None
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
        faults: FaultSchedule | None = None,
        pace: bool = False,
        check_line: bool = True,
        mismatch: Mismatch = "garbage",
    ) -> None:
        super().__init__(emulation, clock, tick_wall_s, faults, pace, mismatch)
        self.check_line = check_line
        self._given_path = path
        self.path = path or ""
        self._fd = -1
        self._slave_fd = -1

    async def start(self) -> str:
        """Open (or create) the pty, start serving, return the path clients open."""
        if self._given_path is None:
            self._fd, self._slave_fd = os.openpty()
            tty.setraw(self._slave_fd, termios.TCSANOW)
            set_pty_line_settings(self._slave_fd, self.emulation.uart_settings())
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

    def _client_line(self) -> LineSettings | None:
        """Read from the slave's termios (shared by both ends on Linux) on every transfer: a
        client may reconfigure at any time. An existing device's far end is not visible."""
        if not self.check_line or self._slave_fd < 0:
            return None
        try:
            return pty_line_settings(self._slave_fd)
        except termios.error:
            return None

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
        faults: FaultSchedule | None = None,
        pace: bool = False,
    ) -> None:
        super().__init__(emulation, clock, tick_wall_s, faults, pace, "garbage")
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
