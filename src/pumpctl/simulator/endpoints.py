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
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import random
import termios
import tty
from typing import Literal

from pumpctl.clock import Clock
from pumpctl.drivers.base import FrameLength, PumpConnectionError, PumpTimeout
from pumpctl.drivers.transport import Transport
from pumpctl.log import get_logger
from pumpctl.simulator.devices.base import Emulation, LineSettings
from pumpctl.simulator.faults import FaultSchedule

__all__ = [
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
#: wall seconds between ticks of the real-time endpoints
TICK_WALL_S = 0.002
#: a client further behind than this many unread bytes loses new output
MAX_CLIENT_BACKLOG_BYTES = 65536


Mismatch = Literal["garbage", "silence"]
#: bytes a wrong-baud garble never produces, so garbage never frames as a command or a reply
#: (STX, ETX, LF, CR). Emulation choice: a real UART can, rarely, produce them too.
_FRAMING_BYTES = frozenset({0x02, 0x03, 0x0A, 0x0D})
_GARBAGE_ALPHABET = bytes(b for b in range(256) if b not in _FRAMING_BYTES)
_STANDARD_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
_SPEED_CODES = {getattr(termios, f"B{b}"): b for b in _STANDARD_BAUDS if hasattr(termios, f"B{b}")}
_CSIZE_BITS = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}


def wrong_baud(
    data: bytes, sender: LineSettings, receiver: LineSettings, rng: random.Random
) -> bytes:
    """What a UART set to `receiver` makes of `data` sent with `sender` settings.

    A receiver at another baud samples bits at the wrong instants: each start bit it sees begins
    a byte of the wrong bits, so about `len(data) × receiver/sender baud` bytes arrive (at least
    one), none of them the ones sent (framing errors included). Modelled as that many random
    bytes, never a framing byte (STX/ETX/CR/LF).
    """
    if not data:
        return b""
    count = max(1, round(len(data) * receiver.baud / sender.baud))
    return bytes(rng.choice(_GARBAGE_ALPHABET) for _ in range(count))


def _mismatched(pump: LineSettings, client: LineSettings | None) -> bool:
    """The bauds differ. Only the baud: a Linux pty forces 8 data bits and no parity whatever
    the client sets (so neither is visible), and stop bits do not matter (a receiver expecting
    one takes a second as idle line; one expecting two mostly gets them from the gaps)."""
    return client is not None and client.baud != pump.baud


def pty_line_settings(fd: int) -> LineSettings | None:
    """The line settings a pty's client set (termios of the slave, as seen on either side);
    None when the speed is not a standard baud. A Linux pty keeps baud and stop bits but always
    reports 8 data bits and no parity."""
    attrs = termios.tcgetattr(fd)
    cflag, ispeed = attrs[2], attrs[4]
    baud = _SPEED_CODES.get(ispeed)
    if baud is None:
        return None
    parity = "N" if not cflag & termios.PARENB else ("O" if cflag & termios.PARODD else "E")
    return LineSettings(
        baud=baud,
        data_bits=_CSIZE_BITS.get(cflag & termios.CSIZE, 8),
        parity=parity,
        stop_bits=2 if cflag & termios.CSTOPB else 1,
    )


def set_pty_line_settings(fd: int, line: LineSettings) -> None:
    """Put `line` on a tty (raw mode is kept): a client that never sets anything matches."""
    attrs = termios.tcgetattr(fd)
    cflag = attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB)
    cflag |= {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}[line.data_bits]
    if line.parity != "N":
        cflag |= termios.PARENB | (termios.PARODD if line.parity == "O" else 0)
    if line.stop_bits == 2:
        cflag |= termios.CSTOPB
    attrs[2] = cflag
    code = getattr(termios, f"B{line.baud}", None)
    if code is not None:
        attrs[4] = attrs[5] = code
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class _Link:
    """One emulation on a clock: keeps its simulated time in step (splitting advances at fault
    times), applies the fault schedule, counts commands and models the client's UART."""

    def __init__(
        self,
        emulation: Emulation,
        clock: Clock,
        faults: FaultSchedule | None,
        mismatch: Mismatch = "garbage",
    ) -> None:
        self.emulation = emulation
        self.clock = clock
        self.faults = faults
        self.mismatch = mismatch
        self.rng = faults.rng if faults is not None else random.Random(0)
        self._offset: float | None = None
        self._lines_fed = 0  # CR-terminated lines, for families that do not count commands
        if faults is not None:
            faults.check(emulation)

    @property
    def commands_seen(self) -> int:
        emulation = self.emulation
        return emulation.commands_seen if type(emulation).counts_commands else self._lines_fed

    def sync(self) -> None:
        """Advance the emulation to the clock's now, starting and ending faults on the way."""
        emulation, faults = self.emulation, self.faults
        now = self.clock.now()
        if self._offset is None:
            self._offset = now - emulation.now_s
        target = now - self._offset
        if faults is not None:
            faults.apply_due(emulation, emulation.now_s, self.commands_seen)
        while True:
            due = faults.next_due_s() if faults is not None else None
            step_to = target if due is None or due > target else due
            if step_to > emulation.now_s:
                emulation.advance(step_to - emulation.now_s)
            if faults is None or due is None or due > target:
                return
            faults.apply_due(emulation, due, self.commands_seen)

    def feed(self, data: bytes, client: LineSettings | None) -> None:
        emulation = self.emulation
        pump = emulation.uart_settings()
        if _mismatched(pump, client):
            if self.mismatch == "silence":
                return
            assert client is not None
            data = wrong_baud(data, client, pump, self.rng)
        self._lines_fed += data.count(b"\r")
        emulation.feed(data)

    def read(self, client: LineSettings | None) -> bytes:
        data = self.emulation.read()
        if not data:
            return data
        pump = self.emulation.uart_settings()
        if not _mismatched(pump, client):
            return data
        if self.mismatch == "silence":
            return b""
        assert client is not None
        return wrong_baud(data, pump, client, self.rng)


class _Pacer:
    """Releases queued bytes no faster than one per `byte_s` wall seconds (a UART's wire)."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._busy_until_w = -math.inf

    def push(self, data: bytes, now_w: float) -> None:
        if not self._pending and self._busy_until_w < now_w:
            self._busy_until_w = now_w  # idle line: the first byte starts now
        self._pending += data

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
        self._link = _Link(emulation, clock, faults, mismatch)
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
        if lock.locked() or lock._waiters:
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
        self._link = _Link(emulation, clock, faults, mismatch)
        self._tick_clock_s = tick_wall_s * clock.time_scale
        self._task: asyncio.Task[None] | None = None
        self.pace = pace and math.isfinite(clock.time_scale)
        self._pace_in = _Pacer()
        self._pace_out = _Pacer()
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
            data = self._pace_in.pop(self._wall_now(), self._byte_s())
        if data:
            self._link.feed(data, self._client_line())
        self._flush()

    def _flush(self) -> None:
        client = self._client_line()
        if self.pace:
            now_w, byte_s = self._wall_now(), self._byte_s()
            arrived = self._pace_in.pop(now_w, byte_s)
            if arrived:
                self._link.feed(arrived, client)
            self._pace_out.push(self._link.read(client), now_w)
            out = self._pace_out.pop(now_w, byte_s)
        else:
            out = self._link.read(client)
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
