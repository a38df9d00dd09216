"""Benchmark 4, the peer ratio: pumpctl's NE-1000 driver vs a bare blocking client, same exchanges.

Both drive the same unpaced `pumpctl simulate ne1000` process over its pty, in basic mode, one
after the other in alternating order (A B B A ...), with the same exchanges: configure (syringe
diameter, direction), set the rate, 1000 status polls, read the dispensed volume. pumpctl runs
its `NE1000Driver` on `SerialTransport` (asyncio); the bare client is what any client costs at
least: pyserial opens the port, then it sends the very request bytes pumpctl sent (recorded on
an untimed run) with `os.write` and blocks in `os.read` until ETX (VMIN=1: see `_bare`).
Connecting (pumpctl's probe) is outside the timed part. Judged by the ratio of the minimum times
per sequence, pumpctl / bare (other processes only ever add time), measured in the same run;
target <= 1.05. Shown beside it: the third-party nesp-lib client doing the same operations, when
installed; the least asyncio client (a reader callback resolving a future at ETX, nothing else),
which splits pumpctl's excess into what the event loop costs any asyncio client and pumpctl's
own; and the bare client spinning on pyserial's non-blocking tty settings, which is what this
bench measured as "bare" until December 2026 (a busy-wait, a core per pump: no controller's
floor).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from bench import Row, median
from bench._pty_sim import spawned
from pumpctl.clock import Clock, RealClock, wall_monotonic
from pumpctl.drivers.base import Direction, FrameLength
from pumpctl.drivers.newera import NE1000Driver
from pumpctl.drivers.transport import SerialTransport
from pumpctl.log import configure_logging

NAME = "peer_nesp_lib"
TARGET_RATIO = 1.05
BAUD = 19200
DIAMETER_MM = 26.59
RATE_ML_PER_MIN = 0.25  # 15 mL/h


def _operations(polls: int) -> int:
    return 3 + polls + 1  # diameter, direction, rate, polls, dispensed


def _nesp_lib(path: str, polls: int) -> float:
    import nesp_lib

    with nesp_lib.Port(path, BAUD) as port:
        pump = nesp_lib.Pump(port)
        t0 = wall_monotonic()
        pump.syringe_diameter_mm = DIAMETER_MM
        pump.pumping_direction = nesp_lib.PumpingDirection.INFUSE
        pump.pumping_rate_ml_per_min = RATE_ML_PER_MIN
        for _ in range(polls):
            _ = pump.status
        _ = pump.volume_infused_ml
        return wall_monotonic() - t0


def _bare(path: str, requests: list[bytes], *, spin: bool = False) -> float:
    """The same exchanges with no client library: write each request, block in `os.read`
    until ETX. Both clients wait for the same simulator; this is the floor any client meets.

    pyserial leaves the tty at VMIN=0, VTIME=0, where a read returns at once with nothing, so a
    loop of `os.read` on it does not block but spins (about 80 empty reads an exchange, a core
    busy the whole time). The blocking client sets VMIN=1 so its read sleeps until a byte is
    there, as every client that does not burn a core must; `spin=True` keeps pyserial's setting,
    the floor only a busy-wait reaches (shown beside, not judged)."""
    import termios

    import serial

    with serial.Serial(path, BAUD) as ser:
        fd = ser.fileno()
        os.set_blocking(fd, True)
        if not spin:
            attrs = termios.tcgetattr(fd)
            attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        t0 = wall_monotonic()
        for request in requests:
            os.write(fd, request)
            reply = b""
            while not reply.endswith(b"\x03"):
                reply += os.read(fd, 64)
        elapsed = wall_monotonic() - t0
        os.set_blocking(fd, False)
        return elapsed


def _bare_asyncio(path: str, requests: list[bytes]) -> float:
    """The same exchanges from the least an asyncio client can do: `os.write`, then wait on a
    future the port's reader callback resolves at ETX (no lock, no timeout, no parsing). What
    pumpctl adds to this is its own cost; the rest is the event loop's wake-up."""
    import serial

    async def run() -> float:
        loop = asyncio.get_running_loop()
        with serial.Serial(path, BAUD, timeout=0) as ser:
            fd = ser.fileno()
            buf = bytearray()
            waiter: list[asyncio.Future[None]] = []

            def readable() -> None:
                buf.extend(os.read(fd, 4096))
                if buf.endswith(b"\x03") and waiter and not waiter[0].done():
                    waiter[0].set_result(None)

            loop.add_reader(fd, readable)
            try:
                t0 = wall_monotonic()
                for request in requests:
                    buf.clear()
                    waiter[:] = [loop.create_future()]
                    os.write(fd, request)
                    await waiter[0]
                return wall_monotonic() - t0
            finally:
                loop.remove_reader(fd)

    return asyncio.run(run())


class _Recording(SerialTransport):
    """Keeps every request sent, for the bare client to send the same bytes."""

    def __init__(self, port: str, *, baudrate: int, clock: Clock) -> None:
        super().__init__(port, baudrate=baudrate, clock=clock)
        self.requests: list[bytes] = []

    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        self.requests.append(request)
        return await super().exchange(request, frame_length, timeout_s)


