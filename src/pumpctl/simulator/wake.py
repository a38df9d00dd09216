"""Exact wake-ups for the paced endpoints.

A paced endpoint must hand a client a frame's last byte when that byte has crossed the wire.
asyncio's own timers cannot: on Linux the loop waits in `epoll_wait`, whose timeout is whole
milliseconds rounded up, so a timer fires up to 1 ms late. At 19200 baud an NE-1000 poll is 16 ms
of wire, and that rounding alone cost 3 % of it. A Linux timerfd armed at the exact monotonic time
is a descriptor the loop already watches: the selector returns when the kernel's timer fires.

Elsewhere (no timerfd) the loop's timers are used; kqueue's timeouts are not rounded to ms.
(Python 3.13 has `os.timerfd_create`; ctypes reaches the same call on 3.11 and 3.12.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import os
import sys
import time
from collections.abc import Callable

__all__ = ["Waker"]

_CLOCK_MONOTONIC = 1  # what time.monotonic() reads on Linux
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _TimerFd:
    """A one-shot CLOCK_MONOTONIC timerfd, armed at absolute times."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._settime = libc.timerfd_settime
        fd = int(libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd

    def arm(self, when_mono: float) -> None:
        sec = int(when_mono)
        nsec = min(999_999_999, max(1, int((when_mono - sec) * 1e9)))  # 0/0 would disarm
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, nsec))
        if self._settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):  # the expiry count: read, the fd is quiet
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


def _timerfd() -> _TimerFd | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return _TimerFd()
    except (OSError, AttributeError):  # AttributeError: a libc without timerfd
        return None


class Waker:
    """Calls `callback` once at (never before) each requested monotonic time.

    Times are `time.monotonic()` seconds. Wake-ups that fall due together call back once.
    `exact=False` uses the loop's timers even where a timerfd exists (for tests of that path).
    """

    def __init__(self, callback: Callable[[], None], *, exact: bool = True) -> None:
        self._callback = callback
        self._loop = asyncio.get_running_loop()
        self._due: list[float] = []
        self._armed_at = float("inf")
        self._handle: asyncio.TimerHandle | None = None
        self._timer = _timerfd() if exact else None
        if self._timer is not None:
            self._loop.add_reader(self._timer.fd, self._fired)

    @property
    def exact(self) -> bool:
        """Whether wake-ups come from a timerfd (else from the loop's timers)."""
        return self._timer is not None

    def at(self, when_mono: float) -> None:
        heapq.heappush(self._due, when_mono)
        if when_mono < self._armed_at:
            self._arm(when_mono)

    def _arm(self, when_mono: float) -> None:
        self._armed_at = when_mono
        if self._timer is not None:
            self._timer.arm(when_mono)
            return
        if self._handle is not None:
            self._handle.cancel()
        delay = max(0.0, when_mono - time.monotonic())
        self._handle = self._loop.call_later(delay, self._fired)

    def _fired(self) -> None:
        if self._timer is not None:
            self._timer.clear()
        self._handle = None
        self._armed_at = float("inf")
        now = time.monotonic()
        due = self._due
        if not due or due[0] > now:  # a stale expiry: re-arm for what is still ahead
            if due:
                self._arm(due[0])
            return
        while due and due[0] <= now:
            heapq.heappop(due)
        self._callback()
        if due and due[0] < self._armed_at:
            self._arm(due[0])

    def close(self) -> None:
        self._due.clear()
        self._armed_at = float("inf")
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._timer is not None:
            self._loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None
