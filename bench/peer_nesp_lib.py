"""Benchmark 4, peer side by side: pumpctl's NE-1000 driver vs the third-party nesp-lib client.

Both drive the same `pumpctl simulate ne1000` process over its pty, in basic mode, one after the
other in alternating order (A B B A ...), with the same operations: configure (syringe diameter,
direction), set the rate, 1000 status polls, read the dispensed volume. Connecting (nesp-lib's
SAF0 + VER, pumpctl's probe) is outside the timed part. Judged by the ratio of median times per
operation, pumpctl / nesp-lib, measured in the same run; target <= 0.5. A bare client (write,
blocking `os.read` until ETX) gives the floor both wait on: the simulator's round trip.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from bench import Row, median
from bench._pty_sim import spawned
from pumpctl.clock import RealClock, wall_monotonic
from pumpctl.drivers.base import Direction
from pumpctl.drivers.newera import NE1000Driver, encode_basic
from pumpctl.drivers.transport import SerialTransport
from pumpctl.log import configure_logging

NAME = "peer_nesp_lib"
TARGET_RATIO = 0.5
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


def _raw_floor(path: str, polls: int) -> float:
    """The same number of exchanges with no client library: write a status query, block in
    `os.read` until ETX. Both clients wait for the same simulator; this is what any client
    costs at least, so `raw / nesp-lib` is the best ratio any driver could reach here."""
    import serial

    request = encode_basic(0, "")
    with serial.Serial(path, BAUD) as ser:
        fd = ser.fileno()
        os.set_blocking(fd, True)
        t0 = wall_monotonic()
        for _ in range(_operations(polls)):
            os.write(fd, request)
            reply = b""
            while not reply.endswith(b"\x03"):
                reply += os.read(fd, 64)
        elapsed = wall_monotonic() - t0
        os.set_blocking(fd, False)
        return elapsed


async def _pumpctl(path: str, polls: int) -> float:
    clock = RealClock()
    driver = NE1000Driver(SerialTransport(path, baudrate=BAUD, clock=clock), address=0)
    async with driver:
        t0 = wall_monotonic()
        await driver.configure_syringe(DIAMETER_MM)
        await driver.set_rate(RATE_ML_PER_MIN * 60.0, Direction.INFUSE)  # DIR + RAT
        for _ in range(polls):
            await driver.read_status()
        await driver.read_delivered()
        return wall_monotonic() - t0


def run(*, quick: bool = False) -> dict[str, Any]:
    try:
        import nesp_lib  # noqa: F401
    except ImportError:
        return {"skipped": "nesp-lib is not installed (dev extra)", "ratio": None, "met": None}
    configure_logging(console=False, level=logging.INFO)
    polls, rounds = (20, 2) if quick else (1000, 6)
    ops = _operations(polls)
    times: dict[str, list[float]] = {"pumpctl": [], "nesp_lib": [], "raw_floor": []}
    argv = [sys.executable, "-m", "pumpctl", "simulate", "ne1000"]
    with spawned(argv) as (path, _):
        # the first client of a fresh simulator meets its power-up alarm: do that untimed
        _nesp_lib(path, 1)
        for i in range(rounds):
            order = ("pumpctl", "nesp_lib") if i % 2 == 0 else ("nesp_lib", "pumpctl")
            for who in order:
                if who == "pumpctl":
                    times[who].append(asyncio.run(_pumpctl(path, polls)))
                else:
                    times[who].append(_nesp_lib(path, polls))
            times["raw_floor"].append(_raw_floor(path, polls))
    per_op_us = {k: median(v) / ops * 1e6 for k, v in times.items()}
    ratio = per_op_us["pumpctl"] / per_op_us["nesp_lib"]
    return {
        "what": "configure (DIA, DIR), set rate, "
        f"{polls} status polls, read dispensed; pumpctl NE1000Driver + SerialTransport vs "
        "nesp-lib Pump, same `pumpctl simulate ne1000` pty, basic mode, alternated",
        "judged_by": "median time per operation, pumpctl / nesp-lib",
        "quick": quick,
        "operations_per_sequence": ops,
        "rounds": rounds,
        "seconds_each": times,
        "pumpctl_us_per_op": per_op_us["pumpctl"],
        "nesp_lib_us_per_op": per_op_us["nesp_lib"],
        "raw_floor_us_per_op": per_op_us["raw_floor"],
        "best_possible_ratio": per_op_us["raw_floor"] / per_op_us["nesp_lib"],
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
    }


def rows(res: dict[str, Any]) -> list[Row]:
    if res.get("ratio") is None:
        return [Row(NAME, "pumpctl / nesp-lib time per op", "skipped", "<= 0.5", None)]
    return [
        Row(
            NAME,
            "pumpctl / nesp-lib time per op",
            f"{res['ratio']:.2f} ({res['pumpctl_us_per_op']:.0f} vs "
            f"{res['nesp_lib_us_per_op']:.0f} µs; bare os.read client "
            f"{res['raw_floor_us_per_op']:.0f} µs = {res['best_possible_ratio']:.2f})",
            f"<= {TARGET_RATIO}",
            res["met"],
        )
    ]
