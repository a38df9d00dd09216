"""Async byte transports: with `drivers.ports` (finding ports), the only modules that import
`serial`.

A driver hands the transport a request frame and a framer (`FrameLength`); the transport writes
the frame, collects bytes until the framer says a reply is complete, and returns it. One exchange
at a time per port (an `asyncio.Lock`), because every protocol we drive is strictly one command,
one reply, and several pumps may share a daisy-chained line.

`SerialTransport` opens every port with `serial.serial_for_url`, so a device path, a pty, a
`socket://host:port` simulator and a `loop://` echo are all the same to the drivers. Reading never
blocks the event loop: ports with a real file descriptor (posix serial and ptys, `socket://`) are
watched with `loop.add_reader`; the rest (`loop://`, Windows COM ports) are read by a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import threading
from abc import ABC, abstractmethod
from typing import Any

import serial

from pumpctl.clock import Clock
from pumpctl.drivers.base import FrameLength, PumpConnectionError, PumpTimeout
from pumpctl.drivers.ports import PortInfo, list_ports
from pumpctl.drivers.reply_timer import ReplyTimer
from pumpctl.log import get_logger

__all__ = ["PortInfo", "SerialTransport", "Transport", "list_ports"]

#: read poll of the worker thread (ports without a file descriptor), seconds: bounds close() only
_THREAD_POLL_S = 0.05
#: a write that cannot drain in this long means the line is dead, seconds
_WRITE_TIMEOUT_S = 2.0
_READ_CHUNK = 4096
#: read() errors pyserial treats as "no data yet"
_NO_DATA_YET = frozenset(
    {errno.EAGAIN, errno.EALREADY, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.EINTR}
)


class Transport(ABC):
    """A byte pipe to one serial line (which may carry several pumps)."""

    #: human-readable port name for logs and error messages (device path or URL)
    name: str
    #: the line's baud rate, where there is a line (None: in-process, no UART)
    baudrate: int | None = None

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        """Write `request`, return the first complete reply.

        Bytes that arrived before the request (late replies, unsolicited alarm packets) are
        discarded and logged. Raises `PumpTimeout` (naming the port) when no complete reply
        arrives within `timeout_s`, `PumpConnectionError` when the port fails.
        """

    @abstractmethod
    async def send(self, data: bytes) -> None:
        """Write without waiting for a reply (broadcasts, break-ins)."""


class SerialTransport(Transport):
    """A pyserial port (device path or URL) driven from asyncio.

    `exclusive=True` is requested so that two controllers cannot drive one pump (posix takes an
    `flock`; Windows ports are exclusive anyway; URL handlers ignore it). Reply timeouts are wire
    time (`clock.wall_delay`), so a scaled rig clock never shortens them.
    """

    baudrate: int

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 19200,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        clock: Clock,
    ) -> None:
        self.name = port
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.clock = clock
        self.log = get_logger("pumpctl.transport", port=port, baudrate=baudrate)
        self._serial: Any = None
        self._lock = asyncio.Lock()
        self._buffer = bytearray()
        self._data_event = asyncio.Event()
        self._error: BaseException | None = None
        #: the exchange waiting for its reply, and the framer that says when it is whole
        self._reply_waiter: tuple[asyncio.Future[int | None], FrameLength] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reply_timer: ReplyTimer | None = None
        self._fd: int | None = None
        #: the descriptor of a plain POSIX port, read and written with os.read/os.write
        self._os_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._stop_thread = threading.Event()

    def __repr__(self) -> str:
        return f"SerialTransport({self.name!r}, baudrate={self.baudrate})"

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._serial is not None:
            return
        try:
            ser = serial.serial_for_url(
                self.name,
                do_not_open=True,
                baudrate=self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=0,
                write_timeout=_WRITE_TIMEOUT_S,
            )
            with contextlib.suppress(AttributeError, ValueError):
                ser.exclusive = True
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PumpConnectionError(
                f"cannot open {self.name} at {self.baudrate} baud: {exc}"
            ) from exc
        self._serial = ser
        self._loop = asyncio.get_running_loop()
        self._reply_timer = ReplyTimer(self._loop, self._wake_reply)
        self._buffer.clear()
        self._error = None
        fd = _real_fileno(ser)
        if fd is not None:
            self._fd = fd
            # read straight only where a read cannot block: pyserial opens O_NONBLOCK, keep it so
            plain = type(ser) is serial.Serial and os.name == "posix" and not os.get_blocking(fd)
            self._os_fd = fd if plain else None
            self._loop.add_reader(fd, self._on_readable)
            mode = "fd"
        else:
            ser.timeout = _THREAD_POLL_S
            self._stop_thread.clear()
            self._thread = threading.Thread(
                target=self._reader_thread, name=f"pumpctl-rx {self.name}", daemon=True
            )
            self._thread.start()
            mode = "thread"
        self.log.info("transport.open", mode=mode)

    async def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is None:
            return
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._fd = self._os_fd = None
        if self._thread is not None:
            self._stop_thread.set()
            with contextlib.suppress(Exception):
                ser.cancel_read()
            thread, self._thread = self._thread, None
            # Bounded by _THREAD_POLL_S: the thread re-checks the stop flag after every read.
            await asyncio.to_thread(thread.join, 2.0)
        with contextlib.suppress(serial.SerialException, OSError):
            ser.close()
        self._data_event.set()  # wake an exchange still waiting so it sees the port closed
        self._wake_reply()
        if self._reply_timer is not None:
            self._reply_timer.close()
        self.log.info("transport.close")

    # -- I/O ---------------------------------------------------------------------------------

    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        lock = self._lock
        await lock.acquire()  # not `async with`: its two coroutines are 4 % of an exchange
        try:
            ser = self._require_open()
            if self._fd is not None:
                self._take()  # drain what the OS holds but the loop has not delivered yet
                self._raise_if_failed()
            if self._buffer:
                await self._discard_stale(frame_length)
            self._write(ser, request)
            n = frame_length(bytes(self._buffer))
            if n is None:
                n = await self._await_reply(frame_length, timeout_s)
            n = max(1, min(n, len(self._buffer)))
            reply = bytes(self._buffer[:n])
            del self._buffer[:n]
            return reply
        finally:
            lock.release()

    async def _await_reply(self, frame_length: FrameLength, timeout_s: float) -> int:
        """Wait until the buffer holds a whole reply; its length by `frame_length`. `_feed`
        resolves the waiter only when the framer finds a whole reply (partial chunks wake
        nobody); the timeout is the transport's one `ReplyTimer`, not a timer per wait."""
        timer = self._reply_timer
        assert timer is not None  # set at open, and `_require_open` came first
        waiter: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._reply_waiter = (waiter, frame_length)
        timer.start(self.clock.wall_delay(timeout_s))
        try:
            n = await waiter
        finally:
            timer.stop()
            self._reply_waiter = None
        self._raise_if_failed()
        if n is None:
            partial = bytes(self._buffer)
            raise PumpTimeout(
                f"no complete reply on {self.name} at {self.baudrate} baud within "
                f"{timeout_s:g} s (received {len(partial)} bytes: {partial!r}); "
                "check the pump's address and baud rate"
            )
        return n

    async def send(self, data: bytes) -> None:
        async with self._lock:
            ser = self._require_open()
            self._write(ser, data)

    def _require_open(self) -> Any:
        if self._serial is None:
            raise PumpConnectionError(f"{self.name} is not open")
        self._raise_if_failed()
        return self._serial

    def _raise_if_failed(self) -> None:
        if self._serial is None:
            raise PumpConnectionError(f"{self.name} was closed during the exchange")
        if self._error is not None:
            raise PumpConnectionError(f"{self.name} failed: {self._error}") from self._error

    async def _discard_stale(self, frame_length: FrameLength) -> None:
        """Drop late replies and unsolicited packets so they cannot pass for this reply (called
        only when the buffer holds some: most exchanges need no coroutine for it).

        A packet still arriving (an NE auto-alarm announced while we were busy) is waited for,
        a few character times at most, and dropped whole: dropping only the bytes already here
        would leave its tail to be read as the reply to the next command."""
        stale = bytearray()
        try:
            async with self.clock.wall_timeout(self._settle_s()):
                while self._buffer:
                    n = frame_length(bytes(self._buffer))
                    if n is None:  # a frame in progress: let it finish
                        self._data_event.clear()
                        await self._data_event.wait()
                        continue
                    n = max(1, min(n, len(self._buffer)))
                    stale += self._buffer[:n]
                    del self._buffer[:n]
        except TimeoutError:
            pass
        stale += self._buffer
        self._buffer.clear()
        self.log.warning(
            "transport.stale_bytes", rx=bytes(stale).hex(" "), rx_text=stale.decode("latin-1")
        )

    def _settle_s(self) -> float:
        """Long enough for a short packet to finish arriving: 32 characters on the line."""
        bits_per_char = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return max(0.02, 32 * bits_per_char / self.baudrate)

    def _write(self, ser: Any, data: bytes) -> None:
        try:
            fd = self._os_fd
            if fd is not None:
                # pyserial's write is this write() then a select() until the port is writable
                # again; a short or failed write is left to pyserial (its waits, its errors)
                try:  # not contextlib.suppress: its object is 5 % of an exchange
                    written = os.write(fd, data)
                except OSError:
                    written = 0
                if written == len(data):
                    return
                data = data[written:]
            ser.write(data)
        except (serial.SerialException, OSError) as exc:
            self._error = exc
            raise PumpConnectionError(f"write to {self.name} failed: {exc}") from exc

    # -- receive paths -----------------------------------------------------------------------

    def _on_readable(self) -> None:
        """Event-loop reader callback (fd mode): take whatever is there without blocking."""
        self._take(reported=True)

    def _take(self, *, reported: bool = False) -> None:
        """Read what the port holds without blocking. A POSIX port is read straight away,
        without the select() pyserial makes first. A raw tty reads 0 bytes both for no data
        and at a hang-up: where the loop `reported` the port readable, that empty read is
        handed to pyserial, whose select() tells which; a drain before a request takes it as
        no data, since a hang-up also makes the loop report the port, then this tells it."""
        ser = self._serial
        if ser is None or self._error is not None:
            return
        try:
            fd = self._os_fd
            data = _read_now(fd) if fd is not None else b""
            if data is None or (not data and fd is not None and not reported):
                return
            if not data:
                data = ser.read(_READ_CHUNK)
        except (serial.SerialException, OSError) as exc:
            self._fail(exc)
            return
        if data:
            self._feed(data)

    def _reader_thread(self) -> None:
        """Blocking reads for ports without a file descriptor (`loop://`, Windows)."""
        ser = self._serial
        loop = self._loop
        assert ser is not None and loop is not None
        while not self._stop_thread.is_set():
            try:
                data = ser.read(1)
                if data and ser.in_waiting:
                    data += ser.read(ser.in_waiting)
            except Exception as exc:  # any failure ends the thread; surfaced on the loop
                if not self._stop_thread.is_set():
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self._fail, exc)
                return
            if data:
                try:
                    loop.call_soon_threadsafe(self._feed, data)
                except RuntimeError:  # loop closed under us
                    return

    def _feed(self, data: bytes) -> None:
        self._buffer += data
        self._data_event.set()
        pending = self._reply_waiter
        if pending is not None:
            waiter, frame_length = pending
            if not waiter.done():
                n = frame_length(bytes(self._buffer))
                if n is not None:
                    waiter.set_result(n)

    def _wake_reply(self) -> None:
        """Wake an exchange waiting for its reply, so it sees the port closed or failed."""
        pending = self._reply_waiter
        if pending is not None and not pending[0].done():
            pending[0].set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._fd = self._os_fd = None
        self.log.error("transport.failed", error=str(exc))
        self._data_event.set()
        self._wake_reply()


def _read_now(fd: int) -> bytes | None:
    """One read() of a non-blocking POSIX port, failing as pyserial's read would: None for no
    data yet (EAGAIN and kin), empty for a read of 0 bytes (a raw tty's answer both for no
    data and at a hang-up)."""
    try:
        return os.read(fd, _READ_CHUNK)
    except OSError as exc:
        if exc.errno in _NO_DATA_YET:
            return None
        raise serial.SerialException(f"read failed: {exc}") from exc


def _real_fileno(ser: Any) -> int | None:
    """The OS descriptor behind `ser`, or None when there is none to select on."""
    try:
        fd = ser.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation, serial.SerialException):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None