async def _sequence(driver: NE1000Driver, polls: int) -> None:
    await driver.configure_syringe(DIAMETER_MM)
    await driver.set_rate(RATE_ML_PER_MIN * 60.0, Direction.INFUSE)  # DIR + RAT
    for _ in range(polls):
        await driver.read_status()
    await driver.read_delivered()


async def _record(path: str, polls: int) -> list[bytes]:
    transport = _Recording(path, baudrate=BAUD, clock=RealClock())
    async with NE1000Driver(transport, address=0) as driver:
        transport.requests.clear()  # the probe on open is not part of the sequence
        await _sequence(driver, polls)
    return transport.requests


async def _pumpctl(path: str, polls: int) -> float:
    clock = RealClock()
    driver = NE1000Driver(SerialTransport(path, baudrate=BAUD, clock=clock), address=0)
    async with driver:
        t0 = wall_monotonic()
        await _sequence(driver, polls)
        return wall_monotonic() - t0


def _has_nesp_lib() -> bool:
    try:
        import nesp_lib  # noqa: F401
    except ImportError:
        return False
    return True


def run(*, quick: bool = False) -> dict[str, Any]:
    configure_logging(console=False, level=logging.INFO)
    polls, rounds = (20, 2) if quick else (1000, 6)
    ops = _operations(polls)
    clients = ["pumpctl", "bare", "asyncio", "spin"] + (["nesp_lib"] if _has_nesp_lib() else [])
    times: dict[str, list[float]] = {who: [] for who in clients}
    # unpaced: the pump answers at once, so the clients' own costs are all that differ
    argv = [sys.executable, "-m", "pumpctl", "simulate", "ne1000", "--no-pace"]
    with spawned(argv) as (path, _):
        # the first client of a fresh simulator meets its power-up alarm: record untimed
        requests = asyncio.run(_record(path, polls))
        if len(requests) != ops:
            raise RuntimeError(f"pumpctl sent {len(requests)} requests, expected {ops}")
        for i in range(rounds):
            for who in clients if i % 2 == 0 else clients[::-1]:
                if who == "pumpctl":
                    times[who].append(asyncio.run(_pumpctl(path, polls)))
                elif who == "bare":
                    times[who].append(_bare(path, requests))
                elif who == "asyncio":
                    times[who].append(_bare_asyncio(path, requests))
                elif who == "spin":
                    times[who].append(_bare(path, requests, spin=True))
                else:
                    times[who].append(_nesp_lib(path, polls))
    best_us = {k: min(v) / ops * 1e6 for k, v in times.items()}
    median_us = {k: median(v) / ops * 1e6 for k, v in times.items()}
    ratio = best_us["pumpctl"] / best_us["bare"]
    nesp = best_us.get("nesp_lib")
    return {
        "what": "configure (DIA, DIR), set rate, "
        f"{polls} status polls, read dispensed; pumpctl NE1000Driver + SerialTransport vs a "
        "bare blocking client sending the same bytes (os.write, os.read at VMIN=1 until ETX), "
        "the same spinning at pyserial's VMIN=0, the least "
        "asyncio client (reader callback, future at ETX) and nesp-lib Pump, same unpaced `pumpctl simulate ne1000` pty, basic mode, alternated",
        "judged_by": "minimum time per operation, pumpctl / bare blocking client",
        "quick": quick,
        "operations_per_sequence": ops,
        "rounds": rounds,
        "seconds_each": times,
        "pumpctl_us_per_op": best_us["pumpctl"],
        "bare_us_per_op": best_us["bare"],
        "spinning_client_us_per_op": best_us["spin"],
        "asyncio_floor_us_per_op": best_us["asyncio"],
        "ratio_vs_asyncio_floor": best_us["pumpctl"] / best_us["asyncio"],
        "asyncio_floor_vs_bare": best_us["asyncio"] / best_us["bare"],
        "nesp_lib_us_per_op": nesp,
        "median_us_per_op": median_us,
        "ratio": ratio,
        "ratio_vs_nesp_lib": best_us["pumpctl"] / nesp if nesp else None,
        "bare_vs_nesp_lib": best_us["bare"] / nesp if nesp else None,
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
    }


def rows(res: dict[str, Any]) -> list[Row]:
    nesp = res.get("nesp_lib_us_per_op")
    beside = (
        f"; nesp-lib {nesp:.0f} µs, pumpctl = {res['ratio_vs_nesp_lib']:.2f}x it" if nesp else ""
    )
    floor = (
        f"; least asyncio client {res['asyncio_floor_us_per_op']:.0f} µs "
        f"({res['asyncio_floor_vs_bare']:.2f}x bare), pumpctl = "
        f"{res['ratio_vs_asyncio_floor']:.2f}x it; a client spinning on reads "
        f"{res['spinning_client_us_per_op']:.0f} µs"
    )
    return [
        Row(
            NAME,
            "pumpctl / bare blocking client, time per op",
            f"{res['ratio']:.3f} ({res['pumpctl_us_per_op']:.0f} vs "
            f"{res['bare_us_per_op']:.0f} µs{floor}{beside})",
            f"<= {TARGET_RATIO}",
            res["met"],
        )
    ]
