"""Clocks: the only place pumpctl reads time or waits.

Everything that waits (poll intervals, reply timeouts, pause limits) goes through a `Clock`, so the
same supervisor runs a 5-day program in seconds on a virtual clock, in minutes on a scaled clock
for hardware-in-the-loop rehearsals, and in real time against a pump.

The virtual clock is an asyncio event loop whose `time()` jumps forward whenever every task is
blocked on a timer: `asyncio.sleep`, `asyncio.timeout` and `loop.call_later` all run on simulated
time, with no wall-clock waiting and no change to the code under test. It is only meaningful with
in-process endpoints (no real file descriptors whose data arrives in wall time).
"""

from __future__ import annotations

import asyncio
import heapq
import selectors
import time
from abc import ABC, abstractmethod
from asyncio.base_events import MAXIMUM_SELECT_TIMEOUT  # type: ignore[attr-defined]
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "Clock",
    "RealClock",
    "VirtualClock",
    "VirtualTimeEventLoop",
    "run_with_clock",
    "wall_time",
]


def wall_time() -> float:
    """Seconds since the epoch, for audit timestamps (never for waiting)."""
    return time.time()


def wall_monotonic() -> float:
    """Monotonic wall seconds, for measuring elapsed real time (benchmarks, time-scale)."""
    return time.monotonic()


