"""`ReplyTimer`: one timer handle for a stream of reply timeouts, on the virtual clock (exact
times, no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from pumpctl.clock import Clock, run_with_clock
from pumpctl.drivers.reply_timer import ReplyTimer


def _run(body: Callable[[ReplyTimer, Clock], Awaitable[None]]) -> list[float]:
    """Run `body(timer, clock)`; the loop times at which the timer expired."""

    async def main(clock: Clock) -> list[float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        expired: list[float] = []
        timer = ReplyTimer(loop, lambda: expired.append(loop.time() - t0))
        try:
            await body(timer, clock)
        finally:
            timer.close()
        return expired

    return run_with_clock(main, virtual=True)


def test_a_wait_that_outlives_its_delay_expires_once_at_its_deadline() -> None:
    async def body(timer: ReplyTimer, clock: Clock) -> None:
        timer.start(1.0)
        await clock.sleep(5.0)

    assert _run(body) == [pytest.approx(1.0)]


def test_waits_stopped_in_time_never_expire() -> None:
    async def body(timer: ReplyTimer, clock: Clock) -> None:
        for _ in range(500):  # quick replies, 0.1 s apart, each well inside its 1 s timeout
            timer.start(1.0)
            await clock.sleep(0.1)
            timer.stop()
        await clock.sleep(5.0)

    assert _run(body) == []


def test_a_later_wait_moves_the_deadline_and_the_timer_follows() -> None:
    async def body(timer: ReplyTimer, clock: Clock) -> None:
        timer.start(1.0)  # armed for t = 1.0
        await clock.sleep(0.5)
        timer.stop()
        timer.start(1.0)  # deadline t = 1.5: the handle armed for 1.0 re-arms when it fires
        await clock.sleep(5.0)

    assert _run(body) == [pytest.approx(1.5)]


def test_a_shorter_timeout_than_the_armed_one_expires_at_its_own_time() -> None:
    async def body(timer: ReplyTimer, clock: Clock) -> None:
        timer.start(30.0)
        timer.stop()
        timer.start(0.2)  # the handle for t = 30 is replaced, not waited for
        await clock.sleep(60.0)

    assert _run(body) == [pytest.approx(0.2)]


def test_a_closed_timer_expires_nothing() -> None:
    async def body(timer: ReplyTimer, clock: Clock) -> None:
        timer.start(1.0)
        timer.close()
        await clock.sleep(5.0)

    assert _run(body) == []
