"""The virtual clock's skip-ahead: it jumps only when nothing else could run first."""

from __future__ import annotations

import asyncio
import socket

from pumpctl.clock import RealClock, VirtualClock, VirtualTimeEventLoop


def test_a_real_clock_never_skips() -> None:
    assert RealClock().skip_ahead(1.0) is False


def test_skips_an_idle_wait_but_not_past_a_timer_or_a_ready_callback() -> None:
    loop = VirtualTimeEventLoop()
    clock = VirtualClock(loop)
    try:
        assert clock.skip_ahead(5.0) and loop.time() == 5.0 == clock.now()
        assert not clock.skip_ahead(0.0)
        handle = loop.call_later(2.0, lambda: None)
        assert not clock.skip_ahead(3.0) and loop.time() == 5.0  # the timer is due first
        handle.cancel()
        assert clock.skip_ahead(3.0) and loop.time() == 8.0
        loop.call_soon(lambda: None)
        assert not clock.skip_ahead(1.0)
    finally:
        loop.close()


def test_a_ready_descriptor_stops_a_skip_until_it_is_unregistered() -> None:
    loop = VirtualTimeEventLoop()
    clock = VirtualClock(loop)
    a, b = socket.socketpair()
    try:
        loop.add_reader(a, lambda: None)
        b.send(b"x")
        assert not clock.skip_ahead(1.0)  # the reader would run first
        loop.remove_reader(a)
        assert clock.skip_ahead(1.0)
    finally:
        a.close()
        b.close()
        loop.close()


def test_wait_skips_without_touching_the_waiter() -> None:
    loop = VirtualTimeEventLoop()
    clock = VirtualClock(loop)

    async def main() -> tuple[bool, bool]:
        waiter: asyncio.Future[None] = loop.create_future()
        expired = await clock.wait(waiter, 10.0)
        return expired, waiter.done()

    try:
        assert loop.run_until_complete(main()) == (False, False)
        assert loop.time() == 10.0
    finally:
        loop.close()