class Clock(ABC):
    """Simulated-or-real seconds, with waits that honour the same timeline.

    `time_scale` is clock seconds per wall second: 1 for real time, X for a rig rehearsing X times
    faster, `inf` for the virtual clock.
    """

    time_scale: float

    @abstractmethod
    def now(self) -> float:
        """Seconds on this clock's timeline (monotonic, origin unspecified)."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of clock time."""

    @abstractmethod
    def timeout(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        """`async with clock.timeout(s):` raises TimeoutError after `s` seconds of clock time."""

    async def wait(self, waiter: asyncio.Future[Any], seconds: float) -> bool:
        """Wait for `waiter` or `seconds` of clock time, whichever comes first; True if the
        waiter is done. Unlike `timeout`, an expiry cancels nothing (no exception unwinds a
        stack), which matters on a path taken once a poll for days of virtual time."""
        if not waiter.done():
            handle = asyncio.get_running_loop().call_later(
                self._loop_delay(seconds), _resolve, waiter
            )
            try:
                await waiter
            finally:
                handle.cancel()
        return not waiter.cancelled() and waiter.result() is not _EXPIRED

    def skip_ahead(self, seconds: float) -> bool:
        """Jump `seconds` ahead at once when nothing else could run first (a virtual clock's
        idle wait); True if it did, and the caller goes on as after a wait that expired."""
        return False

    def _loop_delay(self, seconds: float) -> float:
        """Event-loop seconds for `seconds` of clock time."""
        return max(0.0, seconds)

    def wall_timeout(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        """A timeout on real wire time (serial I/O), whatever the clock's scale.

        Bytes on a real wire take real time; a scaled clock must not shorten a reply timeout.
        """
        return asyncio.timeout(seconds)

    def wall_delay(self, seconds: float) -> float:
        """Event-loop seconds for `seconds` of real wire time (see `wall_timeout`): a timer
        for a wait that must not be scaled, without the cost of a cancel scope."""
        return max(0.0, seconds)


_EXPIRED = object()


def _resolve(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_EXPIRED)


class RealClock(Clock):
    """Wall-clock time, optionally scaled for rigs (`--time-scale X`)."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = time_scale
        self._wall0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._wall0) * self.time_scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.time_scale)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        return asyncio.timeout(max(0.0, seconds) / self.time_scale)

    def _loop_delay(self, seconds: float) -> float:
        return max(0.0, seconds) / self.time_scale


class VirtualClock(Clock):
    """Simulated time of a `VirtualTimeEventLoop`; waits cost no wall time."""

    time_scale = float("inf")

    def __init__(self, loop: VirtualTimeEventLoop | None = None) -> None:
        self._loop = loop
        if loop is not None:
            # read several times a poll: the trusted loop's own `time`, one call instead of two
            self.now = loop.time  # type: ignore[method-assign]

    def _current_loop(self) -> VirtualTimeEventLoop:
        loop = self._loop or asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeEventLoop):
            raise RuntimeError("VirtualClock needs a VirtualTimeEventLoop (use run_with_clock)")
        return loop

    def now(self) -> float:
        # (replaced by the loop's `time` when a loop was given at construction)
        return self._current_loop().time()

    def skip_ahead(self, seconds: float) -> bool:
        loop = self._loop or self._current_loop()
        return seconds > 0 and loop.skip_ahead(seconds)

    async def sleep(self, seconds: float) -> None:
        if self.skip_ahead(seconds):
            return
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, waiter: asyncio.Future[Any], seconds: float) -> bool:
        # nothing can complete a pending waiter while no other callback may run first
        if not waiter.done() and self.skip_ahead(seconds):
            return False
        return await super().wait(waiter, seconds)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        self._current_loop()
        return asyncio.timeout(max(0.0, seconds))

    def wall_timeout(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        # On a virtual timeline there is no wire: a reply that has not come by the time every task
        # is idle will never come, so the timeout is simulated time too.
        return self.timeout(seconds)


class _FastForwardSelector(selectors.BaseSelector):
    """Wraps a real selector; when the loop would block waiting for a timer, jump time instead."""

    def __init__(self, inner: selectors.BaseSelector, advance: Callable[[float], None]) -> None:
        self._inner = inner
        self._advance = advance
        #: descriptors registered (all go through here): read on every skip, where the inner
        #: selector's mapping would cost two calls and a Python `__len__`
        self.registered = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = self._inner.register(fileobj, events, data)
        self.registered += 1
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = self._inner.unregister(fileobj)
        self.registered -= 1
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def any_ready(self) -> bool:
        """Whether a registered descriptor has an event now (one poll, no wait)."""
        return bool(self._inner.select(0))

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Nothing scheduled: only another thread (call_soon_threadsafe) can wake us.
            return self._inner.select(None)
        self._advance(timeout)
        return []

    def close(self) -> None:
        self._inner.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """Event loop on simulated time: idle periods are skipped, not waited.

    A task that waits while nothing else could run before its deadline does not even go round
    the loop (`skip_ahead`): a supervisor polling once a simulated second for days spends no
    loop iterations, timer handles or futures on its waits.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = start
        self._ff_selector = _FastForwardSelector(selectors.DefaultSelector(), self._advance)
        super().__init__(self._ff_selector)
        # the base loop's own queues, read by skip_ahead (the same objects for the loop's life)
        self._ready_handles: deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._virtual_now

    def skip_ahead(self, delay: float) -> bool:
        """Jump the clock `delay` seconds ahead at once, if the loop would do nothing else
        first: not stopping, no callback ready, no timer due by then, no descriptor ready
        (`loop.stop()` ends the loop at its next iteration; one that never comes would leave
        the task running on past it). True if it did;
        the caller then returns as a `sleep(delay)` would, at the same simulated time.

        The clock ends exactly where one loop iteration would put it (`now + (when - now)`,
        the timeout the loop computes), so skipping changes no timestamp.
        """
        if self._ready_handles or self._stopping or not 0 < delay <= MAXIMUM_SELECT_TIMEOUT:  # type: ignore[attr-defined]
            return False
        now = self._virtual_now
        when = now + delay
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        # the handles' own fields, as the base loop reads them (`cancelled()` and `when()`
        # are two calls a poll for a timer that stays scheduled, a watcher's or a test's)
        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            heapq.heappop(scheduled)._scheduled = False  # type: ignore[attr-defined]
        end = now + (when - now)
        if scheduled and scheduled[0]._when < end + self._clock_resolution:  # type: ignore[attr-defined]
            return False
        # the loop's self-pipe alone needs no poll: a thread's call_soon_threadsafe lands in
        # the ready queue first; other descriptors (and signal wake-ups) are polled
        others = self._ff_selector.registered > 1 or self._signal_handlers  # type: ignore[attr-defined]
        if others and self._ff_selector.any_ready():
            return False
        self._virtual_now = end
        return True

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_with_clock(
    main: Callable[[Clock], Awaitable[T]],
    *,
    virtual: bool = False,
    time_scale: float = 1.0,
) -> T:
    """Run `main(clock)` to completion on a fresh event loop of the right kind."""
    if virtual:
        loop = VirtualTimeEventLoop()
        clock: Clock = VirtualClock(loop)
        try:
            return loop.run_until_complete(_as_coro(main(clock)))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    clock = RealClock(time_scale)
    return asyncio.run(_as_coro(main(clock)))


async def _as_coro(aw: Awaitable[T]) -> T:
    return await aw
