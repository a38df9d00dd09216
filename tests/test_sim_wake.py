"""Exact pacing: a paced endpoint answers from the moment the request's last byte arrived, and
wakes for a frame's last byte by a timer that is never early.

Only lower bounds on wall time are asserted for real timers; the endpoint's timing is checked on
a clock the test moves by hand.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from pumpctl.clock import RealClock
from pumpctl.simulator.devices.newera import NE1000Emulation
from pumpctl.simulator.endpoints import PtyEndpoint, _Pacer
from pumpctl.simulator.wake import Waker

SAFETY_S = 10.0  # guards against hangs only

REPLY = b"\x0200A?R\x03"  # a fresh NE-1000's answer to "0\r" (7 bytes)


class _HandClock(RealClock):
    """Real-time semantics (scale 1) at a `now` the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.t = 0.0

    def now(self) -> float:
        return self.t


class _Captured(PtyEndpoint):
    """A paced endpoint with no pty: what it would write, and when (clock seconds)."""

    def __init__(self, emulation: NE1000Emulation, clock: _HandClock) -> None:
        super().__init__(emulation, clock, pace=True)
        self.hand = clock
        self.written: list[tuple[float, bytes]] = []

    def _write(self, data: bytes) -> None:
        self.written.append((self.hand.t, data))

    def out(self) -> bytes:
        return b"".join(data for _, data in self.written)


def test_pacer_reports_when_its_bytes_arrive() -> None:
    pacer = _Pacer()
    byte_s = 0.01
    pacer.push(b"abc", 2.0)
    assert pacer.last_due_w(byte_s) == pytest.approx(2.03)
    assert pacer.pop(2.025, byte_s) == b"ab"
    assert pacer.released_w == pytest.approx(2.02)  # b's last bit, not the pop's time
    pacer.push(b"de", 1.0)  # a busy line: queued behind c, whatever start was asked
    assert pacer.last_due_w(byte_s) == pytest.approx(2.05)
    assert pacer.pop(2.05, byte_s) == b"cde"
    idle = _Pacer()
    idle.push(b"x", 7.0)  # an idle line starts where it is told, even before a later pop
    assert idle.pop(7.0 + byte_s, byte_s) == b"x"


def test_a_reply_starts_when_the_request_arrived_not_when_the_flush_noticed() -> None:
    emulation = NE1000Emulation()
    emulation.set_baud_rate(1200)  # 8N1: 120 bytes/s
    byte_s = 1 / 120
    clock = _HandClock()
    endpoint = _Captured(emulation, clock)
    endpoint._on_input(b"0\r")  # at t=0; its last byte has arrived at 2 * byte_s
    assert endpoint.out() == b""
    clock.t = 2 * byte_s + 0.012  # a flush 12 ms after the request was in (a tick late)
    endpoint._catch_up()
    assert endpoint.out() == REPLY[:1]  # the reply began at 2 * byte_s: one byte is through
    done_s = (2 + len(REPLY)) * byte_s
    clock.t = done_s - 1e-4
    endpoint._catch_up()
    assert endpoint.out() == REPLY[:-1]  # the last byte is still on the wire...
    clock.t = done_s + 1e-6
    endpoint._catch_up()
    assert endpoint.out() == REPLY  # ...and through at request + reply wire time, not later
    assert all(t >= 3 * byte_s for t, _ in endpoint.written)  # never before the first byte


def test_a_reply_to_a_request_heard_long_ago_still_takes_its_wire_time() -> None:
    """An emulation that answers later than the request (a reply delay) starts then."""
    emulation = NE1000Emulation()
    emulation.set_baud_rate(1200)
    byte_s = 1 / 120
    clock = _HandClock()
    endpoint = _Captured(emulation, clock)
    emulation.set_reply_delay_s(1.0)
    endpoint._on_input(b"0\r")
    clock.t = 0.5
    endpoint._catch_up()  # the request is in; the pump has not answered
    clock.t = 1.6
    endpoint._catch_up()  # the answer is ready now: its first byte starts now
    assert endpoint.out() == b""
    clock.t = 1.6 + len(REPLY) * byte_s - 1e-4
    endpoint._catch_up()
    assert endpoint.out() == REPLY[:-1]
    clock.t = 1.6 + len(REPLY) * byte_s + 1e-6
    endpoint._catch_up()
    assert endpoint.out() == REPLY


@pytest.mark.parametrize("exact", [True, False], ids=["timerfd", "loop-timers"])
async def test_waker_calls_back_at_each_time_and_never_before(exact: bool) -> None:
    calls: list[float] = []
    two = asyncio.Event()

    def callback() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            two.set()

    waker = Waker(callback, exact=exact)
    try:
        assert waker.exact is (exact and sys.platform.startswith("linux"))
        start = time.monotonic()
        waker.at(start + 0.030)  # asked out of order: the earlier one still comes first
        waker.at(start + 0.010)
        await asyncio.wait_for(two.wait(), SAFETY_S)
        assert calls[0] >= start + 0.010
        assert calls[1] >= start + 0.030
        now = time.monotonic()
        waker.at(now - 1.0)  # a time already past: at once
        waker.at(now - 0.5)  # due together with it: one call for both
        three = asyncio.Event()
        calls_before = len(calls)

        def third() -> None:
            three.set()

        marker = Waker(third, exact=exact)
        marker.at(time.monotonic() + 0.020)
        await asyncio.wait_for(three.wait(), SAFETY_S)
        marker.close()
        assert len(calls) == calls_before + 1
    finally:
        waker.close()


@pytest.mark.parametrize("exact", [True, False], ids=["timerfd", "loop-timers"])
async def test_a_closed_waker_calls_nothing(exact: bool) -> None:
    fired: list[str] = []
    later = asyncio.Event()
    closed = Waker(lambda: fired.append("closed"), exact=exact)
    other = Waker(later.set, exact=exact)
    try:
        closed.at(time.monotonic() + 0.005)
        closed.close()
        other.at(time.monotonic() + 0.025)  # after the closed one's time
        await asyncio.wait_for(later.wait(), SAFETY_S)
        assert fired == []
    finally:
        other.close()
